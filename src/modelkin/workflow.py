"""Glue for workflow/scripts: each Snakemake job logs
to its ``log:`` file and uses its ``threads:``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time


@contextlib.contextmanager
def snakemake_job(snakemake):
    """Send stdout, stderr, logging and progress bars of the job to ``snakemake.log[0]``.

    Torch is not imported here (table and plot jobs never need it); its thread pools read the
    job's ``threads:`` from the environment when a job does import it.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    stream = open(log_path, "w", buffering=1) if log_path else sys.stderr
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = stream
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    threads = str(max(1, int(snakemake.threads)))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = threads
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))
    start = time.perf_counter()
    try:
        logging.getLogger("modelkin").info("rule %s, threads %s", snakemake.rule, snakemake.threads)
        yield snakemake
        logging.getLogger("modelkin").info("done in %.1f s", time.perf_counter() - start)
    except BaseException:
        logging.getLogger("modelkin").exception("failed after %.1f s", time.perf_counter() - start)
        raise
    finally:
        root.removeHandler(handler)
        sys.stdout, sys.stderr = old_out, old_err
        if log_path:
            stream.close()
