"""Models of another data set on a probe: class matching by name, settings, distance tables,
relatedness kinds and the plan of guest signatures (docs/model-distance.md, "Across data sets")."""

from __future__ import annotations

import numpy as np
import pytest

from modelkin.datasets import DATASETS, DatasetInfo
from modelkin.distances.reference import Setting, Side
from modelkin.lineage import Lineage
from modelkin.signatures.store import probe_class_columns

PARENT = "digits/mlp/standard/i{0}-d{0}"
TRANSFER = "derived/digits_negative/to_negative/digits/mlp/standard/i{0}-d{0}/s0"


def lineage(dataset="digits_negative", classes=None, forget=None, num_classes=10) -> Lineage:
    return Lineage.from_metadata(
        {
            "name": "m",
            "arch": "mlp",
            "dataset": dataset,
            "num_classes": num_classes,
            "classes": classes,
            "forget_class": forget,
            "algorithm": "standard",
        }  # fmt: skip
    )


@pytest.fixture
def letters():
    """A registered 10-class data set whose class names are letters (none is a digit's)."""
    DATASETS["letters_test"] = DatasetInfo(
        "letters_test", (1, 32, 32), 10, (0.5,), (0.5,), "none", 0.1, "npz",
        class_names=tuple("abcdefghij"),
    )  # fmt: skip
    yield "letters_test"
    del DATASETS["letters_test"]


def test_classes_are_matched_to_the_probes_by_name(letters):
    # the digits in negative have the digits' class names: column j is digit j
    assert probe_class_columns(lineage(), "digits") == (list(range(10)), None)
    # a transfer to classes 5-9 of it (relabelled 0..4): its columns are digits 5-9
    assert probe_class_columns(lineage(classes=[5, 6, 7, 8, 9], num_classes=5), "digits") == (
        [5, 6, 7, 8, 9],
        [5, 6, 7, 8, 9],
    )
    # a model that forgot class 3 predicts the other nine
    columns, classes = probe_class_columns(lineage(forget=3), "digits")
    assert columns == list(range(10)) and classes == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    # no name in common: no column is a probe's class
    assert probe_class_columns(lineage(dataset=letters), "digits") == ([-1] * 10, [])


def test_a_side_of_another_data_set_round_trips_through_its_key():
    side = Side("lenet", "standard", (5, 6), "digits_negative")
    assert side.key == "lenet/standard[5,6]@digits_negative"
    assert Side.from_key(side.key) == side
    assert Side.from_key("lenet/standard@digits_negative") == Side(
        "lenet", "standard", None, "digits_negative"
    )
    setting = Setting.of("digits", side, Side("lenet", "standard"))
    assert setting.key == "digits:lenet/standard~lenet/standard[5,6]@digits_negative"
    assert Setting.from_key(setting.key) == setting
    # the same architecture and algorithm trained on the probe's own data set is another setting
    assert setting != Setting.of(
        "digits", Side("lenet", "standard", (5, 6)), Side("lenet", "standard")
    )


# ---------------------------------------------------------------------------------------------
# A table of 4 digits models, and 2 transfers to the digits in negative (of parents 0 and 1),
# each with a signature on its own data set's probe and one on the digits' probe


def _checkpoint(tmp_path, name, **meta):
    from modelkin.checkpoint import save_checkpoint
    from modelkin.models import seeded_model

    path = tmp_path / "models" / f"{name.replace('/', '_')}.safetensors"
    model = seeded_model("mlp", "digits", len(name) % 97)
    save_checkpoint(path, model, {"name": name, "arch": "mlp", "num_classes": 10, **meta})
    return path


def _probe(tmp_path, dataset, seed):
    from modelkin.signatures import write_probe

    rng = np.random.default_rng(seed)
    return write_probe(
        tmp_path / f"probe_{dataset}.h5",
        {"images": rng.normal(size=(2, 1, 4, 4))},
        kind="zest",
        params={"seed": seed, "dataset": dataset},
    )


def _members(tmp_path):
    from modelkin.checkpoint import load_checkpoint
    from modelkin.distances.tables import Member
    from modelkin.signatures import Computed, get_method, read_probe, write_signature

    rng = np.random.default_rng(0)
    probes = {
        d: read_probe(_probe(tmp_path, d, i)) for i, d in enumerate(("digits", "digits_negative"))
    }
    models, data = {}, {}
    for s in range(4):
        models[PARENT.format(s)] = _checkpoint(
            tmp_path, PARENT.format(s), dataset="digits", algorithm="standard",
            init_seed=s, data_seed=s,
        )  # fmt: skip
        data[PARENT.format(s), "digits"] = rng.normal(size=(30, 10))
    for s in range(2):
        name = TRANSFER.format(s)
        models[name] = _checkpoint(
            tmp_path, name, dataset="digits_negative", algorithm="transfer",
            derivation="transfer", parent=PARENT.format(s), root_algorithm="standard",
            init_seed=100 + s, data_seed=100 + s,
        )  # fmt: skip
        data[name, "digits"] = data[PARENT.format(s), "digits"] + rng.normal(
            scale=0.1, size=(30, 10)
        )
        data[name, "digits_negative"] = rng.normal(size=(30, 10))
    members = []
    for (name, probe), values in data.items():
        sig = write_signature(
            tmp_path / "sigs" / probe / f"{name.replace('/', '_')}.h5",
            Computed(values.astype(np.float32), {"outputs": "logits"}),
            method=get_method("zest"),
            checkpoint=load_checkpoint(models[name]),
            probe=probes[probe],
            name=name,
        )
        members.append(Member.from_signature(name, sig))
    return members


def test_a_transfer_to_another_data_set_is_compared_with_the_probes_models(tmp_path):
    from modelkin.distances.tables import distance_table

    members = _members(tmp_path)
    guests = [m for m in members if m.guest]
    assert [m.key for m in guests] == [f"{TRANSFER.format(s)}@digits" for s in range(2)]
    assert all(m.dataset == "digits" and m.probe_classes is None for m in guests)
    table = distance_table("zest", members, calibration={"min_families": 3, "min_partners": 1})
    on_digits = [r for r in table.rows if r["dataset"] == "digits"]
    # 6 pairs of digits models, and each transfer against the 4 of them; never two guests
    assert len(on_digits) == 6 + 2 * 4
    cross = "digits:mlp/standard~mlp/standard@digits_negative"
    rows = {(r["model_a"], r["model_b"]): r for r in on_digits if r["setting"] == cross}
    own = rows[PARENT.format(0), TRANSFER.format(0)]
    assert own["relation"] == "derived-by-transfer"
    assert own["ancestor"] == PARENT.format(0)
    # the null of the setting: each transfer against the three other families
    assert own["cos_reference_n"] == 6
    assert all(r["reference_pair"] for k, r in rows.items() if r["relation"] == "independent")
    assert own["cos"] < rows[PARENT.format(0), TRANSFER.format(1)]["cos"]
    # on their own data set's probe the two transfers are compared with each other only
    negative = [r for r in table.rows if r["dataset"] == "digits_negative"]
    assert [(r["model_a"], r["model_b"]) for r in negative] == [
        (TRANSFER.format(0), TRANSFER.format(1))
    ]


def test_a_model_may_not_appear_twice_on_one_probe(tmp_path):
    from modelkin.distances.tables import distance_table
    from modelkin.errors import InputError

    members = _members(tmp_path)
    with pytest.raises(InputError, match="appears twice"):
        distance_table("zest", [*members, members[-1]])


def test_the_reference_file_keys_a_guest_by_its_probe(tmp_path):
    from modelkin.distances.tables import distance_table, reference_document

    members = _members(tmp_path)
    table = distance_table("zest", members, calibration={"min_families": 3, "min_partners": 1})
    document = reference_document(table, tmp_path)
    guest = document["models"][f"{TRANSFER.format(0)}@digits"]
    assert guest["dataset"] == "digits" and guest["side"] == "mlp/standard@digits_negative"
    assert guest["family"] == PARENT.format(0)
    assert document["models"][TRANSFER.format(0)]["dataset"] == "digits_negative"


def test_zest_keeps_the_rows_of_the_classes_both_models_predict():
    from modelkin.signatures.zest import shared_class_rows

    class Stub:
        def __init__(self, classes):
            self.probe_classes = classes
            self.lineage = lineage()
            self.extras = {"labels": np.array([0, 5, 7]), "num_segments": np.array([2, 1, 3])}

    # a transfer predicting digits 5-9 against a 10-class model: the rows of the 5 and the 7
    assert shared_class_rows(Stub((5, 6, 7, 8, 9)), Stub(None)).tolist() == [0, 0, 1, 1, 1, 1]
    assert shared_class_rows(Stub(None), Stub(None)) is None
    # no class in common: every row (the class alignment pairs the columns)
    assert shared_class_rows(Stub(()), Stub((5,))) is None


def test_outputs_compare_only_columns_that_are_the_same_classes():
    from modelkin.signatures import get_distance, get_method

    class Stub:
        def __init__(self, data, columns):
            self.data, self.probe_columns = data, columns

    outputs = get_method("outputs")
    kl = get_distance("outputs", "kl")
    p = np.full((4, 3), 1 / 3)
    assert outputs.pair_distance(kl, Stub(p, None), Stub(p, [0, 1, 2])) == 0.0
    assert np.isnan(outputs.pair_distance(kl, Stub(p, None), Stub(p, [1, 0, 2])))
    assert np.isnan(outputs.pair_distance(kl, Stub(p, None), Stub(p, [-1, -1, -1])))


def test_relatedness_reports_a_cross_dataset_transfer_as_its_own_kind():
    import pandas as pd

    from modelkin.distances.relatedness import relatedness_groups

    frame = pd.DataFrame(
        {
            "model_a": ["p0", "p0", "p1", "p0"],
            "model_b": ["t0", "t1", "t0", "s0"],
            "relation": [
                "derived-by-transfer",
                "independent",
                "independent",
                "derived-by-transfer",
            ],
            "ancestor": ["p0", "", "", "p0"],
            "setting": [
                "digits:lenet/standard~lenet/standard@digits_negative",
                "digits:lenet/standard~lenet/standard@digits_negative",
                "digits:lenet/standard~lenet/standard@digits_negative",
                "digits:lenet/standard~lenet/standard[5,6,7,8,9]",
            ],
        }
    )
    groups = relatedness_groups(frame)
    assert sorted(groups) == ["transfer", "transfer@digits_negative"]
    positives, negatives, _ = groups["transfer@digits_negative"]
    # the negatives: the unrelated pairs of its parents (p0 against the other parent's transfer)
    assert positives["model_b"].tolist() == ["t0"] and negatives["model_b"].tolist() == ["t1"]


def _config(**distances):
    return {
        "zoo": {"datasets": ["digits"], "architectures": ["lenet"], "algorithms": ["standard"],
                "seeds": [0, 1]},
        "derived": {
            "parents": ["digits/lenet/standard/i0-d0"],
            "derivations": {
                "to_negative": {"kind": "transfer", "dataset": "digits_negative"},
                "finetune": {"kind": "finetune"},
            },
        },
        "gradfield": {"selection_seeds": [100, 101]},
        "distances": distances,
    }  # fmt: skip


def test_the_plan_adds_each_transfer_to_another_data_set_on_its_roots_probe():
    from modelkin.catalog import ModelCatalog, selection_models
    from modelkin.distances.plan import cross_dataset_guests, distance_job

    config = _config()
    catalog = ModelCatalog(config)
    transfer = "derived/digits_negative/to_negative/digits/lenet/standard/i0-d0/s0"
    assert cross_dataset_guests(config, catalog, "zest") == [(transfer, "digits")]
    assert cross_dataset_guests(config, catalog, "weights") == []  # reads no probe
    settings = {"calibration": {}, "on_insufficient_reference": "warn"}
    job = distance_job({**config, "distances": settings}, catalog, "zest")
    assert job["models"].count(transfer) == 2  # its own signature, and the guest's
    assert cross_dataset_guests(_config(cross_dataset=False), catalog, "zest") == []
    # ModelGiF's points on the transfer's own data set are chosen by models trained on it
    datasets = {m.dataset for m in selection_models(config)}
    assert datasets == {"digits", "digits_negative"}


def test_a_data_set_unknown_here_matches_no_class():
    assert probe_class_columns(lineage(dataset="not_registered_here"), "digits") == ([-1] * 10, [])
