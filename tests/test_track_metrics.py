"""The imputation metrics: fast path against the oracle, the oracle against independent ones,
and bootstrap replicates against explicitly resampled tracks."""

from __future__ import annotations

import math
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats as sps
from sklearn.metrics import mean_squared_error

from pitfall import track_metrics as tm

# No deadline: the first example of each test pays the one-off Numba compile or cache load.
examples = settings(max_examples=60, deadline=None)

CORRELATIONS = ("gwcorr", "gwspear")
# Small sets of values: ties everywhere, -0.0 against 0.0, values one float32 apart that are
# equal in float32 (a float64 track's keys collide there), a large offset.
TIE_VALUES = [-3.0, -0.0, 0.0, 0.5, 1.0, 1.0 + 1e-12, 2.0, 7.0]
OFFSET = 1e4


@st.composite
def tracks(draw: st.DrawFn) -> dict:
    """Observed and predicted tracks with masks, variance, blocks and a chunk size."""
    n = draw(st.integers(1, 300))
    kind = draw(st.sampled_from(["ties", "floats", "offset", "constant"]))
    dtype_t = draw(st.sampled_from([np.float32, np.float64]))
    dtype_p = draw(st.sampled_from([np.float32, np.float64]))
    if kind == "ties":
        elements = st.sampled_from(TIE_VALUES)
    elif kind == "floats":
        elements = st.floats(-1e3, 1e3, width=32)
    elif kind == "offset":
        elements = st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0]).map(lambda v: OFFSET + v)
    else:
        elements = st.just(draw(st.sampled_from(TIE_VALUES)))
    y_true = draw(hnp.arrays(np.float64, n, elements=elements))
    how = draw(st.sampled_from(["noise", "independent", "constant", "same"]))
    if how == "noise":
        noise = draw(hnp.arrays(np.float64, n, elements=st.sampled_from([-1.0, 0.0, 0.5, 2.0])))
        y_pred = y_true + noise
    elif how == "independent":
        y_pred = draw(hnp.arrays(np.float64, n, elements=elements))
    elif how == "constant":
        y_pred = np.full(n, draw(st.sampled_from(TIE_VALUES)))
    else:
        y_pred = y_true.copy()
    nan_rate = draw(st.sampled_from([0.0, 0.2, 1.0]))
    nan_t = draw(hnp.arrays(np.float64, n, elements=st.floats(0, 1))) < nan_rate
    nan_p = draw(hnp.arrays(np.float64, n, elements=st.floats(0, 1))) < nan_rate / 2
    y_true[nan_t] = np.nan
    y_pred[nan_p] = np.nan
    regions = {}
    for kind_ in tm.REGION_KINDS:
        if draw(st.booleans()):
            regions[kind_] = draw(hnp.arrays(np.bool_, n))  # may be empty, may overlap
    variance = None
    if draw(st.booleans()):
        variance = draw(
            hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 0.0, 0.1, 2.5, np.nan]))
        )
    n_blocks = draw(st.integers(1, 8))
    blocks = draw(hnp.arrays(np.int64, n, elements=st.integers(0, n_blocks - 1)))
    chunk_size = draw(st.sampled_from([1, 7, 64, 1_000_000]))
    return {
        "y_true": y_true.astype(dtype_t),
        "y_pred": y_pred.astype(dtype_p),
        "regions": regions,
        "variance": variance,
        "blocks": blocks,
        "n_blocks": n_blocks,
        "chunk_size": chunk_size,
    }


def corr_atol(*ys: np.ndarray) -> float:
    """Tolerance of a correlation: 1e-9, plus what numpy's centring of a nearly constant
    track loses (about ``eps * max|y| / ptp(y)`` per value: {1, 1 + 1e-12} keeps 4 digits)."""
    atol = 1e-9
    for y in ys:
        y = np.asarray(y, dtype=np.float64)
        y = y[~np.isnan(y)]
        if y.size and np.ptp(y) > 0:
            atol += 16 * np.finfo(np.float64).eps * np.abs(y).max() / np.ptp(y)
    return atol


def assert_metrics_close(got: dict, want: dict, rtol: float = 1e-9, corr_tol: float = 1e-9) -> None:
    assert set(got) == set(tm.METRICS) == set(want)
    for name in tm.METRICS:
        a, b = float(got[name]), float(want[name])
        atol = corr_tol if name in CORRELATIONS else 0.0
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=atol) or (
            math.isnan(a) and math.isnan(b)
        ), f"{name}: {a!r} vs {b!r}"


def resample(arr: np.ndarray | None, blocks: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
    """The bins of each block repeated by its multiplicity (the replicate's data)."""
    if arr is None:
        return None
    parts = [np.tile(arr[blocks == b], int(c)) for b, c in enumerate(counts)]
    return np.concatenate(parts) if parts else arr[:0]


# --------------------------------------------------------------------------- fast vs oracle


@examples
@given(tracks())
def test_track_metrics__matches_naive(data: dict) -> None:
    fast = tm.track_metrics(
        data["y_true"],
        data["y_pred"],
        blocks=data["blocks"],
        regions=data["regions"],
        variance=data["variance"],
        chunk_size=data["chunk_size"],
    )
    naive = tm.track_metrics_naive(
        data["y_true"], data["y_pred"], regions=data["regions"], variance=data["variance"]
    )
    assert_metrics_close(fast, naive, corr_tol=corr_atol(data["y_true"], data["y_pred"]))


@examples
@given(tracks())
def test_track_metrics__without_blocks_matches_naive(data: dict) -> None:
    fast = tm.track_metrics(
        data["y_true"], data["y_pred"], regions=data["regions"], chunk_size=data["chunk_size"]
    )
    naive = tm.track_metrics_naive(data["y_true"], data["y_pred"], regions=data["regions"])
    assert_metrics_close(fast, naive, corr_tol=corr_atol(data["y_true"], data["y_pred"]))


@examples
@given(tracks())
def test_block_statistics__matches_naive_twin(data: dict) -> None:
    args = (data["y_true"], data["y_pred"], data["blocks"], data["n_blocks"])
    kwargs = {"regions": data["regions"], "variance": data["variance"]}
    fast = tm.block_statistics(*args, **kwargs, chunk_size=data["chunk_size"])
    naive = tm.naive_block_statistics(*args, **kwargs)
    assert fast.shape == naive.shape == (data["n_blocks"], len(tm.STATISTICS))
    assert fast.dtype == np.float64
    scale = np.maximum(1.0, np.abs(naive).max(axis=0))
    np.testing.assert_allclose(fast, naive, rtol=1e-9, atol=1e-12 * scale.max())


@examples
@given(tracks())
def test_global_ranks__matches_rankdata_twin(data: dict) -> None:
    got = tm.global_ranks(data["y_true"], data["y_pred"], chunk_size=data["chunk_size"])
    want = tm.naive_global_ranks(data["y_true"], data["y_pred"])
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.int32
        np.testing.assert_array_equal(g, w)


@examples
@given(tracks())
def test_top_thresholds__matches_sort(data: dict) -> None:
    yt = data["y_true"].astype(np.float64)
    yp = data["y_pred"].astype(np.float64)
    keep = ~(np.isnan(yt) | np.isnan(yp))
    got = tm.top_thresholds(data["y_true"], data["y_pred"], chunk_size=data["chunk_size"])
    if not keep.any():
        assert all(math.isnan(t) for t in got)
        return
    n_top = int(keep.sum() * 0.01)
    assert got == (np.sort(yt[keep])[-n_top], np.sort(yp[keep])[-n_top])


def test_global_ranks__float64_values_equal_in_float32() -> None:
    # 1 + 1e-12 and 1 round to the same float32: one 32-bit key, two ranks.
    y = np.array([1.0 + 1e-12, 1.0, 1.0 + 2e-12, -0.0, 0.0, 1.0])
    rank_true, _ = tm.global_ranks(y, np.zeros(6))
    np.testing.assert_array_equal((rank_true + 7) / 2, [5, 3.5, 6, 1.5, 1.5, 3.5])


def test_track_metrics__large_offset_keeps_precision() -> None:
    rng = np.random.default_rng(0)
    for dtype, offset in ((np.float64, 1e8), (np.float32, 1e4)):
        noise = rng.normal(size=100_000)
        y_true = (offset + noise).astype(dtype)
        y_pred = (offset + 0.8 * noise + 0.6 * rng.normal(size=noise.size)).astype(dtype)
        fast = tm.track_metrics(y_true, y_pred, chunk_size=10_000)
        naive = tm.track_metrics_naive(y_true, y_pred)
        assert abs(fast["gwcorr"] - naive["gwcorr"]) < 1e-12
        assert 0.5 < fast["gwcorr"] < 1
        assert_metrics_close(fast, naive)


def test_track_metrics__all_nan_and_empty_are_nan() -> None:
    for n in (0, 5):
        y = np.full(n, np.nan, dtype=np.float32)
        regions = {kind: np.ones(n, dtype=bool) for kind in tm.REGION_KINDS}
        for fn in (tm.track_metrics, tm.track_metrics_naive):
            got = fn(y, y, regions=regions, variance=np.ones(n))
            assert all(math.isnan(v) for v in got.values()), got


def test_track_metrics__constant_tracks_and_zero_weights_are_nan() -> None:
    y_true = np.arange(10.0)
    constant = np.full(10, 3.0)
    for fn in (tm.track_metrics, tm.track_metrics_naive):
        got = fn(y_true, constant, regions={"prom": np.zeros(10, bool)}, variance=np.zeros(10))
        for name in ("gwcorr", "gwspear", "mseprom", "msegene", "mseenh", "msevar"):
            assert math.isnan(got[name]), name
        assert got["mse"] == np.mean((y_true - 3.0) ** 2)


def test_track_metrics__rejects_bad_inputs() -> None:
    y = np.zeros(4)
    with pytest.raises(ValueError, match="shape"):
        tm.track_metrics(y, np.zeros(3))
    with pytest.raises(ValueError, match="unknown region"):
        tm.track_metrics(y, y, regions={"promoter": np.ones(4, bool)})
    with pytest.raises(ValueError, match="outside"):
        tm.block_statistics(y, y, np.array([0, 1, 2, 3]), 3)
    with pytest.raises(ValueError, match="outside"):
        tm.block_statistics(y, y, np.array([0, -1, 0, 0]), 3)
    with pytest.raises(ValueError, match="stats"):
        tm.metrics_from_statistics(np.zeros(3))


def test_track_metrics__float32_tracks_are_not_copied_to_float64() -> None:
    # The whole-track work is one 8-byte sort key and two int32 ranks per bin; a float64
    # copy of both tracks alone would be another 16 bytes per bin.
    n = 200_000
    rng = np.random.default_rng(1)
    y_true = rng.gamma(0.5, 2.0, n).astype(np.float32)
    y_pred = (y_true + rng.normal(size=n)).astype(np.float32)
    blocks = np.arange(n) // 5_000
    tm.track_metrics(y_true[:10], y_pred[:10])  # compile outside the measurement
    tracemalloc.start()
    tm.track_metrics(y_true, y_pred, blocks=blocks, chunk_size=50_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 17 * n


def test_lower_is_better__the_errors() -> None:
    assert tm.LOWER_IS_BETTER == set(tm.METRICS) - {"gwcorr", "gwspear"}
    assert len(tm.METRICS) == 9


# --------------------------------------------------------------------------- oracle vs others


@examples
@given(tracks())
def test_track_metrics_naive__matches_scipy_and_sklearn(data: dict) -> None:
    yt = data["y_true"].astype(np.float64)
    yp = data["y_pred"].astype(np.float64)
    keep = ~(np.isnan(yt) | np.isnan(yp))
    t, p = yt[keep], yp[keep]
    got = tm.track_metrics_naive(yt, yp, regions=data["regions"], variance=data["variance"])
    if t.size:
        assert math.isclose(got["mse"], mean_squared_error(t, p), rel_tol=1e-12)
    if t.size >= 2 and np.ptp(t) > 0 and np.ptp(p) > 0:
        with warnings.catch_warnings():
            # scipy's caution about values close to their mean (1 and 1 + 1e-12): the
            # tolerance widens there.
            warnings.simplefilter("ignore", sps.NearConstantInputWarning)
            pearson = sps.pearsonr(t, p).statistic
        assert math.isclose(got["gwcorr"], pearson, abs_tol=corr_atol(t, p))
        spearman = sps.pearsonr(sps.rankdata(t), sps.rankdata(p)).statistic
        assert math.isclose(got["gwspear"], spearman, abs_tol=1e-12)
    else:
        assert math.isnan(got["gwcorr"]) and math.isnan(got["gwspear"])
    for kind, mask in data["regions"].items():
        m = mask[keep]
        want = mean_squared_error(t[m], p[m]) if m.any() else math.nan
        assert math.isclose(got[tm.REGION_KINDS[kind]], want, rel_tol=1e-12) or math.isnan(want)
    if data["variance"] is not None:
        v = data["variance"][keep]
        ok = ~np.isnan(v)
        if v[ok].sum() > 0:
            want = mean_squared_error(t[ok], p[ok], sample_weight=v[ok])
            assert math.isclose(got["msevar"], want, rel_tol=1e-12)
        else:
            assert math.isnan(got["msevar"])


def test_mse1obs__ties_at_threshold_are_all_in() -> None:
    # 200 bins: n = int(200 * 0.01) = 2, the threshold is the 2nd largest value, 7, and all
    # three bins at 7 are in (not just 2). mse1imp: y_pred's 2nd largest is 9; two bins.
    y_true = np.zeros(200)
    y_true[[10, 20, 30]] = 7.0
    y_true[40] = 5.0
    y_pred = np.ones(200)
    y_pred[[10, 20, 30]] = [9.0, 4.0, 7.0]
    y_pred[50] = 10.0
    want_obs = ((7 - 9) ** 2 + (7 - 4) ** 2 + 0**2) / 3
    want_imp = ((7 - 9) ** 2 + (0 - 10) ** 2) / 2
    for fn in (tm.track_metrics, tm.track_metrics_naive):
        got = fn(y_true, y_pred)
        assert got["mse1obs"] == pytest.approx(want_obs, rel=1e-12)
        assert got["mse1imp"] == pytest.approx(want_imp, rel=1e-12)
    assert tm.top_thresholds(y_true, y_pred) == (7.0, 9.0)


def test_mse1obs__fewer_than_100_bins_take_every_bin() -> None:
    # n = int(99 * 0.01) = 0 and the challenge's sorted[-0] is the smallest value.
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.normal(size=99), rng.normal(size=99)
    for fn in (tm.track_metrics, tm.track_metrics_naive):
        got = fn(y_true, y_pred)
        assert got["mse1obs"] == pytest.approx(got["mse"], rel=1e-12)
        assert got["mse1imp"] == pytest.approx(got["mse"], rel=1e-12)


def test_mse1obs__nan_bins_are_out_of_the_count() -> None:
    # 300 bins of which 100 NaN: N = 200 kept, n = 2.
    y_true = np.zeros(300)
    y_true[:100] = np.nan
    y_true[[150, 160]] = [3.0, 4.0]
    y_true[170] = 2.0
    y_pred = np.zeros(300)
    for fn in (tm.track_metrics, tm.track_metrics_naive):
        assert fn(y_true, y_pred)["mse1obs"] == pytest.approx((9 + 16) / 2, rel=1e-12)


# --------------------------------------------------------------------------- bootstrap


@settings(max_examples=40, deadline=None)
@given(tracks(), st.integers(0, 2**32 - 1))
def test_metrics_from_statistics__replicates_match_resampled_data(data: dict, seed: int) -> None:
    yt, yp, blocks, n_blocks = data["y_true"], data["y_pred"], data["blocks"], data["n_blocks"]
    regions, variance = data["regions"], data["variance"]
    stats = tm.block_statistics(yt, yp, blocks, n_blocks, regions=regions, variance=variance)
    counts = np.random.default_rng(seed).multinomial(n_blocks, np.full(n_blocks, 1 / n_blocks), 4)
    replicates = tm.metrics_from_statistics(counts @ stats)
    assert all(v.shape == (4,) for v in replicates.values())

    # The approximation's fixed parts, from the full track.
    rank_true, rank_pred = tm.naive_global_ranks(yt, yp)
    t_obs, t_imp = tm.top_thresholds(yt, yp)
    for r, w in enumerate(counts):
        rs = {k: resample(m, blocks, w) for k, m in regions.items()}
        t64 = resample(yt.astype(np.float64), blocks, w)
        p64 = resample(yp.astype(np.float64), blocks, w)
        exact = tm.track_metrics_naive(t64, p64, regions=rs, variance=resample(variance, blocks, w))
        got = {name: replicates[name][r] for name in tm.METRICS}
        tol = corr_atol(t64, p64)
        for name in ("mse", "mseprom", "msegene", "mseenh", "msevar", "gwcorr"):
            assert_metrics_close({**exact, name: got[name]}, exact, corr_tol=tol)

        keep = ~(np.isnan(t64) | np.isnan(p64))
        t, p = t64[keep], p64[keep]
        rt = resample(rank_true, blocks, w)[keep].astype(np.float64)
        rp = resample(rank_pred, blocks, w)[keep].astype(np.float64)
        se = (t - p) ** 2
        fixed = dict(exact)
        fixed["gwspear"] = (
            np.corrcoef(rt, rp)[0, 1]
            if rt.size >= 2 and np.ptp(rt) > 0 and np.ptp(rp) > 0
            else math.nan
        )
        top_o, top_i = t >= t_obs, p >= t_imp
        fixed["mse1obs"] = se[top_o].mean() if top_o.any() else math.nan
        fixed["mse1imp"] = se[top_i].mean() if top_i.any() else math.nan
        assert_metrics_close(got, fixed, corr_tol=tol)


def test_metrics_from_statistics__point_and_replicate_shapes_agree() -> None:
    rng = np.random.default_rng(3)
    yt = rng.normal(size=1_000)
    yp = yt + rng.normal(size=1_000)
    blocks = np.arange(1_000) // 100
    stats = tm.block_statistics(yt, yp, blocks, 10, variance=rng.random(1_000))
    point = tm.metrics_from_statistics(stats.sum(axis=0))
    stacked = tm.metrics_from_statistics(np.stack([stats.sum(axis=0), stats[:3].sum(axis=0)]))
    assert all(isinstance(v, float) for v in point.values())
    for name in tm.METRICS:
        assert stacked[name].shape == (2,)
        assert stacked[name][0] == point[name] or (
            math.isnan(point[name]) and math.isnan(stacked[name][0])
        )


# --------------------------------------------------------------------------- correlations


@examples
@given(tracks())
def test_correlations__match_track_metrics_and_scipy(data: dict) -> None:
    yt, yp = data["y_true"], data["y_pred"]
    pearson, spearman = tm.correlations(yt, yp, chunk_size=data["chunk_size"])
    full = tm.track_metrics(yt, yp)
    # the same sums in the same order: the same Pearson
    assert pearson == full["gwcorr"] or (math.isnan(pearson) and math.isnan(full["gwcorr"]))
    keep = ~(np.isnan(yt) | np.isnan(yp))
    a, b = yt[keep].astype(np.float64), yp[keep].astype(np.float64)
    if keep.sum() < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        assert math.isnan(spearman)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = sps.spearmanr(a, b).statistic
    assert math.isclose(spearman, want, abs_tol=1e-9)
    assert math.isclose(spearman, full["gwspear"], abs_tol=1e-12)


def test_correlations__one_sort_word_per_bin() -> None:
    rng = np.random.default_rng(0)
    n = 400_000
    yt = rng.normal(size=n)  # float64 values float32 cannot hold: ranked first
    yp = rng.integers(0, 7, n).astype(np.float32)
    tm.correlations(yt[:100], yp[:100])  # compile or load the kernels outside the trace
    tracemalloc.start()
    tm.correlations(yt, yp)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # the 8-byte words; both tracks' ranks at once (track_metrics) would take 16 bytes a bin
    assert peak < 9 * n
