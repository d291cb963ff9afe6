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
