"""pitfall.bootstrap against its twin, scikit-learn, and coverage of a known truth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from pitfall import bootstrap as bs
from pitfall import random_ranking as rr


@settings(max_examples=60, deadline=None)
@given(
    n_blocks=st.integers(1, 12),
    per_block=st.integers(1, 15),
    n_values=st.integers(1, 30),
    nan_share=st.floats(0, 0.3),
    seed=st.integers(0, 2**31),
)
def test_bootstrap_ap__equals_resampling_written_out(
    n_blocks: int, per_block: int, n_values: int, nan_share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = n_blocks * per_block
    y = (rng.random(n) < 0.4).astype(float)
    y[rng.random(n) < nan_share] = np.nan
    s = rng.integers(0, n_values, n) / 7.0  # ties, and loci alone at their score
    blocks = rng.permutation(np.repeat(np.arange(n_blocks), per_block))
    weights = bs.block_weights(n_blocks, 25, seed)
    got = bs.bootstrap_ap(y, s, blocks, weights).ap[0]
    np.testing.assert_allclose(got, bs.naive_bootstrap_ap(y, s, blocks, weights), atol=1e-12)


def test_bootstrap_ap__unit_weights_give_sklearn_per_segment_and_the_tie_expectation() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(900) < 0.3).astype(float)
    s = np.round(rng.random(900) * 9)
    seg = rng.integers(0, 4, 900)
    blocks = np.arange(900) // 30
    ones = np.ones((1, 30))
    got = bs.bootstrap_ap(y, s, blocks, ones, segments=seg, tied_expectation=True)
    for g in range(4):
        m = seg == g
        assert got.ap[g, 0] == pytest.approx(average_precision_score(y[m], s[m]), abs=1e-12)
        assert got.n[g, 0] == m.sum() and got.positives[g, 0] == y[m].sum()
        values = np.unique(s[m])[::-1]
        k = [y[m][s[m] == v].sum() for v in values]
        n = [np.sum(s[m] == v) for v in values]
        assert got.tied_expectation[g, 0] == pytest.approx(rr.expected_ap_tied(k, n), abs=1e-12)


def test_bootstrap_ap__bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        bs.bootstrap_ap([1, 0], [1, 2, 3], [0, 0], np.ones((2, 1)))
    with pytest.raises(ValueError, match="block ids must lie in 0 .. 0"):
        bs.bootstrap_ap([1, 0], [1, 2], [0, 1], np.ones((2, 1)))
    with pytest.raises(ValueError, match="NaN where the label is known"):
        bs.bootstrap_ap([1, 0], [np.nan, 2], [0, 0], np.ones((2, 1)))


def _scores(kind: str, rng: np.random.Generator, n: int, n_values: int) -> np.ndarray:
    """Scores with ties: float32, float64 that float32 holds exactly, float64 that it does
    not (the sort by argsort), or signed zeros among integers (-0.0 ties +0.0)."""
    base = rng.integers(0, n_values, n)
    if kind == "float32":
        return (base / 7.0).astype(np.float32)
    if kind == "float64 exact":
        return (base / 8.0).astype(np.float64)
    if kind == "float64":
        return base / 7.0
    return np.where(base == 0, rng.choice([-0.0, 0.0], n), base - n_values / 2)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["float32", "float64 exact", "float64", "signed zeros"]),
    n_blocks=st.integers(1, 12),
    per_block=st.integers(1, 15),
    n_values=st.integers(1, 30),
    nan_share=st.floats(0, 0.3),
    seed=st.integers(0, 2**31),
)
def test_sorted_loci__every_sort_equals_the_resampling_written_out(
    kind: str, n_blocks: int, per_block: int, n_values: int, nan_share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = n_blocks * per_block
    y = (rng.random(n) < 0.4).astype(rng.choice([np.float32, np.float64]))
    y[rng.random(n) < nan_share] = np.nan
    s = _scores(kind, rng, n, n_values)
    blocks = rng.permutation(np.repeat(np.arange(n_blocks), per_block)).astype(np.int16)
    weights = bs.block_weights(n_blocks, 25, seed)
    naive = bs.naive_bootstrap_ap(y, s, blocks, weights)
    got = bs.bootstrap_ap(y, s, blocks, weights).ap[0]
    np.testing.assert_allclose(got, naive, atol=1e-12)
    # the sort by argsort (an order given) gives the very same replicates
    order = bs.score_order(y, s)
    by_order = bs.SortedLoci.from_arrays(y, s, blocks, order=order).bootstrap(weights).ap[0]
    np.testing.assert_array_equal(by_order, got)
    # one sort for both layouts: as the labelled loci sorted twice
    seg = rng.integers(2, 6, n).astype(np.int16)
    overall, grouped = bs.SortedLoci.overall_and_by_segment(y, s, blocks, seg)
    known = ~np.isnan(y)
    alone = bs.SortedLoci.from_arrays(y[known], s[known], blocks[known], seg[known])
    np.testing.assert_array_equal(overall.bootstrap(weights).ap[0], got)
    np.testing.assert_array_equal(grouped.seg_end, alone.seg_end)
    np.testing.assert_array_equal(grouped.segments, alone.segments)
    a, b = (
        grouped.bootstrap(weights, tied_expectation=True),
        alone.bootstrap(weights, tied_expectation=True),
    )
    for field in ("ap", "tied_expectation", "n", "positives"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for i, label in enumerate(grouped.segments):
        m = known & (seg == label)
        ends = grouped.tie_ends(i)
        assert ends.dtype == np.int32
        np.testing.assert_array_equal(ends, rr.tie_ends(np.sort(s[m])[::-1]))
        assert grouped.positive[grouped.segment(i)].sum() == np.sum(y[m] == 1)


def test_sorted_loci__loci_read_by_index_when_their_fields_overflow_a_word() -> None:
    # Segment labels spanning 2**16 and 40,000 blocks need 33 bits besides the score's 32:
    # the words then hold the loci's indices, and the passes give the same numbers.
    rng = np.random.default_rng(4)
    n, n_blocks = 3000, 40_000
    y = (rng.random(n) < 0.3).astype(float)
    y[rng.random(n) < 0.1] = np.nan
    s = rng.integers(0, 40, n).astype(np.float32)
    blocks = rng.integers(0, n_blocks, n)
    seg = rng.choice([0, 5, 2**16 - 1], n)
    weights = bs.block_weights(n_blocks, 5, 1)
    overall, grouped = bs.SortedLoci.overall_and_by_segment(y, s, blocks, seg)
    np.testing.assert_allclose(
        overall.bootstrap(weights).ap[0], bs.naive_bootstrap_ap(y, s, blocks, weights), atol=1e-12
    )
    np.testing.assert_array_equal(grouped.segments, [0, 5, 2**16 - 1])
    for g, label in enumerate(grouped.segments):
        m = (seg == label) & ~np.isnan(y)
        expected = average_precision_score(y[m], s[m])
        assert grouped.bootstrap(np.ones((1, n_blocks))).ap[g, 0] == pytest.approx(expected)


def test_sorted_loci__segments_of_unlabelled_loci() -> None:
    y = np.array([1.0, 0.0, np.nan, np.nan, 1.0, 0.0])
    s = np.array([0.9, 0.1, 0.5, 0.4, 0.3, 0.2], np.float32)
    seg = np.array([1, 1, 7, 7, 3, 3])
    blocks = np.zeros(6, np.int64)
    # given arrays: every label is a segment, one empty; the audit's: labelled loci only
    every = bs.SortedLoci.from_arrays(y, s, blocks, seg)
    np.testing.assert_array_equal(every.segments, [1, 3, 7])
    np.testing.assert_array_equal(every.seg_end, [2, 4, 4])
    _, labelled = bs.SortedLoci.overall_and_by_segment(y, s, blocks, seg)
    np.testing.assert_array_equal(labelled.segments, [1, 3])
    with pytest.raises(ValueError, match="must not be missing"):
        bs.SortedLoci.from_arrays(y, s, blocks, np.array(["a", None, "b", "b", "a", "a"]))
    with pytest.raises(ValueError, match="NaN where the label is known"):
        bs.SortedLoci.from_arrays([1.0, 0.0], np.array([np.nan, 2.0], np.float32), [0, 0])


def test_renumber__only_the_blocks_of_the_loci_kept() -> None:
    keys = np.array([5, 5, 9, 9, 2, 2, 7])
    where = np.array([True, False, False, False, True, True, True])
    ids, n_blocks = bs.renumber(keys, where)
    ref, n_ref = bs.renumber(keys[where])
    assert n_blocks == n_ref == 3
    np.testing.assert_array_equal(ids[where], ref)
    assert ids.max() < n_blocks and ids.dtype == np.int32
    start, run_key = bs.key_runs(keys)
    np.testing.assert_array_equal(start, [0, 2, 4, 6])
    ids, uniq = bs.number_runs(start, run_key, keys.size, dtype=np.int16)
    np.testing.assert_array_equal(uniq[ids], keys)
    assert ids.dtype == np.int16


def test_genomic_blocks__by_position_and_by_runs() -> None:
    chrom = ["chr1", "chr1", "chr1", "chr2", "chr2"]
    start = [0, 999_999, 1_000_000, 10, 5_000_000]
    np.testing.assert_array_equal(bs.genomic_blocks(chrom, start), [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(
        bs.genomic_blocks(chrom, start, block_size=10_000_000), [0, 0, 0, 1, 1]
    )
    np.testing.assert_array_equal(bs.genomic_blocks(chrom, block_loci=2), [0, 0, 1, 2, 2])


def test_block_weights__multinomial_rows_seeded() -> None:
    w = bs.block_weights(50, 200, seed=3)
    assert w.shape == (200, 50) and (w.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(w, bs.block_weights(50, 200, seed=3))
    # each block drawn 50 times at 1/50: mean multiplicity 1, variance 49/50
    assert w.mean() == pytest.approx(1.0)
    assert w.var() == pytest.approx(49 / 50, rel=0.1)


def test_percentile_interval__quantiles_ignoring_nan() -> None:
    r = np.r_[np.arange(1000.0), np.nan]
    low, high = bs.percentile_interval(r, 0.9)
    assert (low, high) == pytest.approx(np.quantile(np.arange(1000.0), [0.05, 0.95]))
    low, high = bs.percentile_interval(np.array([[np.nan, np.nan], [1.0, 2.0]]), axis=1)
    assert np.isnan(low[0]) and low[1] == pytest.approx(1.025)
    # centred on an estimate: the quantiles move by the estimate minus the median
    low, high = bs.percentile_interval(np.arange(1000.0), 0.9, estimate=600.0)
    assert (low, high) == pytest.approx(np.quantile(np.arange(1000.0), [0.05, 0.95]) + 100.5)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        bs.percentile_interval(r, 1.0)


LOCI_PER_BLOCK = 25


def _correlated_sample(rng: np.random.Generator, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Loci in blocks sharing a random effect: labels and scores correlated within blocks."""
    shared = np.repeat(rng.normal(0, 1.0, n_blocks), LOCI_PER_BLOCK)
    latent = shared + rng.normal(0, 1.0, shared.size)
    y = (latent + rng.normal(0, 1.0, shared.size) > 1.0).astype(float)
    return y, latent + rng.normal(0, 0.5, shared.size)


@pytest.mark.slow
def test_bootstrap_ap__block_intervals_cover_the_truth() -> None:
    rng = np.random.default_rng(123)
    # the population's AP: one sample of 2 M loci (its own error is about 1e-3, a tenth of
    # an interval's half-width below)
    truth = average_precision_score(*_correlated_sample(rng, 80_000))
    covered_blocks, covered_loci, widths = 0, 0, []
    blocks = np.repeat(np.arange(120), LOCI_PER_BLOCK)
    ones = np.ones((1, 120))
    for sim in range(200):
        y, s = _correlated_sample(rng, 120)
        weights = np.vstack([ones, bs.block_weights(120, 500, sim)])
        ap = bs.bootstrap_ap(y, s, blocks, weights).ap[0]
        assert ap[0] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        low, high = bs.percentile_interval(ap[1:], estimate=ap[0])
        covered_blocks += low <= truth <= high
        widths.append(high - low)
        if sim < 100:
            # resampling single loci treats neighbours as independent: too narrow
            single = bs.block_weights(y.size, 500, sim)
            low, high = bs.percentile_interval(
                bs.bootstrap_ap(y, s, np.arange(y.size), single).ap[0]
            )
            covered_loci += low <= truth <= high
    assert covered_blocks / 200 >= 0.93
    assert covered_loci / 100 < 0.88
    assert 0.01 < np.median(widths) < 0.2


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["float32", "float64 exact", "float64", "signed zeros"]),
    n=st.integers(0, 200),
    n_values=st.integers(1, 12),
    nan_share=st.floats(0, 0.5),
    max_points=st.sampled_from([2, 5, 2000]),
    seed=st.integers(0, 2**31),
)
def test_sorted_loci__counting_sort_and_curves_equal_the_word_sort(
    kind: str, n: int, n_values: int, nan_share: float, max_points: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float32)
    y[rng.random(n) < nan_share] = np.nan
    s = _scores(kind, rng, n, n_values)
    n_blocks = 4
    blocks = rng.integers(0, n_blocks, n).astype(np.int16)
    weights = np.vstack([np.ones((1, n_blocks)), bs.block_weights(n_blocks, 20, seed)])
    assert bs.few_levels(y, s) is not None
    by_level = bs.SortedLoci.from_arrays(y, s, blocks)
    by_word = bs.SortedLoci.from_arrays(y, s, blocks, order=bs.score_order(y, s))
    assert by_level.tie_end.sum() == by_word.tie_end.sum()
    a = by_level.bootstrap(weights, tied_expectation=True)
    b = by_word.bootstrap(weights, tied_expectation=True)
    for field in ("ap", "tied_expectation", "n", "positives"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-12, atol=1e-15)
    want = bs.naive_precision_recall(y, s, max_points)
    for got in (by_level.precision_recall(max_points), by_word.precision_recall(max_points)):
        assert got[0].size <= max_points + 1
        np.testing.assert_allclose(got[0], want[0], rtol=1e-15)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-15)


def test_few_levels__none_beyond_the_limit_and_nan_scores_still_refused() -> None:
    n = bs.MAX_LEVELS + 1
    y = np.zeros(n, np.float32)
    assert bs.few_levels(y, np.arange(n, dtype=np.float64)) is None
    assert bs.few_levels(y[:-1], np.arange(n - 1, dtype=np.float64)).size == bs.MAX_LEVELS
    # an unlabelled locus's score is never read
    levels = bs.few_levels(np.array([1, np.nan, 0.0]), np.array([0.5, 9.0, 0.25]))
    np.testing.assert_array_equal(levels, [0.5, 0.25])
    with pytest.raises(ValueError, match="NaN where the label is known"):
        bs.SortedLoci.from_arrays([1.0, 0.0], [np.nan, 0.5], [0, 0])


def test_number_runs__only_the_blocks_holding_a_locus_kept() -> None:
    keys = np.array([5, 5, 9, 9, 2, 2, 7])
    where = np.array([True, False, False, False, True, True, True])
    start, run_key = bs.key_runs(keys)
    ids, uniq = bs.number_runs(start, run_key, keys.size, dtype=np.int16, where=where)
    np.testing.assert_array_equal(uniq, [2, 5, 7])  # block 9 holds no kept locus
    np.testing.assert_array_equal(uniq[ids[where]], keys[where])
    assert ids.max() < uniq.size and ids.dtype == np.int16
