"""The loader: seeded numpy mini-batches of a split role's selection, for any framework."""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import xarray as xr

from pitfall.loaders.average import LocusAverage
from pitfall.loaders.encoding import Alloc, Augment, InputEncoder, check_layout, fresh_copy
from pitfall.loaders.readers import (
    DEFAULT_CACHE_BYTES,
    ChunkReader,
    MemoryReader,
    refuse_forked,
    selection_index,
)
from pitfall.loaders.sampling import AllPairs, BalancedBatches, Epoch, EpochSource, gather

__all__ = [
    "INPUTS",
    "Batch",
    "IdBatch",
    "Loader",
    "example_parts",
    "make_reader",
    "takes_cell_type",
    "whole_number",
]

#: A batch ``(x, y)``: inputs by name ``(b, ...)`` and targets ``(b,)``.
Batch = tuple[dict[str, np.ndarray], np.ndarray]
#: A batch with its ids ``(x, y, ids)``: ``ids["locus"]`` and ``ids["cell_type_index"]``,
#: int64 ``(b,)`` cube positions (``cube.name[ids["locus"]]``,
#: ``cube.cell_type[ids["cell_type_index"]]``).
IdBatch = tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]
Target = Callable[..., np.ndarray]

#: What a loader's ``inputs`` may be.
INPUTS: tuple[str, ...] = ("signal", "sequence", "both", "random")


def whole_number(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or a ValueError naming the argument and what it may be."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


def _check_batches(
    batch_size: int, batches_per_epoch: int, shard: tuple[int, int]
) -> tuple[int, int]:
    """Refuse a loader's batching arguments before any work; the shard as ``(k, n)``."""
    whole_number("batch_size", batch_size, 1)
    whole_number("batches_per_epoch", batches_per_epoch, 1)
    try:
        k, n = (whole_number("shard", v, 0) for v in shard)
    except (TypeError, ValueError):
        k, n = -1, 0
    if not 0 <= k < n:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
    return k, n


def make_reader(
    cube: xr.Dataset,
    needs: Sequence[str],
    *,
    reader: ChunkReader | None = None,
    store: Any = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    in_memory: bool = False,
) -> ChunkReader:
    """``reader``, or the reader a loader makes: a :class:`MemoryReader` of ``label`` and
    ``needs`` when ``in_memory``, else a :class:`ChunkReader` of ``store``."""
    if reader is not None:
        return reader
    if in_memory:
        return MemoryReader(cube, ["label", *needs])
    return ChunkReader(cube, store=store, cache_bytes=cache_bytes)


def example_parts(
    cube: xr.Dataset,
    inputs: str,
    *,
    permuted: bool,
    n_random: int,
    seed: int,
    average: LocusAverage | None,
    layout: str,
    reverse_complement: bool,
    max_shift: int,
    reader: ChunkReader | None,
    store: Any,
    cache_bytes: int,
    in_memory: bool,
) -> tuple[InputEncoder, Augment, ChunkReader]:
    """What every source of examples (:class:`Loader`, :class:`~pitfall.loaders.pairs.
    PairDataset`) makes of its arguments, refused before any work: the input encoder, the
    sequence augmentation and the reader of ``cube`` (:func:`make_reader`)."""
    if inputs not in INPUTS:
        allowed = ", ".join(repr(i) for i in INPUTS)
        raise ValueError(f"inputs must be one of {allowed}, got {inputs!r}")
    whole_number("seed", seed, 0)
    whole_number("n_random", n_random, 1)
    whole_number("cache_bytes", cache_bytes, 0)
    encoder = InputEncoder(
        inputs,
        permuted=permuted,
        seed=seed,
        n_random=n_random,
        average=average,
        layout=check_layout(layout),
    )
    augment = Augment(reverse_complement=reverse_complement, max_shift=max_shift, seed=seed)
    reader = make_reader(
        cube,
        encoder.needs,
        reader=reader,
        store=store,
        cache_bytes=cache_bytes,
        in_memory=in_memory,
    )
    return encoder, augment, reader


def takes_cell_type(target: Target) -> bool:
    """Whether ``target`` takes a third positional argument (the pairs' cell types)."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: the documented two
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params)


class Loader:
    """Seeded numpy mini-batches ``(x, y)`` of a split role's selection of a cube.

    ``x`` is a dict of float32 arrays keyed by input -- ``sequence`` ``(b, L, 4)`` (one-hot,
    encoded on the fly by the Numba kernel; ``(b, 4, L)`` in layout ``"NCL"``), ``signal``
    ``(b, n_marks)``, or ``random`` ``(b, n_random)``, and ``average`` ``(b, 1)`` when given
    one -- and ``y`` the labels ``(b,)`` float32 (or ``target(y, locus)``). With ``ids``,
    batches are ``(x, y, ids)`` (:data:`IdBatch`).
    Every batch is a pure function of ``(seed, epoch, batch)``: the same whatever the reader
    (streamed or in memory), threading, prefetching or sharding.

    Parameters
    ----------
    cube
        The whole cube (``open_cube``); data are read from it by position.
    selection
        A split role's selection of it (``split.train(cube)``), dims ``(cell_type, locus)``;
        only its coordinates are used.
    inputs
        ``"signal"``, ``"sequence"``, ``"both"`` or ``"random"`` (the locus-constant control,
        :data:`INPUTS`).
    permuted
        Permute each locus's sequence (the control that keeps loci identifiable).
    n_random
        Width of the random control.
    seed
        Seeds the batches and the controls (a whole number, at least 0).
    batch_size
        Pairs per batch (even when ``balanced``).
    balanced
        True (the paper's recipe): ``batches_per_epoch`` batches per epoch, each half
        positive, drawn with replacement uniformly over the positives and over the negatives.
        False: every labelled pair once per epoch, permuted when ``shuffle``.
    batches_per_epoch
        Balanced only.
    shuffle
        Unbalanced only: permute the pairs every epoch (else cell type, then locus order).
    shard
        ``(k, n)``: this loader serves batches ``k, k + n, k + 2n, ...`` of every epoch, so
        the ``n`` shards are disjoint and together are the whole epoch, in the same order
        when interleaved round-robin (as a PyTorch ``DataLoader`` interleaves its workers).
    target
        ``target(y, locus) -> y'`` or ``target(y, locus, cell_type) -> y'`` applied to the
        labels of every batch (``locus``, ``cell_type``: cube positions), e.g. the residual
        target; default the labels.
    average
        Add the input ``average`` (:class:`~pitfall.loaders.average.LocusAverage`): the
        locus's mean label over the set's cell types other than the pair's own.
    reader
        A :class:`~pitfall.loaders.readers.ChunkReader` to share (its chunk cache) with
        other loaders of the same cube.
    store, cache_bytes
        Of the :class:`~pitfall.loaders.readers.ChunkReader` made when ``reader`` is None.
    in_memory
        Load the cube's variables into memory first (same batches; for small cubes).
    prefetch
        Prepare (draw, read, gather) the next epoch in a background thread while this one
        is served.
    layout
        Of the one-hot sequence: ``"NLC"`` ``(b, L, 4)`` or ``"NCL"`` ``(b, 4, L)``; the
        adapters default to their framework's (:meth:`to_torch`: ``"NCL"``).
    reverse_complement, max_shift
        Augment each training example's sequence: reverse-complement it with probability
        1/2, shift it by up to ``max_shift`` bases (N beyond the stored window); drawn from
        ``(seed, epoch, cell type, locus)`` (:class:`~pitfall.loaders.encoding.Augment`).
        Off by default; :meth:`sample` is never augmented.
    ids
        Serve ``(x, y, ids)``: ``ids`` the batch's ``locus`` and ``cell_type_index`` (cube
        positions, int64 ``(b,)``), for :func:`~pitfall.loaders.predictions.to_dataarray`.

    Raises
    ------
    ValueError
        Before any data is read, for an argument out of its range; the message names the
        argument and what it may be.

    Notes
    -----
    Iterating the loader gives one epoch, and each new iteration the next one (from 0, or
    from :meth:`set_epoch`); :meth:`epoch` and :meth:`batch` take the epoch explicitly,
    :meth:`stream` chains epochs. An epoch is prepared whole (its sequence kept as uint8
    codes) and each batch one-hot encoded when served.
    """

    def __init__(
        self,
        cube: xr.Dataset,
        selection: xr.Dataset,
        *,
        inputs: str = "signal",
        permuted: bool = False,
        n_random: int = 100,
        seed: int = 0,
        batch_size: int = 32,
        balanced: bool = True,
        batches_per_epoch: int = 400,
        shuffle: bool = True,
        shard: tuple[int, int] = (0, 1),
        target: Target | None = None,
        average: LocusAverage | None = None,
        reader: ChunkReader | None = None,
        store: Any = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        in_memory: bool = False,
        prefetch: bool = True,
        layout: str = "NLC",
        reverse_complement: bool = False,
        max_shift: int = 0,
        ids: bool = False,
    ) -> None:
        k, n = _check_batches(batch_size, batches_per_epoch, shard)
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
        self.ids = bool(ids)
        reader = self.reader
        cts, loci = selection_index(cube, selection)
        self.cell_types = [str(c) for c in selection["cell_type"].values]
        kw: dict[str, Any] = {"batch_size": batch_size, "seed": seed, "prefetch": False}
        self.source: EpochSource = (
            BalancedBatches(
                reader, cts, loci, self.encoder, batches_per_epoch=batches_per_epoch, **kw
            )
            if balanced
            else AllPairs(reader, cts, loci, self.encoder, shuffle=shuffle, **kw)
        )
        self.balanced = balanced
        self.seed = seed
        self.batch_size = batch_size
        self.shard = (k, n)
        self.target = target
        self._target_cell_type = target is not None and takes_cell_type(target)
        self.prefetch = prefetch
        self.next_epoch = 0
        self._home = os.getpid()
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[int, Future[Epoch]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_lock", "_slots", "_pool", "_pid"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._home = os.getpid()  # unpickled here: its store was opened here too
        self._init_runtime()

    def _check_process(self) -> None:
        refuse_forked(self._home, self.reader)

    # ------------------------------------------------------------------------------------
    @property
    def batch_ids(self) -> np.ndarray:
        """This shard's batches of an epoch (indices into the whole epoch's), ``(n_batches,)``."""
        k, n = self.shard
        return np.arange(k, self.source.n_batches, n, dtype=np.int64)

    @property
    def n_batches(self) -> int:
        """Batches per epoch of this shard."""
        return int(self.batch_ids.size)

    def __len__(self) -> int:
        return self.n_batches

    @property
    def layout(self) -> str:
        """Of the one-hot sequence: ``"NLC"`` or ``"NCL"``."""
        return self.encoder.layout

    @property
    def counts(self) -> tuple[int, int]:
        """Labelled positives and negatives of the selection."""
        return self.source.sampler.counts

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-row shape of each input of ``x`` (batches add a leading dim)."""
        sizes = self.cube.sizes
        return self.encoder.shapes(
            n_marks=sizes.get("mark", 0) if "signal" in self.cube else 0,
            seq_len=sizes.get("position", 0) if "sequence" in self.cube else 0,
        )

    def with_shard(self, k: int, n: int) -> Loader:
        """The same loader serving shard ``(k, n)`` of its own shard (so shards compose:
        shard ``(k', n')`` of shard ``(k, n)`` is shard ``(k + n * k', n * n')``)."""
        k0, n0 = self.shard
        if not 0 <= k < n:
            raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {(k, n)}")
        other = self._copy()
        other.shard = (k0 + n0 * k, n0 * n)
        return other

    def with_options(self, *, layout: str | None = None, ids: bool | None = None) -> Loader:
        """The same loader (same reader and epochs) serving ``layout`` and/or ``ids``."""
        other = self._copy()
        if layout is not None and layout != self.layout:
            # Only serving a batch depends on the layout: the epochs' source stays shared.
            encoder = object.__new__(InputEncoder)
            encoder.__dict__.update(self.encoder.__dict__, layout=check_layout(layout), _buffers={})
            other.encoder = encoder
        if ids is not None:
            other.ids = bool(ids)
        return other

    def _copy(self) -> Loader:
        # Not copy.copy: it goes through __setstate__, which would take this process (a
        # forked DataLoader worker, say) for the one that opened the cube.
        other = object.__new__(type(self))
        other.__dict__.update(self.__getstate__())
        other._init_runtime()
        return other

    def close(self) -> None:
        """Stop the prefetch thread (a later epoch starts a new one)."""
        with self._lock:
            for future in self._slots.values():
                future.cancel()
            self._slots = {}
            if self._pool is not None and self._pid == os.getpid():
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_epoch(self, i: int) -> None:
        """Make the next iteration over the loader epoch ``i``."""
        self.next_epoch = int(i)

    # ------------------------------------------------------------------------------------
    def _apply_target(self, y: np.ndarray, locus: np.ndarray, cell_type: np.ndarray) -> np.ndarray:
        assert self.target is not None
        if self._target_cell_type:
            return np.asarray(self.target(y, locus, cell_type), np.float32)
        return np.asarray(self.target(y, locus), np.float32)

    def _make(self, i: int) -> Epoch:
        ep = self.source.epoch(i, self.batch_ids)
        d = ep.data
        if self.target is not None:
            d["y"] = self._apply_target(d["y"], d["locus"], d["cell_type"])
        if "codes" in d:
            d["codes"] = self.augment.apply(d["codes"], i, d["cell_type"], d["locus"])
        return ep

    def _executor(self) -> ThreadPoolExecutor:
        # A pool made before a fork has no thread in the child: make a new one there.
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="pitfall-prefetch")
            self._pid = os.getpid()
            self._slots = {}
        return self._pool

    def prepared(self, i: int) -> Epoch:
        """Epoch ``i`` of this shard, read and prepared (its inputs not yet one-hot encoded);
        with ``prefetch``, epoch ``i + 1`` is then prepared in the background."""
        self._check_process()
        if not self.prefetch:
            return self._make(i)
        with self._lock:
            pool = self._executor()
            future = self._slots.get(i)
            if future is None:
                future = self._slots[i] = pool.submit(self._make, i)
            if i + 1 not in self._slots:
                self._slots[i + 1] = pool.submit(self._make, i + 1)
            for old in [e for e in self._slots if e < i]:
                self._slots.pop(old).cancel()
        return future.result()

    def batch_of(self, epoch: Epoch, b: int, alloc: Alloc | None = None) -> Batch | IdBatch:
        """Batch ``b`` of a prepared epoch: ``(x, y)``, or ``(x, y, ids)`` with ``ids``;
        fresh arrays (made by ``alloc``, as :meth:`InputEncoder.inputs_of`, when given)."""
        rows = epoch.rows(b)
        d = epoch.data
        x = self.encoder.inputs_of(d, rows, alloc=alloc)
        y = fresh_copy(d["y"][rows], alloc)
        if not self.ids:
            return x, y
        ids = {
            "locus": fresh_copy(d["locus"][rows], alloc),
            "cell_type_index": fresh_copy(d["cell_type"][rows], alloc),
        }
        return x, y, ids

    def batch(self, i: int, b: int) -> Batch | IdBatch:
        """Batch ``b`` (of this shard) of epoch ``i``: ``(x, y)`` (``(x, y, ids)``)."""
        return self.batch_of(self.prepared(i), b)

    def epoch(self, i: int) -> Iterator[Batch | IdBatch]:
        """The batches ``(x, y)`` (``(x, y, ids)``) of epoch ``i`` (this shard's)."""
        ep = self.prepared(i)
        for b in range(ep.n_batches):
            yield self.batch_of(ep, b)

    def __iter__(self) -> Iterator[Batch | IdBatch]:
        i = self.next_epoch
        self.next_epoch += 1
        return self.epoch(i)

    def stream(self, epochs: int | None = None, start: int = 0) -> Iterator[Batch | IdBatch]:
        """The batches of epochs ``start, start + 1, ...`` one after the other (``epochs`` of
        them, or without end)."""
        i = start
        while epochs is None or i < start + epochs:
            yield from self.epoch(i)
            i += 1

    def pairs(self, i: int) -> dict[str, np.ndarray]:
        """Which pairs epoch ``i``'s batches (this shard's) hold, without reading any data.

        Returns
        -------
        dict
            ``cell_type``, ``locus`` (cube positions) and ``y`` (labels), shape ``(n,)``, in
            batch order: batch ``b`` is rows ``[b * batch_size, (b + 1) * batch_size)``.
        """
        drawn = self.source.order(i)
        n, bs = drawn["y"].size, self.batch_size
        rows = [np.arange(s, min(s + bs, n)) for s in self.batch_ids * bs]
        take = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        return {k: v[take] for k, v in drawn.items()}

    def sample(self, n: int, key: int | Sequence[int]) -> Batch:
        """One fixed balanced sample: ``n`` pairs, the first ``n // 2`` positive, drawn with
        replacement from ``(seed, key)`` (a validation set, or the training set of trees).

        Returns
        -------
        x : dict
            Inputs, each ``(n, ...)``.
        y : numpy.ndarray
            Labels (or ``target``), ``(n,)``.
        """
        try:
            n = whole_number("n", n, 1)
        except ValueError as err:
            raise ValueError(f"sample: {err}") from None
        self._check_process()
        rng = np.random.default_rng([self.seed, *np.atleast_1d(key).tolist()])
        drawn = self.source.sampler.draw(n // 2, n - n // 2, rng)
        raw = gather(self.reader, drawn["cell_type"], drawn["locus"], self.encoder.needs)
        raw["y"] = drawn["y"]
        prepared = self.encoder.prepare(raw)
        y = drawn["y"]
        if self.target is not None:
            y = self._apply_target(y, drawn["locus"], drawn["cell_type"])
        return self.encoder.inputs_of(prepared), y

    # ------------------------------------------------------------------------------------
    def to_tf(self, *, layout: str = "NLC", **kw: Any) -> Any:
        """A ``tf.data.Dataset`` of the batches ``(x, y)`` in ``layout``
        (:func:`pitfall.loaders.to_tf.tf_dataset`)."""
        from pitfall._logs import quiet_tensorflow

        quiet_tensorflow()
        from pitfall.loaders.to_tf import tf_dataset

        return tf_dataset(self._as(layout, ids=False), **kw)

    def to_keras(self, *, layout: str = "NLC", **kw: Any) -> Any:
        """A Keras ``PyDataset`` of the batches ``(x, y)`` in ``layout``
        (:class:`pitfall.loaders.to_keras.KerasBatches`)."""
        from pitfall._logs import native_stderr_silenced, quiet_tensorflow

        quiet_tensorflow()
        with native_stderr_silenced():  # TensorFlow's oneDNN notice, printed at import
            from pitfall.loaders.to_keras import KerasBatches

        return KerasBatches(self._as(layout, ids=False), **kw)

    def to_torch(self, *, layout: str = "NCL", ids: bool | None = None) -> Any:
        """A PyTorch ``IterableDataset`` of the batches (:class:`pitfall.loaders.to_torch.
        TorchBatches`), the sequence channels first (``layout="NCL"``) unless told; with
        ``ids`` (default: the loader's), ``(x, y, ids)``."""
        from pitfall.loaders.to_torch import TorchBatches

        return TorchBatches(self._as(layout, ids=self.ids if ids is None else ids))

    def _as(self, layout: str, *, ids: bool) -> Loader:
        """This loader when it serves ``layout`` and ``ids`` already, else such a copy."""
        check_layout(layout)
        if layout == self.layout and ids == self.ids:
            return self
        return self.with_options(layout=layout, ids=ids)
