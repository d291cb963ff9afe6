"""The local clusters pitfall starts (pitfall.cluster.dask_client): what their workers do first."""

from __future__ import annotations

import gc
import sys

from pitfall.cluster import dask_client

PRELOAD = "pitfall.featurize.jobs"


def _state(module: str) -> tuple[bool, bool, bool]:
    """On a worker: is ``module`` imported, its function tracked by the GC, and frozen?"""
    import gc
    import sys

    fn = sys.modules[module].compute_blocks if module in sys.modules else None
    # Frozen objects are still tracked, but no generation (so no full pass) holds them.
    return (
        fn is not None,
        fn is not None and gc.is_tracked(fn),
        fn is not None and all(o is not fn for o in gc.get_objects()),
    )


def test_dask_client__local_workers_import_then_freeze() -> None:
    with dask_client(workers=1, preload=[PRELOAD]) as client:
        (state,) = client.run(_state, PRELOAD).values()
        (frozen,) = client.run(gc.get_freeze_count).values()
    assert state == (True, True, True)
    # the libraries a worker imports (distributed, numpy, pandas, zarr...): far more than the
    # few hundred objects a task leaves behind
    assert frozen > 50_000


def test_dask_client__in_process_worker_leaves_this_process_unfrozen() -> None:
    before = gc.get_freeze_count()
    with dask_client(workers=0, preload=[PRELOAD]) as client:
        client.submit(sum, [1, 2]).result()
    assert gc.get_freeze_count() == before
    assert PRELOAD not in sys.modules or not _state(PRELOAD)[2]
