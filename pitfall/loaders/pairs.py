"""A map-style dataset: index -> one (cell type, locus) example, for ``DataLoader`` and friends.

::

    from torch.utils.data import DataLoader, DistributedSampler

    data = PairDataset(cube, split.train(cube), inputs="sequence")
    x, y, meta = data[0]            # x["sequence"] (4, L); meta: locus, name, chrom, ...
    batches = DataLoader(data, batch_size=32, shuffle=True, num_workers=2,
                         multiprocessing_context="spawn")

Index ``i`` is the ``i``-th (cell type, locus) pair of the selection, cell type by cell type,
loci ascending (the order of :class:`~pitfall.loaders.sampling.AllPairs`): every labelled
pair once, so a ``DataLoader`` epoch (``shuffle=True``, or a ``DistributedSampler``'s
share) holds each example exactly once. The balanced, seeded batches of the paper's recipe
are :class:`~pitfall.loaders.core.Loader`'s.

Reads go through one :class:`~pitfall.loaders.readers.ChunkReader` per process: a worker
unpickles the dataset without the cache and opens the store's arrays on its first read,
then keeps recent chunks, so consecutive examples of one chunk read it once. A batch of
indices (``__getitems__``, which ``DataLoader`` calls with a batch's indices) is gathered
chunk by chunk and one-hot encoded in one call. Nothing here imports torch: the dataset is
a plain Python object that ``torch.utils.data`` (or anything else) indexes.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from pitfall.cube import locus_names
from pitfall.loaders.average import LocusAverage
from pitfall.loaders.core import Target, example_parts, takes_cell_type, whole_number
from pitfall.loaders.readers import (
    DEFAULT_CACHE_BYTES,
    ChunkReader,
    refuse_forked,
    selection_index,
)
from pitfall.loaders.sampling import BalancedSampler, gather, list_pairs

__all__ = ["META", "PairDataset"]

#: Keys of an example's metadata: its index in the dataset, its locus (cube position, name,
#: chromosome, start, end) and its cell type (name and cube position).
META: tuple[str, ...] = (
    "index",
    "locus",
    "name",
    "chrom",
    "start",
    "end",
    "cell_type",
    "cell_type_index",
)


def _in_torch_worker() -> bool:
    # Without importing torch: a process that has not imported it is not a torch worker.
    torch_data = sys.modules.get("torch.utils.data")
    return torch_data is not None and torch_data.get_worker_info() is not None


def _shared_epoch(value: int) -> Any:
    # Shared memory, so a set_epoch in the main process reaches persistent workers too.
    epoch = multiprocessing.get_context("spawn").RawValue("q", value)
    return epoch


class PairDataset:
    """Map-style dataset of a selection's (cell type, locus) pairs: ``data[i]`` is one example.

    Parameters
    ----------
    cube
        The whole cube (``open_cube``); data are read from it by position.
    selection
        A split role's selection of it (``split.train(cube)``), dims ``(cell_type, locus)``;
        only its coordinates are used.
    inputs
        ``"signal"``, ``"sequence"``, ``"both"`` or ``"random"`` (as :class:`Loader`).
    layout
        Of the one-hot sequence: ``"NCL"`` ``(4, L)`` per example (the default: PyTorch's
        ``Conv1d``, whose ``DataLoader`` is what this dataset is for) or ``"NLC"``
        ``(L, 4)``.
    permuted, n_random, seed, target, average
        As :class:`~pitfall.loaders.core.Loader` (``seed`` seeds the controls and the
        augmentation).
    reverse_complement, max_shift
        Augmentation of the sequence, off by default: drawn from ``(seed, epoch, cell type,
        locus)`` (:class:`~pitfall.loaders.encoding.Augment`), the epoch set by
        :meth:`set_epoch`; the same draw as a :class:`Loader`'s for the same pair and epoch.
    labelled_only
        Only the labelled pairs (default); False: every pair, ``y`` NaN where unlabelled
        (to predict a whole selection).
    reader, store, cache_bytes, in_memory
        As :class:`~pitfall.loaders.core.Loader`.

    Notes
    -----
    ``data[i]`` is ``(x, y, meta)``: ``x`` a dict of float32 arrays keyed by input
    (``sequence`` ``(L, 4)`` or ``(4, L)``, ``signal`` ``(n_marks,)``, ``random``
    ``(n_random,)``, ``average`` ``(1,)``), ``y`` a float32 scalar, ``meta`` a dict
    (:data:`META`) of Python ints and strings; ``DataLoader``'s default collation makes
    them tensors ``(b, ...)``, ``(b,)`` and, for the strings, lists.

    Workers must be started with ``multiprocessing_context="spawn"`` (or ``"forkserver"``)
    unless the dataset is ``in_memory``: Icechunk cannot read in a forked process, and a
    forked worker raises a RuntimeError that says so.
    """

    def __init__(
        self,
        cube: xr.Dataset,
        selection: xr.Dataset,
        *,
        inputs: str = "signal",
        layout: str = "NCL",
        permuted: bool = False,
        n_random: int = 100,
        seed: int = 0,
        target: Target | None = None,
        average: LocusAverage | None = None,
        reverse_complement: bool = False,
        max_shift: int = 0,
        labelled_only: bool = True,
        reader: ChunkReader | None = None,
        store: Any = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        in_memory: bool = False,
    ) -> None:
        self.cube = cube
        self.encoder, self.augment, self.reader = example_parts(
            cube,
            inputs,
            permuted=permuted,
            n_random=n_random,
            seed=seed,
            average=average,
            layout=layout,
            reverse_complement=reverse_complement,
            max_shift=max_shift,
            reader=reader,
            store=store,
            cache_bytes=cache_bytes,
            in_memory=in_memory,
        )
        self.target = target
        self._target_cell_type = target is not None and takes_cell_type(target)
        cts, loci = selection_index(cube, selection)
        self.pairs = list_pairs(
            BalancedSampler(self.reader, cts, loci), labelled_only=labelled_only
        )
        # Per-locus metadata of the selection's loci only, read once.
        self._loci = np.unique(loci)
        sub = cube.isel(locus=self._loci)
        self._names = np.asarray([str(v) for v in locus_names(sub)], dtype=object)
        self._chroms = np.asarray([str(v) for v in np.asarray(sub["chrom"].values)], dtype=object)
        self._starts = np.asarray(sub["start"].values, dtype=np.int64)
        self._ends = np.asarray(sub["end"].values, dtype=np.int64)
        self._cell_types = np.asarray([str(c) for c in cube["cell_type"].values], dtype=object)
        self._epoch = _shared_epoch(0)
        self._home = os.getpid()

    # ------------------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is None:
            # Shared memory travels only to a process being started; elsewhere, the value.
            state["_epoch"] = int(self._epoch.value)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if isinstance(self._epoch, int):
            self._epoch = _shared_epoch(self._epoch)
        self._home = os.getpid()  # unpickled here: its reader opens the store here

    # ------------------------------------------------------------------------------ protocol
    def __len__(self) -> int:
        return int(self.pairs["y"].size)

    @property
    def layout(self) -> str:
        """Of the one-hot sequence: ``"NLC"`` or ``"NCL"``."""
        return self.encoder.layout

    @property
    def epoch(self) -> int:
        """The epoch whose augmentation the examples get (:meth:`set_epoch`)."""
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Draw the augmentation of epoch ``epoch`` from now on (in every worker too)."""
        self._epoch.value = whole_number("epoch", epoch, 0)

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each input of one example."""
        sizes = self.cube.sizes
        return self.encoder.shapes(
            n_marks=sizes.get("mark", 0) if "signal" in self.cube else 0,
            seq_len=sizes.get("position", 0) if "sequence" in self.cube else 0,
        )

    def _index(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"dataset indices must be integers, got {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        n = len(self)
        bad = (idx < -n) | (idx >= n)
        if bad.any():
            raise IndexError(f"index {int(idx[bad][0])} is out of range for {n} examples")
        return np.where(idx < 0, idx + n, idx)

    def batch(
        self, indices: Sequence[int] | np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """Examples ``indices`` at once: ``(x, y, meta)``, each array ``(n, ...)``.

        Returns
        -------
        x : dict
            float32 inputs ``(n, ...)``.
        y : numpy.ndarray
            float32 ``(n,)``: labels (NaN: unlabelled) or ``target``.
        meta : dict
            :data:`META`: int64 arrays ``(n,)`` and object arrays of ``str`` ``(n,)``.
        """
        refuse_forked(self._home, self.reader)
        idx = self._index(indices)
        cts = self.pairs["cell_type"][idx]
        loci = self.pairs["locus"][idx]
        y = self.pairs["y"][idx]
        raw = gather(self.reader, cts, loci, self.encoder.needs)
        raw["y"] = y
        prepared = self.encoder.prepare(raw)
        if "codes" in prepared:
            prepared["codes"] = self.augment.apply(prepared["codes"], self.epoch, cts, loci)
        x = self.encoder.inputs_of(prepared)
        if self.target is None:
            y = y.copy()
        elif self._target_cell_type:
            y = np.asarray(self.target(y, loci, cts), np.float32)
        else:
            y = np.asarray(self.target(y, loci), np.float32)
        k = np.searchsorted(self._loci, loci)
        meta = {
            "index": idx,
            "locus": loci,
            "name": self._names[k],
            "chrom": self._chroms[k],
            "start": self._starts[k],
            "end": self._ends[k],
            "cell_type": self._cell_types[cts],
            "cell_type_index": cts,
        }
        return x, y, meta

    def __getitems__(
        self, indices: Sequence[int]
    ) -> Sequence[tuple[dict[str, np.ndarray], np.float32, dict[str, Any]]]:
        """Examples ``indices`` as a list of ``data[i]`` (``DataLoader`` fetches a batch's
        indices this way: read and encoded together).

        In a torch ``DataLoader`` worker each example also knows the whole batch it came
        from, so that the default collation sends that batch as one record of a slot of
        shared memory (:func:`pitfall.loaders.slots.examples`); any other ``collate_fn``
        sees ``(x, y, meta)`` tuples (of a tuple subclass that pickles as a plain tuple).
        """
        x, y, meta = self.batch(indices)
        columns = {k: v.tolist() for k, v in meta.items()}
        rows = [
            (
                {k: v[r] for k, v in x.items()},
                y[r],
                {k: v[r] for k, v in columns.items()},
            )
            for r in range(y.size)
        ]
        if not _in_torch_worker():
            return rows
        from pitfall.loaders.slots import examples

        return examples(self, rows, self._whole(x, y, meta))

    @staticmethod
    def _whole(x: dict[str, np.ndarray], y: np.ndarray, meta: dict[str, np.ndarray]) -> Any:
        """A batch as a ``DataLoader`` gives it: the string columns of ``meta`` as lists."""
        return x, y, {k: v.tolist() if v.dtype == object else v for k, v in meta.items()}

    def __getitem__(self, i: Any) -> Any:
        """Example ``i`` (an int): ``(x, y, meta)``; or, for a list or array of indices, the
        whole batch -- what ``DataLoader(data, batch_size=None, sampler=BatchSampler(sampler,
        32, drop_last=False))`` asks for, skipping the per-example collation.

        A batch is :meth:`batch`'s ``(x, y, meta)`` with ``meta``'s string columns as lists,
        so that a ``DataLoader`` gives what its per-example collation would: tensors for the
        arrays and the numbers, lists of ``str``. In a torch ``DataLoader`` worker the batch
        leaves as one record of a slot of shared memory (:mod:`pitfall.loaders.slots`), which
        the main process unpickles into those tensors without a file descriptor each.
        """
        if isinstance(i, (list, tuple, np.ndarray)):
            batch = self._whole(*self.batch(i))
            if not _in_torch_worker():
                return batch
            from pitfall.loaders.slots import send

            return send(self, batch)
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise TypeError(f"a dataset index is an int or a list of ints, got {type(i).__name__}")
        return self.__getitems__([int(i)])[0]
