"""A Keras ``PyDataset`` over a :class:`~pitfall.loaders.core.Loader` (imports Keras)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

__all__ = ["KerasBatches"]


class KerasBatches(keras.utils.PyDataset):
    """A loader's batches as a Keras ``PyDataset``: item ``b`` is batch ``b`` of the epoch.

    Keras calls :meth:`on_epoch_begin` once per epoch of ``fit``; the ``e``-th call makes the
    items those of the loader's epoch ``start + e - 1`` (items read before the first call,
    e.g. by Keras peeking at shapes, are epoch ``start``'s). Batches are already in a random
    order: ``fit(..., shuffle=False)`` keeps the loader's.

    Parameters
    ----------
    loader
        A :class:`~pitfall.loaders.core.Loader`.
    start
        The loader epoch of ``fit``'s first epoch.
    **kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size`` of ``PyDataset`` (threads
        may share the loader: batches are fresh arrays and epochs prepared under a lock).
    """

    def __init__(self, loader: Any, *, start: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loader = loader
        self.start = start
        self.current = start - 1

    def __len__(self) -> int:
        return self.loader.n_batches

    def on_epoch_begin(self) -> None:
        self.current += 1

    def __getitem__(self, b: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if not 0 <= b < len(self):
            raise IndexError(f"batch {b} of an epoch of {len(self)}")
        return self.loader.batch(max(self.current, self.start), b)
