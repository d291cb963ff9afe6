"""pitfall.random_ranking against enumeration of every ranking, scikit-learn and its twins."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import average_precision_score

from pitfall import random_ranking as rr


def _exact_ap(labels_in_rank_order: tuple[int, ...]) -> Fraction:
    """AP of a ranking without ties, as an exact fraction: the mean precision at each positive."""
    hits, total = 0, Fraction(0)
    for rank, positive in enumerate(labels_in_rank_order, start=1):
        if positive:
            hits += 1
            total += Fraction(hits, rank)
    return total / hits


def _enumerated_expectation(n: int, k: int) -> Fraction:
    """Mean AP over every placement of k positives among n ranks (every ranking, up to
    the order of equal labels, which does not change the AP)."""
    values = []
    for chosen in itertools.combinations(range(n), k):
        values.append(_exact_ap(tuple(int(i in chosen) for i in range(n))))
    return sum(values, Fraction(0)) / len(values)


@pytest.mark.parametrize("n", range(1, 10))
def test_expected_ap__equals_enumeration_of_every_ranking(n: int) -> None:
    for k in range(1, n + 1):
        assert rr.expected_ap(n, k) == pytest.approx(
            float(_enumerated_expectation(n, k)), abs=1e-14
        )


def test_expected_ap__the_issue_example_and_edges() -> None:
    # 10 loci with 1 positive: H_10 / 10, against a prevalence of 0.1
    assert rr.expected_ap(10, 1) == pytest.approx(sum(1 / r for r in range(1, 11)) / 10)
    assert rr.expected_ap(10, 1) == pytest.approx(0.2929, abs=1e-4)
    assert rr.expected_ap(7, 7) == 1.0
    assert math.isnan(rr.expected_ap(5, 0))
    np.testing.assert_allclose(rr.expected_ap([10, 10], [1, 10]), [0.29289683, 1.0], rtol=1e-7)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        rr.expected_ap(3, 4)


def test_expected_ap__large_groups_match_the_harmonic_formula() -> None:
    # the digamma path (n > 64) against the harmonic numbers summed in exact arithmetic
    for n, k in [(65, 1), (100, 37), (1000, 999), (5000, 12)]:
        h = sum(Fraction(1, r) for r in range(1, n + 1))
        exact = (h + Fraction(k - 1, n - 1) * (n - h)) / n
        assert rr.expected_ap(n, k) == pytest.approx(float(exact), rel=1e-12)


def _tie_groups(sizes: list[int], positives: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores with tie groups of the given sizes, highest score first."""
    y, s = [], []
    for g, (size, pos) in enumerate(zip(sizes, positives, strict=True)):
        y += [1] * pos + [0] * (size - pos)
        s += [len(sizes) - g] * size
    return np.asarray(y, float), np.asarray(s, float)


@pytest.mark.parametrize(
    ("sizes", "positives"),
    [([3, 2, 4], [2, 1, 1]), ([1, 4, 1, 2], [1, 2, 0, 2]), ([5], [2]), ([2, 2, 2], [0, 1, 2])],
)
def test_expected_ap_tied__equals_every_tie_breaking(
    sizes: list[int], positives: list[int]
) -> None:
    y, s = _tie_groups(sizes, positives)
    groups = [np.flatnonzero(s == v) for v in sorted(set(s), reverse=True)]
    values = [
        average_precision_score(y[np.concatenate(order)], -np.arange(y.size))
        for order in itertools.product(*(itertools.permutations(g) for g in groups))
    ]
    expected = rr.expected_ap_tied(positives, sizes)
    assert expected == pytest.approx(np.mean(values), abs=1e-12)
    assert expected == pytest.approx(rr.naive_expected_ap_tied(positives, sizes), abs=1e-12)
    if len(sizes) == 1:
        # one tie group: scikit-learn's AP is the prevalence, below a random ranking's
        assert average_precision_score(y, s) == pytest.approx(positives[0] / sizes[0])
        assert average_precision_score(y, s) < expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 150), st.floats(0, 1)), min_size=1, max_size=6).filter(
        lambda g: any(round(n * f) > 0 for n, f in g)
    )
)
def test_expected_ap_tied__equals_its_twin(groups: list[tuple[int, float]]) -> None:
    sizes = [n for n, _ in groups]
    positives = [round(n * f) for n, f in groups]
    assert rr.expected_ap_tied(positives, sizes) == pytest.approx(
        rr.naive_expected_ap_tied(positives, sizes), rel=1e-11
    )


def test_expected_ap_tied__singletons_are_the_ap_itself() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.3).astype(int)
    order = np.argsort(-rng.random(200))
    assert rr.expected_ap_tied(y[order], np.ones(200)) == pytest.approx(
        average_precision_score(y[order], -np.arange(200)), abs=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60), st.floats(0.05, 0.95), st.integers(1, 8), st.integers(0, 2**31))
def test_permutation_aps__observed_equals_sklearn_and_null_has_the_exact_mean(
    n: int, prevalence: float, n_values: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(float)
    y[0] = 1.0
    s = rng.integers(0, n_values, n).astype(float)  # ties whenever n_values < n
    observed, null = rr.permutation_aps(y, s, 3000, seed)
    assert observed == pytest.approx(average_precision_score(y, s), abs=1e-12)
    # With ties, the null's mean is the expected AP of the model's tie structure under random
    # labels; with no ties it is the random ranking's exact expectation.
    if np.unique(s).size == n:
        k = int(y.sum())
        se = null.std() / math.sqrt(null.size) + 1e-12
        assert abs(null.mean() - rr.expected_ap(n, k)) < 5 * se


def test_permutation_aps__every_placement_equally_likely() -> None:
    # n = 7, k = 3 (sparse draws, sorted) and k = 5 (dense: the complement is drawn)
    for k in (3, 5):
        n, b = 7, 35_000
        s = -np.arange(n, dtype=float)
        y = np.r_[np.ones(k), np.zeros(n - k)]
        _, null = rr.permutation_aps(y, s, b, seed=k)
        # each placement has its own AP here (distinct ranks, exact fractions): count them
        aps = {float(_exact_ap(tuple(int(i in c) for i in range(n)))): c
               for c in itertools.combinations(range(n), k)}  # fmt: skip
        keys = np.array(sorted(aps))
        idx = np.searchsorted(keys, null - 1e-12)
        counts = np.bincount(idx, minlength=keys.size)
        multiplicity = np.bincount(
            np.searchsorted(
                keys,
                [
                    float(_exact_ap(tuple(int(i in c) for i in range(n))))
                    for c in itertools.combinations(range(n), k)
                ],  # fmt: skip
            ),
            minlength=keys.size,
        )
        expected = b * multiplicity / multiplicity.sum()
        assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_permutation_aps__equals_its_twin_in_distribution() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(80) < 0.2).astype(float)
    y[:2] = 1
    s = np.round(rng.random(80) * 6)
    obs, null = rr.permutation_aps(y, s, 4000, 1)
    obs2, null2 = rr.naive_permutation_aps(y, s, 4000, 2)
    assert obs == pytest.approx(obs2, abs=1e-12)
    assert stats.ks_2samp(null, null2).pvalue > 1e-3


def test_permutation_p__is_valid_for_random_scores() -> None:
    # p-values of scores unrelated to the labels are uniform (up to the Monte Carlo grain)
    rng = np.random.default_rng(7)
    ps = []
    for seed in range(300):
        y = (rng.random(40) < 0.3).astype(float)
        y[0] = 1
        obs, null = rr.permutation_aps(y, rng.random(40), 199, seed)
        ps.append(rr.permutation_p(obs, null))
    ps = np.asarray(ps)
    assert 0.03 < np.mean(ps <= 0.05) < 0.08
    assert stats.kstest(ps, "uniform").pvalue > 1e-3
    assert rr.permutation_p(0.5, np.array([0.1, 0.5, 0.9])) == pytest.approx(3 / 4)
    assert math.isnan(rr.permutation_p(float("nan"), np.zeros(3)))


def test_permutation_aps__edges() -> None:
    obs, null = rr.permutation_aps([0, 0, np.nan], [1, 2, 3], 10, 0)
    assert math.isnan(obs) and np.isnan(null).all()
    obs, null = rr.permutation_aps([1, 1, 1], [1, 2, 3], 10, 0)
    assert obs == 1.0 and (null == 1.0).all()
    with pytest.raises(ValueError, match="NaN where the label is known"):
        rr.permutation_aps([1, 0], [np.nan, 1], 10, 0)
    with pytest.raises(ValueError, match="at least 1"):
        rr.permutation_aps([1, 0], [1, 0], 0, 0)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2**30),
    m=st.integers(0, 3000),
    seed=st.integers(0, 2**31),
)
def test_sort_positions__radix_sort_equals_numpy_sort(n: int, m: int, seed: int) -> None:
    # The placements' positions sorted by radix (one, two or three passes of 12 bits) are
    # the comparison sort's, so the nulls are the same whichever sorts them.
    rng = np.random.default_rng(seed)
    m = min(m, n)
    values = (
        rng.choice(n, m, replace=False).astype(np.int64)
        if n < 10**6
        else np.unique(rng.integers(0, n, m)).astype(np.int64)
    )
    values = rng.permutation(values)
    kept = values.copy()
    out = np.empty(values.size, np.int64)
    rr._sort_positions(
        values, values.size, n, out, np.empty_like(values), np.zeros(2**rr._RADIX_BITS, np.int64)
    )
    np.testing.assert_array_equal(out, np.sort(kept))
    np.testing.assert_array_equal(values, kept)


def test_permuted_aps__many_sparse_positives_equal_sklearn_on_their_placements() -> None:
    # A large group with enough positives for the radix sort: each null value is the AP of
    # some placement (here without ties: the mean precision at the positives), and the
    # observed one is scikit-learn's.
    rng = np.random.default_rng(3)
    n, k = 300_000, 1500
    positive = np.zeros(n, bool)
    positive[rng.choice(n, k, replace=False)] = True
    observed, null = rr.permuted_aps(positive, np.arange(1, n + 1, dtype=np.int32), 50, 1)
    scores = np.arange(n, 0, -1)
    assert observed == pytest.approx(average_precision_score(positive, scores), abs=1e-12)
    assert null.mean() == pytest.approx(rr.expected_ap(n, k), rel=0.05)
