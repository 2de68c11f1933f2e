# Settings and input functions of the ModelDiff stage (modeldiff.smk); no rules here.

from modelkin.config import ConfigError

MD = config["modeldiff"]
MD_ROLES = {"A": MD["algorithm_a"], "B": MD["algorithm_b"]}
MD_SEEDS = [
    (s, s) if isinstance(s, int) else (s["init"], s["data"]) for s in MD["seeds"]
]
MD_DIR = (
    f"{R}/modeldiff/{MD['dataset']}/{MD['arch']}/{MD_ROLES['A']}-vs-{MD_ROLES['B']}"
)
MD_LDS_ALGORITHM = MD["lds"]["algorithm"] or MD_ROLES["A"]
MD_KINDS = {"A-minus-B": "A_minus_B", "B-minus-A": "B_minus_A"}

for _role, _algorithm in MD_ROLES.items():
    if MD["run_by_default"] and _algorithm not in config["training"]["algorithms"]:
        raise ConfigError(
            f"modeldiff.algorithm_{_role.lower()} is {_algorithm!r}, which training.algorithms does not define "
            f"(defined: {', '.join(config['training']['algorithms'])}); define it there, or set "
            "modeldiff.run_by_default: false to skip ModelDiff"
        )
if MD_ROLES["A"] == MD_ROLES["B"]:
    raise ConfigError(
        "modeldiff.algorithm_a and algorithm_b are the same algorithm; ModelDiff compares two"
    )


def md_planted_patch():
    """Algorithm B's planted patch, else A's (None if neither plants one)."""
    if not MD["run_by_default"] and not all(
        a in config["training"]["algorithms"] for a in MD_ROLES.values()
    ):
        return None
    i, d = MD_SEEDS[0]
    for algorithm in (MD_ROLES["B"], MD_ROLES["A"]):
        recipe = recipe_for(
            config,
            dataset=MD["dataset"],
            arch=MD["arch"],
            algorithm=algorithm,
            init_seed=i,
            data_seed=d,
        )
        if recipe.get("planted_patch"):
            return recipe["planted_patch"]
    return None


MD_TARGET_PATCH = md_planted_patch() if MD["trak"]["plant_targets"] else None


def md_checkpoints(algorithm):
    return [
        checkpoint_of(ZooId(MD["dataset"], MD["arch"], algorithm, i, d))
        for i, d in MD_SEEDS
    ]


def md_features(algorithm):
    return [
        f"{R}/modeldiff/trak/{MD['dataset']}/{MD['arch']}/{algorithm}/i{i}-d{d}.h5"
        for i, d in MD_SEEDS
    ]


def md_grids():
    return [
        f"{MD_DIR}/grids/{MD_KINDS[kind]}_{c}.png"
        for kind in MD_KINDS
        for c in range(MD["components"])
    ]


def trak_features_job(wildcards):
    seeds = (int(wildcards.init_seed), int(wildcards.data_seed))
    if seeds not in MD_SEEDS:
        raise ValueError(
            f"checkpoint i{seeds[0]}-d{seeds[1]} is not among modeldiff.seeds {MD['seeds']}; its projection "
            "matrix index is its position in that list"
        )
    trak = dict(MD["trak"])
    return canonical(
        {
            "settings": {
                k: trak[k]
                for k in (
                    "proj_dim",
                    "proj_type",
                    "seed",
                    "ridge",
                    "rescale_inverse",
                    "batch_size",
                    "max_projection_mib",
                )
            },
            "checkpoint_index": MD_SEEDS.index(seeds),
            "train_data": trak["train_data"],
            "targets": trak["targets"],
            "n_targets": trak["n_targets"],
            "target_patch": MD_TARGET_PATCH,
            "device": config["device"],
        }
    )


MD_LDS = (
    f"{R}/modeldiff/lds/{MD['dataset']}/{MD['arch']}/{MD_LDS_ALGORITHM}/lds.json"
    if MD["lds"]["enabled"]
    else None
)

MD_OUTPUTS = [
    f"{MD_DIR}/summary.json",
    f"{MD_DIR}/summary.png",
    f"{MD_DIR}/directions.csv",
    f"{MD_DIR}/surfaced.csv",
    f"{MD_DIR}/counterfactual.csv",
    *md_grids(),
]
