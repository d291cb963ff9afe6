"""Mann-Whitney U tests per group of loci: the paper's test over models' APs, and one over scores.

:func:`mann_whitney_by_group` is the paper's partitioned test (Fig. S4): within each group
of loci, the APs of one set of models against another's. :func:`mann_whitney_scores_by_group`
compares two models' scores at the same loci instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from pitfall.evaluate._core import ArrayLike, align_pair, flat_groups, group_slices, to_numpy

__all__ = ["mann_whitney_by_group", "mann_whitney_scores_by_group"]


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
            sides = 2.0 if alternative == "two-sided" else 1.0
            floor = min(1.0, sides / math.comb(x.size + y.size, x.size))
        rows.append(
            {
                "group": key,
                "n_a": int(x.size),
                "n_b": int(y.size),
                "U": u,
                "p_value": p,
                "p_floor": floor,
            }
        )
    return pd.DataFrame(rows, columns=["group", "n_a", "n_b", "U", "p_value", "p_floor"])


def _is_number(x: Any) -> bool:
    """Whether ``x`` is a real number (a numeric group key, not e.g. ``"all"``)."""
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
    scores_a, scores_b = align_pair(scores_a, scores_b)
    scores_a, groups = align_pair(scores_a, groups)
    a = to_numpy(scores_a).astype(np.float64).ravel()
    b = to_numpy(scores_b).astype(np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"scores_a and scores_b must have the same shape, got {a.shape}, {b.shape}"
        )
    g = flat_groups(groups, to_numpy(scores_a).shape)
    keep = ~(np.isnan(a) | np.isnan(b))
    if on != "all":
        scores_a, labels = align_pair(scores_a, labels)
        y = to_numpy(labels).astype(np.float64).ravel()
        if y.shape != a.shape:
            raise ValueError(f"labels must have the shape of the scores {a.shape}, got {y.shape}")
        keep &= y == (1.0 if on == "positive" else 0.0)
    rows = []
    for key, idx in group_slices(g):
        idx = idx[keep[idx]]
        if idx.size == 0:
            u, p = float("nan"), float("nan")
        else:
            res = stats.mannwhitneyu(a[idx], b[idx], alternative=alternative, method=method)
            u, p = float(res.statistic), float(res.pvalue)
        rows.append({"group": key, "n": int(idx.size), "U": u, "p_value": p})
    return pd.DataFrame(rows, columns=["group", "n", "U", "p_value"])
