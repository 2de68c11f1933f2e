"""Behavioural signatures: what a model does on a fixed probe, stored with its provenance.

- :mod:`.zest`: Zest's LIME surrogates (images, superpixels and masks as a shared probe).
- :mod:`.gradfield`: ModelGiF's gradient fields on reference points, and their selection.
- :mod:`.store`: the HDF5 signature and probe files, and the comparability check.

Submodules import torch; this package itself stays light so the CLI starts quickly.
"""

from .store import (
    Probe,
    Signature,
    SignatureError,
    SignatureMismatch,
    check_comparable,
    read_probe,
    read_signature,
    write_probe,
    write_signature,
)

METHODS = ("zest", "gradfield")

__all__ = [
    "METHODS",
    "Probe",
    "Signature",
    "SignatureError",
    "SignatureMismatch",
    "check_comparable",
    "read_probe",
    "read_signature",
    "write_probe",
    "write_signature",
]
