"""Chunk readers: whole locus chunks of ``label``, ``signal`` and ``sequence``, by cube position.

A split role's selection may hold far more (cell type, locus) pairs than memory, so loaders
never load one whole: they read the cube a zarr chunk at a time, each chunk once, and keep
recent chunks in a small LRU cache.

Where the chunks come from:

- **Zarr, straight from the store** (fast). The store is the one given
  (``store=``: a zarr store such as an Icechunk session's, or the cube's location, opened
  read-only at the cube's snapshot) or, when the cube carries one, ``cube.encoding["store"]``.
  It is used only when it holds exactly the variables of ``cube`` (same shapes, dims, cell
  types and marks, in order), so what it returns is what the Dataset would.
- **Dask** otherwise (any lazy cube, a selection of one; each chunk pays graph and
  scheduler overhead): the same values, through xarray's public API.

:class:`MemoryReader` serves the same chunks from numpy arrays loaded up front: the
reference that streaming is checked and benchmarked against.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "ChunkReader",
    "DEFAULT_CACHE_BYTES",
    "MemoryReader",
    "VARIABLES",
    "cell_type_index",
    "open_store",
    "refuse_forked",
    "selection_index",
    "zarr_arrays",
]

DEFAULT_CACHE_BYTES = 256 * 2**20
VARIABLES = ("label", "signal", "sequence")


def cell_type_index(cube: xr.Dataset, names: Sequence[Any] | np.ndarray) -> np.ndarray:
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
    # Loaders read the cube by position: it must be the whole cube, whose locus coordinate
    # open_cube sets to 0 .. n-1 (checked at the ends, not copied whole).
    if n and (coord[0] != 0 or coord[-1] != n - 1):
        raise ValueError("models need the whole cube (open_cube), not a selection of its loci")
    if loci.size and (loci.min() < 0 or loci.max() >= n):
        raise ValueError("selection loci are not positions in this cube (open it with open_cube)")
    return cell_type_index(cube, selection["cell_type"].values), loci


def refuse_forked(home: int, reader: ChunkReader) -> None:
    """Raise a RuntimeError when this process is a fork of ``home`` and ``reader`` streams.

    Icechunk's I/O runtime (tokio) does not survive ``fork()``: a forked process waits forever
    on its first read of a cube opened before the fork, or even of one opened after it. A
    :class:`MemoryReader` reads nothing after the fork.
    """
    if os.getpid() != home and not isinstance(reader, MemoryReader):
        raise RuntimeError(
            "this loader was forked from the process that opened the cube, and Icechunk "
            "cannot read after a fork: start data workers with 'spawn' or 'forkserver' "
            "(DataLoader(..., multiprocessing_context='spawn')), use threads, or load "
            "the cube in memory (in_memory=True)"
        )


def open_store(location: str | os.PathLike[str], snapshot: str | None = None) -> Any:
    """The read-only zarr store of a cube's Icechunk repository at ``snapshot`` (or main's tip).

    Parameters
    ----------
    location
        The cube's folder or URL (as given to :func:`pitfall.open_cube`).
    snapshot
        Snapshot id, e.g. ``cube.attrs["snapshot"]``, so the store shows what the Dataset shows.
    """
    from pitfall._repository import open_repository

    repo = open_repository(location)
    if snapshot:
        return repo.readonly_session(snapshot_id=snapshot).store
    return repo.readonly_session("main").store


def zarr_arrays(cube: xr.Dataset, store: Any) -> dict[str, Any]:
    """The zarr arrays of ``store`` that hold exactly the cube's ``label``/``signal``/``sequence``.

    Returns
    -------
    dict
        Variable name -> :class:`zarr.Array`, for the variables whose stored array has the
        cube variable's shape and dims and whose cell types and marks are the cube's, in the
        same order; empty when the store is not this cube's (then read through Dask).
    """
    import zarr

    from pitfall._repository import zarr_array

    try:
        group = zarr.open_group(store, mode="r")
    except Exception:  # not a zarr group: no fast path, Dask still works
        return {}
    for coord in ("cell_type", "mark"):
        if coord not in cube.coords:
            continue
        if coord not in group:
            return {}
        stored = [str(v) for v in np.asarray(zarr_array(group, coord)[:])]
        if stored != [str(v) for v in cube[coord].values]:
            return {}
    out = {}
    for var in VARIABLES:
        if var not in cube or var not in group:
            continue
        arr = zarr_array(group, var)
        names = tuple(getattr(arr.metadata, "dimension_names", None) or ())
        if tuple(arr.shape) == tuple(cube[var].shape) and names == tuple(cube[var].dims):
            out[var] = arr
    return out


class ChunkReader:
    """Read whole locus chunks of ``label``, ``signal`` and ``sequence`` from a cube.

    Parameters
    ----------
    cube
        The whole cube (``open_cube``), lazy.
    store
        Where to read chunks straight from: a zarr store (an Icechunk session's), or the
        cube's location (opened read-only at ``cube.attrs["snapshot"]``); default
        ``cube.encoding.get("store")``. Without one, chunks are read through Dask.
    cache_bytes
        Budget of an LRU cache of chunks shared by all epochs (0 disables it).

    Notes
    -----
    ``read("label", k, ct)`` -> ``(c,)``; ``read("signal", k, ct)`` -> ``(c, n_marks)``;
    ``read("sequence", k)`` -> ``(c, L)``, where chunk ``k`` covers cube loci
    ``[k * chunk(var), (k + 1) * chunk(var))`` and ``c`` is its length. Thread-safe, and
    picklable (the cache is left behind), so forked or spawned data workers can use it.

    Attributes
    ----------
    reads : int
        Chunks read from storage (cache misses).
    """

    def __init__(
        self, cube: xr.Dataset, *, store: Any = None, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        self.cube = cube
        self.cache_bytes = cache_bytes
        if store is None:
            store = cube.encoding.get("store")
        elif isinstance(store, (str, os.PathLike)):
            store = open_store(store, cube.attrs.get("snapshot"))
        self.store = store
        self._stored: dict[str, Any] | None = None
        self._chunks: dict[str, int] = {}
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        self.reads = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_cache=OrderedDict(), _cached=0, _lock=None, _stored=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def stored(self) -> dict[str, Any]:
        """Variable -> zarr array read directly (empty: everything through Dask)."""
        if self._stored is None:
            self._stored = zarr_arrays(self.cube, self.store) if self.store is not None else {}
        return self._stored

    @property
    def direct(self) -> bool:
        """True when chunks come straight from zarr."""
        return bool(self.stored)

    def chunk(self, var: str) -> int:
        """Loci per chunk of ``var``."""
        # Asked for every gather, and cube[var] builds a DataArray each time: kept.
        size = self._chunks.get(var)
        if size is None:
            size = self._chunks[var] = self._chunk(var)
        return size

    def _chunk(self, var: str) -> int:
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
        key: slice | tuple[int, slice]
        if var == "sequence":
            key = slice(lo, hi)
        elif ct is None:
            raise TypeError(f"reading {var!r} needs a cell type position (ct)")
        else:
            key = (int(ct), slice(lo, hi))
        raw = self.stored.get(var)
        if raw is not None:
            return np.asarray(raw[key])
        out = self.cube[var].data[key]
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
        variables = variables or [v for v in VARIABLES if v in cube]
        self.arrays = {v: np.asarray(cube[v].values) for v in variables}
        self._stored = {}

    def read(self, var: str, k: int, ct: int | None = None) -> np.ndarray:
        c = self.chunk(var)
        rows = slice(k * c, (k + 1) * c)
        arr = self.arrays[var]
        return arr[rows] if var == "sequence" else arr[ct, rows]
