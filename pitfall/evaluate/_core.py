"""What every evaluation of :mod:`pitfall.evaluate` shares: input handling and the AP sum.

Inputs are numpy arrays, :class:`xarray.DataArray` objects or dask arrays; these helpers
line them up, materialise or chunk them, validate binary labels, and group items. The
average-precision sum over thresholds (:func:`ap_from_cumulative`) is here because the
in-memory and the chunked AP both end in it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

__all__ = [
    "ArrayLike",
    "align_pair",
    "ap_from_cumulative",
    "as_dask",
    "as_dask_like",
    "check_same_shape",
    "clean_binary",
    "flat_groups",
    "group_slices",
    "is_lazy",
    "labels_2d",
    "merge_tree",
    "sum_arrays",
    "to_numpy",
]

ArrayLike = Any  # numpy array, xarray.DataArray, dask array or anything np.asarray takes


def align_pair(a: ArrayLike, b: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
    """Line up two DataArrays by dim name and coordinates; leave other inputs alone.

    Raises
    ------
    ValueError
        When both are DataArrays whose coordinates along a shared dim differ (an exact
        join), which would otherwise silently pair labels with the wrong loci.
    """
    if isinstance(a, xr.DataArray) and isinstance(b, xr.DataArray):
        if set(a.dims) == set(b.dims):
            b = b.transpose(*a.dims)
        try:
            # copy=False: the default deep-copies numpy coordinates (a genome-wide locus
            # index per array) for objects that are only read here.
            a, b = xr.align(a, b, join="exact", copy=False)
        except ValueError as err:
            raise ValueError(f"coordinates of the two arrays do not match: {err}") from err
    return a, b


def to_numpy(x: ArrayLike) -> np.ndarray:
    """Materialise ``x`` as a numpy array (computes dask-backed inputs)."""
    if isinstance(x, xr.DataArray):
        return np.asarray(x.values)
    if isinstance(x, da.Array):
        return np.asarray(x.compute())
    return np.asarray(x)


def check_same_shape(y_true: np.ndarray, y_score: np.ndarray) -> None:
    """Raise ValueError naming both shapes when labels and scores differ in shape."""
    if y_true.shape != y_score.shape:
        raise ValueError(
            f"y_true and y_score must have the same shape, got {y_true.shape} and {y_score.shape}"
        )


def clean_binary(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten, drop NaN labels and validate.

    Returns
    -------
    positive : numpy.ndarray, shape (m,), bool
        Whether each labelled item is positive.
    score : numpy.ndarray, shape (m,)
        Its score.
    """
    check_same_shape(y_true, y_score)
    y = y_true.ravel()
    s = y_score.ravel()
    if y.dtype.kind == "f":
        known = ~np.isnan(y)
        if not known.all():
            y = y[known]
            s = s[known]
    if y.size and not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
        raise ValueError(f"labels must be 0, 1 or NaN, found {bad.tolist()}")
    if s.dtype.kind not in "biuf":
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    if s.dtype.kind == "f" and np.isnan(s).any():
        raise ValueError("scores must not be NaN where the label is known")
    return y == 1, s


def ap_from_cumulative(tp: np.ndarray, called: np.ndarray, n_pos: int) -> float:
    """AP from cumulative true positives and items called, per threshold, high to low.

    Parameters
    ----------
    tp, called : numpy.ndarray, shape (k,), int64
        Positives and items with a score >= the k-th highest distinct score.
    n_pos : int
        Total number of positives (``tp[-1]``).
    """
    d_tp = np.diff(tp, prepend=0)
    precision = tp / called
    # Divide once at the end: recall steps are d_tp / n_pos with exact integer d_tp.
    return float(max(0.0, np.sum(d_tp * precision) / n_pos))


def is_lazy(x: ArrayLike) -> bool:
    """Whether ``x`` is a dask array or a dask-backed DataArray."""
    return isinstance(x, da.Array) or (isinstance(x, xr.DataArray) and isinstance(x.data, da.Array))


def merge_tree(parts: list[Any], merge: Any, fan_in: int) -> Any:
    """Merge delayed per-chunk results in a tree so no task holds more than ``fan_in``."""
    merge = dask.delayed(merge, pure=True)
    while len(parts) > 1:
        parts = [merge(*parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)]
    return parts[0]


def as_dask_like(chunks: int | tuple[int, ...] | str | None, **arrays: ArrayLike) -> list[da.Array]:
    """``arrays`` (the first: the labels) as dask arrays of one shape in the labels' chunks.

    Aligned blocks are what the chunked reductions pair up, one task per block.

    Raises
    ------
    ValueError
        Naming the arrays and their shapes when the shapes differ.
    """
    out = [as_dask(x, chunks) for x in arrays.values()]
    if len({x.shape for x in out}) > 1:
        names, shapes = list(arrays), [str(x.shape) for x in out]
        raise ValueError(
            f"{', '.join(names[:-1])} and {names[-1]} must have the same shape, got "
            f"{', '.join(shapes[:-1])} and {shapes[-1]}"
        )
    labels = out[0]
    return [x if x.chunks == labels.chunks else x.rechunk(labels.chunks) for x in out]


def as_dask(x: ArrayLike, chunks: int | tuple[int, ...] | str | None) -> da.Array:
    """``x`` as a dask array: its own chunks when dask-backed, else ``chunks`` (None: one)."""
    if isinstance(x, xr.DataArray):
        x = x.data
    if isinstance(x, da.Array):
        return x
    x = np.asarray(x)
    return da.from_array(x, chunks=x.shape if chunks is None else chunks)


def group_slices(groups: np.ndarray) -> list[tuple[Any, np.ndarray]]:
    """Indices of each group, groups ascending (one sort instead of one mask per group)."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=uniq.size))[:-1]
    return [(g.item(), idx) for g, idx in zip(uniq, np.split(order, bounds), strict=True)]


def flat_groups(groups: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    """``groups`` as a flat numpy array, checked to have the labels' ``shape``."""
    g = to_numpy(groups)
    if g.shape != shape:
        raise ValueError(f"groups must have the shape of the labels {shape}, got {g.shape}")
    return g.ravel()


def labels_2d(labels: ArrayLike, dim: str) -> tuple[ArrayLike, list[Hashable]]:
    """``labels`` with the cell-type axis first, and the names along it.

    A DataArray must have dims ``(dim, other)``; an array must be 2-D and its rows are
    named 0..n-1.
    """
    if isinstance(labels, xr.DataArray):
        if labels.ndim != 2 or dim not in labels.dims:
            raise ValueError(f"labels must be 2-D with a {dim!r} dim, got dims {labels.dims}")
        labels = labels.transpose(dim, ...)
        names = list(labels[dim].values) if dim in labels.coords else list(range(len(labels)))
        return labels, [n.item() if isinstance(n, np.generic) else n for n in names]
    shape = labels.shape if isinstance(labels, da.Array) else np.shape(labels)
    if len(shape) != 2:
        raise ValueError(f"labels must be 2-D (cell_type, locus), got shape {shape}")
    return labels, list(range(shape[0]))


def sum_arrays(*arrays: np.ndarray) -> np.ndarray:
    """Element-wise sum of arrays of one shape, into a new array."""
    out = arrays[0].copy()
    for a in arrays[1:]:
        out += a
    return out
