"""The imputation task: splits, leakage, the target track kept out of training, families."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pitfall import baselines, imputation, splits, tasks
from pitfall.experiments import grids
from pitfall.imputation import ImputationSplit, observed
from pitfall.models import ModelSpec, SpecError, make_model
from pitfall.models.impute import build_imputation_model, n_params

CHROMS = ["chr1"] * 120 + ["chr2"] * 100 + ["chr3"] * 100
MARKS = ["m0", "m1", "m2", "m3"]
TARGET, MARK = "c0", "m3"


def imputation_cube(
    n_ct: int = 8, seed: int = 0, *, missing=(("c5", "m2"), ("c6", "m0")), coord: bool = True
) -> xr.Dataset:
    """A latent per (cell type, locus) shared by the marks with mark loadings, plus a
    per-locus constant: signal = c[locus] v[mark] + z[ct, locus] w[mark] + noise."""
    rng = np.random.default_rng(seed)
    n = len(CHROMS)
    c = rng.normal(2.0, 1.0, n)
    z = rng.normal(0.0, 1.0, (n_ct, n))
    v = np.array([1.0, 0.5, 0.8, 1.2])
    w = np.array([1.0, -0.8, 0.6, 1.0])
    sig = c[None, :, None] * v + z[:, :, None] * w + rng.normal(0, 0.05, (n_ct, n, 4))
    cts = [f"c{i}" for i in range(n_ct)]
    obs = np.ones((n_ct, 4), bool)
    for ct, m in missing:
        obs[cts.index(ct), MARKS.index(m)] = False
    sig = np.where(obs[:, None, :], sig, np.nan).astype(np.float32)
    ds = xr.Dataset(
        {"signal": (("cell_type", "locus", "mark"), sig)},
        coords={
            "cell_type": cts,
            "locus": np.arange(n),
            "mark": MARKS,
            "chrom": ("locus", np.array(CHROMS)),
            "start": ("locus", np.arange(n) * 200),
            "end": ("locus", np.arange(n) * 200 + 200),
        },
    )
    if coord:
        ds = ds.assign_coords(observed=(("cell_type", "mark"), obs))
    return ds


def _split(ds, setting):
    return tasks.get_task("imputation").split(ds, setting, TARGET, mark=MARK, test_chroms=["chr2"])


def mse(a, b) -> float:
    return float(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2))


def test_observed__coordinate_and_fallback__agree() -> None:
    with_coord = observed(imputation_cube())
    without = observed(imputation_cube(coord=False))
    assert with_coord.dims == ("cell_type", "mark")
    np.testing.assert_array_equal(with_coord.values, without.values)
    assert not bool(with_coord.sel(cell_type="c5", mark="m2"))
    assert int(with_coord.values.sum()) == 8 * 4 - 2


def test_observed__coordinate_wins_over_the_values() -> None:
    ds = imputation_cube()
    ds["observed"] = ds["observed"].copy(data=np.ones((8, 4), bool))  # values NaN, yet listed
    assert bool(observed(ds).sel(cell_type="c5", mark="m2"))
    # signal_array still never reads an experiment marked unobserved
    ds = imputation_cube().assign_coords(observed=(("cell_type", "mark"), np.zeros((8, 4), bool)))
    assert np.isnan(imputation.signal_array(ds)).all()


def test_task__registered_and_refuses_unknown_settings() -> None:
    ds = imputation_cube()
    task = tasks.get_task("imputation")
    assert task.baselines == ("track_average", "track_most_similar", "zero")
    split = _split(ds, "hybrid")
    assert isinstance(split, ImputationSplit) and split.test_chroms == ("chr2",)
    assert _split(ds, "cross-cell-type").test_chroms == ()
    with pytest.raises(splits.SplitError, match="cross-chromosome"):
        task.split(ds, "cross-chromosome", TARGET, mark=MARK)
    with pytest.raises(imputation.ImputationError, match="no observed m2"):
        task.split(ds, "hybrid", "c5", mark="m2")


@pytest.mark.parametrize("setting", ["cross-cell-type", "hybrid"])
def test_split__test_loci_and_leakage(setting) -> None:
    ds = imputation_cube()
    split = _split(ds, setting)
    test = split.test_loci(ds)
    chrom = np.asarray(ds["chrom"].values)
    if setting == "hybrid":
        assert set(chrom[test]) == {"chr2"} and test.size == 100
        assert not np.isin(split.train_loci(ds), test).any()
        assert split.leakage(ds) == 0.0
        assert split.leakage(ds, transductive=True) == 0.0
    else:
        assert test.size == ds.sizes["locus"]
        assert split.leakage(ds) == 1.0
    table = split.describe(ds)
    assert table.attrs["leakage"] == split.leakage(ds)
    assert table.loc["test", "n_loci"] == test.size


def test_split__train_mask__hybrid_transductive_reads_only_other_marks_at_test_loci() -> None:
    ds = imputation_cube()
    split = _split(ds, "hybrid")
    test = split.test_loci(ds)
    plain = split.train_mask(ds)
    trans = split.train_mask(ds, transductive=True)
    assert not plain[:, test].any()
    j = MARKS.index(MARK)
    assert not trans[:, test, j].any()
    obs = observed(ds).values
    expected = obs.copy()
    expected[:, j] = False
    np.testing.assert_array_equal(trans[:, test[0], :], expected)


SPECS = {
    "impute_dense": dict(units=(16,)),
    "avocado": dict(units=(16,), embed=(4, 2, 4, 2), block_size=10),
    "impute_xgboost": dict(n_trees=30, max_depth=3),
}
TRAINING = {"epochs": 15, "batch_size": 64, "learning_rate": 0.01, "n_jobs": 1}


def _model(family: str, ds, **extra):
    spec = ModelSpec(family, **{**SPECS[family], **extra})
    return make_model(spec, ds, **{k: v for k, v in TRAINING.items()})


@pytest.mark.parametrize("family", list(SPECS))
@pytest.mark.parametrize("setting", ["cross-cell-type", "hybrid"])
def test_training_data__never_holds_the_target_track(family, setting) -> None:
    ds = imputation_cube()
    sentinel = 12345.0
    sig = ds["signal"].values.copy()
    sig[0, :, MARKS.index(MARK)] = sentinel
    ds["signal"] = ds["signal"].copy(data=sig)
    split = _split(ds, setting)
    model = _model(family, ds)
    x, y = model.training_data(split)
    assert y.size > 0 and not (y == sentinel).any()
    assert not any((v == sentinel).any() for v in x.values())
    if family == "avocado":
        target_rows = (x["cell_type"] == 0) & (x["mark"] == MARKS.index(MARK))
        assert not target_rows.any()
        if setting == "hybrid":
            at_test = np.isin(x["locus"], split.test_loci(ds))
            assert at_test.any() and not (x["mark"][at_test] == MARKS.index(MARK)).any()
    if setting == "hybrid" and family != "avocado":
        # rows (reference cell type, training locus): as many as the observed targets there
        refs = split.reference_cell_types(ds)
        assert y.size == len(refs) * split.train_loci(ds).size


def test_random_inputs__constant_per_locus_across_cell_types() -> None:
    ds = imputation_cube()
    split = _split(ds, "hybrid")
    model = _model("impute_dense", ds, inputs="random", n_random=8)
    x, y = model.training_data(split)
    n_loci = split.train_loci(ds).size
    r = x["random"].reshape(-1, n_loci, 8)
    assert r.shape[0] == len(split.reference_cell_types(ds))
    np.testing.assert_array_equal(r[0], r[-1])
    assert model.test_inputs(split)["random"].shape == (100, 8)


@pytest.mark.parametrize(
    "embed, units, block",
    [((1, 1, 1, 1), (1,), 2), ((4, 2, 8, 4), (16,), 10), ((32, 16, 64, 32), (128, 64), 5)],
)
def test_avocado__n_params_equals_keras(embed, units, block) -> None:
    spec = ModelSpec("avocado", units=units, embed=embed, block_size=block)
    shape = dict(n_cell_types=8, n_marks=4, n_loci=320)
    model = build_imputation_model(spec, **shape)
    assert n_params(spec, **shape) == model.count_params()


def test_avocado__sizes_span_orders_of_magnitude() -> None:
    shape = dict(n_cell_types=8, n_marks=4, n_loci=320)
    small = n_params(ModelSpec("avocado", units=(1,), embed=(1, 1, 1, 1), block_size=2), **shape)
    big = n_params(
        ModelSpec("avocado", units=(256,), embed=(32, 16, 256, 64), block_size=4), **shape
    )
    assert big / small > 100


@pytest.mark.parametrize("inputs", ["signal", "random"])
def test_impute_dense__n_params_equals_keras(inputs) -> None:
    spec = ModelSpec("impute_dense", units=(8, 4), inputs=inputs, n_random=5)
    shape = dict(n_cell_types=8, n_marks=4, n_loci=320)
    assert n_params(spec, **shape) == build_imputation_model(spec, **shape).count_params()


def test_specs__refuse_fields_of_other_families() -> None:
    with pytest.raises(SpecError, match="embed"):
        ModelSpec("avocado", units=(4,), embed=(1, 2), block_size=4)
    with pytest.raises(SpecError, match="block_size"):
        ModelSpec("avocado", units=(4,), embed=(1, 2, 3, 4), block_size=1)
    with pytest.raises(SpecError, match="embed"):
        ModelSpec("impute_dense", units=(4,), embed=(1, 1, 1, 1))
    with pytest.raises(SpecError, match="residual"):
        ModelSpec("impute_dense", units=(4,), target="residual")
    spec = ModelSpec("avocado", units=(4,), embed=(1, 2, 3, 4), block_size=4)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert "embed" not in ModelSpec("dense", units=(4,)).to_dict()


@pytest.mark.parametrize("family", list(SPECS))
@pytest.mark.parametrize("setting", ["cross-cell-type", "hybrid"])
def test_family__fits_and_beats_zero(family, setting) -> None:
    ds = imputation_cube()
    split = _split(ds, setting)
    truth = ds["signal"].sel(cell_type=TARGET, mark=MARK).values[split.test_loci(ds)]
    model = _model(family, ds).fit(split)
    pred = model.predict(split)
    assert pred.dims == ("cell_type", "locus") and pred.shape == (1, truth.size)
    err = mse(pred.values[0], truth)
    print(f"{family} {setting}: mse {err:.4f}, zero {mse(0, truth):.4f}")
    assert err < 0.5 * mse(0, truth)
    assert model.n_params_ > 0


def test_impute_dense__beats_the_average_on_cell_type_specific_marks() -> None:
    ds = imputation_cube()
    split = _split(ds, "hybrid")
    test = split.test_loci(ds)
    truth = ds["signal"].sel(cell_type=TARGET, mark=MARK).values[test]
    sig = ds["signal"].sel(mark=MARK).values  # oracle: the Average in numpy
    refs = [i for i in range(1, 8) if not np.isnan(sig[i]).all()]
    average = sig[refs][:, test].mean(axis=0)
    np.testing.assert_allclose(
        baselines.TrackAverage(ds, split).fit().predict().values[0], average, rtol=1e-5
    )
    pred = _model("impute_dense", ds).fit(split).predict(split).values[0]
    print(f"dense hybrid mse {mse(pred, truth):.4f}, Average {mse(average, truth):.4f}")
    assert mse(pred, truth) < 0.5 * mse(average, truth)


@pytest.mark.slow
def test_imputation_figure__findings_from_the_table_and_the_average_by_numpy(tmp_path) -> None:
    from pitfall.experiments import imputation as figure

    ds = imputation_cube()
    result = figure.make(ds, cell_type="c0", mark="m3", size="quick", test_chroms=("chr2",))
    table = result.tables["models"]
    assert set(table["setting"]) == {"cross-cell-type", "hybrid"}
    assert len(table[table["kind"] != "baseline"]) == 2 * len(grids.imputation_grid("quick"))
    sig = ds["signal"].values
    obs = ds["observed"].values
    on_chr2 = ds["chrom"].values == "chr2"
    for setting, loci in (("cross-cell-type", np.ones_like(on_chr2)), ("hybrid", on_chr2)):
        # the Average by hand: m3's mean over the other cell types that have it
        others = [i for i in range(1, sig.shape[0]) if obs[i, 3]]
        average = sig[others][:, loci, 3].mean(axis=0)
        truth = sig[0, loci, 3]
        found = result.findings[setting]
        assert found["baselines"]["track_average"]["mse"] == pytest.approx(
            mse(average, truth), rel=1e-5
        )
        assert found["baselines"]["track_average"]["gwcorr"] == pytest.approx(
            float(np.corrcoef(average, truth)[0, 1]), rel=1e-5
        )
        rows = table[(table["setting"] == setting) & (table["kind"] == "avocado")]
        assert found["families"]["avocado"]["best_mse"] == rows["mse"].min()
        assert found["avocado_trend"]["first"]["n_params"] == rows["n_params"].min()
        # the Average's MSE per decile of m3's variance over the same references, by hand
        variance = sig[others][:, loci, 3].var(axis=0)
        order = np.argsort(variance, kind="stable")
        avg_row = table[(table["setting"] == setting) & (table["baseline"] == "track_average")]
        # decile d: the loci of rank r (least variable first) with r * 10 // n == d
        k, n = figure.N_DECILES, order.size
        deciles = [order[[r for r in range(n) if r * k // n == d]] for d in range(k)]
        for d, members in enumerate(deciles):
            want = mse(average[members], truth[members])
            assert avg_row[figure.DECILE_COLUMNS[d]].iloc[0] == pytest.approx(want, rel=1e-5)
        # every row: the deciles' MSEs weighted by their bins give the whole track's
        n_per = np.array([m.size for m in deciles])
        part = table[table["setting"] == setting]
        pooled = part[list(figure.DECILE_COLUMNS)].to_numpy() @ n_per / n_per.sum()
        np.testing.assert_allclose(pooled, part["mse"].to_numpy(), rtol=1e-6)
        best = rows.loc[rows["mse"].idxmin()]
        ratio = found["families"]["avocado"]["decile_ratio"]
        np.testing.assert_allclose(
            ratio, best[list(figure.DECILE_COLUMNS)].to_numpy(float) / avg_row[
                list(figure.DECILE_COLUMNS)].to_numpy(float)[0], rtol=1e-12
        )  # fmt: skip
        assert found["families"]["avocado"]["deciles_beating_average"] == sum(r < 1 for r in ratio)
    assert len(result.figure.axes) == 6
    assert any("Average" in s for s in result.sentences)
    assert any("decile of the mark's variance" in s for s in result.sentences)
    result.save(tmp_path)
    assert (tmp_path / "figures" / "imputation.png").stat().st_size > 10_000


def _rows(x: dict, y: np.ndarray) -> np.ndarray:
    """The examples as sorted rows (inputs by name, then the target)."""
    cols = [np.asarray(x[k], np.float64).reshape(y.size, -1) for k in sorted(x)]
    table = np.hstack([*cols, y.astype(np.float64)[:, None]])
    return table[np.lexsort(table.T[::-1])]


@pytest.mark.parametrize("family", ["impute_dense", "avocado"])
@pytest.mark.parametrize("setting", ["cross-cell-type", "hybrid"])
def test_track_batches__an_epoch_is_the_training_data_once(family, setting) -> None:
    from pitfall.loaders import TrackBatches

    ds = imputation_cube()
    split = _split(ds, setting)
    model = _model(family, ds)
    x, y = model.training_data(split)
    stream = TrackBatches(model, split, batch_size=5, seed=3, block_loci=7, shuffle_blocks=2)
    batches = list(stream.epoch(0))
    assert all(b[1].size == 5 for b in batches[:-1]) and 0 < batches[-1][1].size <= 5
    got_x = {k: np.concatenate([b[0][k] for b in batches]) for k in x}
    got_y = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(_rows(got_x, got_y), _rows(x, y))
    # seeded: the same epoch again is the same order, another epoch another one
    again = np.concatenate([b[1] for b in stream.epoch(0)])
    other = np.concatenate([b[1] for b in stream.epoch(1)])
    np.testing.assert_array_equal(again, got_y)
    assert not np.array_equal(other, got_y)


def test_track_batches__streamed_training_never_reads_the_whole_signal() -> None:
    ds = imputation_cube()
    split = _split(ds, "hybrid")
    truth = ds["signal"].sel(cell_type=TARGET, mark=MARK).values[split.test_loci(ds)]
    spec = ModelSpec("impute_dense", **SPECS["impute_dense"])
    model = make_model(spec, ds, **TRAINING, stream=True).fit(split)
    pred = model.predict(split)
    assert model._signal is None  # never read whole
    assert len(model.history_) == TRAINING["epochs"]
    assert mse(pred.values[0], truth) < 0.5 * mse(0, truth)


def test_track_batches__to_tf_yields_the_epochs_batches_in_order() -> None:
    from pitfall.loaders import TrackBatches

    ds = imputation_cube()
    split = _split(ds, "cross-cell-type")
    model = _model("impute_dense", ds)
    stream = TrackBatches(model, split, batch_size=6, seed=1, block_loci=9, shuffle_blocks=2)
    want = [*stream.epoch(0), *stream.epoch(1)]
    got = list(stream.to_tf(2).as_numpy_iterator())
    assert len(got) == len(want) == 2 * len(stream)
    for (gx, gy), (wx, wy) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gy, wy)
        np.testing.assert_array_equal(gx["signal"], wx["signal"])
