"""The audit's numbers: the user's scores next to the baselines, on the same loci.

A composition of :mod:`pitfall.baselines` (the scores of :class:`AverageActivity`,
:class:`MostSimilar` and :class:`RandomScores`), :mod:`pitfall.evaluate` (average precision
with tied scores grouped, the partition of loci by activity and the partitioned evaluation)
and :class:`pitfall.splits.Split` (the leakage); what only the audit needs is here: the
within-group rank test and its combination over groups.

Floor 4: imports :mod:`pitfall.baselines`, :mod:`pitfall.evaluate`, :mod:`pitfall.splits`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from pitfall import evaluate
from pitfall.baselines import AverageActivity, MostSimilar, RandomScores
from pitfall.splits import Split, take_loci

__all__ = [
    "MAX_SIMILARITY_LOCI",
    "TargetScores",
    "auroc_test",
    "leakage",
    "partition_rows",
    "pool",
    "score_target",
    "summary_row",
    "within_group_gain",
]

#: Loci (evenly spaced) on which cell types' signal is correlated to find the most similar.
MAX_SIMILARITY_LOCI = 200_000


@dataclass
class TargetScores:
    """A target's (or the pooled) labels and scores, aligned on the scored loci.

    Attributes
    ----------
    name : str
        The target cell type, or ``"pooled"``.
    y : numpy.ndarray
        float64, shape (n,): the cube's labels (0, 1, NaN: unlabelled, left out of metrics).
    model, average_activity, random : numpy.ndarray
        float64, shape (n,): the user's scores and the baselines' (the average activity has
        no NaN: loci without a reference label get the reference prevalence).
    most_similar : numpy.ndarray or None
        float64, shape (n,): the labels of the most similar reference cell type (NaN labels
        as its prevalence); None when unavailable.
    n_active : numpy.ndarray
        int64, shape (n,): reference cell types in which each locus is active.
    most_similar_name : str or None
        The chosen reference cell type.
    leaked : float or None
        Scored loci that leak (a count; None when the training data are unknown).
    """

    name: str
    y: np.ndarray
    model: np.ndarray
    average_activity: np.ndarray
    random: np.ndarray
    most_similar: np.ndarray | None
    n_active: np.ndarray
    most_similar_name: str | None = None
    leaked: float | None = None


def ap_or_nan(y: np.ndarray, s: np.ndarray) -> float:
    """:func:`pitfall.evaluate.average_precision`, NaN when no labelled item is positive."""
    if not np.any(y == 1):
        return float("nan")
    return evaluate.average_precision(y, s)


def correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman correlation; NaN with fewer than 3 pairs or a constant side."""
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    return float(stats.pearsonr(a, b)[0]), float(stats.spearmanr(a, b)[0])


def auroc_test(y: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
    """Does ``s`` rank the positives above the negatives? U, one-sided p, AUROC.

    ``scipy.stats.mannwhitneyu(s[y == 1], s[y == 0], alternative="greater")``; AUROC =
    U / (n_positive * n_negative). NaN when a class is empty.
    """
    pos, neg = s[y == 1], s[y == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan"), float("nan"), float("nan")
    res = stats.mannwhitneyu(pos, neg, alternative="greater")
    u = float(res.statistic)
    return u, float(res.pvalue), u / (pos.size * neg.size)


def _values(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.values, dtype=np.float64).ravel()


def score_target(
    ds: xr.Dataset,
    target: str,
    pos: np.ndarray,
    scores: np.ndarray,
    refs: Sequence[str],
    *,
    train_cell_types: Sequence[str] | None,
    train_chroms: Sequence[str] | None,
    warn: Callable[[str], None],
) -> TargetScores:
    """Labels and every predictor's scores at one target's scored loci.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube, with its integer ``locus`` coordinate.
    target : str
        The target cell type.
    pos, scores : numpy.ndarray
        int64 and float64, shape (n,): scored positions (ascending) and the user's scores.
    refs : sequence of str
        Reference cell types (never the target): what the baselines average and compare.
    train_cell_types, train_chroms
        What the model was trained on, for the leakage (both None: unknown).
    warn : callable
        Receives the messages of an unavailable most-similar baseline.
    """
    refs = list(refs)
    train = ds.sel(cell_type=refs)
    test = take_loci(ds.sel(cell_type=[target]), pos)
    # Built as AverageActivity reads the reference labels, so one compute shares the reads.
    ref_labels = take_loci(ds[["label"]].sel(cell_type=refs), pos)["label"]
    avg, n_active, n_pos_ref, n_known_ref, y, rnd = dask.compute(
        AverageActivity(ds, cell_types=refs).fit(train).predict(test),
        evaluate.partition_by_activity(ref_labels),
        (ref_labels == 1).sum(),
        ref_labels.notnull().sum(),
        test["label"],
        RandomScores(ds).fit(train).predict(test),
    )
    n_known_ref = int(n_known_ref)
    prevalence_ref = int(n_pos_ref) / n_known_ref if n_known_ref else 0.5
    avg = _values(avg)
    avg = np.where(np.isnan(avg), prevalence_ref, avg)
    ms_name, ms = _most_similar(ds, target, refs, pos, warn)
    leaked = None
    if train_cell_types is not None or train_chroms is not None:
        leaked = leakage(ds, pos, target, refs, train_chroms) * pos.size
    return TargetScores(
        name=target,
        y=_values(y),
        model=np.asarray(scores, dtype=np.float64),
        average_activity=avg,
        random=_values(rnd),
        most_similar=ms,
        n_active=np.asarray(n_active.values, dtype=np.int64).ravel(),
        most_similar_name=ms_name,
        leaked=leaked,
    )


def _most_similar(
    ds: xr.Dataset, target: str, refs: list[str], pos: np.ndarray, warn: Callable[[str], None]
) -> tuple[str | None, np.ndarray | None]:
    """(chosen reference cell type, its labels at ``pos``), or (None, None).

    Similarity is on the signal when the cube has it (at most :data:`MAX_SIMILARITY_LOCI`
    evenly spaced loci), else on the labels of the loci NOT scored for the target (labels
    the user could have trained on).
    """
    n = ds.sizes["locus"]
    if "signal" in ds:
        on = "signal"
        loci = np.arange(n)
        if n > MAX_SIMILARITY_LOCI:
            loci = np.linspace(0, n - 1, MAX_SIMILARITY_LOCI).astype(np.int64)
    else:
        on = "label"
        loci = np.setdiff1d(np.arange(n), pos)
    if loci.size < 3:
        warn(
            f"{target}: the cube has no signal and no unscored locus to compare labels on; "
            "the most-similar baseline is unavailable"
        )
        return None, None
    model = MostSimilar(ds, on=on).fit(take_loci(ds.sel(cell_type=refs), loci))
    with warnings.catch_warnings():
        # A constant reference (all 0) has no correlation: NaN, never chosen.
        warnings.simplefilter("ignore", RuntimeWarning)
        labels = _values(model.predict(take_loci(ds.sel(cell_type=[target]), pos)))
    best, r = model.chosen_[target]
    if not np.isfinite(r):
        warn(f"{target}: no reference cell type correlates; most-similar baseline unavailable")
        return None, None
    if np.isnan(labels).any():
        fill = np.nanmean(labels) if np.isfinite(labels).any() else 0.5
        labels = np.where(np.isnan(labels), fill, labels)
    return best, labels


def leakage(
    ds: xr.Dataset,
    pos: np.ndarray,
    target: str,
    train_cell_types: Sequence[str],
    train_chroms: Sequence[str] | None,
) -> float:
    """:meth:`pitfall.splits.Split.leakage` of the scored loci.

    The fraction of the scored loci ``pos`` that lie on a training chromosome (default:
    every chromosome) and carry a label in a training cell type other than the target.
    """
    sub = take_loci(ds, pos).copy()
    # The restricted cube is not the snapshot: keep Split from caching its chromosome runs
    # under the snapshot's key.
    sub.attrs = {}
    chroms = list(pd.unique(np.asarray(sub["chrom"].values).astype(object)))
    split = Split(
        train_cell_types=tuple(c for c in train_cell_types if c != target),
        train_chroms=tuple(train_chroms) if train_chroms is not None else tuple(chroms),
        valid_cell_types=(),
        valid_chroms=(),
        test_cell_types=(target,),
        test_chroms=tuple(chroms),
    )
    return split.leakage(sub)


def pool(parts: Sequence[TargetScores]) -> TargetScores:
    """Every target's (cell type, locus) pairs together, as ``"pooled"``."""

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    ms_ok = all(p.most_similar is not None for p in parts)
    leaks = [p.leaked for p in parts]
    return TargetScores(
        name="pooled",
        y=cat("y"),
        model=cat("model"),
        average_activity=cat("average_activity"),
        random=cat("random"),
        most_similar=cat("most_similar") if ms_ok else None,
        n_active=cat("n_active"),
        leaked=None if any(v is None for v in leaks) else float(sum(leaks)),  # type: ignore[arg-type]
    )


def partition_rows(ts: TargetScores) -> list[dict[str, Any]]:
    """Per activity group: loci, positives, AP of the model and of the average activity
    (:func:`pitfall.evaluate.partitioned_evaluation`), and the within-group rank test of
    both (:func:`auroc_test`)."""
    table = evaluate.partitioned_evaluation(
        ts.y,
        {"model": ts.model, "average activity": ts.average_activity},
        ts.n_active,
        include_all=False,
    )
    ap = table.pivot(index="group", columns="predictor", values="ap")
    counts = table.drop_duplicates("group").set_index("group")
    rows = []
    for g in counts.index:
        m = (ts.n_active == g) & ~np.isnan(ts.y)
        y = ts.y[m]
        u, p, auc = auroc_test(y, ts.model[m])
        _, _, auc_b = auroc_test(y, ts.average_activity[m])
        rows.append(
            {
                "cell_type": ts.name,
                "group": int(g),
                "n_loci": int(counts.loc[g, "n_loci"]),
                "n_positive": int(counts.loc[g, "n_positive"]),
                "ap_model": float(ap.loc[g, "model"]),
                "ap_average_activity": float(ap.loc[g, "average activity"]),
                "auroc_model": auc,
                "auroc_baseline": auc_b,
                "mwu_U": u,
                "mwu_p": p,
            }
        )
    return rows


def within_group_gain(rows: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Loci-weighted mean AP gain over groups holding both classes, and the Stouffer
    combination (weights sqrt(n_loci)) of the groups' one-sided Mann-Whitney p-values."""
    ok = [r for r in rows if 0 < r["n_positive"] < r["n_loci"]]
    w = sum(r["n_loci"] for r in ok)
    if not w:
        return float("nan"), float("nan")
    gain = sum(r["n_loci"] * (r["ap_model"] - r["ap_average_activity"]) for r in ok) / w
    p = np.clip([r["mwu_p"] for r in ok], 1e-300, 1 - 1e-16)
    z = stats.norm.isf(p)
    wt = np.sqrt([r["n_loci"] for r in ok])
    p_all = float(stats.norm.sf(np.sum(wt * z) / np.sqrt(np.sum(wt**2))))
    return float(gain), p_all


def summary_row(ts: TargetScores, partitions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary numbers of a target (or the pool); the verdict's ``call`` comes later."""
    known = ~np.isnan(ts.y)
    n_known = int(known.sum())
    n_pos = int(np.sum(ts.y == 1))
    y, model = ts.y[known], ts.model[known]
    pearson, spearman = correlations(ts.model, ts.average_activity)
    gain, p = within_group_gain(partitions)
    return {
        "cell_type": ts.name,
        "n_scored": int(ts.y.size),
        "n_labelled": n_known,
        "n_positive": n_pos,
        "prevalence": n_pos / n_known,
        "ap_model": ap_or_nan(y, model),
        "ap_average_activity": ap_or_nan(y, ts.average_activity[known]),
        "ap_most_similar": float("nan")
        if ts.most_similar is None
        else ap_or_nan(y, ts.most_similar[known]),
        "most_similar": ts.most_similar_name,
        "ap_random": ap_or_nan(y, ts.random[known]),
        "pearson_avg": pearson,
        "spearman_avg": spearman,
        "within_group_gain": gain,
        "within_group_p": p,
        "leakage": float("nan") if ts.leaked is None else ts.leaked / ts.y.size,
    }
