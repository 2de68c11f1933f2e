"""Glue for workflow/scripts: each Snakemake job logs
to its ``log:`` file and uses its ``threads:``."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import sys
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (every thread), and of its waited-for
    children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def snakemake_job(snakemake):
    """Send stdout, stderr, logging and progress bars of the job to ``snakemake.log[0]``, and
    register the config's own data sets (``datasets:``) so that the job knows them by name.

    Torch is not imported here (table and plot jobs never need it); its thread pools read the
    job's ``threads:`` from the environment when a job does import it.

    The log ends with the job's wall time, its CPU time and the CPU time its process spent before
    the job began (Python, Snakemake's preamble, imports): ``done in W s (cpu C s, start-up cpu
    S s)``, which ``benchmarks/pipeline_stages.py`` sums per rule.
    """
    own_start = startup_cpu = cpu_seconds()
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
    # Restored on exit: a job run inside a longer-lived process (a test) must not leave its
    # thread count to whatever that process starts next (nproc, for one, obeys OMP_NUM_THREADS).
    saved_environment = {v: os.environ.get(v) for v in THREAD_VARIABLES}
    for variable in THREAD_VARIABLES:
        os.environ[variable] = threads
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))
    if "numpy" in sys.modules:  # its BLAS read the environment when it loaded: set it directly
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(int(threads), user_api="blas")
    start = time.perf_counter()
    try:
        logging.getLogger("modelkin").info("rule %s, threads %s", snakemake.rule, snakemake.threads)
        # Each job is a fresh process: the config's own data sets join the registry here, as
        # they did when Snakemake read the config (modelkin.data_sources).
        from .data_sources import register_config_datasets

        register_config_datasets(getattr(snakemake, "config", None) or {})
        yield snakemake
        logging.getLogger("modelkin").info(
            "done in %.1f s (cpu %.1f s, start-up cpu %.2f s)",
            time.perf_counter() - start,
            cpu_seconds() - own_start,
            startup_cpu,
        )
    except BaseException:
        logging.getLogger("modelkin").exception("failed after %.1f s", time.perf_counter() - start)
        raise
    finally:
        root.removeHandler(handler)
        sys.stdout, sys.stderr = old_out, old_err
        if log_path:
            stream.close()
        for variable, value in saved_environment.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def drop_local_job_rate_limit(workflow) -> bool:
    """Turn off Snakemake's job-submission rate limit when jobs run on this machine; returns
    whether it was on.

    The limit (``--max-jobs-per-timespan``, default 100/1s) exists for cluster schedulers. Its cost
    is not the limit but its timer: Snakemake 9 re-arms a one-second timer on every scheduler pass
    that leaves ready jobs waiting, and every finished job starts another such chain of passes
    (snakemake/snakemake#3744). With 2 cores and hundreds of waiting jobs, the chains multiply
    until the scheduler itself, each pass stat-ing the inputs of every ready job and solving its
    ILP, uses a third of the pipeline's CPU time. A local run never needs the limit: the cores
    already bound how many jobs start. Cluster runs keep it.
    """
    scheduler = getattr(workflow, "scheduler", None)
    if not getattr(workflow, "local_exec", False) or scheduler is None:
        return False
    if getattr(scheduler, "job_rate_limiter", None) is None:
        return False
    scheduler.job_rate_limiter = None
    return True
