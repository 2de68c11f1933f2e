# Settings and input functions of the signature stage (no rules; included by signatures.smk).
# B's distance rules use signature_file() and model_dataset().

ZEST_PROBE_KEYS = (
    "split",
    "n_images",
    "n_samples",
    "kernel_size",
    "ratio",
    "max_dist",
    "seed",
)


def model_dataset(model):
    """The data set of a model id: `{dataset}/...` (zoo) or `derived/{dataset}/...` (derived models)."""
    parts = model.split("/")
    return parts[1] if parts[0] == "derived" else parts[0]


def signature_file(method, model):
    """Where the `zest` or `gradfield` signature of model id `model` lives."""
    return f"{R}/signatures/{method}/{model}.h5"


def zest_probe_path(dataset):
    return f"{R}/probes/zest/{dataset}.h5"


def gradfield_candidates_path(dataset):
    return f"{R}/probes/gradfield/{dataset}/candidates.h5"


def gradfield_probe_path(dataset):
    return f"{R}/probes/gradfield/{dataset}/selected.h5"


def gradfield_selection_models(dataset):
    """Independent models whose fields on the candidates rank them (at least two)."""
    settings = config["gradfield"]
    if settings["selection_models"]:
        models = [
            m for m in settings["selection_models"] if model_dataset(m) == dataset
        ]
        origin = "gradfield.selection_models"
    else:
        models = [
            model_id(*m)
            for m in zoo_models()
            if m[0] == dataset and m[2] == settings["selection_algorithm"]
        ]
        origin = f"the zoo's {settings['selection_algorithm']!r} models"
    if len(models) < 2:
        raise ValueError(
            f"ModelGiF reference-point selection for {dataset} needs at least two independent models; "
            f"{origin}: {models}. List model ids under gradfield.selection_models"
        )
    return models


def gradfield_job():
    settings = config["gradfield"]
    return {
        "target": settings["target"],
        "n_steps": settings["n_steps"],
        "chunk_size": settings["chunk_size"],
        "device": config["device"],
    }
