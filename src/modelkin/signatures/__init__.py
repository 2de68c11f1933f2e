"""Behavioural signatures: what a model does on a fixed probe, stored with its provenance.

- :mod:`.base`: the :class:`SignatureMethod` interface and :class:`Distance`;
- :mod:`.registry`: every method by name (:data:`METHODS`, :func:`get_method`);
- :mod:`.zest`, :mod:`.gradfield`: the methods;
- :mod:`.compute`: computing a signature with the checks every method shares;
- :mod:`.store`: the HDF5 signature and probe files, and the comparability check.

This package and the method entries import without torch; computing a signature imports it.
"""

from .base import Computed, Distance, SignatureMethod
from .registry import METHODS, get_distance, get_method, method_names, register_method
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

__all__ = [
    "METHODS",
    "Computed",
    "Distance",
    "Probe",
    "Signature",
    "SignatureError",
    "SignatureMethod",
    "SignatureMismatch",
    "check_comparable",
    "get_distance",
    "get_method",
    "method_names",
    "read_probe",
    "read_signature",
    "register_method",
    "write_probe",
    "write_signature",
]
