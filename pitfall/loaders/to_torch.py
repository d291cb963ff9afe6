"""A PyTorch ``IterableDataset`` over a :class:`~pitfall.loaders.core.Loader` (imports torch)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

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
            loader = loader.with_shard(info.id, info.num_workers)
        for batch in loader.epoch(epoch):
            # Fresh numpy arrays: wrapped without a copy.
            yield tuple(
                {k: torch.from_numpy(v) for k, v in part.items()}
                if isinstance(part, dict)
                else torch.from_numpy(part)
                for part in batch
            )
