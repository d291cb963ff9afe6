"""Tests of pitfall.evaluate, with scikit-learn and scipy as the oracles."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import average_precision_score

from pitfall import evaluate as ev

TOL = 1e-12


# ------------------------------------------------------------------ strategies


@st.composite
def labelled_scores(draw: st.DrawFn, nan_labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) float with at least one positive, scores (n,) of a random kind.

    Score kinds: continuous floats, small integers (many ties), one constant value, and
    floats rounded to few decimals; optionally NaN labels sprinkled in.
    """
    n = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    prevalence = draw(st.sampled_from([0.01, 0.1, 0.5, 0.9, 1.0]))
    y = (rng.random(n) < prevalence).astype(np.float64)
    kind = draw(st.sampled_from(["float", "int", "same", "rounded", "single_positive"]))
    if kind == "single_positive":
        y[:] = 0.0
    y[rng.integers(n)] = 1.0
    if kind == "float":
        s = rng.normal(size=n)
    elif kind == "int":
        s = rng.integers(0, draw(st.integers(1, 8)), n).astype(np.float64)
    elif kind == "same":
        s = np.full(n, draw(st.floats(-10, 10)))
    else:
        s = np.round(rng.random(n), draw(st.integers(0, 2)))
    if nan_labels:
        y[rng.random(n) < 0.3] = np.nan
        if not np.any(y == 1):
            y[rng.integers(n)] = 1.0
    return y, s


def _sklearn_ap(y: np.ndarray, s: np.ndarray) -> float:
    known = ~np.isnan(y)
    return float(average_precision_score(y[known], s[known]))


# ------------------------------------------------------------ average_precision


def test_average_precision__hand_example() -> None:
    # Sorted by score: 0.8 (neg), 0.4 (pos), 0.35 (pos), 0.1 (neg).
    # Thresholds: 0.8 -> P=0/1, R=0; 0.4 -> P=1/2, R=1/2; 0.35 -> P=2/3, R=1.
    # AP = (1/2 - 0) * 1/2 + (1 - 1/2) * 2/3 = 1/4 + 1/3 = 7/12 (scikit-learn agrees).
    y, s = [0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8]
    assert ev.average_precision(y, s) == pytest.approx(7 / 12, abs=1e-15)
    assert ev.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=TOL)


def test_average_precision__ties_grouped_hand_example() -> None:
    # Scores 1,1 (one pos, one neg) then 0,0 (one pos, one neg): two thresholds.
    # t=1: P=1/2, R=1/2; t=0: P=2/4, R=1 -> AP = 1/2*1/2 + 1/2*1/2 = 1/2, whatever the
    # order of tied items (no tie breaking).
    y, s = [1, 0, 0, 1], [1, 1, 0, 0]
    assert ev.average_precision(y, s) == pytest.approx(0.5, abs=1e-15)
    assert ev.average_precision([0, 1, 1, 0], s) == pytest.approx(0.5, abs=1e-15)


def test_average_precision__all_same_scores_is_prevalence() -> None:
    y = np.array([1, 0, 0, 0, 1.0])
    assert ev.average_precision(y, np.zeros(5)) == pytest.approx(0.4, abs=1e-15)


@settings(max_examples=300, deadline=None)
@given(labelled_scores())
def test_average_precision__matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    assert ev.average_precision(y, s) == pytest.approx(_sklearn_ap(y, s), abs=TOL)


@settings(max_examples=150, deadline=None)
@given(labelled_scores(nan_labels=True))
def test_average_precision__nan_labels_dropped(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    assert ev.average_precision(y, s) == pytest.approx(_sklearn_ap(y, s), abs=TOL)


def test_average_precision__nan_label_with_nan_score_is_ignored() -> None:
    y = np.array([1, 0, np.nan, 1, 0])
    s = np.array([0.9, 0.2, np.nan, 0.1, 0.5])
    assert ev.average_precision(y, s) == pytest.approx(
        average_precision_score([1, 0, 1, 0], [0.9, 0.2, 0.1, 0.5]), abs=TOL
    )


def test_average_precision__no_positive_raises() -> None:
    with pytest.raises(ValueError, match="no positive"):
        ev.average_precision([0, 0, np.nan], [0.1, 0.2, 0.3])


def test_average_precision__shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same shape"):
        ev.average_precision([0, 1, 1], [0.1, 0.2])


def test_average_precision__non_binary_label_raises() -> None:
    with pytest.raises(ValueError, match="0, 1 or NaN"):
        ev.average_precision([0, 1, 2], [0.1, 0.2, 0.3])


def test_average_precision__nan_score_at_labelled_item_raises() -> None:
    with pytest.raises(ValueError, match="NaN"):
        ev.average_precision([0, 1, 1], [0.1, np.nan, 0.3])


def test_average_precision__dataarrays_aligned_by_dim_name() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((3, 40)) < 0.4).astype(np.float32)
    y[0, 0] = 1
    s = rng.random((3, 40))
    coords = {"cell_type": ["a", "b", "c"], "locus": np.arange(40)}
    y_da = xr.DataArray(y, dims=("cell_type", "locus"), coords=coords)
    s_da = xr.DataArray(s, dims=("cell_type", "locus"), coords=coords).transpose()
    assert ev.average_precision(y_da, s_da) == pytest.approx(
        average_precision_score(y.ravel(), s.ravel()), abs=TOL
    )


def test_average_precision__mismatched_coords_raise() -> None:
    y = xr.DataArray([0.0, 1.0, 1.0], dims="locus", coords={"locus": [0, 1, 2]})
    s = xr.DataArray([0.1, 0.2, 0.3], dims="locus", coords={"locus": [1, 2, 3]})
    with pytest.raises(ValueError, match="do not match"):
        ev.average_precision(y, s)


def test_random_ap__is_prevalence_ignoring_nan() -> None:
    assert ev.random_ap(np.array([1, 0, np.nan, 0, 1.0])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no labelled"):
        ev.random_ap([np.nan])


# -------------------------------------------------------------- counts / dask


@settings(max_examples=150, deadline=None)
@given(labelled_scores(nan_labels=True), st.integers(1, 5))
def test_score_counts__merged_chunks_match_sklearn(
    data: tuple[np.ndarray, np.ndarray], n_chunks: int
) -> None:
    y, s = data
    parts = [
        ev.score_counts(yc, sc)
        for yc, sc in zip(np.array_split(y, n_chunks), np.array_split(s, n_chunks), strict=True)
    ]
    scores, positives, totals = ev.merge_score_counts(*parts)
    assert np.all(np.diff(scores) > 0)
    assert totals.sum() == np.count_nonzero(~np.isnan(y))
    assert positives.sum() == np.count_nonzero(y == 1)
    ap = ev.average_precision_from_counts(scores, positives, totals)
    assert ap == pytest.approx(_sklearn_ap(y, s), abs=TOL)


def test_score_counts__hand_example() -> None:
    scores, positives, totals = ev.score_counts([1, 0, np.nan, 1, 0], [2.0, 2.0, 5.0, 0.5, 0.5])
    np.testing.assert_array_equal(scores, [0.5, 2.0])
    np.testing.assert_array_equal(positives, [1, 1])
    np.testing.assert_array_equal(totals, [2, 2])


def test_average_precision_from_counts__order_free_and_zero_totals_ignored() -> None:
    # Same items as [0,1,1,0] / [0.1,0.4,0.35,0.8]; a score with no item added.
    ap = ev.average_precision_from_counts(
        [0.8, 0.1, 0.35, 0.4, 9.0], [0, 0, 1, 1, 0], [1, 1, 1, 1, 0]
    )
    assert ap == pytest.approx(7 / 12, abs=1e-15)


def test_average_precision_from_counts__errors() -> None:
    with pytest.raises(ValueError, match="distinct"):
        ev.average_precision_from_counts([1.0, 1.0], [1, 0], [1, 1])
    with pytest.raises(ValueError, match="no positive"):
        ev.average_precision_from_counts([1.0, 2.0], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="same length"):
        ev.average_precision_from_counts([1.0, 2.0], [0], [1, 1])


@settings(max_examples=80, deadline=None)
@given(labelled_scores(nan_labels=True), st.integers(1, 64), st.integers(2, 5))
def test_average_precision_dask__matches_sklearn(
    data: tuple[np.ndarray, np.ndarray], chunk: int, fan_in: int
) -> None:
    y, s = data
    y_d = da.from_array(y, chunks=chunk)
    # Different chunking of the scores exercises the rechunk onto the labels' blocks.
    s_d = da.from_array(s, chunks=max(1, chunk // 2 + 1))
    ap = ev.average_precision_dask(y_d, s_d, fan_in=fan_in)
    assert ap == pytest.approx(_sklearn_ap(y, s), abs=TOL)


def test_average_precision_dask__2d_dataarray_pooled() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random((7, 500)) < 0.2).astype(np.float32)
    y[rng.random(y.shape) < 0.1] = np.nan
    s = np.round(rng.random((7, 500)) * 6) / 6
    y_da = xr.DataArray(y, dims=("cell_type", "locus")).chunk({"cell_type": 1, "locus": 97})
    s_da = xr.DataArray(s, dims=("cell_type", "locus")).chunk({"cell_type": 3, "locus": 200})
    ap, (scores, _, totals) = ev.average_precision_dask(y_da, s_da, return_counts=True)
    assert scores.size == 7
    assert totals.sum() == np.count_nonzero(~np.isnan(y))
    assert ap == pytest.approx(_sklearn_ap(y.ravel(), s.ravel()), abs=TOL)
    # average_precision routes lazy inputs to the same path.
    assert ev.average_precision(y_da, s_da) == pytest.approx(ap, abs=1e-15)


def test_average_precision_dask__numpy_inputs_with_chunks() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(1000) < 0.3).astype(float)
    s = rng.integers(0, 5, 1000).astype(float)
    ap = ev.average_precision_dask(y, s, chunks=123)
    assert ap == pytest.approx(average_precision_score(y, s), abs=TOL)


def test_average_precision_dask__errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        ev.average_precision_dask(da.zeros(5), da.zeros(6))
    with pytest.raises(ValueError, match="no positive"):
        ev.average_precision_dask(da.zeros(10, chunks=3), da.ones(10, chunks=3))
    with pytest.raises(ValueError, match="fan_in"):
        ev.average_precision_dask(da.zeros(5), da.zeros(5), fan_in=1)


# ------------------------------------------------------------------ partitions


def test_partition_by_activity__matches_naive_loop() -> None:
    rng = np.random.default_rng(4)
    labels = (rng.random((6, 200)) < 0.4).astype(np.float32)
    labels[rng.random(labels.shape) < 0.15] = np.nan
    expected = np.zeros(200, dtype=np.int64)
    for j in range(200):
        for i in range(6):
            if labels[i, j] == 1:
                expected[j] += 1
    got = ev.partition_by_activity(labels)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    da_ = xr.DataArray(labels, dims=("cell_type", "locus"), coords={"locus": np.arange(200)})
    got_da = ev.partition_by_activity(da_.chunk({"cell_type": 1}))
    assert got_da.dims == ("locus",)
    np.testing.assert_array_equal(got_da.values, expected)


def test_partition_by_variance__ranked_groups_ties_in_locus_order() -> None:
    variance = np.array([0.5, 0.1, 0.3, 0.3, 9.0, 0.0, 0.3])
    # ranks by hand (ties 0.3 in locus order): 5->0, 1->1, 2->2, 3->3, 6->4, 0->5, 4->6
    rank = np.array([5, 1, 2, 3, 6, 0, 4])
    np.testing.assert_array_equal(ev.partition_by_variance(variance, 3), rank * 3 // 7)
    np.testing.assert_array_equal(ev.partition_by_variance(variance), rank)  # 7 loci: 7 groups
    groups = ev.partition_by_variance(np.random.default_rng(0).normal(size=1003))
    counts = np.bincount(groups)
    assert counts.size == 10 and set(counts) <= {100, 101} and counts.sum() == 1003


def test_partition_by_activity__non_2d_numpy_raises() -> None:
    with pytest.raises(ValueError, match="2-D"):
        ev.partition_by_activity(np.zeros(5))


def test_ap_by_group__matches_sklearn_per_group_and_nan_for_no_positive() -> None:
    rng = np.random.default_rng(5)
    n = 400
    groups = rng.integers(0, 4, n)
    y = (rng.random(n) < 0.4).astype(float)
    y[groups == 3] = 0.0  # no positive: AP undefined
    y[rng.random(n) < 0.1] = np.nan
    s = rng.random(n)
    got = ev.ap_by_group(y, s, groups)
    assert list(got.index) == [0, 1, 2, 3]
    for g in range(3):
        m = groups == g
        assert got[g] == pytest.approx(_sklearn_ap(y[m], s[m]), abs=TOL)
    assert np.isnan(got[3])


def test_partitioned_evaluation__rows_counts_and_ap() -> None:
    rng = np.random.default_rng(6)
    n = 300
    n_active = rng.integers(0, 3, n)
    y = (rng.random(n) < 0.3).astype(float)
    y[n_active == 0] = 0.0
    y[:10] = np.nan
    scores = {"model": rng.random(n), "average": n_active / 2.0}
    df = ev.partitioned_evaluation(y, scores, n_active)
    assert list(df.columns) == [
        "group",
        "predictor",
        "n_loci",
        "n_positive",
        "prevalence",
        "ap_random_expected",
        "ap",
    ]
    assert len(df) == 4 * 2
    for g in (1, 2):
        m = (n_active == g) & ~np.isnan(y)
        for name, s in scores.items():
            row = df[(df.group == g) & (df.predictor == name)].iloc[0]
            assert row.n_loci == m.sum()
            assert row.n_positive == (y[m] == 1).sum()
            assert row.prevalence == pytest.approx((y[m] == 1).mean())
            assert row.ap == pytest.approx(average_precision_score(y[m], s[m]), abs=TOL)
            # a random ranking's expectation, from the harmonic number H_n
            n_, k_ = int(m.sum()), int((y[m] == 1).sum())
            h = sum(1 / r for r in range(1, n_ + 1))
            assert row.ap_random_expected == pytest.approx(
                (h + (k_ - 1) / (n_ - 1) * (n_ - h)) / n_
            )
    assert df[df.group == 0].ap.isna().all()
    all_rows = df[df.group == "all"].set_index("predictor")
    assert all_rows.loc["model", "ap"] == pytest.approx(_sklearn_ap(y, scores["model"]), abs=TOL)


def test_partitioned_evaluation__size_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        ev.partitioned_evaluation(np.ones(4), {"m": np.ones(3)}, np.zeros(4, int))


# ---------------------------------------------------------------- Mann-Whitney


def test_mann_whitney_scores_by_group__matches_scipy_per_group() -> None:
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2])
    a = np.array([0.9, 0.8, 0.7, 0.95, 0.1, 0.5, 0.3, 0.2, 0.4, 0.6, 0.6, 0.1])
    b = np.array([0.1, 0.2, 0.3, 0.25, 0.6, 0.7, 0.8, 0.9, 0.55, 0.6, 0.2, 0.3])
    df = ev.mann_whitney_scores_by_group(a, b, groups)
    assert list(df.columns) == ["group", "n", "U", "p_value"]
    for g in (0, 1, 2):
        m = groups == g
        ref = stats.mannwhitneyu(a[m], b[m], alternative="greater")
        row = df[df.group == g].iloc[0]
        assert row.n == m.sum()
        assert row.U == pytest.approx(ref.statistic)
        assert row.p_value == pytest.approx(ref.pvalue)
    # Group 0: A entirely above B, so U = n_a * n_b.
    assert df.loc[df.group == 0, "U"].item() == 16


def test_mann_whitney_scores_by_group__restricted_to_positive_loci() -> None:
    rng = np.random.default_rng(7)
    n = 120
    groups = rng.integers(0, 3, n)
    labels = (rng.random(n) < 0.5).astype(float)
    labels[:5] = np.nan
    a, b = rng.random(n), rng.random(n)
    for on, value in (("positive", 1.0), ("negative", 0.0)):
        df = ev.mann_whitney_scores_by_group(a, b, groups, "less", labels=labels, on=on)
        for g in range(3):
            m = (groups == g) & (labels == value)
            ref = stats.mannwhitneyu(a[m], b[m], alternative="less")
            row = df[df.group == g].iloc[0]
            assert row.n == m.sum()
            assert row.U == pytest.approx(ref.statistic)
            assert row.p_value == pytest.approx(ref.pvalue)


def test_mann_whitney_scores_by_group__empty_group_is_nan_and_errors() -> None:
    df = ev.mann_whitney_scores_by_group(
        [0.1, 0.2], [0.3, 0.4], [0, 1], labels=[1.0, 0.0], on="positive"
    )
    assert df.loc[df.group == 1, "n"].item() == 0
    assert np.isnan(df.loc[df.group == 1, "p_value"].item())
    with pytest.raises(ValueError, match="needs labels"):
        ev.mann_whitney_scores_by_group([0.1], [0.2], [0], on="positive")
    with pytest.raises(ValueError, match="on must be"):
        ev.mann_whitney_scores_by_group([0.1], [0.2], [0], on="bogus")  # type: ignore[arg-type]


# ------------------------------------------------------------------ residual


def test_residual_target__broadcasts_over_cell_type_and_round_trips() -> None:
    labels = xr.DataArray(
        [[1.0, 0.0, np.nan], [0.0, 0.0, 1.0]],
        dims=("cell_type", "locus"),
        coords={"cell_type": ["a", "b"], "locus": [10, 11, 12]},
    )
    avg = xr.DataArray([0.5, 0.0, 0.75], dims="locus", coords={"locus": [10, 11, 12]})
    res = ev.residual_target(labels, avg)
    assert res.dims == ("cell_type", "locus")
    np.testing.assert_allclose(res.values, [[0.5, 0.0, np.nan], [-0.5, 0.0, 0.25]])
    back = ev.score_from_residual(res, avg)
    xr.testing.assert_allclose(back, labels)


def test_residual_target__numpy_round_trip() -> None:
    rng = np.random.default_rng(8)
    labels = (rng.random((4, 30)) < 0.5).astype(float)
    avg = labels.mean(axis=0)
    res = ev.residual_target(labels, avg)
    np.testing.assert_allclose(res, labels - avg[None, :])
    np.testing.assert_allclose(ev.score_from_residual(res, avg), labels)


def test_residual_target__misaligned_loci_raise() -> None:
    labels = xr.DataArray([1.0, 0.0], dims="locus", coords={"locus": [0, 1]})
    avg = xr.DataArray([0.5, 0.5], dims="locus", coords={"locus": [1, 2]})
    with pytest.raises(ValueError, match="do not align"):
        ev.residual_target(labels, avg)


# ----------------------------------------------------------- partitioned, chunked


@st.composite
def grouped_scores(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (with NaN), scores of a random kind (ties included) and groups 0..6."""
    y, s = draw(labelled_scores(nan_labels=True))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    groups = rng.integers(0, draw(st.integers(1, 7)), y.size)
    return y, s, groups


@settings(max_examples=150, deadline=None)
@given(grouped_scores(), st.integers(1, 64), st.integers(1, 64), st.integers(2, 5))
def test_partitioned_ap_dask__matches_sklearn_and_ap_by_group(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], chunk: int, other: int, fan_in: int
) -> None:
    y, s, groups = data
    # Scores and groups chunked differently from the labels: both are rechunked.
    got = ev.partitioned_ap_dask(
        da.from_array(y, chunks=chunk),
        da.from_array(s, chunks=other),
        da.from_array(groups, chunks=max(1, chunk // 2 + 1)),
        fan_in=fan_in,
        include_all=True,
    )
    expected = ev.ap_by_group(y, s, groups)
    assert list(got.index) == [*expected.index, "all"]
    np.testing.assert_allclose(got.drop("all"), expected, atol=TOL, equal_nan=True)
    for g in expected.index:
        m = (groups == g) & ~np.isnan(y)
        if np.any(y[m] == 1):
            assert got[g] == pytest.approx(average_precision_score(y[m], s[m]), abs=TOL)
        else:
            assert np.isnan(got[g])
    assert got["all"] == pytest.approx(_sklearn_ap(y, s), abs=TOL)


def test_partitioned_ap_dask__tied_mean_of_binary_labels_on_dataarrays() -> None:
    # The benchmark's case: score = mean of six binary labels (7 tied values), groups =
    # how many of the six are 1, so every group holds a single score (AP = prevalence).
    rng = np.random.default_rng(7)
    n = 5000
    others = (rng.random((6, n)) < 0.3).astype(np.float32)
    y = np.where(rng.random(n) < 0.5, others[0], rng.random(n) < 0.2).astype(np.float32)
    y[rng.random(n) < 0.1] = np.nan
    coords = {"locus": np.arange(n)}
    y_da = xr.DataArray(y, dims="locus", coords=coords).chunk(333)
    o_da = xr.DataArray(others, dims=("cell_type", "locus"), coords=coords).chunk(
        {"cell_type": 1, "locus": 500}
    )
    score = o_da.mean("cell_type")
    groups = ev.partition_by_activity(o_da)
    got, counts = ev.partitioned_ap_dask(y_da, score, groups, return_counts=True)
    n_active = (others == 1).sum(0)
    known = ~np.isnan(y)
    for g in range(7):
        m = (n_active == g) & known
        assert counts[g][2].sum() == m.sum()
        assert got[g] == pytest.approx(average_precision_score(y[m], others.mean(0)[m]), abs=TOL)
        assert got[g] == pytest.approx(np.mean(y[m] == 1), abs=TOL)


def test_partitioned_ap_dask__group_without_labels_or_positives_is_nan() -> None:
    y = np.array([1, 0, np.nan, np.nan, 0, 0])
    s = np.array([0.9, 0.1, 0.5, 0.5, 0.2, 0.3])
    groups = np.array([0, 0, 1, 1, 2, 2])
    got = ev.partitioned_ap_dask(y, s, groups, chunks=4)
    assert list(got.index) == [0, 1, 2]
    assert got[0] == pytest.approx(1.0)
    assert np.isnan(got[1]) and np.isnan(got[2])
    pd.testing.assert_series_equal(got, ev.ap_by_group(y, s, groups))


def test_partitioned_ap_dask__errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        ev.partitioned_ap_dask(da.zeros(5), da.zeros(5), da.zeros(6, dtype=int))
    with pytest.raises(ValueError, match="fan_in"):
        ev.partitioned_ap_dask(da.zeros(5), da.zeros(5), da.zeros(5, dtype=int), fan_in=1)
    with pytest.raises(ValueError, match="NaN"):
        ev.partitioned_ap_dask(np.array([1.0, 0.0]), np.array([np.nan, 1.0]), np.array([0, 0]))
    y = xr.DataArray([1.0, 0.0], dims="locus", coords={"locus": [0, 1]})
    g = xr.DataArray([0, 0], dims="locus", coords={"locus": [0, 2]})
    with pytest.raises(ValueError, match="do not match"):
        ev.partitioned_ap_dask(y, y, g)


# ----------------------------------------------------------------- one pass


@st.composite
def line_labels(draw: st.DrawFn, max_lines: int = 7) -> np.ndarray:
    """Labels (n_lines, n_loci) float32 of related lines: 0, 1 and NaN.

    Lines share a common pattern (so the average of the others predicts something),
    some loci are NaN in every line (unscored for any target) and whole lines may be
    constant, all NaN or without positives.
    """
    n_lines = draw(st.integers(1, max_lines))
    n_loci = draw(st.integers(0, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    common = rng.random(n_loci) < draw(st.sampled_from([0.0, 0.1, 0.4, 1.0]))
    flip = rng.random((n_lines, n_loci)) < draw(st.sampled_from([0.0, 0.1, 0.3]))
    y = (common[None, :] ^ flip).astype(np.float32)
    y[rng.random(y.shape) < draw(st.sampled_from([0.0, 0.1, 0.5]))] = np.nan
    y[:, rng.random(n_loci) < 0.05] = np.nan
    return y


def _naive_leave_one_out(y: np.ndarray) -> np.ndarray:
    """counts[t, s, p, k] by a loop over loci: the oracle of leave_one_out_counts."""
    n, m = y.shape
    out = np.zeros((n, 3, n, n), dtype=np.int64)
    for t in range(n):
        for j in range(m):
            others = np.delete(y[:, j], t)
            s = 0 if np.isnan(y[t, j]) else 1 + int(y[t, j] == 1)
            out[t, s, int(np.sum(others == 1)), int(np.sum(~np.isnan(others)))] += 1
    return out


def _average_activity_oracle(y: np.ndarray, t: int) -> dict:
    """Average of the other lines scored with scikit-learn, as the in-memory benchmark."""
    others = np.delete(y, t, axis=0)
    n_known = np.sum(~np.isnan(others), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(n_known > 0, np.nansum(others, axis=0) / n_known, np.nan)
    group = np.sum(others == 1, axis=0)
    label = y[t]
    scored = ~np.isnan(label) & ~np.isnan(score)

    def ap(m: np.ndarray) -> float:
        if not np.any(label[m] == 1):
            return float("nan")
        return float(average_precision_score(label[m], score[m]))

    return {
        "ap": ap(scored),
        "groups": [ap(scored & (group == g)) for g in range(y.shape[0])],
        "n_unscored": int(np.sum(~np.isnan(label) & np.isnan(score))),
        "n_loci": int(scored.sum()),
    }


@settings(max_examples=100, deadline=None)
@given(line_labels(max_lines=6), st.sampled_from(["auto", "patterns", "targets"]))
def test_leave_one_out_counts__matches_naive_loop(y: np.ndarray, method: str) -> None:
    expected = _naive_leave_one_out(y)
    np.testing.assert_array_equal(ev.leave_one_out_counts(y, method=method), expected)
    rows = [y.shape[0] - 1, 0]
    np.testing.assert_array_equal(ev.leave_one_out_counts(y, rows, method=method), expected[rows])


def test_leave_one_out_counts__patterns_equal_targets_up_to_the_limit() -> None:
    rng = np.random.default_rng(11)
    n = ev.PATTERN_MAX_LINES
    y = rng.choice(np.array([0.0, 1.0, np.nan]), size=(n, 3000), p=[0.5, 0.3, 0.2])
    patterns = ev.leave_one_out_counts(y, method="patterns")
    np.testing.assert_array_equal(patterns, ev.leave_one_out_counts(y, method="targets"))
    np.testing.assert_array_equal(patterns[[2]], _naive_leave_one_out(y)[[2]])
    # One more line than patterns take: "auto" counts target by target.
    wide = np.vstack([y, y[:1]])
    np.testing.assert_array_equal(
        ev.leave_one_out_counts(wide, [0]), _naive_leave_one_out(wide)[[0]]
    )


def test_leave_one_out_counts__integer_labels_have_no_nan_state() -> None:
    y = np.array([[1, 0, 1], [1, 1, 0]])
    counts = ev.leave_one_out_counts(y)
    assert counts[:, 0].sum() == 0
    np.testing.assert_array_equal(counts, _naive_leave_one_out(y.astype(float)))


def test_leave_one_out_counts__errors() -> None:
    with pytest.raises(ValueError, match="0, 1 or NaN"):
        ev.leave_one_out_counts(np.array([[0.0, 2.0], [1.0, np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        ev.leave_one_out_counts(np.zeros(4))
    with pytest.raises(ValueError, match="method"):
        ev.leave_one_out_counts(np.zeros((2, 4)), method="sort")
    with pytest.raises(ValueError, match="at most"):
        ev.leave_one_out_counts(np.zeros((ev.PATTERN_MAX_LINES + 1, 4)), method="patterns")


@settings(max_examples=100, deadline=None)
@given(line_labels(), st.integers(1, 50), st.integers(2, 4))
def test_average_activity_evaluation__matches_sklearn(
    y: np.ndarray, chunk: int, fan_in: int
) -> None:
    result = ev.average_activity_evaluation(y, chunks=(1, chunk), fan_in=fan_in)
    n = y.shape[0]
    assert result.targets == list(range(n))
    by_group = result.ap_by_group
    assert list(by_group.columns) == list(range(n))
    for t in range(n):
        expected = _average_activity_oracle(y, t)
        np.testing.assert_allclose(result.ap[t], expected["ap"], atol=TOL, equal_nan=True)
        np.testing.assert_allclose(by_group.loc[t], expected["groups"], atol=TOL, equal_nan=True)
        assert result.n_unscored[t] == expected["n_unscored"]
        assert result.score_counts(t)[2].sum() == expected["n_loci"]


def test_average_activity_evaluation__constant_scores_give_prevalence() -> None:
    # Every other line bound everywhere: the target's score is 1 at every locus, one
    # threshold, so AP = prevalence; all loci fall in group n_lines - 1.
    y = np.ones((4, 10), dtype=np.float32)
    y[0] = [1, 0, 0, 1, 0, np.nan, 0, 0, 1, 0]
    result = ev.average_activity_evaluation(y, [0])
    assert result.ap[0] == pytest.approx(3 / 9, abs=1e-15)
    assert result.ap[0] == pytest.approx(_sklearn_ap(y[0], np.ones(10)), abs=TOL)
    assert result.ap_by_group.loc[0, 3] == pytest.approx(3 / 9, abs=1e-15)
    assert result.ap_by_group.loc[0, [0, 1, 2]].isna().all()
    np.testing.assert_array_equal(result.score_counts(0)[0], [1.0])


def test_average_activity_evaluation__hand_example_table() -> None:
    # Target row 0; others rows 1-2. Loci:
    #   0: T=1, others (1, 1) -> score 1,   group 2
    #   1: T=0, others (1, 0) -> score 1/2, group 1
    #   2: T=1, others (0, NaN) -> score 0, group 0
    #   3: T=1, others (NaN, NaN) -> unscored
    #   4: T=NaN, others (1, 1) -> unlabelled, dropped
    #   5: T=0, others (NaN, 1) -> score 1, group 1
    y = np.array(
        [
            [1, 0, 1, 1, np.nan, 0],
            [1, 1, 0, np.nan, 1, np.nan],
            [1, 0, np.nan, np.nan, 1, 1],
        ]
    )
    result = ev.average_activity_evaluation(y, [0])
    # Thresholds 1 (2 loci, 1 pos), 1/2 (1 locus, 0 pos), 0 (1 locus, 1 pos):
    # AP = 1/2 * 1/2 + 1/2 * 2/4 = 1/2.
    assert result.ap[0] == pytest.approx(0.5, abs=1e-15)
    assert result.n_unscored[0] == 1
    table = result.table().set_index("group")
    assert table.loc["all", ["n_loci", "n_positive"]].tolist() == [4, 2]
    assert table.loc[1, ["n_loci", "n_positive"]].tolist() == [2, 0]
    assert np.isnan(table.loc[1, "ap"])
    assert table.loc[0, "ap"] == 1.0 and table.loc[2, "ap"] == 1.0
    scores, positives, totals = result.score_counts(0)
    np.testing.assert_array_equal(scores, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(positives, [1, 0, 1])
    np.testing.assert_array_equal(totals, [1, 1, 2])


def test_average_activity_evaluation__matches_the_separate_chunked_functions() -> None:
    # The cube's layout (one line per chunk along cell_type) and the former pipeline:
    # lazy mean of the others, unscored loci masked, average_precision_dask overall and
    # partition_by_activity + partitioned_ap_dask per group.
    rng = np.random.default_rng(12)
    n, m = 7, 4000
    common = rng.random(m) < 0.2
    y = (common[None, :] ^ (rng.random((n, m)) < 0.15)).astype(np.float32)
    y[rng.random(y.shape) < 0.1] = np.nan
    # Loci 0-19 labelled in D alone, 20-39 in A alone: unscored when D (A) is held out.
    y[:, :40] = np.nan
    y[3, :20] = 1.0
    y[0, 20:40] = 0.0
    names = ["A", "B", "C", "D", "E", "F", "G"]
    labels = xr.DataArray(
        y, dims=("cell_type", "locus"), coords={"cell_type": names, "locus": np.arange(m)}
    ).chunk({"cell_type": 1, "locus": 700})
    result = ev.average_activity_evaluation(labels, ["D", "A"])
    assert result.targets == ["D", "A"]
    for target in ["D", "A"]:
        others = labels.sel(cell_type=[c for c in names if c != target])
        score = others.mean("cell_type", skipna=True)
        label = labels.sel(cell_type=target)
        label = label.where(score.notnull())
        ap, counts = ev.average_precision_dask(label, score.fillna(0.0), return_counts=True)
        assert result.ap[target] == pytest.approx(ap, abs=TOL)
        got = result.score_counts(target)
        np.testing.assert_allclose(got[0], counts[0], rtol=1e-6)  # float32 means
        np.testing.assert_array_equal(got[1], counts[1])
        np.testing.assert_array_equal(got[2], counts[2])
        by_group, group_counts = ev.partitioned_ap_dask(
            label, score.fillna(0.0), ev.partition_by_activity(others), return_counts=True
        )
        for g, value in by_group.items():
            assert np.isclose(result.ap_by_group.loc[target, g], value, atol=TOL, equal_nan=True)
            np.testing.assert_array_equal(result.group_counts(target)[g][2], group_counts[g][2])
        unscored = int((labels.sel(cell_type=target).notnull() & score.isnull()).sum())
        assert result.n_unscored[target] == unscored == 20


def test_average_activity_evaluation__errors() -> None:
    y = np.zeros((3, 5))
    with pytest.raises(ValueError, match="not lines"):
        ev.average_activity_evaluation(y, [5])
    with pytest.raises(ValueError, match="fan_in"):
        ev.average_activity_evaluation(y, fan_in=1)
    with pytest.raises(ValueError, match="2-D"):
        ev.average_activity_evaluation(xr.DataArray(np.zeros(5), dims="locus"))
    with pytest.raises(KeyError, match="not one of the targets"):
        ev.average_activity_evaluation(y, [0]).score_counts(1)


@st.composite
def rows_of_scores(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores (n_rows, n), NaN in both, at least one positive scored item per row."""
    n_rows = draw(st.integers(1, 4))
    rows = [draw(labelled_scores(nan_labels=True)) for _ in range(n_rows)]
    n = min(y.size for y, _ in rows)
    y = np.stack([r[0][:n] for r in rows])
    s = np.stack([r[1][:n] for r in rows])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    s[rng.random(s.shape) < draw(st.sampled_from([0.0, 0.2]))] = np.nan
    return y, s


@settings(max_examples=100, deadline=None)
@given(rows_of_scores(), st.integers(1, 64), st.integers(1, 3), st.integers(2, 4))
def test_average_precision_by_cell_type__matches_sklearn(
    data: tuple[np.ndarray, np.ndarray], chunk: int, row_chunk: int, fan_in: int
) -> None:
    y, s = data
    got = ev.average_precision_by_cell_type(
        da.from_array(y, chunks=(row_chunk, chunk)),
        da.from_array(s, chunks=(1, max(1, chunk // 2))),
        fan_in=fan_in,
    )
    assert list(got.index) == [*range(y.shape[0]), "pooled"]
    scored = ~np.isnan(y) & ~np.isnan(s)
    for i in range(y.shape[0]):
        m = scored[i]
        expected = _sklearn_ap(y[i][m], s[i][m]) if np.any(y[i][m] == 1) else np.nan
        np.testing.assert_allclose(got.loc[i, "ap"], expected, atol=TOL, equal_nan=True)
        assert got.loc[i, "n_unscored"] == np.sum(~np.isnan(y[i]) & np.isnan(s[i]))
        assert got.loc[i, "n_loci"] == m.sum()
        assert got.loc[i, "n_positive"] == np.sum(y[i][m] == 1)
    pooled = _sklearn_ap(y[scored], s[scored]) if np.any(y[scored] == 1) else np.nan
    np.testing.assert_allclose(got.loc["pooled", "ap"], pooled, atol=TOL, equal_nan=True)
    assert got.loc["pooled", "n_unscored"] == got["n_unscored"].iloc[:-1].sum()


def test_average_precision_by_cell_type__matches_the_separate_functions() -> None:
    rng = np.random.default_rng(13)
    y = (rng.random((3, 600)) < 0.3).astype(np.float32)
    y[rng.random(y.shape) < 0.1] = np.nan
    s = np.round(rng.random((3, 600)) * 5) / 5
    s[:, :30] = np.nan
    coords = {"cell_type": ["A", "B", "C"], "locus": np.arange(600)}
    y_da = xr.DataArray(y, dims=("cell_type", "locus"), coords=coords).chunk({"locus": 128})
    # Same loci, dims in the other order: matched by name.
    s_da = xr.DataArray(s, dims=("cell_type", "locus"), coords=coords).T
    got = ev.average_precision_by_cell_type(y_da, s_da)
    label = y_da.where(s_da.notnull())
    for ct in ["A", "B", "C"]:
        sep = ev.average_precision(label.sel(cell_type=ct), s_da.fillna(0).sel(cell_type=ct))
        assert got.loc[ct, "ap"] == pytest.approx(sep, abs=TOL)
    pooled = ev.average_precision_dask(label, s_da.fillna(0).transpose(*label.dims))
    assert got.loc["pooled", "ap"] == pytest.approx(pooled, abs=TOL)
    assert got["n_unscored"].iloc[:-1].tolist() == [
        int(np.sum(~np.isnan(y[i, :30]))) for i in range(3)
    ]
    no_pool = ev.average_precision_by_cell_type(y, s, pooled=False, chunks=(3, 100))
    assert list(no_pool.index) == [0, 1, 2]
    np.testing.assert_allclose(no_pool["ap"], got["ap"].iloc[:-1], atol=1e-15)


def test_average_precision_by_cell_type__errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        ev.average_precision_by_cell_type(np.zeros((2, 5)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="2-D"):
        ev.average_precision_by_cell_type(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="0, 1 or NaN"):
        ev.average_precision_by_cell_type(np.full((1, 3), 2.0), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="fan_in"):
        ev.average_precision_by_cell_type(np.zeros((1, 3)), np.zeros((1, 3)), fan_in=1)
