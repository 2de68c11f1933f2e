# Settings and input functions of the derive and distance stages (no rules; included by derive.smk).

from modelkin.derive import planned_derivations, zoo_id_parts

# Every derived model the config plans, by id (parents before their descendants).
DERIVED = {m.model_id: m for m in planned_derivations(config)}


def derivation_job(wildcards):
    model = f"derived/{wildcards.dataset}/{wildcards.derivation}/{wildcards.parent}/s{wildcards.seed}"
    if model not in DERIVED:
        raise ValueError(
            f"{model} is not among the derived models that config.yaml plans (derived.parents, "
            f"derived.derivations.{wildcards.derivation})"
        )
    planned = DERIVED[model]
    return canonical(
        {
            "model_id": model,
            "parent_id": planned.parent,
            "derivation": planned.derivation,
            "settings": planned.settings,
            "device": config["device"],
        }
    )


def zoo_profile(model):
    parts = zoo_id_parts(model)
    return parts["dataset"], parts["arch"], parts["algorithm"]


def distance_models():
    """Derived models, the zoo models of their settings (or all), and distances.extra_models."""
    settings = config["distances"]
    zoo = [model_id(*m) for m in zoo_models()]
    if settings["include_zoo"] == "all":
        chosen = zoo
    else:
        profiles = {m.profile for m in DERIVED.values()}
        profiles |= {zoo_profile(m.parent) for m in DERIVED.values() if m.parent in zoo}
        chosen = [m for m in zoo if zoo_profile(m) in profiles]
    return list(dict.fromkeys(chosen + list(DERIVED) + settings["extra_models"]))


def distance_job():
    settings = config["distances"]
    return {
        "models": distance_models(),
        "min_reference_pairs": settings["min_reference_pairs"],
        "on_insufficient_reference": settings["on_insufficient_reference"],
        "threshold": settings["threshold"],
    }
