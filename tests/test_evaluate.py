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

TOL = 1e-9


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
    assert list(df.columns) == ["group", "predictor", "n_loci", "n_positive", "prevalence", "ap"]
    assert len(df) == 4 * 2
    for g in (1, 2):
        m = (n_active == g) & ~np.isnan(y)
        for name, s in scores.items():
            row = df[(df.group == g) & (df.predictor == name)].iloc[0]
            assert row.n_loci == m.sum()
            assert row.n_positive == (y[m] == 1).sum()
            assert row.prevalence == pytest.approx((y[m] == 1).mean())
            assert row.ap == pytest.approx(average_precision_score(y[m], s[m]), abs=TOL)
    assert df[df.group == 0].ap.isna().all()
    all_rows = df[df.group == "all"].set_index("predictor")
    assert all_rows.loc["model", "ap"] == pytest.approx(_sklearn_ap(y, scores["model"]), abs=TOL)


def test_partitioned_evaluation__size_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        ev.partitioned_evaluation(np.ones(4), {"m": np.ones(3)}, np.zeros(4, int))


# ---------------------------------------------------------------- Mann-Whitney


def test_mann_whitney_by_group__matches_scipy_per_group() -> None:
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2])
    a = np.array([0.9, 0.8, 0.7, 0.95, 0.1, 0.5, 0.3, 0.2, 0.4, 0.6, 0.6, 0.1])
    b = np.array([0.1, 0.2, 0.3, 0.25, 0.6, 0.7, 0.8, 0.9, 0.55, 0.6, 0.2, 0.3])
    df = ev.mann_whitney_by_group(a, b, groups)
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


def test_mann_whitney_by_group__restricted_to_positive_loci() -> None:
    rng = np.random.default_rng(7)
    n = 120
    groups = rng.integers(0, 3, n)
    labels = (rng.random(n) < 0.5).astype(float)
    labels[:5] = np.nan
    a, b = rng.random(n), rng.random(n)
    for on, value in (("positive", 1.0), ("negative", 0.0)):
        df = ev.mann_whitney_by_group(a, b, groups, "less", labels=labels, on=on)
        for g in range(3):
            m = (groups == g) & (labels == value)
            ref = stats.mannwhitneyu(a[m], b[m], alternative="less")
            row = df[df.group == g].iloc[0]
            assert row.n == m.sum()
            assert row.U == pytest.approx(ref.statistic)
            assert row.p_value == pytest.approx(ref.pvalue)


def test_mann_whitney_by_group__empty_group_is_nan_and_errors() -> None:
    df = ev.mann_whitney_by_group([0.1, 0.2], [0.3, 0.4], [0, 1], labels=[1.0, 0.0], on="positive")
    assert df.loc[df.group == 1, "n"].item() == 0
    assert np.isnan(df.loc[df.group == 1, "p_value"].item())
    with pytest.raises(ValueError, match="needs labels"):
        ev.mann_whitney_by_group([0.1], [0.2], [0], on="positive")
    with pytest.raises(ValueError, match="on must be"):
        ev.mann_whitney_by_group([0.1], [0.2], [0], on="bogus")  # type: ignore[arg-type]


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


# ---------------------------------------------------------------- baselines


def test_baseline_strength__hand_made_four_cell_types() -> None:
    labels = xr.DataArray(
        [
            [1, 1, 0, 0, 1, 0],  # T (target)
            [1, 1, 0, 0, 1, 0],  # A: identical -> AP 1
            [0, 0, 1, 1, 0, 1],  # B: opposite -> everyone tied within each class
            [1, 0, np.nan, 0, 1, 0],  # C: NaN locus left out
        ],
        dims=("cell_type", "locus"),
        coords={"cell_type": ["T", "A", "B", "C"]},
    )
    df = ev.baseline_strength(labels, "T", {"A": 0.9, "B": -0.5})
    assert list(df.cell_type) == ["A", "B", "C"]
    assert df.similarity.iloc[0] == 0.9
    assert np.isnan(df.similarity.iloc[2])
    assert df.ap.iloc[0] == pytest.approx(1.0)
    # B: score 1 on the 3 negatives (P=0), score 0 adds the 3 positives: P=3/6, R=1.
    assert df.ap.iloc[1] == pytest.approx(0.5)
    # C on loci 0,1,3,4,5: y=[1,1,0,1,0], s=[1,0,0,1,0]; t=1: P=1, R=2/3; t=0: P=3/5.
    # AP = 2/3 * 1 + 1/3 * 3/5 = 13/15.
    assert df.ap.iloc[2] == pytest.approx(13 / 15)
    assert df.ap.iloc[2] == pytest.approx(
        average_precision_score([1, 1, 0, 1, 0], [1, 0, 0, 1, 0]), abs=TOL
    )


def test_baseline_strength__unknown_target_raises() -> None:
    labels = xr.DataArray([[1.0, 0.0]], dims=("cell_type", "locus"), coords={"cell_type": ["A"]})
    with pytest.raises(ValueError, match="not a cell_type"):
        ev.baseline_strength(labels, "Z", pd.Series({"A": 1.0}))


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
