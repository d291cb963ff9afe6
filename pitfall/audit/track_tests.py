"""The within-decile tests of a continuous audit: does the prediction follow the target's
departures from the Average?

The scored bins are grouped into deciles of the mark's variance across the reference cell
types (:data:`N_GROUPS`; ranked, ties split by genomic order, so each decile holds a tenth
of the bins). Per decile (:func:`residual_correlations`): its bins, the model's and the
Average's mse, and the *residual correlation*: the Pearson correlation of
(prediction - Average) with (observed - Average). A model that only memorises the average
has about 0; one that captures how the target departs from the average, more. Its one-sided
permutation p-value permutes the prediction's residuals among the decile's bins
(``n_permutations``; by default enough for Holm's strictest threshold,
:meth:`pitfall.audit.metrics.Options.permutations_for`), adjusted over the deciles
(``adjust``: Holm by default, ``"bh"`` for Benjamini-Hochberg).

The *gain* is the mean of the tested deciles' residual correlations weighted by their bins;
its p-value is the permutation test of that weighted sum (the same permutations summed over
deciles: no assumption on how the deciles' tests combine), and its block-bootstrap
replicates (:func:`bootstrap_gain`) hold the deciles fixed. The permutations take a
decile's bins as exchangeable under the null; the bootstrap interval is what respects
genomic correlation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from pitfall import bootstrap
from pitfall.audit.metrics import Options
from pitfall.evaluate import partition_by_variance
from pitfall.multiple_testing import adjust_pvalues
from pitfall.random_ranking import permutation_p

__all__ = ["N_GROUPS", "DecileTests", "bootstrap_gain", "residual_correlations"]

#: Groups of the partitioned evaluation: deciles of cross-cell-type variance.
N_GROUPS = 10


@numba.njit(cache=True)
def _permuted_dots(
    za: np.ndarray, zb: np.ndarray, offsets: np.ndarray, n_perm: int, rng: np.random.Generator
) -> np.ndarray:
    """Per group and permutation, ``mean(za * zb[perm])`` over the group's bins.

    ``za``, ``zb`` are sorted by group (group ``g`` is ``offsets[g]:offsets[g + 1]``) and
    standardised within it, so each value is the correlation under one random pairing.
    Fisher-Yates shuffles of one working copy: each shuffle of an already shuffled array is
    again uniform.
    """
    n_groups = offsets.size - 1
    out = np.zeros((n_groups, n_perm))
    for g in range(n_groups):
        lo, hi = offsets[g], offsets[g + 1]
        m = hi - lo
        if m < 3:
            continue
        b = zb[lo:hi].copy()
        a = za[lo:hi]
        for k in range(n_perm):
            for i in range(m - 1, 0, -1):
                j = int(rng.integers(0, i + 1))
                b[i], b[j] = b[j], b[i]
            s = 0.0
            for i in range(m):
                s += a[i] * b[i]
            out[g, k] = s / m
    return out


@dataclass
class DecileTests:
    """The within-decile evaluation of a target.

    Attributes
    ----------
    group : numpy.ndarray
        int64, shape (n,): each scored bin's decile (0 = least variable).
    rows : list of dict
        One per decile (the report's ``partitions``).
    gain : float
        Bin-weighted mean of the tested deciles' residual correlations (NaN without one).
    p : float
        One-sided permutation p-value of the gain.
    n_tested : int
        Deciles with a defined residual correlation.
    n_permutations : int
    tested : numpy.ndarray
        bool, shape (n_groups,).
    centre : numpy.ndarray
        float64, shape (n_groups, 2): each decile's mean residual of the prediction and of
        the observation (the bootstrap sums are taken about them).
    """

    group: np.ndarray
    rows: list[dict[str, Any]]
    gain: float
    p: float
    n_tested: int
    n_permutations: int
    tested: np.ndarray
    centre: np.ndarray


def _group_sums(a: np.ndarray, b: np.ndarray, key: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Per key: n, sum a, sum b, sum a^2, sum b^2, sum ab (float64, shape (size,))."""

    def s(w: np.ndarray | None) -> np.ndarray:
        return np.bincount(key, weights=w, minlength=size).astype(np.float64)

    return s(None), s(a), s(b), s(a * a), s(b * b), s(a * b)


def _correlation_from_sums(
    n: np.ndarray,
    sa: np.ndarray,
    sb: np.ndarray,
    saa: np.ndarray,
    sbb: np.ndarray,
    sab: np.ndarray,
    scale_a: np.ndarray,
    scale_b: np.ndarray,
) -> np.ndarray:
    """Pearson correlation from sums, NaN for fewer than 3 bins or a constant side.

    A side counts as constant when its variance is at most 1e-12 of ``scale`` (its sum of
    squares before centring): what is left there is rounding.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        va = saa - sa * sa / n
        vb = sbb - sb * sb / n
        cov = sab - sa * sb / n
        ok = (n >= 3) & (va > 1e-12 * scale_a) & (vb > 1e-12 * scale_b)
        r = cov / np.sqrt(np.where(ok, va * vb, 1.0))
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def residual_correlations(
    observed: np.ndarray,
    model: np.ndarray,
    average: np.ndarray,
    variance: np.ndarray,
    options: Options,
    cell_type: str,
) -> DecileTests:
    """Per decile of variance: bins, mse of the model and the Average, the residual
    correlation and its permutation test; the weighted gain over deciles and its test.

    Parameters
    ----------
    observed, model, average, variance : numpy.ndarray
        float64, shape (n,): the scored bins' observed values, predictions, Average and
        cross-cell-type variance (all finite).
    options : Options
        ``n_permutations``, ``adjust``, ``alpha``, ``level``, ``seed``.
    cell_type : str
        The target (the rows' ``cell_type``).
    """
    group = partition_by_variance(variance, N_GROUPS)
    k = int(group.max()) + 1 if group.size else 0
    a, b = model - average, observed - average
    n, sa, sb, saa, sbb, sab = _group_sums(a, b, group, k)
    r = _correlation_from_sums(n, sa, sb, saa, sbb, sab, saa, sbb)
    tested = np.isfinite(r)
    n_tested = int(tested.sum())
    n_perm = options.permutations_for(n_tested)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_a, mean_b = sa / n, sb / n
        sd_a = np.sqrt(np.maximum(saa / n - mean_a**2, 0.0))
        sd_b = np.sqrt(np.maximum(sbb / n - mean_b**2, 0.0))
    order = np.argsort(group, kind="stable")
    g_sorted = group[order]
    ok = tested[g_sorted]
    za = np.zeros(order.size)
    zb = np.zeros(order.size)
    za[ok] = (a[order][ok] - mean_a[g_sorted][ok]) / sd_a[g_sorted][ok]
    zb[ok] = (b[order][ok] - mean_b[g_sorted][ok]) / sd_b[g_sorted][ok]
    offsets = np.r_[0, np.cumsum(n)].astype(np.int64)
    rng = np.random.default_rng([options.seed, 2])
    null = _permuted_dots(za, zb, offsets, n_perm, rng)
    mse_model = np.bincount(group, weights=(observed - model) ** 2, minlength=k) / n
    mse_avg = np.bincount(group, weights=b * b, minlength=k) / n
    # Deciles are runs of the variance's ranks, never empty: their ends are its extremes.
    sorted_var = variance[order]
    var_lo = np.minimum.reduceat(sorted_var, offsets[:-1]) if k else np.zeros(0)
    var_hi = np.maximum.reduceat(sorted_var, offsets[:-1]) if k else np.zeros(0)
    rows: list[dict[str, Any]] = []
    for g in range(k):
        row: dict[str, Any] = {
            "cell_type": cell_type,
            "group": g,
            "n_loci": int(n[g]),
            "variance_low": var_lo[g],
            "variance_high": var_hi[g],
            "mse_model": float(mse_model[g]),
            "mse_average": float(mse_avg[g]),
            "residual_corr": float(r[g]),
            "null_low": float("nan"),
            "null_high": float("nan"),
            "p": float("nan"),
        }
        if tested[g]:
            low, high = bootstrap.percentile_interval(null[g], options.level)
            row.update(null_low=low, null_high=high, p=permutation_p(float(r[g]), null[g]))
        rows.append(row)
    adjusted = adjust_pvalues([row["p"] for row in rows], options.adjust)
    for row, q in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = float(q)
        row["significant"] = bool(np.isfinite(q) and q <= options.alpha)
    centre = np.stack([mean_a, mean_b], axis=1) if k else np.zeros((0, 2))
    if not n_tested:
        return DecileTests(group, rows, float("nan"), float("nan"), 0, n_perm, tested, centre)
    w = np.where(tested, n, 0.0)
    gain = float(np.sum(w * np.where(tested, r, 0.0)) / w.sum())
    null_gain = (w[:, None] * null).sum(axis=0) / w.sum()
    return DecileTests(
        group, rows, gain, permutation_p(gain, null_gain), n_tested, n_perm, tested, centre
    )


def bootstrap_gain(
    observed: np.ndarray,
    model: np.ndarray,
    average: np.ndarray,
    tests: DecileTests,
    local_blocks: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Replicates (shape (R,)) of the within-decile gain, deciles held fixed.

    Per (block, decile) sums of the residuals, taken about each decile's full-data means so
    that the correlations lose no precision; a replicate's correlation of a decile comes
    from its blocks' sums weighted by their multiplicities.
    """
    k = tests.centre.shape[0]
    n_blocks = weights.shape[1]
    a = model - average - tests.centre[tests.group, 0]
    b = observed - average - tests.centre[tests.group, 1]
    key = local_blocks * k + tests.group
    sums = np.stack(_group_sums(a, b, key, n_blocks * k), axis=1).reshape(n_blocks, k * 6)
    rep = (weights @ sums).reshape(weights.shape[0], k, 6)
    n, sa, sb, saa, sbb, sab = (rep[..., i] for i in range(6))
    full = sums.reshape(n_blocks, k, 6).sum(axis=0)
    r = _correlation_from_sums(n, sa, sb, saa, sbb, sab, full[:, 3], full[:, 4])
    use = tests.tested[None, :] & np.isfinite(r)
    w = np.where(use, n, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(w * np.where(use, r, 0.0), axis=1) / w.sum(axis=1)
