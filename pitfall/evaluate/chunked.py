"""Average precision from per-distinct-score counts, for arrays too large for memory.

:func:`score_counts` reduces one chunk of labels and scores to the number of positive and
of labelled items at each distinct score; :func:`merge_score_counts` adds the counts of
several chunks; :func:`average_precision_from_counts` gives the same number as
:func:`pitfall.evaluate.average_precision` from the total. :func:`average_precision_dask`
does the three over a dask array, block by block, so its memory is bounded by the number
of distinct scores rather than the number of items.
"""

from __future__ import annotations

from typing import Literal, overload

import dask
import numpy as np

from pitfall.evaluate._core import (
    ArrayLike,
    align_pair,
    ap_from_cumulative,
    as_dask_like,
    clean_binary,
    merge_tree,
    to_numpy,
)

__all__ = [
    "ScoreCounts",
    "average_precision_dask",
    "average_precision_from_counts",
    "merge_score_counts",
    "score_counts",
]

ScoreCounts = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(unique_scores, positives, totals)``: ascending distinct scores (k,), and per score
the number of positive items (k,) int64 and of labelled items (k,) int64."""


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
    pos, s = clean_binary(to_numpy(y_true), to_numpy(y_score))
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
    return ap_from_cumulative(tp[keep], called[keep], n_pos)


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
    y_true, y_score = align_pair(y_true, y_score)
    yt, ys = as_dask_like(chunks, y_true=y_true, y_score=y_score)
    count = dask.delayed(score_counts, pure=True)
    parts = [
        count(bt, bs)
        for bt, bs in zip(yt.to_delayed().ravel(), ys.to_delayed().ravel(), strict=True)
    ]
    (total,) = dask.compute(merge_tree(parts, merge_score_counts, fan_in))
    ap = average_precision_from_counts(*total)
    return (ap, total) if return_counts else ap
