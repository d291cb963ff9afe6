"""Dask clients for pitfall's parallel work: a local cluster, a scheduler, or the caller's own.

One place decides how a verb reaches workers, for every verb that has them (build, append,
sweep):

- ``client``: a :class:`distributed.Client` the caller made, e.g. from dask-jobqueue
  (SLURM, PBS), Dask Gateway or dask-kubernetes; used as is and left open;
- ``scheduler``: the address of a running scheduler (``tcp://host:8786``) or the path of a
  scheduler file (``dask scheduler --scheduler-file``);
- else a :class:`distributed.LocalCluster` of ``workers`` processes with one thread each
  (``workers=0``: one worker thread in this process, which is what small jobs and
  debuggers want). Each of those processes imports the modules its tasks will need when
  it starts (``preload``), then exempts them from the cyclic garbage collector's full
  passes (:func:`gc.freeze`): with the scientific stack imported, a worker holds so many
  objects that each full pass over them stops its task noticeably.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pitfall.storage import is_url

__all__ = ["dask_client", "n_threads"]


def _is_scheduler_file(scheduler: str) -> bool:
    return not is_url(scheduler) and (scheduler.endswith(".json") or Path(scheduler).is_file())


@contextlib.contextmanager
def dask_client(
    *,
    workers: int | None = None,
    scheduler: str | os.PathLike[str] | None = None,
    client: Any = None,
    env: Mapping[str, str] | None = None,
    preload: Sequence[str] = (),
) -> Iterator[Any]:
    """A connected :class:`distributed.Client`, closed on exit unless the caller gave it.

    Parameters
    ----------
    workers
        Local worker processes (one thread each); ``0`` runs one worker thread in this
        process; default ``min(2, cores)``.
    scheduler
        Address (``tcp://...``) or scheduler-file path of a running cluster.
    client
        An existing client (takes precedence).
    env
        Environment variables of local worker processes.
    preload
        Modules each local worker process imports as it starts, before its objects are
        frozen out of full garbage collections
        (:class:`~pitfall._worker_setup.FrozenImports`); a caller's client
        and a running cluster's workers are left as they are.
    """
    from distributed import Client, LocalCluster

    if client is not None:
        yield client
        return
    if scheduler:
        scheduler = os.fspath(scheduler)
        if _is_scheduler_file(scheduler):
            if not Path(scheduler).is_file():
                raise FileNotFoundError(f"{scheduler}: no such scheduler file")
            made = Client(scheduler_file=scheduler)
        else:
            made = Client(scheduler)
        try:
            yield made
        finally:
            made.close()
        return
    in_process = workers == 0
    cluster = LocalCluster(
        n_workers=1 if in_process else (workers or min(2, os.cpu_count() or 1)),
        threads_per_worker=1,
        processes=not in_process,
        dashboard_address=":0",  # any free port: never clash with another cluster
        # Task errors reach the user re-raised by the driver, with their own message; the
        # workers' tracebacks in the log would only repeat them.
        silence_logs=logging.CRITICAL,
        **({"env": dict(env)} if env and not in_process else {}),
    )
    made = Client(cluster)
    try:
        if not in_process:
            from pitfall._worker_setup import FrozenImports

            made.register_plugin(FrozenImports(tuple(preload)))
        yield made
    finally:
        made.close()
        cluster.close()


def n_threads(client: Any) -> int:
    """Total worker threads of a client's cluster (at least 1)."""
    info = (
        client.scheduler_info(n_workers=-1) if _takes_n_workers(client) else client.scheduler_info()
    )
    return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))


def _takes_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False
