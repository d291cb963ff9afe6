"""Evaluation: average precision (in memory and chunked), partitions, tests, baselines.

Floor 1: imports nothing from the project (numpy, scipy, pandas, xarray, dask only).

Every function accepts numpy arrays and :class:`xarray.DataArray` objects; the main case
is a DataArray over the ``locus`` dim (one cell type's labels or predictions), or over
``(cell_type, locus)``. Labels are binary: 1 (active / boundary / bound), 0 (not),
NaN (unknown). **Loci whose label is NaN are dropped** before any metric is computed,
so a prediction at an unlabelled locus never counts.

Average precision follows scikit-learn's ``average_precision_score`` exactly::

    AP = sum_k (R_k - R_{k-1}) * P_k

over the *distinct* score thresholds in decreasing order, where ``P_k`` and ``R_k`` are
the precision and recall when every item scoring at least the k-th threshold is called
positive. Tied scores form one threshold (no interpolation, no random tie breaking):
this matters for baselines such as the mean of a few binary labels, which take only a
handful of values.

The chunked path (:func:`score_counts`, :func:`merge_score_counts`,
:func:`average_precision_from_counts`, :func:`average_precision_dask`) computes the
same number from per-distinct-score counts, so its memory is bounded by the number of
distinct scores rather than the number of items; :func:`partitioned_ap_dask` does the
same per group of loci (the partitioned evaluation, chunk by chunk). Two functions read
each chunk once for several statistics: :func:`average_precision_by_cell_type` (AP per
cell type, pooled AP and unscored loci of any predictor) and
:func:`average_activity_evaluation` (for every line held out in turn, the average-activity
baseline's AP, AP per activity group and unscored loci, from integer counts per chunk:
:func:`leave_one_out_counts`). The grouped functions
(:func:`ap_by_group`, :func:`partitioned_evaluation`, :func:`mann_whitney_by_group`, the
paper's test over the models' per-group APs, :func:`mann_whitney_scores_by_group`,
:func:`baseline_strength`) load their inputs into memory: one cell type's 14.4 million
loci is about 100 MB per float64 array.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal, overload

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from pitfall.random_ranking import expected_ap

__all__ = [
    "ScoreCounts",
    "GroupCounts",
    "AverageActivityEvaluation",
    "ap_by_group",
    "average_activity_evaluation",
    "average_precision",
    "average_precision_by_cell_type",
    "average_precision_dask",
    "average_precision_from_counts",
    "baseline_strength",
    "mann_whitney_by_group",
    "mann_whitney_scores_by_group",
    "group_score_counts",
    "leave_one_out_counts",
    "merge_group_counts",
    "merge_score_counts",
    "partition_by_activity",
    "partitioned_ap_dask",
    "partitioned_evaluation",
    "random_ap",
    "residual_target",
    "row_score_counts",
    "score_counts",
    "score_from_residual",
]

ArrayLike = Any  # numpy array, xarray.DataArray, dask array or anything np.asarray takes
ScoreCounts = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(unique_scores, positives, totals)``: ascending distinct scores (k,), and per score
the number of positive items (k,) int64 and of labelled items (k,) int64."""


# --------------------------------------------------------------------------- helpers


def _align_pair(a: ArrayLike, b: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
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
            # copy=False: the default deep-copies numpy coordinates, i.e. 115 MB per
            # array for a 14.4-million-locus index, for objects that are only read here.
            a, b = xr.align(a, b, join="exact", copy=False)
        except ValueError as err:
            raise ValueError(f"coordinates of the two arrays do not match: {err}") from err
    return a, b


def _to_numpy(x: ArrayLike) -> np.ndarray:
    """Materialise ``x`` as a numpy array (computes dask-backed inputs)."""
    if isinstance(x, xr.DataArray):
        return np.asarray(x.values)
    if isinstance(x, da.Array):
        return np.asarray(x.compute())
    return np.asarray(x)


def _check_same_shape(y_true: np.ndarray, y_score: np.ndarray) -> None:
    if y_true.shape != y_score.shape:
        raise ValueError(
            f"y_true and y_score must have the same shape, got {y_true.shape} and {y_score.shape}"
        )


def _clean_binary(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten, drop NaN labels and validate.

    Returns
    -------
    positive : numpy.ndarray, shape (m,), bool
        Whether each labelled item is positive.
    score : numpy.ndarray, shape (m,)
        Its score.
    """
    _check_same_shape(y_true, y_score)
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


# ------------------------------------------------------------------ average precision


def average_precision(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision with scikit-learn's ``average_precision_score`` semantics.

    Step-wise sum ``sum_k (R_k - R_{k-1}) P_k`` over distinct score thresholds (ties
    grouped as one threshold). Sort based, O(n log n), exact integer counts and float64
    accumulation; agrees with scikit-learn to ~1e-12.

    Parameters
    ----------
    y_true : array-like or xarray.DataArray, any shape
        Binary labels (0, 1, NaN). Items with a NaN label are dropped.
    y_score : array-like or xarray.DataArray, same shape as ``y_true``
        Scores, higher means more likely positive. Must not be NaN where the label is
        known. Two DataArrays are matched by dim name and must have identical coordinates.
        Multi-dimensional inputs are pooled (flattened), e.g. all (cell_type, locus)
        pairs together. Dask-backed DataArrays or dask arrays are routed to
        :func:`average_precision_dask` so they are never fully loaded.

    Returns
    -------
    float
        Average precision in [0, 1].

    Raises
    ------
    ValueError
        When the shapes differ, when no labelled item is positive, when a label is not
        0/1/NaN, or when a score is NaN at a labelled item.
    """
    y_true, y_score = _align_pair(y_true, y_score)
    if _is_lazy(y_true) or _is_lazy(y_score):
        return average_precision_dask(y_true, y_score)
    pos, s = _clean_binary(_to_numpy(y_true), _to_numpy(y_score))
    n_pos = int(np.count_nonzero(pos))
    if n_pos == 0:
        raise ValueError("average precision is undefined: y_true has no positive label")
    # Any sort will do (no stable order needed): tied scores are grouped below.
    order = np.argsort(s)[::-1]
    s_sorted = s[order]
    tps = np.cumsum(pos[order], dtype=np.int64)
    # Last index of each run of equal scores: one threshold per distinct score.
    last = np.flatnonzero(np.diff(s_sorted) != 0)
    last = np.append(last, s_sorted.size - 1)
    tp = tps[last]
    called = last + 1
    return _ap_from_cumulative(tp, called, n_pos)


def _ap_from_cumulative(tp: np.ndarray, called: np.ndarray, n_pos: int) -> float:
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


def random_ap(y_true: ArrayLike) -> float:
    """Expected average precision of a random predictor: the prevalence of positives.

    Parameters
    ----------
    y_true : array-like or xarray.DataArray, any shape
        Binary labels (0, 1, NaN); NaN labels are dropped.

    Returns
    -------
    float
        Fraction of labelled items that are positive.

    Raises
    ------
    ValueError
        When no item is labelled.
    """
    y = _to_numpy(y_true).ravel().astype(np.float64)
    y = y[~np.isnan(y)]
    if y.size == 0:
        raise ValueError("random AP is undefined: y_true has no labelled item")
    return float(np.count_nonzero(y == 1) / y.size)


# ------------------------------------------------------------------ chunked / counts


def score_counts(y_true: ArrayLike, y_score: ArrayLike) -> ScoreCounts:
    """Per distinct score, the number of positive and of labelled items (one chunk).

    Parameters
    ----------
    y_true : array-like, any shape
        Binary labels (0, 1, NaN); NaN labels are dropped.
    y_score : array-like, same shape as ``y_true``
        Scores.

    Returns
    -------
    unique_scores : numpy.ndarray, shape (k,)
        Ascending distinct scores among labelled items (dtype of ``y_score``).
    positives : numpy.ndarray, shape (k,), int64
        Positive items per score.
    totals : numpy.ndarray, shape (k,), int64
        Labelled items per score.
    """
    pos, s = _clean_binary(_to_numpy(y_true), _to_numpy(y_score))
    uniq, inverse = np.unique(s, return_inverse=True)
    totals = np.bincount(inverse, minlength=uniq.size).astype(np.int64, copy=False)
    positives = np.bincount(inverse[pos], minlength=uniq.size).astype(np.int64, copy=False)
    return uniq, positives, totals


def merge_score_counts(*counts: ScoreCounts) -> ScoreCounts:
    """Merge the :func:`score_counts` of several chunks into one.

    Parameters
    ----------
    *counts : tuple of (unique_scores (k_i,), positives (k_i,), totals (k_i,))
        Per-chunk counts.

    Returns
    -------
    ScoreCounts
        Counts over the union of the chunks: ascending distinct scores (k,), positives
        (k,) and totals (k,), int64.
    """
    if not counts:
        return np.empty(0, dtype=np.float64), np.empty(0, np.int64), np.empty(0, np.int64)
    if len(counts) == 1:
        return counts[0]
    scores = np.concatenate([c[0] for c in counts])
    uniq, inverse = np.unique(scores, return_inverse=True)
    # float64 weights are exact for integer counts below 2**53, and bincount is far
    # faster than np.add.at.
    positives = np.bincount(
        inverse, weights=np.concatenate([c[1] for c in counts]), minlength=uniq.size
    ).astype(np.int64)
    totals = np.bincount(
        inverse, weights=np.concatenate([c[2] for c in counts]), minlength=uniq.size
    ).astype(np.int64)
    return uniq, positives, totals


def average_precision_from_counts(
    scores: ArrayLike, positives: ArrayLike, totals: ArrayLike
) -> float:
    """Average precision from per-distinct-score counts (exact, ties grouped).

    Parameters
    ----------
    scores : array-like, shape (k,)
        Distinct scores, in any order (they are sorted here); must be unique.
    positives : array-like, shape (k,), int
        Positive items at each score.
    totals : array-like, shape (k,), int
        Labelled items at each score (``>= positives``).

    Returns
    -------
    float
        The same value as :func:`average_precision` on the items these counts describe.

    Raises
    ------
    ValueError
        When the shapes differ, the scores repeat, or there is no positive.
    """
    scores = np.asarray(scores)
    positives = np.asarray(positives, dtype=np.int64)
    totals = np.asarray(totals, dtype=np.int64)
    if not (scores.shape == positives.shape == totals.shape) or scores.ndim != 1:
        raise ValueError(
            "scores, positives and totals must be 1-D of the same length, got "
            f"{scores.shape}, {positives.shape}, {totals.shape}"
        )
    order = np.argsort(scores, kind="stable")[::-1]
    s = scores[order]
    if s.size > 1 and np.any(s[:-1] == s[1:]):
        raise ValueError("scores must be distinct; merge the counts first")
    tp = np.cumsum(positives[order])
    n_pos = int(tp[-1]) if tp.size else 0
    if n_pos == 0:
        raise ValueError("average precision is undefined: the counts hold no positive label")
    called = np.cumsum(totals[order])
    # Scores with no labelled item add nothing but would divide 0/0: drop them.
    keep = totals[order] > 0
    return _ap_from_cumulative(tp[keep], called[keep], n_pos)


def _is_lazy(x: ArrayLike) -> bool:
    return isinstance(x, da.Array) or (isinstance(x, xr.DataArray) and isinstance(x.data, da.Array))


def _merge_tree(parts: list[Any], merge: Any, fan_in: int) -> Any:
    """Merge delayed per-chunk results in a tree so no task holds more than ``fan_in``."""
    merge = dask.delayed(merge, pure=True)
    while len(parts) > 1:
        parts = [merge(*parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)]
    return parts[0]


@overload
def average_precision_dask(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    chunks: int | tuple[int, ...] | str | None = ...,
    fan_in: int = ...,
    return_counts: Literal[False] = ...,
) -> float: ...


@overload
def average_precision_dask(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    chunks: int | tuple[int, ...] | str | None = ...,
    fan_in: int = ...,
    return_counts: Literal[True],
) -> tuple[float, ScoreCounts]: ...


@overload
def average_precision_dask(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    chunks: int | tuple[int, ...] | str | None = ...,
    fan_in: int = ...,
    return_counts: bool,
) -> float | tuple[float, ScoreCounts]: ...


def average_precision_dask(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    chunks: int | tuple[int, ...] | str | None = None,
    fan_in: int = 8,
    return_counts: bool = False,
) -> float | tuple[float, ScoreCounts]:
    """Exact average precision of arrays too large for memory, reduced chunk by chunk.

    Each pair of aligned blocks becomes :func:`score_counts` (one task); the counts are
    merged in a tree (:func:`merge_score_counts`) and the AP is computed from the total
    (:func:`average_precision_from_counts`). Uses the active dask scheduler (threads by
    default, or a ``distributed`` client). Peak memory is a few blocks plus the counts,
    whose size is the number of distinct scores: 7 values for the mean of 6 binary
    labels, but up to the number of items for continuous scores.

    Parameters
    ----------
    y_true : dask.array.Array, xarray.DataArray or numpy array, any shape
        Binary labels (0, 1, NaN); NaN labels are dropped.
    y_score : same kinds, same shape as ``y_true``
        Scores. Two DataArrays are matched by dim name and exact coordinates; the
        scores are rechunked to the labels' chunks when they differ.
    chunks : int, tuple, "auto" or None
        Chunking for inputs that are not dask-backed yet (None: one chunk).
    fan_in : int
        Number of count tables merged per task.
    return_counts : bool
        Also return the merged :data:`ScoreCounts`.

    Returns
    -------
    float or (float, ScoreCounts)
        Average precision, the same as :func:`average_precision` (to ~1e-12).

    Raises
    ------
    ValueError
        As :func:`average_precision`.
    """
    if fan_in < 2:
        raise ValueError(f"fan_in must be at least 2, got {fan_in}")
    y_true, y_score = _align_pair(y_true, y_score)
    yt, ys = _as_dask_like(chunks, y_true=y_true, y_score=y_score)
    count = dask.delayed(score_counts, pure=True)
    parts = [
        count(bt, bs)
        for bt, bs in zip(yt.to_delayed().ravel(), ys.to_delayed().ravel(), strict=True)
    ]
    (total,) = dask.compute(_merge_tree(parts, merge_score_counts, fan_in))
    ap = average_precision_from_counts(*total)
    return (ap, total) if return_counts else ap


def _as_dask_like(
    chunks: int | tuple[int, ...] | str | None, **arrays: ArrayLike
) -> list[da.Array]:
    """``arrays`` (the first: the labels) as dask arrays of one shape in the labels' chunks.

    Aligned blocks are what the chunked reductions pair up, one task per block.

    Raises
    ------
    ValueError
        Naming the arrays and their shapes when the shapes differ.
    """
    out = [_as_dask(x, chunks) for x in arrays.values()]
    if len({x.shape for x in out}) > 1:
        names, shapes = list(arrays), [str(x.shape) for x in out]
        raise ValueError(
            f"{', '.join(names[:-1])} and {names[-1]} must have the same shape, got "
            f"{', '.join(shapes[:-1])} and {shapes[-1]}"
        )
    labels = out[0]
    return [x if x.chunks == labels.chunks else x.rechunk(labels.chunks) for x in out]


def _as_dask(x: ArrayLike, chunks: int | tuple[int, ...] | str | None) -> da.Array:
    if isinstance(x, xr.DataArray):
        x = x.data
    if isinstance(x, da.Array):
        return x
    x = np.asarray(x)
    return da.from_array(x, chunks=x.shape if chunks is None else chunks)


# ------------------------------------------------------------------- partitions


def partition_by_activity(labels_train: ArrayLike, *, dim: str = "cell_type") -> ArrayLike:
    """Number of training + validation cell types in which each locus is active.

    Parameters
    ----------
    labels_train : numpy array (cell_type, locus) or xarray.DataArray with dim ``dim``
        Binary labels of the training and validation cell types only (never the test
        cell type). NaN counts as not active.
    dim : str
        The cell-type dim of a DataArray (numpy input: axis 0).

    Returns
    -------
    numpy.ndarray (locus,) int64, or xarray.DataArray over the remaining dims
        Counts in 0..n_cell_types. A dask-backed DataArray gives a lazy result.
    """
    if isinstance(labels_train, xr.DataArray):
        return (labels_train == 1).sum(dim).astype(np.int64)
    arr = _to_numpy(labels_train)
    if arr.ndim != 2:
        raise ValueError(f"labels_train must be 2-D (cell_type, locus), got shape {arr.shape}")
    # NaN == 1 is False, so unknown labels count as not active without a mask.
    return np.count_nonzero(arr == 1, axis=0).astype(np.int64)


def _group_slices(groups: np.ndarray) -> list[tuple[Any, np.ndarray]]:
    """Indices of each group, groups ascending (one sort instead of one mask per group)."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=uniq.size))[:-1]
    return [(g.item(), idx) for g, idx in zip(uniq, np.split(order, bounds), strict=True)]


def _flat_groups(groups: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    g = _to_numpy(groups)
    if g.shape != shape:
        raise ValueError(f"groups must have the shape of the labels {shape}, got {g.shape}")
    return g.ravel()


def ap_by_group(y_true: ArrayLike, y_score: ArrayLike, groups: ArrayLike) -> pd.Series:
    """Average precision within each group of items.

    Parameters
    ----------
    y_true : array-like or xarray.DataArray, shape (n,) (or any, flattened)
        Binary labels (0, 1, NaN); NaN labels are dropped.
    y_score : same shape
        Scores.
    groups : same shape
        Group of each item, e.g. :func:`partition_by_activity` of the loci.

    Returns
    -------
    pandas.Series
        Indexed by group (ascending), named ``"ap"``. A group with no positive label
        (or no labelled item) gets NaN: its AP is undefined.
    """
    y_true, y_score = _align_pair(y_true, y_score)
    y_true, groups = _align_pair(y_true, groups)
    yt, ys = _to_numpy(y_true), _to_numpy(y_score)
    _check_same_shape(yt, ys)
    g = _flat_groups(groups, yt.shape)
    yt, ys = yt.ravel(), ys.ravel()
    out = {}
    for key, idx in _group_slices(g):
        out[key] = _ap_or_nan(yt[idx], ys[idx])
    return pd.Series(out, name="ap", dtype=np.float64).rename_axis("group")


def _ap_or_nan(y: np.ndarray, s: np.ndarray) -> float:
    y = y.astype(np.float64, copy=False)
    if not np.any(y == 1):
        return float("nan")
    return average_precision(y, s)


GroupCounts = dict[Any, ScoreCounts]
"""Per group value: the :data:`ScoreCounts` of that group's labelled items."""


def group_score_counts(y_true: ArrayLike, y_score: ArrayLike, groups: ArrayLike) -> GroupCounts:
    """:func:`score_counts` within each group of items (one chunk).

    Parameters
    ----------
    y_true : array-like, any shape
        Binary labels (0, 1, NaN); NaN labels are dropped.
    y_score : array-like, same shape
        Scores; must not be NaN where the label is known.
    groups : array-like of int, same shape
        Group of each item (e.g. :func:`partition_by_activity`).

    Returns
    -------
    dict
        Group value (a Python scalar) -> ``(unique_scores, positives, totals)``, for every
        group present in the chunk, including groups whose items are all unlabelled
        (empty arrays), so that the groups reported match :func:`ap_by_group`.
    """
    yt, ys = _to_numpy(y_true), _to_numpy(y_score)
    _check_same_shape(yt, ys)
    g = _flat_groups(groups, yt.shape)
    y = yt.ravel()
    known = ~np.isnan(y) if y.dtype.kind == "f" else np.ones(y.shape, dtype=bool)
    pos, s = _clean_binary(y[known], ys.ravel()[known])
    group_values, g_inv = np.unique(g, return_inverse=True)
    uniq, s_inv = np.unique(s, return_inverse=True)
    k = uniq.size
    # One 2-D histogram over (group, score) instead of a mask and a sort per group.
    code = g_inv[known].astype(np.int64) * k + s_inv
    size = group_values.size * k
    totals = np.bincount(code, minlength=size).reshape(group_values.size, k)
    positives = np.bincount(code[pos], minlength=size).reshape(group_values.size, k)
    out: GroupCounts = {}
    for i, value in enumerate(group_values):
        present = totals[i] > 0
        out[value.item()] = (
            uniq[present],
            positives[i, present].astype(np.int64, copy=False),
            totals[i, present].astype(np.int64, copy=False),
        )
    return out


def merge_group_counts(*counts: GroupCounts) -> GroupCounts:
    """Merge the :func:`group_score_counts` of several chunks, group by group.

    Returns
    -------
    dict
        Group value -> merged :data:`ScoreCounts` (:func:`merge_score_counts`), over the
        union of the chunks' groups.
    """
    keys = dict.fromkeys(key for c in counts for key in c)
    return {key: merge_score_counts(*(c[key] for c in counts if key in c)) for key in keys}


def partitioned_ap_dask(
    y_true: ArrayLike,
    y_score: ArrayLike,
    groups: ArrayLike,
    *,
    chunks: int | tuple[int, ...] | str | None = None,
    fan_in: int = 8,
    include_all: bool = False,
    return_counts: bool = False,
) -> pd.Series | tuple[pd.Series, GroupCounts]:
    """Exact average precision within each group, reduced chunk by chunk.

    The chunked counterpart of :func:`ap_by_group` (same values, to ~1e-12): each triple
    of aligned blocks becomes :func:`group_score_counts` (one task), the per-group counts
    are merged in a tree (:func:`merge_group_counts`) and each group's AP comes from its
    total (:func:`average_precision_from_counts`), ties grouped. Nothing larger than a
    few blocks is ever in memory: the counts hold one entry per (group, distinct score),
    e.g. 7 x 7 for the mean of six binary labels grouped by how many of them are 1.

    Parameters
    ----------
    y_true : dask.array.Array, xarray.DataArray or numpy array, any shape
        Binary labels (0, 1, NaN); NaN labels are dropped.
    y_score : same kinds, same shape
        Scores; must not be NaN where the label is known.
    groups : same kinds, same shape, integer
        Group of each item, normally :func:`partition_by_activity` of the training +
        validation labels (lazy for a dask-backed cube). DataArrays are matched by dim
        name and exact coordinates; scores and groups are rechunked to the labels'
        chunks when they differ.
    chunks : int, tuple, "auto" or None
        Chunking for inputs that are not dask-backed yet (None: one chunk).
    fan_in : int
        Number of count tables merged per task.
    include_all : bool
        Also add the AP over every item as a last entry ``"all"`` (from the same counts,
        no extra pass).
    return_counts : bool
        Also return the merged per-group counts.

    Returns
    -------
    pandas.Series or (pandas.Series, dict)
        AP per group, indexed by group (ascending; then ``"all"``), named ``"ap"``. A
        group with no positive label (or no labelled item) gets NaN, as in
        :func:`ap_by_group`.

    Raises
    ------
    ValueError
        When the shapes differ, a label is not 0/1/NaN, a score is NaN at a labelled
        item, or ``fan_in < 2``.
    """
    if fan_in < 2:
        raise ValueError(f"fan_in must be at least 2, got {fan_in}")
    y_true, y_score = _align_pair(y_true, y_score)
    y_true, groups = _align_pair(y_true, groups)
    yt, ys, yg = _as_dask_like(chunks, y_true=y_true, y_score=y_score, groups=groups)
    count = dask.delayed(group_score_counts, pure=True)
    parts = [
        count(bt, bs, bg)
        for bt, bs, bg in zip(
            yt.to_delayed().ravel(), ys.to_delayed().ravel(), yg.to_delayed().ravel(), strict=True
        )
    ]
    (total,) = dask.compute(_merge_tree(parts, merge_group_counts, fan_in))
    keys = sorted(total)
    out = {key: _ap_from_counts_or_nan(total[key]) for key in keys}
    if include_all:
        out["all"] = _ap_from_counts_or_nan(merge_score_counts(*(total[k] for k in keys)))
    series = pd.Series(out, name="ap", dtype=np.float64).rename_axis("group")
    return (series, total) if return_counts else series


def _ap_from_counts_or_nan(counts: ScoreCounts) -> float:
    if not np.any(counts[1] > 0):
        return float("nan")
    return average_precision_from_counts(*counts)


# ------------------------------------------------------------- one pass per chunk


def _labels_2d(labels: ArrayLike, dim: str) -> tuple[ArrayLike, list[Hashable]]:
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


N_STATES = 3
"""Label states counted by :func:`leave_one_out_counts`: 0 unlabelled (NaN), 1 negative
(0), 2 positive (1)."""


PATTERN_MAX_LINES = 10
"""Up to this many lines, :func:`leave_one_out_counts` histograms whole label patterns
(``3 ** n_lines`` codes, which fit in uint16); beyond, it counts target by target."""


def leave_one_out_counts(
    labels: ArrayLike,
    targets: ArrayLike | None = None,
    *,
    method: Literal["auto", "patterns", "targets"] = "auto",
) -> np.ndarray:
    """Everything the average-activity evaluation needs, per held-out row (one chunk).

    Holding out row ``t``, the average-activity baseline scores a locus ``p / k``: ``k``
    other rows are labelled there and ``p`` of them are 1 (NaN if ``k = 0``: the locus
    is unscored). The locus's group in the partitioned evaluation
    (:func:`partition_by_activity` of the other rows) is ``p``. Score, group and
    scoredness are therefore all functions of ``(p, k)``, so counting loci per (label of
    row ``t``, p, k) gives every AP, every group's AP and the unscored loci exactly,
    from integer histograms, with no sort and no float score.

    Parameters
    ----------
    labels : array-like, shape (n_lines, n_loci)
        Binary labels (0, 1, NaN) of every line in one chunk of loci.
    targets : array-like of int, shape (n_targets,), optional
        Rows held out in turn (default: every row).
    method : {"auto", "patterns", "targets"}
        ``"patterns"``: one histogram of each locus's whole label pattern (NaN/0/1 in
        every row, ``3 ** n_lines`` codes), from which every target's counts follow;
        one pass over the loci whatever the number of targets, for at most
        :data:`PATTERN_MAX_LINES` lines. ``"targets"``: one histogram per target.
        ``"auto"``: patterns when they fit. Both give the same counts.

    Returns
    -------
    numpy.ndarray, shape (n_targets, 3, n_lines, n_lines), int64
        ``counts[i, s, p, k]``: loci whose label in row ``targets[i]`` is NaN (``s=0``),
        0 (``s=1``) or 1 (``s=2``), that are 1 in ``p`` of the other rows and labelled
        in ``k`` of them (``p <= k <= n_lines - 1``; other entries are 0).

    Raises
    ------
    ValueError
        When ``labels`` is not 2-D or holds a value other than 0, 1 and NaN, or
        ``method="patterns"`` with more than :data:`PATTERN_MAX_LINES` lines.
    """
    y = _to_numpy(labels)
    if y.ndim != 2:
        raise ValueError(f"labels must be 2-D (line, locus), got shape {y.shape}")
    if method not in ("auto", "patterns", "targets"):
        raise ValueError(f'method must be "auto", "patterns" or "targets", got {method!r}')
    n = y.shape[0]
    if method == "patterns" and n > PATTERN_MAX_LINES:
        raise ValueError(f"method='patterns' takes at most {PATTERN_MAX_LINES} lines, got {n}")
    rows = np.arange(n) if targets is None else np.asarray(targets, dtype=np.intp)
    pos = y == 1
    neg = y == 0
    n_nan = np.count_nonzero(np.isnan(y)) if y.dtype.kind == "f" else 0
    if n_nan + np.count_nonzero(pos) + np.count_nonzero(neg) != y.size:
        known = ~np.isnan(y) if y.dtype.kind == "f" else np.ones(y.shape, dtype=bool)
        bad = np.unique(y[known & ~pos & ~neg])[:5]
        raise ValueError(f"labels must be 0, 1 or NaN, found {bad.tolist()}")
    # State 0 (NaN), 1 (0) or 2 (1) of every item.
    state = neg.view(np.uint8) + pos.view(np.uint8) * np.uint8(2)
    if method == "targets" or (method == "auto" and n > PATTERN_MAX_LINES):
        return _leave_one_out_by_target(state, rows)
    # One base-3 code per locus for its whole pattern, so a single histogram (one pass
    # over the loci) serves every target; 3 ** 10 fits in uint16, and uint8 * uint16
    # scalar stays uint16 (NumPy 2 promotion), so nothing is widened to int64.
    code = np.zeros(y.shape[1], dtype=np.uint16)
    for i in range(n):
        code += state[i] * np.uint16(3**i)
    histogram = np.bincount(code, minlength=3**n)
    return _leave_one_out_from_patterns(histogram, n, rows)


def _leave_one_out_by_target(state: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`leave_one_out_counts` with one histogram of (state, p, k) codes per target.

    Parameters
    ----------
    state : numpy.ndarray, shape (n_lines, n_loci), uint8
        0 (NaN), 1 (label 0) or 2 (label 1).
    rows : numpy.ndarray, shape (n_targets,), int
        Rows held out.
    """
    n = state.shape[0]
    size = N_STATES * n * n
    known, pos = state > 0, state == 2
    # (p, k) over all rows, coded p * n + k; held-out row t in state s moves the code by
    # a constant per s (minus its own label, plus s * n * n), so one lookup does it.
    base = pos.sum(axis=0, dtype=np.intp) * n + known.sum(axis=0, dtype=np.intp)
    shift = np.array([0, n * n - 1, 2 * n * n - n - 1], dtype=np.intp)
    out = np.empty((rows.size, N_STATES, n, n), dtype=np.int64)
    for i, t in enumerate(rows):
        out[i] = np.bincount(base + shift[state[t]], minlength=size).reshape(N_STATES, n, n)
    return out


def _leave_one_out_from_patterns(histogram: np.ndarray, n: int, rows: np.ndarray) -> np.ndarray:
    """:func:`leave_one_out_counts` from the number of loci with each label pattern.

    Parameters
    ----------
    histogram : numpy.ndarray, shape (3 ** n,), int
        Loci per pattern ``sum_i state_i * 3 ** i`` (state 0 NaN, 1 label 0, 2 label 1).
    n : int
        Number of lines.
    rows : numpy.ndarray, shape (n_targets,), int
        Rows held out.
    """
    codes = np.arange(3**n)
    state = (codes[None, :] // (3 ** np.arange(n))[:, None]) % 3  # (n, 3**n)
    known, pos = state > 0, state == 2
    n_pos, n_known = pos.sum(axis=0), known.sum(axis=0)
    # float64 weights are exact for counts below 2**53.
    weights = histogram.astype(np.float64)
    size = N_STATES * n * n
    out = np.empty((rows.size, N_STATES, n, n), dtype=np.int64)
    for i, t in enumerate(rows):
        code = state[t] * n * n + (n_pos - pos[t]) * n + (n_known - known[t])
        counts = np.bincount(code, weights=weights, minlength=size)
        out[i] = counts.astype(np.int64).reshape(N_STATES, n, n)
    return out


def _stack_rows_and_count(targets: np.ndarray, *row_blocks: np.ndarray) -> np.ndarray:
    block = row_blocks[0] if len(row_blocks) == 1 else np.concatenate(row_blocks, axis=0)
    return leave_one_out_counts(block, targets)


def _sum_arrays(*arrays: np.ndarray) -> np.ndarray:
    out = arrays[0].copy()
    for a in arrays[1:]:
        out += a
    return out


class AverageActivityEvaluation:
    """The average-activity baseline of each held-out line, evaluated from its counts.

    Built by :func:`average_activity_evaluation`; every statistic below is exact and
    derived from :attr:`counts` without touching the labels again.

    Parameters
    ----------
    counts : numpy.ndarray, shape (n_targets, 3, n_lines, n_lines), int64
        Summed :func:`leave_one_out_counts` over every chunk of loci.
    targets : list, length n_targets
        Name of each held-out line (a value of the cell-type coordinate, or a row index).

    Attributes
    ----------
    counts, targets
        As given.
    """

    def __init__(self, counts: np.ndarray, targets: list[Hashable]) -> None:
        if counts.ndim != 4 or counts.shape[0] != len(targets) or counts.shape[1] != N_STATES:
            raise ValueError(f"counts of shape {counts.shape} do not fit {len(targets)} targets")
        self.counts = counts
        self.targets = list(targets)
        n = counts.shape[-1]
        p, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        self._scored = (k >= 1) & (p <= k)
        self._p, self._k = p, k

    def __repr__(self) -> str:
        return f"AverageActivityEvaluation(targets={self.targets}, n_lines={self.n_lines})"

    @property
    def n_lines(self) -> int:
        """Number of lines in the labels (each target's score averages the other ones)."""
        return int(self.counts.shape[-1])

    def _row(self, target: Hashable) -> np.ndarray:
        try:
            return self.counts[self.targets.index(target)]
        except ValueError:
            raise KeyError(f"{target!r} is not one of the targets {self.targets}") from None

    def score_counts(self, target: Hashable, group: int | None = None) -> ScoreCounts:
        """The :data:`ScoreCounts` of a target's scored, labelled loci (optionally one group).

        Parameters
        ----------
        target : hashable
            A held-out line.
        group : int, optional
            Only loci bound in exactly this many other lines.

        Returns
        -------
        ScoreCounts
            Ascending distinct scores ``p / k`` (float64) (m,), positives (m,) and
            labelled loci (m,), int64; scores with no labelled locus left out. Equal
            fractions (1/2, 2/4, 3/6) are one score: float division is correctly rounded,
            so they give the same float64, which ``np.unique`` merges.
        """
        row = self._row(target)
        keep = self._scored if group is None else self._scored & (self._p == group)
        positives = row[2][keep]
        totals = row[1][keep] + positives
        scores = self._p[keep] / self._k[keep]
        uniq, inverse = np.unique(scores, return_inverse=True)
        pos = np.bincount(inverse, weights=positives, minlength=uniq.size).astype(np.int64)
        tot = np.bincount(inverse, weights=totals, minlength=uniq.size).astype(np.int64)
        present = tot > 0
        return uniq[present], pos[present], tot[present]

    def group_counts(self, target: Hashable) -> GroupCounts:
        """Group (0..n_lines-1: other lines bound) -> :data:`ScoreCounts`, as
        :func:`partitioned_ap_dask` ``return_counts`` (groups with no scored, labelled
        locus get empty arrays)."""
        return {g: self.score_counts(target, g) for g in range(self.n_lines)}

    @property
    def ap(self) -> pd.Series:
        """AP of the baseline per target over its scored, labelled loci (NaN: no positive)."""
        values = [_ap_from_counts_or_nan(self.score_counts(t)) for t in self.targets]
        return pd.Series(values, index=pd.Index(self.targets, name="cell_type"), name="ap")

    @property
    def ap_by_group(self) -> pd.DataFrame:
        """AP of each target (a row each) in each group (a column each: 0..n_lines-1 other
        lines bound).

        NaN where a group has no positive scored locus, as :func:`ap_by_group`.
        """
        values = [
            [_ap_from_counts_or_nan(self.score_counts(t, g)) for g in range(self.n_lines)]
            for t in self.targets
        ]
        return pd.DataFrame(
            values,
            index=pd.Index(self.targets, name="cell_type"),
            columns=pd.RangeIndex(self.n_lines, name="group"),
        )

    @property
    def n_unscored(self) -> pd.Series:
        """Labelled loci of each target that no other line labels (NaN score), int."""
        values = self.counts[:, 1:, 0, 0].sum(axis=1)
        return pd.Series(values, index=pd.Index(self.targets, name="cell_type"), name="n_unscored")

    def table(self) -> pd.DataFrame:
        """One row per (target, group), groups ascending then ``"all"``.

        Returns
        -------
        pandas.DataFrame
            Columns ``cell_type``, ``group``, ``n_loci`` (scored, labelled loci),
            ``n_positive``, ``prevalence`` (the random predictor's AP; NaN with no
            locus) and ``ap`` (NaN with no positive), as :func:`partitioned_evaluation`.
        """
        rows = []
        for t in self.targets:
            for g in [*range(self.n_lines), "all"]:
                counts = self.score_counts(t, None if g == "all" else g)
                n_loci, n_pos = int(counts[2].sum()), int(counts[1].sum())
                rows.append(
                    {
                        "cell_type": t,
                        "group": g,
                        "n_loci": n_loci,
                        "n_positive": n_pos,
                        "prevalence": n_pos / n_loci if n_loci else float("nan"),
                        "ap": _ap_from_counts_or_nan(counts),
                    }
                )
        columns = ["cell_type", "group", "n_loci", "n_positive", "prevalence", "ap"]
        return pd.DataFrame(rows, columns=columns)


def average_activity_evaluation(
    labels: ArrayLike,
    targets: list[Hashable] | None = None,
    *,
    dim: str = "cell_type",
    chunks: int | tuple[int, ...] | str | None = None,
    fan_in: int = 8,
) -> AverageActivityEvaluation:
    """Average-activity baseline of each line held out in turn, in one pass over the chunks.

    For each target line, the baseline scores each locus by the mean label of the other
    lines (NaN labels skipped, as :class:`pitfall.baselines.AverageActivity`); its AP on
    the target's labels, its AP within each group of loci bound in 0..n-1 other lines
    (the partitioned evaluation, groups as :func:`partition_by_activity`), and the
    number of labelled loci no other line labels (unscored, left out of the APs as
    :func:`pitfall.baselines.score_predictions` does) all come from the counts of
    :func:`leave_one_out_counts`. One task per chunk of loci reads the labels of every
    line there once and counts for every target; the fixed-size counts (targets x 3 x
    n x n) are summed in a tree. Nothing is sorted and no score is materialised.

    Parameters
    ----------
    labels : xarray.DataArray (dim, locus), dask array or numpy array (line, locus)
        Binary labels (0, 1, NaN) of every line: each target is scored by the others.
        A dask-backed DataArray (the cube's ``label``) stays lazy; its chunks along
        ``dim`` are stacked per chunk of loci.
    targets : list, optional
        Lines held out in turn: values of the ``dim`` coordinate (row indices for
        arrays). Default: every line.
    dim : str
        The cell-type dim of a DataArray.
    chunks : int, tuple, "auto" or None
        Chunking for inputs that are not dask-backed yet (None: one chunk).
    fan_in : int
        Number of count arrays summed per task.

    Returns
    -------
    AverageActivityEvaluation
        ``.ap`` (per target), ``.ap_by_group`` (target x group), ``.n_unscored``,
        ``.table()`` and the counts; equal to the separate
        :func:`pitfall.baselines.score_predictions` and :func:`partitioned_ap_dask` to
        ~1e-15.

    Raises
    ------
    ValueError
        When ``labels`` is not 2-D, holds a value other than 0, 1 and NaN, names a
        target it does not hold, or ``fan_in < 2``.
    """
    if fan_in < 2:
        raise ValueError(f"fan_in must be at least 2, got {fan_in}")
    labels, names = _labels_2d(labels, dim)
    targets = list(names) if targets is None else list(targets)
    missing = [t for t in targets if t not in names]
    if missing:
        raise ValueError(f"targets {missing} are not lines of the labels ({names})")
    rows = np.array([names.index(t) for t in targets], dtype=np.intp)
    x = _as_dask(labels, chunks)
    blocks = x.to_delayed()  # (line blocks, locus blocks)
    count = dask.delayed(_stack_rows_and_count, pure=True)
    parts = [count(rows, *blocks[:, j]) for j in range(blocks.shape[1])]
    (total,) = dask.compute(_merge_tree(parts, _sum_arrays, fan_in))
    return AverageActivityEvaluation(total, targets)


def row_score_counts(y_true: ArrayLike, y_score: ArrayLike) -> tuple[list[ScoreCounts], np.ndarray]:
    """:func:`score_counts` of each row, NaN scores counted apart (one chunk).

    Parameters
    ----------
    y_true : array-like, shape (n_rows, n)
        Binary labels (0, 1, NaN); NaN labels are dropped.
    y_score : array-like, shape (n_rows, n)
        Scores; NaN where a predictor cannot score.

    Returns
    -------
    counts : list of ScoreCounts, length n_rows
        Per row, the counts of the items with a label and a score.
    n_unscored : numpy.ndarray, shape (n_rows,), int64
        Per row, the items with a label but a NaN score.
    """
    yt, ys = _to_numpy(y_true), _to_numpy(y_score)
    _check_same_shape(yt, ys)
    if yt.ndim != 2:
        raise ValueError(f"y_true must be 2-D (row, item), got shape {yt.shape}")
    counts, n_unscored = [], np.zeros(yt.shape[0], dtype=np.int64)
    for i, (y, s) in enumerate(zip(yt, ys, strict=True)):
        if s.dtype.kind == "f":
            unscored = np.isnan(s)
            if y.dtype.kind == "f":
                unscored &= ~np.isnan(y)
            n_unscored[i] = np.count_nonzero(unscored)
            if n_unscored[i]:
                y, s = y[~unscored], s[~unscored]
        counts.append(score_counts(y, s))
    return counts, n_unscored


def _merge_row_counts(
    *parts: tuple[list[ScoreCounts], np.ndarray],
) -> tuple[list[ScoreCounts], np.ndarray]:
    merged = [merge_score_counts(*row) for row in zip(*(p[0] for p in parts), strict=True)]
    return merged, _sum_arrays(*(p[1] for p in parts))


def average_precision_by_cell_type(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    dim: str = "cell_type",
    pooled: bool = True,
    chunks: int | tuple[int, ...] | str | None = None,
    fan_in: int = 8,
) -> pd.DataFrame:
    """AP of each cell type's scores, pooled AP and unscored loci, in one pass.

    Each pair of aligned blocks becomes :func:`row_score_counts` (one task, reading each
    block once); the counts are merged in a tree along the loci. Every AP (per cell
    type, and pooled over all (cell type, locus) pairs from the merged counts of all
    cell types) and every count comes from that single reduction. Items with a NaN
    label are dropped; items with a label but a NaN score (a predictor that cannot score
    there) are dropped from the APs and counted as unscored.

    Parameters
    ----------
    y_true : xarray.DataArray (dim, locus), dask or numpy array (cell_type, locus)
        Binary labels (0, 1, NaN).
    y_score : same kinds, same shape
        Scores (NaN: unscored). Two DataArrays are matched by dim name and must have
        identical coordinates; the scores are rechunked to the labels' chunks.
    dim : str
        The cell-type dim of a DataArray.
    pooled : bool
        Also add a last row ``"pooled"``: every cell type's items together.
    chunks : int, tuple, "auto" or None
        Chunking for inputs that are not dask-backed yet (None: one chunk).
    fan_in : int
        Number of count tables merged per task.

    Returns
    -------
    pandas.DataFrame
        Indexed by cell type (then ``"pooled"``), columns ``ap`` (NaN with no positive),
        ``n_loci`` (labelled, scored items), ``n_positive`` and ``n_unscored``.

    Raises
    ------
    ValueError
        When the shapes differ, a label is not 0/1/NaN, or ``fan_in < 2``.
    """
    if fan_in < 2:
        raise ValueError(f"fan_in must be at least 2, got {fan_in}")
    y_true, y_score = _align_pair(y_true, y_score)
    y_true, names = _labels_2d(y_true, dim)
    if isinstance(y_score, xr.DataArray) and isinstance(y_true, xr.DataArray):
        y_score = y_score.transpose(*y_true.dims)
    yt, ys = _as_dask_like(chunks, y_true=y_true, y_score=y_score)
    count = dask.delayed(row_score_counts, pure=True)
    bt, bs = yt.to_delayed(), ys.to_delayed()
    per_row_block = [
        _merge_tree(
            [count(bt[i, j], bs[i, j]) for j in range(bt.shape[1])], _merge_row_counts, fan_in
        )
        for i in range(bt.shape[0])
    ]
    totals = dask.compute(*per_row_block)
    counts = [c for block in totals for c in block[0]]
    n_unscored = np.concatenate([block[1] for block in totals])
    index = list(names)
    if pooled:
        counts.append(merge_score_counts(*counts))
        n_unscored = np.append(n_unscored, n_unscored.sum())
        index.append("pooled")
    return pd.DataFrame(
        {
            "ap": [_ap_from_counts_or_nan(c) for c in counts],
            "n_loci": [int(c[2].sum()) for c in counts],
            "n_positive": [int(c[1].sum()) for c in counts],
            "n_unscored": n_unscored,
        },
        index=pd.Index(index, name=dim),
    )


def partitioned_evaluation(
    y_true: ArrayLike,
    scores: Mapping[str, ArrayLike],
    n_active: ArrayLike,
    *,
    include_all: bool = True,
) -> pd.DataFrame:
    """AP of several predictors within each partition of the loci (the paper's Fig. 4).

    Parameters
    ----------
    y_true : array-like or xarray.DataArray, shape (locus,)
        Test labels of the target cell type (0, 1, NaN); NaN loci are dropped.
    scores : mapping of predictor name -> array of shape (locus,)
        Predictions of each model or baseline.
    n_active : array of shape (locus,), int
        Group of each locus, normally :func:`partition_by_activity` of the training +
        validation labels.
    include_all : bool
        Also add group ``"all"`` (every locus) as the last rows.

    Returns
    -------
    pandas.DataFrame
        One row per (group, predictor), groups ascending, predictors in mapping order,
        columns ``group``, ``predictor``, ``n_loci`` (labelled loci in the group),
        ``n_positive``, ``prevalence`` (the share of positives: the AP of a constant score,
        ties grouped), ``ap_random_expected`` (the expected AP of a random ranking of the
        group, :func:`pitfall.random_ranking.expected_ap`: above the prevalence in small
        groups, and the fair reference of a model there) and ``ap``. Groups with no
        positive locus get ``ap`` and ``ap_random_expected`` NaN (and ``prevalence`` 0),
        since average precision is undefined there.
    """
    aligned = {name: _align_pair(y_true, s)[1] for name, s in scores.items()}
    y_true, n_active = _align_pair(y_true, n_active)
    yt = _to_numpy(y_true).ravel().astype(np.float64)
    g = _flat_groups(n_active, _to_numpy(y_true).shape)
    arrays = {}
    for name, s in aligned.items():
        arr = _to_numpy(s)
        if arr.size != yt.size:
            raise ValueError(
                f"scores[{name!r}] has {arr.size} items, the labels {yt.size}: shapes differ"
            )
        arrays[name] = arr.ravel()
    slices = _group_slices(g)
    if include_all:
        slices.append(("all", np.arange(yt.size)))
    rows = []
    for key, idx in slices:
        y = yt[idx]
        n_loci = int(np.count_nonzero(~np.isnan(y)))
        n_pos = int(np.count_nonzero(y == 1))
        for name, s in arrays.items():
            rows.append(
                {
                    "group": key,
                    "predictor": name,
                    "n_loci": n_loci,
                    "n_positive": n_pos,
                    "prevalence": n_pos / n_loci if n_loci else float("nan"),
                    "ap_random_expected": float(expected_ap(n_loci, n_pos))
                    if n_pos
                    else float("nan"),
                    "ap": _ap_or_nan(y, s[idx]),
                }
            )
    columns = ["group", "predictor", "n_loci", "n_positive", "prevalence",
               "ap_random_expected", "ap"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------- Mann-Whitney U


def mann_whitney_by_group(
    aps: pd.DataFrame,
    a: str | Sequence[str],
    b: str | Sequence[str],
    alternative: Literal["greater", "less", "two-sided"] = "greater",
    *,
    group: str = "group",
    by: str = "predictor",
    value: str = "ap",
    method: str = "auto",
) -> pd.DataFrame:
    """The paper's partitioned test: per group of loci, side A's models' APs vs side B's.

    The paper's Fig. S4 (preprint Fig. S3) evaluates every model within groups of test
    loci of equal activity (the number of training + validation cell types in which the
    locus is active, :func:`partition_by_activity`), and in each group compares the APs
    of the epigenomic-only models with those of the sequence-only models by a one-sided
    Mann-Whitney U test: the samples are *models' APs*, one per model, not loci or
    scores. Per group this is exactly ``scipy.stats.mannwhitneyu(ap[A], ap[B],
    alternative=alternative, method=method)``.

    Parameters
    ----------
    aps : pandas.DataFrame
        Long table, one row per (model, group): at least the columns ``group``, ``by``
        and ``value`` (as :func:`partitioned_evaluation` gives, or one such table per
        model concatenated). NaN APs (a group with no positive locus) are left out.
    a, b : str or sequence of str
        Values of ``by`` on side A and side B (e.g. ``"signal"`` vs ``"sequence"``).
        Controls belong on neither side unless compared on their own.
    alternative : {"greater", "less", "two-sided"}
        Passed to :func:`scipy.stats.mannwhitneyu`; "greater": A's APs stochastically
        larger.
    group, by, value : str
        Column names of the group, the side label and the AP.
    method : str
        Passed to :func:`scipy.stats.mannwhitneyu` ("auto", "asymptotic", "exact").

    Returns
    -------
    pandas.DataFrame
        One row per group present in ``aps`` (numeric groups ascending, others such as
        ``"all"`` last): ``group``, ``n_a`` and ``n_b`` (APs per side), ``U`` (scipy's
        statistic, for side A), ``p_value`` and ``p_floor``, the smallest p-value the
        exact test can give with ``n_a`` and ``n_b`` samples (``1 / C(n_a + n_b, n_a)``,
        doubled when two-sided): with 3 models a side it is 0.05, so no group can pass a
        0.05 threshold whatever the models do. A group where either side has no AP gets
        NaN for ``U``, ``p_value`` and ``p_floor``.

    Raises
    ------
    KeyError
        When ``aps`` lacks one of the three columns.
    ValueError
        When a value of ``by`` is on both sides.
    """
    side_a = [a] if isinstance(a, str) else list(a)
    side_b = [b] if isinstance(b, str) else list(b)
    both = sorted(set(side_a) & set(side_b))
    if both:
        raise ValueError(f"{both} are on both sides of the test")
    missing = [c for c in (group, by, value) if c not in aps.columns]
    if missing:
        raise KeyError(f"aps has no column {missing} (columns: {list(aps.columns)})")
    keys = list(dict.fromkeys(aps[group].tolist()))
    # numeric groups in order, then the rest (e.g. "all") as they come
    keys.sort(key=lambda k: (0, float(k), "") if _is_number(k) else (1, 0.0, str(k)))
    rows = []
    for key in keys:
        part = aps[aps[group] == key]
        x = part.loc[part[by].isin(side_a), value].astype(np.float64).dropna().to_numpy()
        y = part.loc[part[by].isin(side_b), value].astype(np.float64).dropna().to_numpy()
        u = p = floor = float("nan")
        if x.size and y.size:
            res = stats.mannwhitneyu(x, y, alternative=alternative, method=method)
            u, p = float(res.statistic), float(res.pvalue)
            floor = min(1.0, (2.0 if alternative == "two-sided" else 1.0)
                        / math.comb(x.size + y.size, x.size))  # fmt: skip
        rows.append(
            {"group": key, "n_a": int(x.size), "n_b": int(y.size), "U": u, "p_value": p,
             "p_floor": floor}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["group", "n_a", "n_b", "U", "p_value", "p_floor"])


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def mann_whitney_scores_by_group(
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    groups: ArrayLike,
    alternative: Literal["greater", "less", "two-sided"] = "greater",
    *,
    labels: ArrayLike | None = None,
    on: Literal["all", "positive", "negative"] = "all",
    method: str = "auto",
) -> pd.DataFrame:
    """Mann-Whitney U test of model A's vs model B's *scores*, per group of loci.

    Not the paper's test (that one, :func:`mann_whitney_by_group`, compares the per-group
    APs of two sets of models). This one compares, within each group of loci, the
    distribution of model A's scores over the group's loci with that of model B's over
    the same loci, as two independent samples:
    ``scipy.stats.mannwhitneyu(a[group], b[group], alternative=alternative)``. A small
    p-value with ``alternative="greater"`` means A scores the group's loci higher than B
    does, which says nothing about ranking them better unless restricted to one class
    (``on="positive"``: A scores the active loci higher). The loci are the same for both
    samples but are treated as unpaired.

    Parameters
    ----------
    scores_a, scores_b : array-like or xarray.DataArray, shape (locus,)
        Predictions of models A and B at the same loci.
    groups : array-like, shape (locus,)
        Group of each locus.
    alternative : {"greater", "less", "two-sided"}
        Passed to :func:`scipy.stats.mannwhitneyu`; "greater": A stochastically larger.
    labels : array-like, shape (locus,), optional
        Binary labels (0, 1, NaN) used by ``on``.
    on : {"all", "positive", "negative"}
        Which loci of each group enter the test: all of them, or only those labelled 1
        (resp. 0). Anything but "all" needs ``labels``; NaN-labelled loci are then
        left out.
    method : str
        Passed to :func:`scipy.stats.mannwhitneyu` ("auto", "asymptotic", "exact").

    Returns
    -------
    pandas.DataFrame
        One row per group (ascending): ``group``, ``n`` (loci tested per sample), ``U``
        (scipy's statistic, for sample A) and ``p_value``. Loci where either score is
        NaN are dropped; a group left with no locus gets U and p_value NaN.
    """
    if on not in ("all", "positive", "negative"):
        raise ValueError(f'on must be "all", "positive" or "negative", got {on!r}')
    if on != "all" and labels is None:
        raise ValueError(f"on={on!r} needs labels")
    scores_a, scores_b = _align_pair(scores_a, scores_b)
    scores_a, groups = _align_pair(scores_a, groups)
    a = _to_numpy(scores_a).astype(np.float64).ravel()
    b = _to_numpy(scores_b).astype(np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"scores_a and scores_b must have the same shape, got {a.shape}, {b.shape}"
        )
    g = _flat_groups(groups, _to_numpy(scores_a).shape)
    keep = ~(np.isnan(a) | np.isnan(b))
    if on != "all":
        scores_a, labels = _align_pair(scores_a, labels)
        y = _to_numpy(labels).astype(np.float64).ravel()
        if y.shape != a.shape:
            raise ValueError(f"labels must have the shape of the scores {a.shape}, got {y.shape}")
        keep &= y == (1.0 if on == "positive" else 0.0)
    rows = []
    for key, idx in _group_slices(g):
        idx = idx[keep[idx]]
        if idx.size == 0:
            u, p = float("nan"), float("nan")
        else:
            res = stats.mannwhitneyu(a[idx], b[idx], alternative=alternative, method=method)
            u, p = float(res.statistic), float(res.pvalue)
        rows.append({"group": key, "n": int(idx.size), "U": u, "p_value": p})
    return pd.DataFrame(rows, columns=["group", "n", "U", "p_value"])


# ----------------------------------------------------------------- residual target


def residual_target(labels: ArrayLike, average_activity: ArrayLike) -> ArrayLike:
    """The paper's residual target: label minus the locus's average activity.

    Parameters
    ----------
    labels : xarray.DataArray (cell_type, locus) or (locus,), or numpy array
        Binary labels (NaN stays NaN).
    average_activity : xarray.DataArray (locus,) or numpy array (locus,)
        Mean label of each locus over the training cell types.

    Returns
    -------
    same kind as ``labels``
        ``labels - average_activity``, in [-1, 1]. DataArrays broadcast by dim name
        (over ``cell_type``) and align exactly on ``locus``; numpy arrays broadcast on
        the trailing axis.
    """
    return _combine(labels, average_activity, np.subtract)


def score_from_residual(residual: ArrayLike, average_activity: ArrayLike) -> ArrayLike:
    """Inverse of :func:`residual_target`: residual prediction plus average activity.

    Parameters
    ----------
    residual : xarray.DataArray or numpy array, (..., locus)
        Predicted residuals.
    average_activity : xarray.DataArray or numpy array, (locus,)
        The same average activity the residual target was built from.

    Returns
    -------
    same kind as ``residual``
        Scores on the label scale, ``residual + average_activity``.
    """
    return _combine(residual, average_activity, np.add)


def _combine(x: ArrayLike, avg: ArrayLike, op: Any) -> ArrayLike:
    if isinstance(x, xr.DataArray) or isinstance(avg, xr.DataArray):
        with xr.set_options(arithmetic_join="exact"):
            try:
                return op(x, avg)
            except ValueError as err:
                raise ValueError(f"labels and average activity do not align: {err}") from err
    return op(np.asarray(x), np.asarray(avg))


# ----------------------------------------------------------------- baselines


def baseline_strength(
    labels: xr.DataArray,
    target: Hashable,
    similarity: pd.Series | Mapping[Hashable, float],
    *,
    dim: str = "cell_type",
) -> pd.DataFrame:
    """AP of each other cell type's labels used alone to predict the target's labels.

    Parameters
    ----------
    labels : xarray.DataArray (cell_type, locus)
        Binary labels (0, 1, NaN) of every cell type, the target included.
    target : hashable
        The target cell type (a value of the ``dim`` coordinate).
    similarity : pandas.Series or mapping, cell type -> float
        Similarity of each cell type to the target (e.g. correlation of inputs).
        Cell types missing from it get NaN.
    dim : str
        The cell-type dim.

    Returns
    -------
    pandas.DataFrame
        One row per non-target cell type, in the order of ``labels``: ``cell_type``,
        ``similarity`` and ``ap``. Loci where the target's or the predictor's label is
        NaN are left out of that predictor's AP; a predictor with no shared positive
        gets NaN.
    """
    if not isinstance(labels, xr.DataArray):
        raise TypeError("labels must be an xarray.DataArray with a cell-type dim")
    sim = dict(similarity.items()) if isinstance(similarity, pd.Series) else dict(similarity)
    cell_types = list(labels[dim].values)
    if target not in cell_types:
        raise ValueError(f"target {target!r} is not a {dim} of the labels")
    y = labels.sel({dim: target}).values.astype(np.float64).ravel()
    rows = []
    for ct in cell_types:
        if ct == target:
            continue
        s = labels.sel({dim: ct}).values.astype(np.float64).ravel()
        known = ~np.isnan(s)
        rows.append(
            {
                "cell_type": ct,
                "similarity": float(sim.get(ct, np.nan)),
                "ap": _ap_or_nan(y[known], s[known]),
            }
        )
    return pd.DataFrame(rows, columns=["cell_type", "similarity", "ap"])
