"""What a worker process that pitfall starts does first: import its tasks' modules, then freeze.

Kept apart from :mod:`pitfall.cluster` because a plugin must subclass Dask's, and importing
:mod:`distributed` takes a noticeable start-up time that only a cluster should pay.
"""

from __future__ import annotations

import gc
import importlib
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["FrozenImports"]


class FrozenImports(WorkerPlugin):
    """Import ``modules``, then move every object so far out of the cyclic GC's full passes.

    :func:`gc.freeze` puts them in a permanent generation that collections skip (reference
    counting still frees them); a full pass then scans what tasks made, not the libraries,
    and stops the task that triggered it for much less time (``docs/performance.rst``). The
    cost: a reference cycle among the frozen objects is never collected, and imports make few.
    """

    name = "pitfall-frozen-imports"

    def __init__(self, modules: tuple[str, ...] = ()) -> None:
        self.modules = modules

    def setup(self, worker: Any) -> None:
        for module in self.modules:
            importlib.import_module(module)
        gc.freeze()
