"""Choosing ModelGiF's reference points among candidates by independent models' fields."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...io import file_sha256
from ...progress import progress
from ..store import SignatureError, check_comparable, read_signature
from .distance import per_point_field_distance
from .probe import PROBE_KIND, GradfieldProbe, load_gradfield_probe, save_gradfield_probe

log = logging.getLogger(__name__)

CRITERIA = {
    "independent": "highest mean gradient-field cosine distance between every two selection models",
    "victim": "highest mean gradient-field cosine distance of the victim (first) to the others",
}


def select_reference_points(
    candidate_probe_path: str | Path,
    signature_paths: Sequence[str | Path],
    k: int,
    output: str | Path,
    criterion: str = "independent",
) -> Path:
    """Keep the ``k`` candidates on which the given models' gradient fields differ most.

    ``criterion="independent"``: each candidate's score is its field distance (mean over steps of
    1 - cos) averaged over every pair of the signatures (independent models). ``"victim"`` (the
    reference code's): the first signature is the victim's, and the score is its distance to each
    of the others, averaged. The new probe holds the top ``k`` in rank order (best first, so its
    first k' points are the top k'), with their scores, and records the candidate probe's hash,
    the models, the criterion and ``k``.
    """
    if criterion not in CRITERIA:
        raise InputError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    candidate_probe_path = Path(candidate_probe_path)
    candidates = load_gradfield_probe(candidate_probe_path)
    candidate_hash = file_sha256(candidate_probe_path)
    if len(signature_paths) < 2:
        raise InputError(
            "reference-point selection needs signatures of at least "
            f"two independent models, got {len(signature_paths)}"
        )
    signatures = [read_signature(p) for p in signature_paths]
    for sig in signatures:
        if sig.method != PROBE_KIND:
            raise SignatureError(f"{sig.path} is a {sig.method} signature, not a gradient field")
        if sig.probe_sha256 != candidate_hash:
            raise SignatureError(
                f"{sig.path} was computed on probe {sig.attrs.get('probe')} (sha256 "
                f"{sig.probe_sha256[:12]}), not on the candidate probe "
                f"{candidate_probe_path} (sha256 {candidate_hash[:12]}); rebuild it"
            )
        check_comparable(signatures[0], sig)
    checkpoint_hashes = [sig.attrs["checkpoint_sha256"] for sig in signatures]
    if len(set(checkpoint_hashes)) != len(checkpoint_hashes):
        raise InputError(
            "reference-point selection got the same "
            "checkpoint twice; the models must be independent"
        )
    n_candidates = signatures[0].data.shape[0]
    if not 1 <= k <= n_candidates:
        raise InputError(f"k must be between 1 and the {n_candidates} candidates, got {k}")
    if criterion == "victim":
        pairs = [(0, j) for j in range(1, len(signatures))]
    else:
        pairs = list(itertools.combinations(range(len(signatures)), 2))
    score = np.zeros(n_candidates)
    for i, j in progress(pairs, desc="candidate distances"):
        score += per_point_field_distance(signatures[i].data, signatures[j].data)
    score /= len(pairs)
    keep = np.argsort(-score, kind="stable")[:k]
    log.info(
        "kept %d of %d candidates: mean pairwise field "
        "distance %.4f (kept) vs %.4f (all), over %d pairs",
        k,
        n_candidates,
        score[keep].mean(),
        score.mean(),
        len(pairs),
    )
    params = {
        **candidates.params,
        "n_points": int(k),
        "selection": {
            "criterion": CRITERIA[criterion],
            "k": int(k),
            "candidate_probe": str(candidate_probe_path),
            "candidate_probe_sha256": candidate_hash,
            "n_candidates": int(n_candidates),
            "models": [sig.name for sig in signatures],
            "checkpoint_sha256s": checkpoint_hashes,
            "signature_params": signatures[0].params,
        },
    }
    selected = GradfieldProbe(
        points=candidates.points[keep],
        labels=candidates.labels[keep],
        indices=candidates.indices[keep],
        baseline=candidates.baseline,
        params=params,
        selection_score=score[keep].astype(np.float64),
    )
    return save_gradfield_probe(selected, output)
