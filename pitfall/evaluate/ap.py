"""Average precision of labels and scores held in memory.

Average precision follows scikit-learn's ``average_precision_score`` exactly::

    AP = sum_k (R_k - R_{k-1}) * P_k

over the *distinct* score thresholds in decreasing order, where ``P_k`` and ``R_k`` are
the precision and recall when every item scoring at least the k-th threshold is called
positive. Tied scores form one threshold (no interpolation, no random tie breaking):
this matters for baselines such as the mean of a few binary labels, which take only a
handful of values. Loci whose label is NaN are dropped first.

:func:`ap_or_nan` is the one rule for groups where AP is undefined (no positive label):
NaN, for arrays and for the per-score counts of :mod:`pitfall.evaluate.chunked` alike.
"""

from __future__ import annotations

import numpy as np

from pitfall.evaluate._core import (
    ArrayLike,
    align_pair,
    ap_from_cumulative,
    clean_binary,
    is_lazy,
    to_numpy,
)
from pitfall.evaluate.chunked import (
    ScoreCounts,
    average_precision_dask,
    average_precision_from_counts,
)

__all__ = ["ap_or_nan", "average_precision", "random_ap"]


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

    Examples
    --------
    >>> from pitfall.evaluate import average_precision
    >>> round(average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]), 4)
    0.8333
    >>> round(average_precision([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.1]), 4)  # ties: one threshold
    0.6667
    """
    y_true, y_score = align_pair(y_true, y_score)
    if is_lazy(y_true) or is_lazy(y_score):
        return average_precision_dask(y_true, y_score)
    pos, s = clean_binary(to_numpy(y_true), to_numpy(y_score))
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
    return ap_from_cumulative(tp, called, n_pos)


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

    Examples
    --------
    The prevalence is the large-sample limit; a random ranking of few loci earns more on
    average (:func:`pitfall.random_ranking.expected_ap`):

    >>> from pitfall.evaluate import random_ap
    >>> from pitfall.random_ranking import expected_ap
    >>> random_ap([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    0.1
    >>> round(expected_ap(10, 1), 4)
    0.2929
    """
    y = to_numpy(y_true).ravel().astype(np.float64)
    y = y[~np.isnan(y)]
    if y.size == 0:
        raise ValueError("random AP is undefined: y_true has no labelled item")
    return float(np.count_nonzero(y == 1) / y.size)


def ap_or_nan(y_true: ArrayLike | ScoreCounts, y_score: ArrayLike | None = None) -> float:
    """Average precision, or NaN where it is undefined (no labelled item is positive).

    Parameters
    ----------
    y_true : numpy.ndarray (n,) or ScoreCounts
        Binary labels (0, 1, NaN), scored by ``y_score``; or, with ``y_score`` None, the
        :data:`~pitfall.evaluate.chunked.ScoreCounts` of the items (ascending distinct
        scores (k,), positives (k,), totals (k,)).
    y_score : numpy.ndarray (n,), optional
        Scores of the items, for labels.

    Returns
    -------
    float
        :func:`average_precision` (or :func:`~pitfall.evaluate.chunked.
        average_precision_from_counts`), NaN without a positive. Labels and scores are
        only validated where there is a positive.
    """
    if y_score is None:
        counts: ScoreCounts = y_true
        if not np.any(counts[1] > 0):
            return float("nan")
        return average_precision_from_counts(*counts)
    y = np.asarray(y_true).astype(np.float64, copy=False)
    if not np.any(y == 1):
        return float("nan")
    return average_precision(y, y_score)
