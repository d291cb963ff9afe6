"""Baselines against hand-computed values on a tiny cube."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.metrics import average_precision_score

from pitfall import baselines, cube, evaluate, splits

# 4 cell types x 6 loci (chr1: 0-2, chr2: 3-5); T is the target.
LABELS = {
    "T": [1, 0, 1, 1, 0, 0],
    "A": [1, 0, 0, 1, 0, np.nan],
    "B": [1, 1, 0, 1, 0, 0],
    "C": [0, 0, 1, 0, 1, 1],
}
# Signal: A's follows T's exactly (up to scale), B's weakly, C's is anticorrelated.
SIGNAL = {
    "T": [3.0, 0.0, 2.0, 3.0, 1.0, 0.0],
    "A": [6.0, 0.0, 4.0, 6.0, 2.0, 0.0],
    "B": [1.0, 1.0, 0.0, 2.0, 2.0, 1.0],
    "C": [-3.0, 0.0, -2.0, -3.0, -1.0, 0.0],
}


@pytest.fixture
def ds(tmp_path: Path):
    loci = cube.make_loci(["chr1"] * 3 + ["chr2"] * 3, np.arange(6) * 100, np.arange(6) * 100 + 50)
    slabs = [
        cube.make_slab(
            ct,
            loci,
            label=np.array(LABELS[ct], dtype=float),
            signal=np.array(SIGNAL[ct])[:, None],
            marks=["H3K4me3"],
            assembly="x",
        )
        for ct in LABELS
    ]
    cube.create_cube(tmp_path / "c", slabs)
    return cube.open_cube(tmp_path / "c")


def _split(setting="hybrid"):
    return splits.Split(
        ("A", "B"), ("chr2",), ("C",), ("chr2",), ("T",), ("chr1",), setting=setting
    )


def test_average_activity__hand_computed(ds) -> None:
    s = _split()
    model = baselines.AverageActivity(ds).fit(s.train(ds), s.valid(ds))
    pred = model.predict(s.test(ds))
    assert pred.dims == ("cell_type", "locus")
    assert list(pred["cell_type"].values) == ["T"]
    # chr1 loci 0-2, mean over A, B, C
    np.testing.assert_allclose(pred.values[0], [2 / 3, 1 / 3, 1 / 3])
    without_valid = baselines.AverageActivity(ds, use_valid=False).fit(s.train(ds), s.valid(ds))
    np.testing.assert_allclose(without_valid.predict(s.test(ds)).values[0], [1.0, 0.5, 0.0])


def test_average_activity__skips_nan_labels(ds) -> None:
    s = splits.Split(("A", "B"), ("chr1",), (), (), ("T",), ("chr2",), setting="hybrid")
    pred = baselines.AverageActivity(ds).fit(s.train(ds)).predict(s.test(ds))
    # locus 5: A is NaN, B is 0
    np.testing.assert_allclose(pred.values[0], [1.0, 0.0, 0.0])


def test_average_activity__is_lazy(ds) -> None:
    s = _split()
    pred = baselines.AverageActivity(ds).fit(s.train(ds), s.valid(ds)).predict(s.test(ds))
    assert pred.chunks is not None


def test_average_activity__cross_chromosome_needs_other_cell_types(ds) -> None:
    s = splits.Split(("T",), ("chr2",), (), (), ("T",), ("chr1",), setting="cross-chromosome")
    with pytest.raises(ValueError, match="cell_types="):
        baselines.AverageActivity(ds).fit(s.train(ds)).predict(s.test(ds))
    pred = baselines.AverageActivity(ds, cell_types=["A", "B"]).fit(s.train(ds)).predict(s.test(ds))
    np.testing.assert_allclose(pred.values[0], [1.0, 0.5, 0.0])


def test_most_similar__picks_the_best_correlated_input(ds) -> None:
    s = _split()
    # candidates A, B over training loci chr2 (3-5): T=[3,1,0], A=[6,2,0] r=1, B=[2,2,1] r~0.76
    model = baselines.MostSimilar(ds).fit(s.train(ds), s.valid(ds))
    pred = model.predict(s.test(ds))
    best, r = model.chosen_["T"]
    assert best == "A"
    assert r == pytest.approx(1.0)
    np.testing.assert_array_equal(pred.values[0], LABELS["A"][:3])
    t, b = np.array([3.0, 1.0, 0.0]), np.array([2.0, 2.0, 1.0])
    assert model.similarity("T")["B"] == pytest.approx(np.corrcoef(t, b)[0, 1])


def test_cell_type_similarity__equals_pandas_pairwise_complete_in_blocks() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4, 50)) * [[1], [100], [0.01], [5]] + [[0], [1e4], [3], [0]]
    v[0, :10] = np.nan
    v[2, 5:20] = np.nan
    x = xr.DataArray(v, dims=("cell_type", "locus"), coords={"cell_type": list("abcd")})
    ref = pd.DataFrame(v.T, columns=list("abcd")).corr()
    for block in (7, 50, None):
        got = baselines.cell_type_similarity(x, block=block)
        np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), atol=1e-10)
    # marks flatten into the correlation: (cell_type, locus, mark)
    s = xr.DataArray(rng.normal(size=(3, 20, 2)), dims=("cell_type", "locus", "mark"))
    got = baselines.cell_type_similarity(s, block=6).to_numpy()
    np.testing.assert_allclose(got, np.corrcoef(s.values.reshape(3, -1)), atol=1e-12)


@pytest.mark.parametrize("on", ["label", "value"])
def test_most_similar__refuses_the_targets_the_model_must_predict(ds, on) -> None:
    with pytest.raises(ValueError, match=f"cannot compare cell types on '{on}'.*never sees"):
        baselines.MostSimilar(ds, on=on)
    with pytest.raises(ValueError, match="no 'position' variable"):
        baselines.MostSimilar(ds, on="position")


def _cube_with(tmp_path: Path, labels: dict, name: str):
    loci = cube.make_loci(["chr1"] * 3 + ["chr2"] * 3, np.arange(6) * 100, np.arange(6) * 100 + 50)
    slabs = [
        cube.make_slab(
            ct,
            loci,
            label=np.array(labels[ct], dtype=float),
            value=np.arange(6.0),
            signal=np.array(SIGNAL[ct])[:, None],
            marks=["H3K4me3"],
            assembly="x",
        )
        for ct in labels
    ]
    cube.create_cube(tmp_path / name, slabs)
    return cube.open_cube(tmp_path / name)


@pytest.mark.parametrize(
    ("setting", "hidden"),
    [
        # Across cell types and in the hybrid setting no label of the target is seen at all;
        # across chromosomes only its labels on the test chromosome are hidden.
        ("hybrid", slice(None)),
        ("cross-cell-type", slice(None)),
        ("cross-chromosome", slice(0, 3)),
    ],
)
def test_every_baseline__never_reads_target_labels_a_model_cannot_see(
    tmp_path, setting, hidden
) -> None:
    clean = _cube_with(tmp_path, LABELS, "clean")
    poisoned_labels = {k: list(v) for k, v in LABELS.items()}
    flipped = 1 - np.array(LABELS["T"], dtype=float)
    poisoned_labels["T"] = list(LABELS["T"])
    poisoned_labels["T"][hidden] = list(flipped[hidden])
    poisoned = _cube_with(tmp_path, poisoned_labels, "poisoned")
    if setting == "cross-chromosome":
        split = splits.Split(
            ("T",), ("chr2",), ("T",), ("chr2",), ("T",), ("chr1",), setting=setting
        )
    else:
        test_chroms = ("chr1",) if setting == "hybrid" else ("chr1", "chr2")
        train_chroms = ("chr2",) if setting == "hybrid" else ("chr1", "chr2")
        split = splits.Split(
            ("A", "B"), train_chroms, ("C",), train_chroms, ("T",), test_chroms, setting=setting
        )
    checked = 0
    for b in baselines.BASELINES.values():
        got = []
        for ds in (clean, poisoned):
            model = b.make(ds, split)
            if model is None:
                break
            model.fit(split.train(ds), split.valid(ds))
            got.append(model.predict(split.test(ds)).values)
        else:
            np.testing.assert_array_equal(got[0], got[1], err_msg=f"{b.name} read hidden labels")
            checked += 1
    assert checked >= 2  # average activity and random at least; most similar where it applies


def test_random_scores__ap_is_prevalence(ds) -> None:
    s = _split()
    test = s.test(ds)
    pred = baselines.RandomScores().fit(s.train(ds)).predict(test)
    y = test["label"].values.ravel()
    assert evaluate.average_precision(y, pred.values.ravel()) == pytest.approx(y.mean())
    assert evaluate.random_ap(y) == pytest.approx(2 / 3)


def _cross_cell_type(ds, target: str = "T") -> splits.Split:
    others = tuple(c for c in LABELS if c != target)
    chroms = ("chr1", "chr2")
    return splits.Split(others, chroms, (), (), (target,), chroms, setting="cross-cell-type")


def test_score_predictions__one_pass_matches_separate_functions(ds) -> None:
    # Two test cell types (so a pooled AP) and scores NaN at three labelled loci.
    chroms = ("chr1", "chr2")
    split = splits.Split(("A", "B"), chroms, (), (), ("T", "C"), chroms, "cross-cell-type")
    test = split.test(ds)
    scores = baselines.AverageActivity(ds).fit(split.train(ds)).predict(test)
    scores = scores.copy(data=scores.values.copy())
    scores.values[0, [1, 4]] = np.nan  # T labelled 0 there: unscored
    scores.values[1, 2] = np.nan  # C labelled 1 there: unscored
    got = baselines.score_predictions(test, scores)
    assert set(got) == {"T", "C", "pooled", "n_unscored"}
    assert got["n_unscored"] == 3
    label = test["label"].transpose("cell_type", "locus").values
    s = scores.values
    keep = ~np.isnan(s)
    for i, ct in enumerate(["T", "C"]):
        m = keep[i] & ~np.isnan(label[i])
        expected = evaluate.average_precision(label[i][m], s[i][m])
        assert got[ct] == pytest.approx(expected, abs=1e-12)
        assert got[ct] == pytest.approx(average_precision_score(label[i][m], s[i][m]), abs=1e-12)
    m = keep & ~np.isnan(label)
    assert got["pooled"] == pytest.approx(average_precision_score(label[m], s[m]), abs=1e-12)


def test_score_predictions__no_positive_raises(ds) -> None:
    s = splits.Split(("A", "B"), ("chr1",), (), (), ("T",), ("chr2",), setting="hybrid")
    test = s.test(ds)
    scores = baselines.AverageActivity(ds).fit(s.train(ds)).predict(test)
    # chr2's T labels are [1, 0, 0]; without locus 3 nothing positive is left.
    scores = scores.where(scores["locus"] != 3)
    with pytest.raises(ValueError, match="no positive"):
        baselines.score_predictions(test, scores)


@pytest.mark.parametrize("target", ["T", "A"])
def test_average_activity_evaluation__matches_baseline_and_score_predictions(ds, target) -> None:
    # The one pass over the cube against the baseline class, score_predictions and the
    # partitioned evaluation it replaces in the CTCF benchmark.
    split = _cross_cell_type(ds, target)
    train, test = split.train(ds), split.test(ds)
    scores = baselines.AverageActivity(ds).fit(train).predict(test)
    scored = baselines.score_predictions(test, scores)
    label = test["label"].sel(cell_type=target)
    score = scores.sel(cell_type=target)
    groups = evaluate.partition_by_activity(train["label"])
    by_group = evaluate.ap_by_group(label.where(score.notnull()), score.fillna(0.0), groups)
    one = evaluate.average_activity_evaluation(ds["label"], [target])
    assert one.ap[target] == pytest.approx(scored[target], abs=1e-12)
    assert one.n_unscored[target] == scored["n_unscored"]
    for g, ap in by_group.items():
        assert np.isclose(one.ap_by_group.loc[target, g], ap, atol=1e-12, equal_nan=True)


def test_single_cell_type_aps__hand_made_four_cell_types() -> None:
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
    df = baselines.single_cell_type_aps(labels, "T", {"A": 0.9, "B": -0.5})
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
        average_precision_score([1, 1, 0, 1, 0], [1, 0, 0, 1, 0]), abs=1e-12
    )


def test_single_cell_type_aps__unknown_target_raises() -> None:
    labels = xr.DataArray([[1.0, 0.0]], dims=("cell_type", "locus"), coords={"cell_type": ["A"]})
    with pytest.raises(ValueError, match="not a cell_type"):
        baselines.single_cell_type_aps(labels, "Z", pd.Series({"A": 1.0}))


# --------------------------------------------------------------------------------------------
# Imputation: the baselines of a continuous target track (TRACK_BASELINES)

IMP_MARKS = ["m0", "m1", "m2"]


def _imputation_cube(seed: int = 0) -> xr.Dataset:
    """5 cell types x 60 loci (chr1: 0-29, chr2: 30-59) x 3 marks; c4 lacks m2, c3 lacks m0."""
    rng = np.random.default_rng(seed)
    sig = rng.normal(size=(5, 60, 3)).astype(np.float32)
    sig[1] = sig[0] * 2 + rng.normal(0, 0.1, (60, 3))  # c1 follows the target c0
    obs = np.ones((5, 3), bool)
    obs[4, 2] = obs[3, 0] = False
    sig = np.where(obs[:, None, :], sig, np.nan)
    return xr.Dataset(
        {"signal": (("cell_type", "locus", "mark"), sig)},
        coords={
            "cell_type": [f"c{i}" for i in range(5)],
            "locus": np.arange(60),
            "mark": IMP_MARKS,
            "chrom": ("locus", np.array(["chr1"] * 30 + ["chr2"] * 30)),
            "observed": (("cell_type", "mark"), obs),
        },
    )


def _imputation_split(ds, setting):
    from pitfall.imputation import imputation_split

    return imputation_split(ds, setting, "c0", "m2", test_chroms=["chr2"])


@pytest.mark.parametrize("setting", ["cross-cell-type", "hybrid"])
def test_track_baselines__against_numpy(setting) -> None:
    ds = _imputation_cube()
    split = _imputation_split(ds, setting)
    test = np.arange(60) if setting == "cross-cell-type" else np.arange(30, 60)
    train = np.arange(60) if setting == "cross-cell-type" else np.arange(30)
    sig = ds["signal"].values.astype(np.float64)
    refs = [1, 2, 3]  # c4 has no m2
    average = sig[refs][:, test, 2].mean(axis=0)
    got = baselines.TrackAverage(ds, split).fit().predict()
    assert got.dims == ("cell_type", "locus")
    np.testing.assert_allclose(got.values[0], average, rtol=1e-6)
    np.testing.assert_array_equal(got["locus"].values, test)
    # most similar: Pearson over the target's other observed marks (m0, m1), pairwise complete
    r = {}
    for i in refs:
        a, b = sig[0][train][:, :2].ravel(), sig[i][train][:, :2].ravel()
        ok = np.isfinite(a) & np.isfinite(b)
        r[i] = np.corrcoef(a[ok], b[ok])[0, 1]
    best = max(r, key=lambda i: r[i])
    model = baselines.TrackMostSimilar(ds, split).fit()
    assert model.chosen_[0] == f"c{best}" == "c1"
    assert model.chosen_[1] == pytest.approx(r[best])
    np.testing.assert_allclose(model.predict().values[0], sig[best, test, 2], rtol=1e-6)
    zero = baselines.TrackZero(ds, split).fit().predict()
    np.testing.assert_array_equal(zero.values, np.zeros((1, test.size)))


@pytest.mark.parametrize("setting", ["cross-cell-type", "hybrid"])
def test_every_track_baseline__never_reads_the_target_track(setting) -> None:
    ds = _imputation_cube()
    poisoned = ds.copy(deep=True)
    sig = poisoned["signal"].values
    # the target track poisoned to follow a loser cell type's inputs: nothing may change
    sig[0, :, 2] = sig[2, :, 2] * -50 + 7
    split = _imputation_split(ds, setting)
    assert list(baselines.TRACK_BASELINES) == ["track_average", "track_most_similar", "zero"]
    for b in baselines.TRACK_BASELINES.values():
        clean = b.make(ds, split).fit().predict()
        dirty = b.make(poisoned, split).fit().predict()
        xr.testing.assert_equal(clean, dirty)
        assert np.isfinite(clean.values).all(), b.name


def test_track_most_similar__without_other_marks_refuses() -> None:
    ds = _imputation_cube()
    obs = ds["observed"].values.copy()
    obs[0, :2] = False
    ds = ds.assign_coords(observed=(("cell_type", "mark"), obs))
    model = baselines.TrackMostSimilar(ds, _imputation_split(ds, "hybrid")).fit()
    assert model.chosen_ is None
    with pytest.raises(ValueError, match="correlates"):
        model.predict()
