"""Average precision within groups of loci: the paper's partitioned evaluation, per cell type.

The paper (Fig. 4, Fig. S4) groups test loci by how many training + validation cell types
they are active in (:func:`partition_by_activity`) and evaluates every predictor within
each group: :func:`ap_by_group` and :func:`partitioned_evaluation` in memory,
:func:`partitioned_ap_dask` chunk by chunk from per-group counts
(:func:`group_score_counts`, :func:`merge_group_counts`). :func:`average_precision_by_cell_type`
groups by cell type instead: the AP of each cell type's scores, the pooled AP and the
unscored loci of any predictor, in one pass over the chunks (:func:`row_score_counts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from pitfall.evaluate._core import (
    ArrayLike,
    align_pair,
    as_dask_like,
    check_same_shape,
    clean_binary,
    flat_groups,
    group_slices,
    labels_2d,
    merge_tree,
    sum_arrays,
    to_numpy,
)
from pitfall.evaluate.ap import ap_or_nan
from pitfall.evaluate.chunked import ScoreCounts, merge_score_counts, score_counts
from pitfall.random_ranking import expected_ap

__all__ = [
    "GroupCounts",
    "ap_by_group",
    "average_precision_by_cell_type",
    "group_score_counts",
    "merge_group_counts",
    "partition_by_activity",
    "partition_by_variance",
    "partitioned_ap_dask",
    "partitioned_evaluation",
    "row_score_counts",
]


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
    arr = to_numpy(labels_train)
    if arr.ndim != 2:
        raise ValueError(f"labels_train must be 2-D (cell_type, locus), got shape {arr.shape}")
    # NaN == 1 is False, so unknown labels count as not active without a mask.
    return np.count_nonzero(arr == 1, axis=0).astype(np.int64)


def partition_by_variance(variance: np.ndarray, n_groups: int = 10) -> np.ndarray:
    """Each locus's group by rank of its cross-cell-type variance: deciles by default.

    The continuous counterpart of :func:`partition_by_activity`: a track's loci grouped by
    how much the mark varies across the training cell types there. Loci are ranked (ties
    in locus order), so each group holds ``n / n_groups`` loci give or take one.

    Parameters
    ----------
    variance : numpy.ndarray
        Shape (n,), finite.
    n_groups : int
        Groups (at most ``n``).

    Returns
    -------
    numpy.ndarray
        int64, shape (n,): 0 (least variable) .. ``min(n_groups, n) - 1``.
    """
    variance = np.asarray(variance).ravel()
    n = variance.size
    k = min(n_groups, n)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(variance, kind="stable")] = np.arange(n)
    return rank * k // max(n, 1)


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
    y_true, y_score = align_pair(y_true, y_score)
    y_true, groups = align_pair(y_true, groups)
    yt, ys = to_numpy(y_true), to_numpy(y_score)
    check_same_shape(yt, ys)
    g = flat_groups(groups, yt.shape)
    yt, ys = yt.ravel(), ys.ravel()
    out = {}
    for key, idx in group_slices(g):
        out[key] = ap_or_nan(yt[idx], ys[idx])
    return pd.Series(out, name="ap", dtype=np.float64).rename_axis("group")


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
    aligned = {name: align_pair(y_true, s)[1] for name, s in scores.items()}
    y_true, n_active = align_pair(y_true, n_active)
    yt = to_numpy(y_true).ravel().astype(np.float64)
    g = flat_groups(n_active, to_numpy(y_true).shape)
    arrays = {}
    for name, s in aligned.items():
        arr = to_numpy(s)
        if arr.size != yt.size:
            raise ValueError(
                f"scores[{name!r}] has {arr.size} items, the labels {yt.size}: shapes differ"
            )
        arrays[name] = arr.ravel()
    slices = group_slices(g)
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
                    "ap": ap_or_nan(y, s[idx]),
                }
            )
    columns = ["group", "predictor", "n_loci", "n_positive", "prevalence"]
    columns += ["ap_random_expected", "ap"]
    return pd.DataFrame(rows, columns=columns)


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
    yt, ys = to_numpy(y_true), to_numpy(y_score)
    check_same_shape(yt, ys)
    g = flat_groups(groups, yt.shape)
    y = yt.ravel()
    known = ~np.isnan(y) if y.dtype.kind == "f" else np.ones(y.shape, dtype=bool)
    pos, s = clean_binary(y[known], ys.ravel()[known])
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
    y_true, y_score = align_pair(y_true, y_score)
    y_true, groups = align_pair(y_true, groups)
    yt, ys, yg = as_dask_like(chunks, y_true=y_true, y_score=y_score, groups=groups)
    count = dask.delayed(group_score_counts, pure=True)
    parts = [
        count(bt, bs, bg)
        for bt, bs, bg in zip(
            yt.to_delayed().ravel(), ys.to_delayed().ravel(), yg.to_delayed().ravel(), strict=True
        )
    ]
    (total,) = dask.compute(merge_tree(parts, merge_group_counts, fan_in))
    keys = sorted(total)
    out = {key: ap_or_nan(total[key]) for key in keys}
    if include_all:
        out["all"] = ap_or_nan(merge_score_counts(*(total[k] for k in keys)))
    series = pd.Series(out, name="ap", dtype=np.float64).rename_axis("group")
    return (series, total) if return_counts else series


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
    yt, ys = to_numpy(y_true), to_numpy(y_score)
    check_same_shape(yt, ys)
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
    """Merge the :func:`row_score_counts` of several chunks of the same rows."""
    merged = [merge_score_counts(*row) for row in zip(*(p[0] for p in parts), strict=True)]
    return merged, sum_arrays(*(p[1] for p in parts))


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
    y_true, y_score = align_pair(y_true, y_score)
    y_true, names = labels_2d(y_true, dim)
    if isinstance(y_score, xr.DataArray) and isinstance(y_true, xr.DataArray):
        y_score = y_score.transpose(*y_true.dims)
    yt, ys = as_dask_like(chunks, y_true=y_true, y_score=y_score)
    count = dask.delayed(row_score_counts, pure=True)
    bt, bs = yt.to_delayed(), ys.to_delayed()
    per_row_block = [
        merge_tree(
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
            "ap": [ap_or_nan(c) for c in counts],
            "n_loci": [int(c[2].sum()) for c in counts],
            "n_positive": [int(c[1].sum()) for c in counts],
            "n_unscored": n_unscored,
        },
        index=pd.Index(index, name=dim),
    )
