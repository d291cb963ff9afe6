"""Balanced mini-batches streamed from the cube, chunk by chunk.

The paper trains on balanced mini-batches of 32 (cell type, locus) pairs, half positive and
half negative, 400 to an epoch, and validates on one balanced batch of 3,200. A split role's
selection may hold far more pairs than memory (200 bp bins x dozens of cell types), so
nothing here loads a selection whole:

1. **Count once.** :class:`BalancedSampler` reads each label chunk of the role once and keeps
   only the number of positives and negatives per (cell type, locus chunk) block:
   ``O(cell types x chunks)`` memory.
2. **Draw an epoch at once.** The epoch's positives are split over the blocks by a
   multinomial draw weighted by their counts, then drawn uniformly inside each block (with
   replacement): exactly uniform over the role's positives, and likewise for negatives.
3. **Read each needed chunk once.** The draws are grouped by zarr chunk; each chunk of
   ``label``, ``signal`` (one per cell type) and ``sequence`` (shared by all cell types) is
   read once per epoch -- straight from the zarr array, bypassing a Dask task per chunk
   (6x less overhead) -- and the drawn rows gathered. A small LRU cache (``cache_bytes``)
   keeps chunks across epochs when they fit, so a small cube is read once per fit.
4. **Encode on the fly.** The epoch keeps sequence as uint8 codes ``(n, L)``; each batch is
   one-hot encoded by the Numba kernel into a reused buffer (4 x 4 bytes per base would
   make an epoch of 2 kbp sequences 400 MB).
5. **Prefetch.** Epoch ``i + 1`` is drawn and gathered in a background thread while the model
   trains on epoch ``i``.

:class:`MemoryReader` holds the same variables as numpy arrays and serves the same chunks,
so the sampler, and every batch, is identical for a given seed: the reference that the
streaming reader is checked and benchmarked against.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from pitfall.models.inputs import InputEncoder

DEFAULT_CACHE_BYTES = 256 * 2**20
_RAW_VARS = {"label": "label", "signal": "signal", "sequence": "sequence"}


def cell_type_index(cube: xr.Dataset, names: Sequence[Any]) -> np.ndarray:
    """Positions along the cube's ``cell_type`` of ``names``, shape ``(n,)`` int64."""
    names = [str(c) for c in names]
    index = cube.indexes["cell_type"].get_indexer(names)
    missing = [c for c, i in zip(names, index, strict=True) if i < 0]
    if missing:
        raise ValueError(f"cell types {missing} are not in the cube")
    return np.asarray(index, dtype=np.int64)


def selection_index(cube: xr.Dataset, selection: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Cube positions of a selection's cell types ``(n_ct,)`` and loci ``(n_loci,)``."""
    loci = np.asarray(selection["locus"].values, dtype=np.int64)
    coord = cube["locus"].values
    n = cube.sizes["locus"]
    # Models read the cube by position: it must be the whole cube, whose locus coordinate
    # open_cube sets to 0 .. n-1 (checked at the ends, not copied whole).
    if n and (coord[0] != 0 or coord[-1] != n - 1):
        raise ValueError("models need the whole cube (open_cube), not a selection of its loci")
    if loci.size and (loci.min() < 0 or loci.max() >= n):
        raise ValueError("selection loci are not positions in this cube (open it with open_cube)")
    return cell_type_index(cube, selection["cell_type"].values), loci


# --------------------------------------------------------------------------------------------
# Readers: whole chunks along locus, by cube position


def _zarr_array(da: xr.DataArray) -> Any | None:
    """The zarr array behind an untouched ``open_zarr`` variable, else None.

    Reading a chunk through Dask costs ~7 ms of graph and scheduler overhead, through zarr
    ~1 ms; the array is found in the Dask graph, and only used when the variable is the
    whole stored array (no selection on top), so what it returns is what Dask would.
    """
    data = da.data
    graph = getattr(data, "dask", None)
    if graph is None:
        return None
    try:
        from xarray.backends.zarr import ZarrArrayWrapper
        from xarray.core.indexing import BasicIndexer, ImplicitToExplicitIndexingAdapter
    except ImportError:  # a future xarray: Dask still works
        return None
    found = None
    for value in dict(graph).values():
        if not isinstance(value, ImplicitToExplicitIndexingAdapter):
            continue
        inner = value.array
        while not isinstance(inner, ZarrArrayWrapper):
            key = getattr(inner, "key", None)
            if key is not None and not (
                isinstance(key, BasicIndexer) and all(k == slice(None) for k in key.tuple)
            ):
                return None
            inner = getattr(inner, "array", None)
            if inner is None:
                return None
        if found is not None:
            return None
        found = inner.get_array()
    if found is None or tuple(found.shape) != tuple(data.shape):
        return None
    if len(graph) != 1 + int(np.prod(data.numblocks)):
        return None  # more layers than open_zarr's: something was applied on top
    return found


class ChunkReader:
    """Read whole locus chunks of ``label``, ``signal`` and ``sequence`` from a cube.

    Parameters
    ----------
    cube
        The whole cube (``open_cube``), lazy.
    cache_bytes
        Budget of an LRU cache of chunks shared by all epochs (0 disables it).

    Notes
    -----
    ``read("label", k, ct)`` -> ``(c,)``; ``read("signal", k, ct)`` -> ``(c, n_marks)``;
    ``read("sequence", k)`` -> ``(c, L)``, where chunk ``k`` covers cube loci
    ``[k * chunk(var), (k + 1) * chunk(var))`` and ``c`` is its length. Thread-safe.
    """

    def __init__(self, cube: xr.Dataset, *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.cube = cube
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        self._raw: dict[str, Any] = {}
        self.reads = 0

    def chunk(self, var: str) -> int:
        """Loci per chunk of ``var``."""
        da = self.cube[var]
        axis = da.dims.index("locus")
        # The stored chunk first: a selection on top of the cube shifts Dask's chunks, the
        # storage grid stays (any grid gives the same rows, this one reads least).
        chunks = da.encoding.get("chunks")
        if chunks:
            return int(chunks[axis])
        if da.chunks is not None:
            return int(max(da.chunks[axis]))
        return max(1, da.sizes["locus"])

    def _read(self, var: str, k: int, ct: int | None) -> np.ndarray:
        c = self.chunk(var)
        lo, hi = k * c, min((k + 1) * c, self.cube.sizes["locus"])
        if var not in self._raw:
            self._raw[var] = _zarr_array(self.cube[var])
        raw = self._raw[var]
        key = slice(lo, hi) if var == "sequence" else (int(ct), slice(lo, hi))
        if raw is not None:
            return np.asarray(raw[key])
        data = self.cube[var].data
        out = data[key]
        return np.asarray(out.compute(scheduler="sync") if hasattr(out, "compute") else out)

    def read(self, var: str, k: int, ct: int | None = None) -> np.ndarray:
        """Chunk ``k`` of ``var`` (for cell type ``ct`` at cube position, except sequence)."""
        key = (var, int(k), None if ct is None else int(ct))
        if self.cache_bytes:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        out = self._read(var, int(k), ct)
        self.reads += 1
        if self.cache_bytes and out.nbytes <= self.cache_bytes:
            with self._lock:
                self._cache[key] = out
                self._cached += out.nbytes
                while self._cached > self.cache_bytes:
                    _, old = self._cache.popitem(last=False)
                    self._cached -= old.nbytes
        return out


class MemoryReader(ChunkReader):
    """The same chunks as :class:`ChunkReader`, served from arrays loaded up front.

    Parameters
    ----------
    cube
        The whole cube; ``variables`` are loaded whole (every cell type), so this is only for
        cubes that fit in memory.
    variables
        Which of ``label``, ``signal``, ``sequence`` to load (default those present).
    """

    def __init__(self, cube: xr.Dataset, variables: Sequence[str] | None = None) -> None:
        super().__init__(cube, cache_bytes=0)
        variables = variables or [v for v in ("label", "signal", "sequence") if v in cube]
        self.arrays = {v: np.asarray(cube[v].values) for v in variables}

    def read(self, var: str, k: int, ct: int | None = None) -> np.ndarray:
        c = self.chunk(var)
        rows = slice(k * c, (k + 1) * c)
        arr = self.arrays[var]
        return arr[rows] if var == "sequence" else arr[ct, rows]


# --------------------------------------------------------------------------------------------
# Sampling and gathering


def gather(
    reader: ChunkReader, cts: np.ndarray, loci: np.ndarray, needs: Sequence[str]
) -> dict[str, np.ndarray]:
    """Raw inputs of pairs, each needed chunk read once.

    Parameters
    ----------
    reader
        Where chunks come from.
    cts, loci
        Cube positions of each pair's cell type and locus, shape ``(n,)``.
    needs
        Subset of ``("signal", "sequence")``.

    Returns
    -------
    dict
        ``locus`` (n,), ``cell_type`` (n,), and ``signal`` (n, n_marks) float32 and/or
        ``codes`` (n, L) uint8.
    """
    cts = np.asarray(cts, dtype=np.int64)
    loci = np.asarray(loci, dtype=np.int64)
    out: dict[str, np.ndarray] = {"locus": loci, "cell_type": cts}
    n = loci.size
    for var in needs:
        c = reader.chunk(var)
        k = loci // c
        # Group rows by chunk (and cell type for per-cell-type variables) with one sort.
        group = k if var == "sequence" else k * (cts.max(initial=0) + 1) + cts
        order = np.argsort(group, kind="stable")
        starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
        ends = np.r_[starts[1:], n]
        dest = None
        for s, e in zip(starts, ends, strict=True):
            rows = order[s:e]
            kk = int(k[rows[0]])
            chunk = (
                reader.read(var, kk) if var == "sequence" else reader.read(var, kk, cts[rows[0]])
            )
            part = chunk[loci[rows] - kk * c]
            if dest is None:
                dest = np.empty((n, *part.shape[1:]), dtype=part.dtype)
            dest[rows] = part
        if dest is None:  # no rows: still the right trailing shape
            width = reader.cube.sizes["position" if var == "sequence" else "mark"]
            dest = np.empty((0, width), dtype=np.uint8 if var == "sequence" else np.float32)
        out["codes" if var == "sequence" else "signal"] = dest
    return out


class BalancedSampler:
    """Uniform draws of positive and of negative (cell type, locus) pairs of a selection.

    Parameters
    ----------
    reader
        Where label chunks come from.
    cts
        Cube positions of the selection's cell types, shape ``(n_ct,)``.
    loci
        Cube positions of the selection's loci, shape ``(n_loci,)``.

    Attributes
    ----------
    n_pos, n_neg : numpy.ndarray
        Positives and negatives per (cell type, chunk) block, shape ``(n_ct, n_chunks)``.
    """

    def __init__(self, reader: ChunkReader, cts: np.ndarray, loci: np.ndarray) -> None:
        self.reader = reader
        self.cts = np.asarray(cts, dtype=np.int64)
        self.loci = np.unique(np.asarray(loci, dtype=np.int64))
        c = reader.chunk("label")
        self.chunk_size = c
        k = self.loci // c
        self.chunk_ids, self.bounds = np.unique(k, return_index=True)
        self.bounds = np.r_[self.bounds, self.loci.size]
        shape = (self.cts.size, self.chunk_ids.size)
        self.n_pos = np.zeros(shape, dtype=np.int64)
        self.n_neg = np.zeros(shape, dtype=np.int64)
        for j in range(self.cts.size):
            for b in range(self.chunk_ids.size):
                lab = self._labels(j, b)
                self.n_pos[j, b] = int((lab == 1).sum())
                self.n_neg[j, b] = int((lab == 0).sum())

    def _labels(self, j: int, b: int) -> np.ndarray:
        k = int(self.chunk_ids[b])
        loc = self.loci[self.bounds[b] : self.bounds[b + 1]]
        return self.reader.read("label", k, self.cts[j])[loc - k * self.chunk_size]

    @property
    def counts(self) -> tuple[int, int]:
        """Total positives and negatives of the selection."""
        return int(self.n_pos.sum()), int(self.n_neg.sum())

    def draw(self, n_pos: int, n_neg: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw pairs uniformly with replacement: ``n_pos`` positives, then ``n_neg`` negatives.

        Returns
        -------
        dict
            ``cell_type`` and ``locus`` (cube positions) and ``y`` (1 then 0), shape
            ``(n_pos + n_neg,)``; within each class, rows are grouped by block.
        """
        pos, neg = self.counts
        if (n_pos and not pos) or (n_neg and not neg):
            raise ValueError(
                f"cannot draw balanced batches: the selection has {pos} positive and {neg} "
                "negative labelled pairs"
            )
        parts_ct, parts_loc, parts_y = [], [], []
        for value, n, counts in ((1.0, n_pos, self.n_pos), (0.0, n_neg, self.n_neg)):
            if n == 0:
                continue
            per_block = rng.multinomial(n, counts.ravel() / counts.sum()).reshape(counts.shape)
            for j, b in zip(*np.nonzero(per_block), strict=True):
                lab = self._labels(j, b)
                loc = self.loci[self.bounds[b] : self.bounds[b + 1]]
                candidates = loc[lab == value]
                pick = candidates[rng.integers(0, candidates.size, per_block[j, b])]
                parts_loc.append(pick)
                parts_ct.append(np.full(pick.size, self.cts[j]))
                parts_y.append(np.full(pick.size, value, dtype=np.float32))
        return {
            "cell_type": np.concatenate(parts_ct).astype(np.int64),
            "locus": np.concatenate(parts_loc).astype(np.int64),
            "y": np.concatenate(parts_y),
        }


# --------------------------------------------------------------------------------------------


@dataclass
class Epoch:
    """One epoch's prepared rows; batch ``b`` is rows ``[b * batch_size, (b + 1) * batch_size)``.

    Attributes
    ----------
    data
        ``y``, ``locus``, ``cell_type`` (n,) and the prepared inputs (``codes``, ``signal``,
        ``random``) of :meth:`InputEncoder.prepare`.
    batch_size, n_batches
        Layout of the rows.
    """

    data: dict[str, np.ndarray]
    batch_size: int
    n_batches: int

    def rows(self, b: int) -> slice:
        """Rows of batch ``b``."""
        return slice(b * self.batch_size, (b + 1) * self.batch_size)


class BalancedBatches:
    """Seeded, balanced mini-batches of a selection, streamed from a reader.

    Parameters
    ----------
    reader
        :class:`ChunkReader` (streaming) or :class:`MemoryReader` (in memory).
    cts, loci
        Cube positions of the selection's cell types and loci (:func:`selection_index`).
    encoder
        Which inputs to read and how to prepare them.
    batch_size
        Pairs per mini-batch, even: half positive, half negative.
    batches_per_epoch
        Mini-batches per epoch.
    seed
        Epoch ``i`` is drawn from ``(seed, i)``: the same whatever the reader or threading.
    prefetch
        Draw and gather the next epoch in a background thread.
    """

    def __init__(
        self,
        reader: ChunkReader,
        cts: np.ndarray,
        loci: np.ndarray,
        encoder: InputEncoder,
        *,
        batch_size: int = 32,
        batches_per_epoch: int = 400,
        seed: int = 0,
        prefetch: bool = True,
    ) -> None:
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size must be even and >= 2, got {batch_size}")
        self.reader = reader
        self.encoder = encoder
        self.sampler = BalancedSampler(reader, cts, loci)
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.seed = seed
        self.prefetch = prefetch

    def balanced(self, n: int, key: int | Sequence[int]) -> dict[str, np.ndarray]:
        """``n`` prepared rows, the first ``n // 2`` positive, drawn from ``(seed, key)``."""
        rng = np.random.default_rng([self.seed, *np.atleast_1d(key).tolist()])
        drawn = self.sampler.draw(n // 2, n - n // 2, rng)
        raw = gather(self.reader, drawn["cell_type"], drawn["locus"], self.encoder.needs)
        raw["y"] = drawn["y"]
        return self.encoder.prepare(raw)

    def epoch(self, i: int) -> Epoch:
        """Epoch ``i``: ``batches_per_epoch`` batches, each exactly half positive."""
        half, nb = self.batch_size // 2, self.batches_per_epoch
        rng = np.random.default_rng([self.seed, 1, i])
        drawn = self.sampler.draw(half * nb, half * nb, rng)
        # The draw groups rows by chunk; shuffle each class, then lay out batch b as
        # positives [b*half, (b+1)*half) followed by negatives of the same range.
        pos = rng.permutation(half * nb)
        neg = half * nb + rng.permutation(half * nb)
        order = np.concatenate([pos.reshape(nb, half), neg.reshape(nb, half)], axis=1).ravel()
        cts, loci = drawn["cell_type"][order], drawn["locus"][order]
        raw = gather(self.reader, cts, loci, self.encoder.needs)
        raw["y"] = drawn["y"][order]
        return Epoch(self.encoder.prepare(raw), self.batch_size, nb)

    def epochs(self, n: int, start: int = 0) -> Iterator[Epoch]:
        """Epochs ``start .. start + n - 1``, the next one prefetched while one is used."""
        if not self.prefetch:
            for i in range(start, start + n):
                yield self.epoch(i)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pitfall-prefetch") as pool:
            future = pool.submit(self.epoch, start)
            try:
                for i in range(start, start + n):
                    current = future.result()
                    if i + 1 < start + n:
                        future = pool.submit(self.epoch, i + 1)
                    yield current
            finally:
                future.cancel()

    def batches(self, epoch: Epoch) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        """``(inputs, y)`` per batch; inputs share reused buffers, consume before the next."""
        for b in range(epoch.n_batches):
            rows = epoch.rows(b)
            yield self.encoder.encode(epoch.data, rows), epoch.data["y"][rows]


def iter_selection(
    reader: ChunkReader,
    cts: np.ndarray,
    loci: np.ndarray,
    encoder: InputEncoder,
    *,
    max_rows: int = 4096,
) -> Iterator[tuple[int | None, slice, dict[str, np.ndarray]]]:
    """Every pair of a selection, streamed a locus chunk at a time, for prediction.

    Yields
    ------
    j : int or None
        Index into ``cts`` of the rows' cell type, or None when the inputs do not depend on
        the cell type (``encoder.per_locus``): the rows then stand for every cell type.
    span : slice
        Indices into ``loci`` of the rows.
    prepared : dict
        :meth:`InputEncoder.prepare` output for the rows (at most ``max_rows``).
    """
    loci = np.asarray(loci, dtype=np.int64)
    targets: list[int | None] = [None] if encoder.per_locus else list(range(len(cts)))
    c = min((reader.chunk(v) for v in encoder.needs), default=max_rows)
    step = max(1, min(c, max_rows))
    start = 0
    while start < loci.size:
        # Stop at a chunk edge so one step never reads two chunks of a variable.
        stop = min(start + step, loci.size)
        edge = (loci[start] // c + 1) * c
        stop = min(stop, int(np.searchsorted(loci, edge)))
        stop = max(stop, start + 1)
        span = slice(start, stop)
        for j in targets:
            ct = np.full(stop - start, cts[0] if j is None else cts[j], dtype=np.int64)
            yield j, span, encoder.prepare(gather(reader, ct, loci[span], encoder.needs))
        start = stop


def predict_selection(
    model: Any, test: xr.Dataset, rows: Any, *, seq_len: int, block_bytes: int = 64 << 20
) -> xr.DataArray:
    """Scores of every (cell type, locus) pair of ``test``, streamed a chunk at a time.

    The one prediction loop of the models (``NeuralModel``, ``GBMModel``): ``model`` brings
    ``cube``, ``encoder``, ``spec``, ``name``, ``_reader()`` and, for the residual target,
    ``avg_cell_types_`` and ``avg_``; ``rows(prepared)`` turns one block of prepared inputs
    into scores, shape ``(n_rows,)``.

    Parameters
    ----------
    seq_len
        Bases of sequence input (0 without): bounds each block's one-hot to ``block_bytes``.

    Returns
    -------
    xarray.DataArray
        float32, dims ``(cell_type, locus)`` with the test selection's coordinates.
        Probabilities, or for the residual target ``residual + average activity`` (NaN
        where no average-activity cell type has a label).
    """
    from pitfall.models import inputs as inp

    cts, loci = selection_index(model.cube, test)
    order = np.argsort(loci, kind="stable")
    avg = None
    if model.spec.target == "residual":
        test_cts = {str(c) for c in test["cell_type"].values}
        others = [c for c in model.avg_cell_types_ if c not in test_cts]
        if not others:
            raise ValueError(
                "the residual target's average activity would use the test cell types' own "
                "labels (a cross-chromosome split?); pass average_cell_types= with other "
                "cell types"
            )
        avg = (
            model.avg_
            if len(others) == len(model.avg_cell_types_)
            else inp.average_activity(model.cube, others)
        )
    out = np.full((cts.size, loci.size), np.nan, dtype=np.float32)
    # One-hot costs 16 bytes per base: bound each block's.
    max_rows = max(64, min(8192, block_bytes // max(1, 16 * seq_len)))
    for j, span, prep in iter_selection(
        model._reader(), cts, loci[order], model.encoder, max_rows=max_rows
    ):
        p = rows(prep)
        if avg is not None:
            p = inp.scores_from_residual(p, prep["locus"], avg)
        if j is None:
            out[:, order[span]] = p
        else:
            out[j, order[span]] = p
    return xr.DataArray(
        out,
        dims=("cell_type", "locus"),
        coords={"cell_type": test["cell_type"].values, "locus": test["locus"].values},
        name="score",
        attrs={"model": model.name},
    )
