"""The average precision of a random ranking: its exact expectation and permutation tests.

A predictor whose scores tie (the average-activity baseline inside a group of loci active
in the same number of training cell types, or pooled when it averages a handful of cell
types) has, with ties grouped as scikit-learn groups them, an AP below what a random
ranking of the same items scores on average. Within one tie group that AP is the
prevalence k / n, while a random ordering of n items with k positives has

    E[AP] = (H_n + (k - 1) / (n - 1) * (n - H_n)) / n,      H_n = 1 + 1/2 + ... + 1/n

(10 items with 1 positive: 0.293 against a prevalence of 0.100). Any model that breaks the
ties at random earns that difference for nothing, so a model is compared with the
expectation, never with the prevalence.

The general case, a scoring with tie groups ``g`` in decreasing score order (``n_g`` items,
``k_g`` positives, ``N`` items and ``K`` positives above the group), its ties broken
uniformly at random: position ``j`` of the group is positive with probability
``k_g / n_g``, and given that, holds on average ``K + 1 + (j - 1)(k_g - 1)/(n_g - 1)``
positives at or above it, so

    E[AP] = (1 / K_total) * sum_g (k_g / n_g) * sum_{j=1..n_g} (K + 1 + (j-1)(k_g-1)/(n_g-1)) / (N + j)

whose inner sums are differences of digamma functions (:func:`expected_ap_tied`, exact up to
floating point; :func:`expected_ap` is the one-group case).

The permutation test (:func:`permutation_aps`) asks whether a scoring ranks a group's
positives better than chance: the labels are placed at random on the scored items (the
scores and their ties stay), B times, and the AP recomputed; the p-value
(:func:`permutation_p`) is ``(1 + #{null >= observed}) / (B + 1)``, valid for any B. It
assumes only that, under the null, every placement of the k positives among the n items is
equally likely (exchangeability within the group); loci that are neighbours on the genome
are not independent, which a permutation within a group of loci does not model: the block
bootstrap (:mod:`pitfall.bootstrap`) is the interval that does.

Each Numba kernel sits next to its obvious twin (``naive_*``), the oracle of the tests.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

__all__ = [
    "expected_ap",
    "expected_ap_tied",
    "naive_expected_ap_tied",
    "naive_permutation_aps",
    "permutation_aps",
    "permutation_p",
    "permuted_aps",
    "tie_ends",
]

# Below this argument the digamma difference is summed term by term; above it the
# asymptotic series is exact to double precision (the next term is < 1e-20).
_DIRECT = 64.0


@numba.njit(cache=True, nogil=True)
def _digamma_diff(a: float, n: float) -> float:
    """psi(a + n) - psi(a) = sum_{j=0..n-1} 1 / (a + j) for a >= 1 and integer-valued n >= 0."""
    s = 0.0
    while n > 0.5 and a < _DIRECT:
        s += 1.0 / a
        a += 1.0
        n -= 1.0
    if n < 0.5:
        return s
    b = a + n
    ia, ib = 1.0 / a, 1.0 / b
    ia2, ib2 = ia * ia, ib * ib
    # ln(b/a) through log1p: the two logarithms are close when n << a.
    s += math.log1p(n / a) - 0.5 * (ib - ia)
    s -= (ib2 - ia2) / 12.0
    s += (ib2 * ib2 - ia2 * ia2) / 120.0
    s -= (ib2 * ib2 * ib2 - ia2 * ia2 * ia2) / 252.0
    s += (ib2 * ib2 * ib2 * ib2 - ia2 * ia2 * ia2 * ia2) / 240.0
    return s


@numba.njit(cache=True, nogil=True)
def _tie_group_sum(above_pos: float, above_n: float, k: float, n: float) -> float:
    """Expected sum of the precisions at the positives of one tie group broken at random.

    ``n`` items (``k`` positive) below ``above_n`` items (``above_pos`` positive): the
    group's term of ``K_total * E[AP]`` (module docstring). Counts may be float (bootstrap
    multiplicities) but are integer-valued.
    """
    if k <= 0.0 or n <= 0.0:
        return 0.0
    if n <= _DIRECT:
        s1 = 0.0
        s2 = 0.0
        for j in range(1, int(n + 0.5) + 1):
            t = 1.0 / (above_n + j)
            s1 += t
            s2 += (j - 1) * t
    else:
        s1 = _digamma_diff(above_n + 1.0, n)
        s2 = n - (above_n + 1.0) * s1
    inner = (above_pos + 1.0) * s1
    if n > 1.0:
        inner += (k - 1.0) / (n - 1.0) * s2
    return k / n * inner


@numba.njit(cache=True, nogil=True)
def _expected_ap_tied(positives: np.ndarray, totals: np.ndarray) -> float:
    above_pos = 0.0
    above_n = 0.0
    acc = 0.0
    for g in range(positives.size):
        acc += _tie_group_sum(above_pos, above_n, positives[g], totals[g])
        above_pos += positives[g]
        above_n += totals[g]
    if above_pos <= 0.0:
        return np.nan
    return acc / above_pos


@numba.njit(cache=True, nogil=True)
def _expected_ap_many(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    out = np.empty(n.size)
    for i in range(n.size):
        if k[i] <= 0:
            out[i] = np.nan
        elif k[i] >= n[i]:
            out[i] = 1.0
        else:
            out[i] = _tie_group_sum(0.0, 0.0, k[i], n[i]) / k[i]
    return out


def expected_ap_tied(positives: npt.ArrayLike, totals: npt.ArrayLike) -> float:
    """Expected AP of a tied scoring whose ties are broken uniformly at random.

    Parameters
    ----------
    positives, totals : array-like, shape (m,)
        Per tie group, in **decreasing** score order: positive items and all items
        (integer-valued; float bootstrap multiplicities are accepted).

    Returns
    -------
    float
        The expectation (module docstring); NaN without a positive. One group gives
        :func:`expected_ap`; all groups of size one give the AP itself.
    """
    k = np.asarray(positives, dtype=np.float64).ravel()
    n = np.asarray(totals, dtype=np.float64).ravel()
    if k.shape != n.shape:
        raise ValueError(f"positives and totals differ in shape: {k.shape} and {n.shape}")
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("each tie group needs 0 <= positives <= totals")
    return float(_expected_ap_tied(k, n))


def naive_expected_ap_tied(positives: npt.ArrayLike, totals: npt.ArrayLike) -> float:
    """Twin of :func:`expected_ap_tied`: the double sum term by term, in Python."""
    above_pos = above_n = acc = 0.0
    for k, n in zip(np.asarray(positives, float), np.asarray(totals, float), strict=True):
        for j in range(1, int(n) + 1):
            follow = (j - 1) * (k - 1) / (n - 1) if n > 1 else 0.0
            acc += k / n * (above_pos + 1 + follow) / (above_n + j)
        above_pos += k
        above_n += n
    return acc / above_pos if above_pos else float("nan")


def expected_ap(n: npt.ArrayLike, k: npt.ArrayLike) -> np.ndarray | float:
    """Expected AP of a uniformly random ranking of ``n`` items holding ``k`` positives.

    ``(H_n + (k - 1)/(n - 1) * (n - H_n)) / n`` (module docstring); 1 when ``k == n``,
    NaN when ``k == 0``. Broadcasts over arrays.

    Parameters
    ----------
    n, k : int or array-like of int
        Items and positives, ``0 <= k <= n``.

    Returns
    -------
    float or numpy.ndarray
        float64, the broadcast shape of ``n`` and ``k``.

    Examples
    --------
    >>> from pitfall.random_ranking import expected_ap
    >>> expected_ap(2, 1)  # the positive first (AP 1) or second (AP 1/2), equally likely
    0.75
    >>> expected_ap([10, 1000], [1, 100]).round(4)
    array([0.2929, 0.1058])
    """
    n_arr, k_arr = np.broadcast_arrays(
        np.asarray(n, dtype=np.float64), np.asarray(k, dtype=np.float64)
    )
    if np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError("expected_ap needs 0 <= k <= n")
    out = _expected_ap_many(n_arr.ravel(), k_arr.ravel()).reshape(n_arr.shape)
    return float(out) if out.ndim == 0 else out


def tie_ends(sorted_scores: np.ndarray) -> np.ndarray:
    """For scores sorted in decreasing order, each item's tie group end (1-based).

    Parameters
    ----------
    sorted_scores : numpy.ndarray, shape (n,)
        Scores in decreasing order.

    Returns
    -------
    numpy.ndarray
        int64, shape (n,): the number of items scored at least as high as item i, i.e.
        how many are called positive at item i's threshold.
    """
    n = sorted_scores.size
    if n == 0:
        return np.empty(0, np.int64)
    last = np.append(np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]), n - 1)
    sizes = np.diff(last, prepend=-1)
    return np.repeat(last + 1, sizes).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _ap_of_positions(pos: np.ndarray, k: int, ends: np.ndarray) -> float:
    """AP, ties grouped, of positives at sorted positions ``pos[:k]`` (ascending)."""
    total = 0.0
    i = 0
    while i < k:
        e = ends[pos[i]]
        j = i + 1
        while j < k and ends[pos[j]] == e:
            j += 1
        total += (j - i) * j / e
        i = j
    return total / k


#: A placement's drawn positions are sorted by radix, ``_RADIX_BITS`` a pass, from this many
#: on (a comparison sort's ``m log m`` is most of a placement's time in a large group).
_RADIX_FROM = 1024
_RADIX_BITS = 12


@numba.njit(cache=True, nogil=True)
def _sort_positions(
    values: np.ndarray, m: int, n: int, out: np.ndarray, scratch: np.ndarray, counts: np.ndarray
) -> None:
    """``values[:m]`` (in ``0 .. n - 1``) sorted into ``out[:m]``, ``values`` unchanged: a
    least-significant-digit radix sort (``scratch``: m items, ``counts``: 2**_RADIX_BITS)."""
    mask = (1 << _RADIX_BITS) - 1
    n_pass = 1
    while (n - 1) >> (n_pass * _RADIX_BITS) > 0:
        n_pass += 1
    src = values
    for p in range(n_pass):
        # alternate between the buffers so that the last pass writes ``out``
        dst = out if (n_pass - p) % 2 == 1 else scratch
        shift = p * _RADIX_BITS
        counts[:] = 0
        for i in range(m):
            counts[(src[i] >> shift) & mask] += 1
        total = 0
        for d in range(mask + 1):
            c = counts[d]
            counts[d] = total
            total += c
        for i in range(m):
            d = (src[i] >> shift) & mask
            dst[counts[d]] = src[i]
            counts[d] += 1
        src = dst


@numba.njit(cache=True, nogil=True)
def _permuted_aps(ends: np.ndarray, k: int, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """AP of ``n_perm`` uniformly random placements of ``k`` positives among ``n`` items.

    Floyd's algorithm draws the smaller of the positives and the negatives; the positions
    come out sorted either by a scan of the marks (dense draws) or by sorting the drawn
    ones (sparse draws; by radix when they are many).
    """
    n = ends.size
    out = np.empty(n_perm)
    complement = 2 * k > n
    m = n - k if complement else k
    mark = np.zeros(n, np.bool_)
    drawn = np.empty(max(m, 1), np.int64)
    pos = np.empty(max(k, 1), np.int64)
    scan = complement or m * max(math.log2(max(m, 2)), 1.0) > n
    radix = not scan and m >= _RADIX_FROM
    scratch = np.empty(m if radix else 0, np.int64)
    counts = np.zeros(1 << _RADIX_BITS if radix else 0, np.int64)
    for b in range(n_perm):
        for i, j in enumerate(range(n - m, n)):
            t = int(rng.integers(0, j + 1))
            if mark[t]:
                t = j
            mark[t] = True
            drawn[i] = t
        if scan:
            c = 0
            for p in range(n):
                if mark[p] != complement:
                    pos[c] = p
                    c += 1
        elif radix:
            _sort_positions(drawn, m, n, pos, scratch, counts)
        else:
            pos[:m] = np.sort(drawn[:m])
        for i in range(m):
            mark[drawn[i]] = False
        out[b] = _ap_of_positions(pos, k, ends)
    return out


def _sorted_labels(y: npt.ArrayLike, score: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Labels (bool) in decreasing score order and the tie ends; NaN labels dropped."""
    y = np.asarray(y, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in shape: {y.shape} and {s.shape}")
    known = ~np.isnan(y)
    y, s = y[known], s[known]
    if np.isnan(s).any():
        raise ValueError("scores must not be NaN where the label is known")
    order = np.argsort(-s, kind="stable")
    return y[order] == 1, tie_ends(s[order])


def permutation_aps(
    y: npt.ArrayLike, score: npt.ArrayLike, n_permutations: int, seed: int
) -> tuple[float, np.ndarray]:
    """The AP of ``score`` and its null distribution under random placement of the labels.

    Parameters
    ----------
    y : array-like, shape (n,)
        Labels 0, 1 or NaN (NaN items are left out).
    score : array-like, shape (n,)
        Scores; their ties are kept in every permutation (ties grouped, as scikit-learn).
    n_permutations : int
        B, the number of random placements.
    seed : int
        Seed of the placements (the same seed gives the same null).

    Returns
    -------
    observed : float
        The AP of ``score`` (NaN without a positive).
    null : numpy.ndarray
        float64, shape (B,): the AP of each placement (all NaN without a positive).
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, got {n_permutations}")
    positive, ends = _sorted_labels(y, score)
    return permuted_aps(positive, ends, n_permutations, seed)


def permuted_aps(
    positive: np.ndarray, ends: np.ndarray, n_permutations: int, seed: int
) -> tuple[float, np.ndarray]:
    """:func:`permutation_aps` of labels already in decreasing score order.

    Parameters
    ----------
    positive : numpy.ndarray
        bool, shape (n,): labels in decreasing score order.
    ends : numpy.ndarray
        int64, shape (n,): tie ends (:func:`tie_ends`).
    n_permutations, seed
        As :func:`permutation_aps`.
    """
    k = int(np.count_nonzero(positive))
    if k == 0:
        return float("nan"), np.full(n_permutations, np.nan)
    observed = float(_ap_of_positions(np.flatnonzero(positive), k, ends))
    null = _permuted_aps(ends, k, int(n_permutations), np.random.default_rng(seed))
    return observed, null


def naive_permutation_aps(
    y: npt.ArrayLike, score: npt.ArrayLike, n_permutations: int, seed: int
) -> tuple[float, np.ndarray]:
    """Twin of :func:`permutation_aps` in distribution: shuffle the labels, recompute the
    AP the obvious way (sorting, cumulative sums); a different random stream."""
    positive, ends = _sorted_labels(y, score)
    if not positive.any():
        return float("nan"), np.full(n_permutations, np.nan)

    def ap(lab: np.ndarray) -> float:
        tp = np.cumsum(lab)
        precision_at = tp[ends - 1] / ends
        return float(np.sum(precision_at[lab]) / lab.sum())

    rng = np.random.default_rng(seed)
    null = np.array([ap(rng.permutation(positive)) for _ in range(n_permutations)])
    return ap(positive), null


def permutation_p(observed: float, null: np.ndarray) -> float:
    """One-sided Monte Carlo p-value ``(1 + #{null >= observed}) / (B + 1)``.

    A tolerance of 1e-12 counts nulls equal to the observed value up to rounding (a tied
    scoring's AP repeats exactly). NaN when ``observed`` is NaN.
    """
    if math.isnan(observed):
        return float("nan")
    null = np.asarray(null, dtype=np.float64)
    return float((1 + np.count_nonzero(null >= observed - 1e-12)) / (null.size + 1))
