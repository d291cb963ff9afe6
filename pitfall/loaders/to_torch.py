"""A PyTorch ``IterableDataset`` over a :class:`~pitfall.loaders.core.Loader` (imports torch)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from pitfall.loaders.slots import claim, send

__all__ = ["TorchBatches"]


class TorchBatches(IterableDataset):
    """A loader's batches as tensors ``(x, y)``: ``x`` a dict of float32 tensors ``(b, ...)``
    (``sequence`` ``(b, 4, L)`` in the loader's layout ``"NCL"``, :meth:`Loader.to_torch`'s
    default), ``y`` float32 ``(b,)``; ``(x, y, ids)`` when the loader serves ids, ``ids`` a
    dict of int64 tensors ``(b,)`` (``locus``, ``cell_type_index``: cube positions).

    Each iteration is one epoch of the loader: the one last set by :meth:`set_epoch` (call it
    before each epoch when a ``DataLoader`` has workers, as with ``DistributedSampler``: they
    iterate copies, which cannot count epochs for the main process), else the next one
    (counting from the loader's ``next_epoch``).

    In a ``DataLoader`` (``batch_size=None``: items are whole batches) with ``num_workers=W``,
    worker ``w`` serves shard ``(w, W)`` of the loader's shard, and the ``DataLoader``'s
    round-robin over its workers gives back exactly the single-process order. Workers must be
    started with ``multiprocessing_context="spawn"`` (or ``"forkserver"``) unless the loader
    is ``in_memory``: Icechunk cannot read in a forked process.
    """

    def __init__(self, loader: Any) -> None:
        super().__init__()
        self.loader = loader
        # Shared memory, so a set_epoch in the main process reaches persistent workers too.
        self._epoch = multiprocessing.get_context("spawn").RawValue("q", -1)
        self._shard: tuple[tuple[int, int, int], Any] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch`` from now on (in every worker)."""
        self._epoch.value = int(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        loader = self.loader
        epoch = int(self._epoch.value)
        if epoch < 0:
            epoch = loader.next_epoch
            loader.next_epoch += 1
        info = get_worker_info()
        if info is not None and info.num_workers > 1:
            # One shard loader per worker, kept across epochs: its prefetch thread has the
            # next epoch ready when a persistent worker starts it.
            key = (os.getpid(), info.id, info.num_workers)
            if self._shard is None or self._shard[0] != key:
                self._shard = (key, loader.with_shard(info.id, info.num_workers))
            loader = self._shard[1]
        prepared = loader.prepared(epoch)
        for b in range(prepared.n_batches):
            # In a worker, the batch is made in a slot of shared memory and sent as a record
            # of it; else its fresh arrays are wrapped without a copy.
            slot = claim(self)
            batch = loader.batch_of(prepared, b, alloc=None if slot is None else slot.alloc)
            yield send(self, tuple(batch), slot)
