import json

import h5py
import numpy as np

from modelkin.cli import main


def test_inspect_prints_tree_attributes_and_provenance(tmp_path, capsys):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.attrs["method"] = "zest"
        f.attrs["modelkin_version"] = "0.1.0"
        f.attrs["params"] = json.dumps({"n_samples": 1000})
        d = f.create_dataset("signature", data=np.zeros((4, 10), dtype="f4"))
        d.attrs["axes"] = json.dumps(["superpixel", "class"])
        f.create_group("extra").create_dataset("x", data=np.arange(3))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "provenance:" in out and "method: zest" in out
    assert "signature  dataset (4, 10) float32" in out
    assert '@axes = ["superpixel", "class"]' in out
    assert "extra/  group" in out and "x  dataset (3,) int64" in out


def test_inspect_rejects_corrupt_files(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"garbage")
    assert main(["inspect", str(bad)]) == 1
    assert "not a readable HDF5 file" in capsys.readouterr().err
