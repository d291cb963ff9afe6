"""Models: specs, streamed balanced batches, controls, Keras and XGBoost training."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

from pitfall import evaluate, kernels, open_cube, splits, sweep  # noqa: E402
from pitfall import loaders as ld  # noqa: E402
from pitfall.average_activity import locus_mean  # noqa: E402
from pitfall.models import (  # noqa: E402
    FAMILIES,
    ModelSpec,
    SpecError,
    TrainableModel,
    devices,
    make_model,
    training_keywords,
)
from pitfall.models import inputs as inp  # noqa: E402
from pitfall.predictor import Predictor  # noqa: E402


@pytest.fixture(scope="module")
def cube(chunked_cube_path):
    return open_cube(chunked_cube_path)


@pytest.fixture(scope="module")
def xchrom(cube) -> splits.Split:
    return splits.preset(cube, "cross-chromosome", "E003")


@pytest.fixture(scope="module")
def cross_ct(hybrid_split) -> splits.Split:
    return hybrid_split


# ------------------------------------------------------------------------------------ specs

SPECS = [
    ModelSpec("dense", units=(1,)),
    ModelSpec("dense", units=(8, 4)),
    ModelSpec("dense", units=(4, 4, 4)),
    ModelSpec("dense", units=(2, 3, 4, 5)),
    ModelSpec("dense", units=(16, 8, 4, 2, 1)),
    ModelSpec("dense", inputs="random", units=(7,), n_random=12),
    ModelSpec("seq_dense", units=(3,)),
    ModelSpec("seq_dense", units=(5, 2, 3)),
    ModelSpec("seq_conv", filters=(3,), units=(4,)),
    ModelSpec("seq_conv", filters=(4, 2), units=(5,)),
    ModelSpec("seq_conv", filters=(2, 3, 4), units=(6,)),
    ModelSpec("combined", units=(3,), seq_units=(4, 2), joint_units=5),
    ModelSpec("combined", units=(3, 2), filters=(2, 3), seq_units=(4,), joint_units=2),
    ModelSpec("seq_conv", filters=(2,), units=(3,), target="residual"),
    # the first remedy: the average activity as one more input of the first dense layer
    ModelSpec("dense", units=(4, 3), average=True),
    ModelSpec("dense", inputs="random", units=(5,), n_random=12, average=True),
    ModelSpec("seq_dense", units=(3, 2), average=True),
    ModelSpec("seq_conv", filters=(2, 3), units=(4,), average=True, target="residual"),
    ModelSpec("combined", units=(3,), seq_units=(4, 2), joint_units=5, average=True),
    ModelSpec("combined", units=(3, 2), filters=(2,), seq_units=(4,), joint_units=2, average=True),
]


@pytest.mark.parametrize("spec", SPECS, ids=[s.label for s in SPECS])
def test_n_params__equals_keras_count_params(spec: ModelSpec) -> None:
    from pitfall.models.nn import build_model

    n_marks, seq_len = 5, 300
    model = build_model(spec, n_marks=n_marks, seq_len=seq_len)
    assert spec.n_params(n_marks, seq_len) == model.count_params()


def test_n_params__xgboost_is_trees_times_max_leaves() -> None:
    assert ModelSpec("xgboost", n_trees=10, max_depth=3).n_params() == 80


def test_n_params__sequence_too_short_for_convs() -> None:
    with pytest.raises(SpecError, match="too short"):
        ModelSpec("seq_conv", filters=(2, 2, 2), units=(2,)).n_params(5, 50)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"family": "lstm"}, "family"),
        ({"family": "dense", "units": ()}, "1-5 layer"),
        ({"family": "dense", "units": (4,) * 6}, "1-5 layer"),
        ({"family": "dense", "units": (5000,)}, r"1\.\.4096"),
        ({"family": "seq_dense", "units": (2048,)}, r"1\.\.1024"),
        ({"family": "seq_dense", "units": (2,) * 4}, "1-3 layer"),
        ({"family": "seq_conv", "filters": (300,), "units": (4,)}, r"1\.\.256"),
        ({"family": "seq_conv", "filters": (2, 2, 2, 2), "units": (4,)}, "filters"),
        ({"family": "seq_conv", "filters": (2,), "units": (4, 4)}, "1 layer"),
        ({"family": "dense", "inputs": "sequence", "units": (4,)}, "takes inputs"),
        ({"family": "combined", "units": (2,), "seq_units": (2,)}, "joint_units"),
        ({"family": "xgboost", "n_trees": 0, "max_depth": 3}, "n_trees"),
        ({"family": "xgboost", "n_trees": 5, "max_depth": 3, "units": (2,)}, "layer sizes"),
        ({"family": "dense", "units": (4,), "permuted": True}, "permuted"),
        ({"family": "dense", "units": (4,), "target": "rpkm"}, "target"),
    ],
)
def test_spec__rejects_out_of_range(kwargs: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        ModelSpec(**kwargs)


def test_spec__dict_round_trip() -> None:
    for spec in [*SPECS, ModelSpec("xgboost", inputs="both", n_trees=3, max_depth=2, seed=4)]:
        d = spec.to_dict()
        assert isinstance(d["units"], list)
        assert ModelSpec.from_dict(d) == spec
    with pytest.raises(SpecError, match="unknown"):
        ModelSpec.from_dict({"family": "dense", "units": [2], "layers": 3})


def test_spec__label() -> None:
    assert ModelSpec("seq_conv", filters=(64, 64), units=(128,)).label == "conv 2x64 / dense 128"
    assert ModelSpec("dense", units=(8, 4)).label == "dense 8-4"
    assert "random" in ModelSpec("dense", inputs="random", units=(8,)).label


def test_import__does_not_load_tensorflow_or_xgboost() -> None:
    code = (
        "import sys, pitfall.models, pitfall.models.nn, pitfall.models.gbm, pitfall.loaders;"
        "assert not {'tensorflow', 'keras', 'xgboost', 'torch'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------ batches


def _stream(cube, split, reader, *, inputs="both", seed=0, prefetch=False, permuted=False):
    cts, loci = ld.selection_index(cube, split.train(cube))
    enc = inp.InputEncoder(inputs, permuted=permuted, seed=seed)
    return ld.BalancedBatches(
        reader, cts, loci, enc, batch_size=32, batches_per_epoch=20, seed=seed, prefetch=prefetch
    )


def test_balanced_batches__half_positive_labelled_and_in_role(cube, cross_ct) -> None:
    stream = _stream(cube, cross_ct, ld.ChunkReader(cube))
    epoch = stream.epoch(0)
    y = epoch.data["y"]
    assert y.size == 32 * 20
    assert all(y[epoch.rows(b)].sum() == 16 for b in range(20))
    labels = cube["label"].values
    np.testing.assert_array_equal(labels[epoch.data["cell_type"], epoch.data["locus"]], y)
    role_cts = ld.cell_type_index(cube, cross_ct.train_cell_types)
    assert set(epoch.data["cell_type"]) <= set(role_cts)
    assert set(epoch.data["locus"]) <= set(cross_ct.loci(cube, "train"))
    assert len(set(epoch.data["cell_type"])) == 3  # every role cell type is drawn from


def test_balanced_batches__never_draw_unlabelled_pairs(cube, cross_ct) -> None:
    cts, loci = ld.selection_index(cube, cross_ct.train(cube))
    reader = ld.MemoryReader(cube)
    reader.arrays["label"] = reader.arrays["label"].copy()
    hidden = loci[::2]
    reader.arrays["label"][:, hidden] = np.nan
    sampler = ld.BalancedSampler(reader, cts, loci)
    drawn = sampler.draw(500, 500, np.random.default_rng(0))
    assert not set(drawn["locus"]) & set(hidden)
    assert sampler.counts[0] + sampler.counts[1] == cts.size * (loci.size - hidden.size)


def test_balanced_batches__deterministic_per_seed(cube, cross_ct) -> None:
    reader = ld.ChunkReader(cube)
    a = _stream(cube, cross_ct, reader, seed=1).epoch(3).data
    b = _stream(cube, cross_ct, reader, seed=1).epoch(3).data
    c = _stream(cube, cross_ct, reader, seed=2).epoch(3).data
    for key in ("cell_type", "locus", "y", "signal", "codes"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["locus"], c["locus"])


def test_balanced_batches__streamed_equals_in_memory_and_the_cube(cube, cross_ct) -> None:
    streamed = _stream(cube, cross_ct, ld.ChunkReader(cube, cache_bytes=0), prefetch=True)
    memory = _stream(cube, cross_ct, ld.MemoryReader(cube))
    epochs = list(streamed.epochs(2))
    for i, ep in enumerate(epochs):
        ref = memory.epoch(i).data
        for key in ("cell_type", "locus", "y", "signal", "codes"):
            np.testing.assert_array_equal(ep.data[key], ref[key])
    data = epochs[1].data
    ct, loc = data["cell_type"], data["locus"]
    np.testing.assert_array_equal(data["signal"], np.nan_to_num(cube["signal"].values[ct, loc]))
    np.testing.assert_array_equal(data["codes"], cube["sequence"].values[loc])
    xs, y = next(streamed.batches(epochs[1]))
    np.testing.assert_array_equal(xs[0], kernels.naive_one_hot(cube["sequence"].values[loc[:32]]))
    np.testing.assert_array_equal(xs[1], data["signal"][:32])


def test_chunk_reader__reads_zarr_directly_and_falls_back_to_dask(cube, chunked_cube_path) -> None:
    assert ld.ChunkReader(cube, store=chunked_cube_path).direct
    plain = cube.copy()
    plain.encoding = {}
    assert not ld.ChunkReader(plain).direct
    sub = cube.isel(locus=slice(10, 200))
    assert not ld.ChunkReader(sub, store=chunked_cube_path).direct
    reader = ld.ChunkReader(sub, cache_bytes=0)
    np.testing.assert_array_equal(reader.read("label", 1, 2), sub["label"].values[2, 64:128])


# ------------------------------------------------------------------------------------ controls


def test_permuted_sequence__keeps_composition_per_locus_and_is_locus_constant(cube) -> None:
    loci = np.array([0, 5, 5, 9, 0])
    codes = cube["sequence"].values[loci]
    perm = inp.permute_codes(codes, loci, seed=3)
    for row, orig in zip(perm, codes, strict=True):
        np.testing.assert_array_equal(np.bincount(row, minlength=5), np.bincount(orig, minlength=5))
        assert not np.array_equal(row, orig)
    np.testing.assert_array_equal(perm[1], perm[2])  # same locus, e.g. two cell types
    np.testing.assert_array_equal(perm[0], perm[4])
    assert not np.array_equal(inp.permute_codes(codes, loci, seed=4), perm)


def test_permuted_sequence__streamed_rows_match(cube, cross_ct) -> None:
    stream = _stream(cube, cross_ct, ld.ChunkReader(cube), inputs="sequence", permuted=True)
    data = stream.epoch(0).data
    loc = data["locus"]
    np.testing.assert_array_equal(
        data["codes"], inp.permute_codes(cube["sequence"].values[loc], loc, seed=0)
    )


def test_random_inputs__constant_per_locus_distinct_across_loci_deterministic() -> None:
    loci = np.array([3, 7, 3, 100_000_000])
    x = inp.random_inputs(loci, seed=5, n_random=11)
    assert x.shape == (4, 11) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], x[2])
    assert not np.allclose(x[0], x[1])
    np.testing.assert_array_equal(x, inp.random_inputs(loci, seed=5, n_random=11))
    assert not np.allclose(x, inp.random_inputs(loci, seed=6, n_random=11))
    big = inp.random_inputs(np.arange(2000), seed=0, n_random=50)
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1) < 0.02


def test_assemble__rows_in_cell_type_then_locus_order(cube, cross_ct) -> None:
    valid = cross_ct.valid(cube)
    xs, y, labels = inp.assemble(cube, valid, "both")
    n = valid.sizes["cell_type"] * valid.sizes["locus"]
    assert xs[0].shape == (n, cube.sizes["position"], 4)
    assert xs[1].shape == (n, cube.sizes["mark"])
    np.testing.assert_array_equal(y, labels.values.ravel())
    xr_, _, _ = inp.assemble(cube, valid, "random", seed=2, n_random=7)
    np.testing.assert_array_equal(xr_[0], inp.random_inputs(valid["locus"].values, 2, 7))


# ------------------------------------------------------------------------------------ training

FAST = {"batches_per_epoch": 25, "valid_size": 800}


def test_neural_model__signal_model_learns_cross_chromosome(cube, xchrom) -> None:
    spec = ModelSpec("dense", units=(16, 16), seed=0)
    model = make_model(spec, cube, max_epochs=6, patience=6, **FAST).fit(
        xchrom.train(cube), xchrom.valid(cube)
    )
    test = xchrom.test(cube)
    pred = model.predict(test)
    assert pred.dims == ("cell_type", "locus")
    assert list(pred["cell_type"].values) == ["E003"]
    np.testing.assert_array_equal(pred["locus"].values, test["locus"].values)
    assert np.isfinite(pred.values).all()
    ap = evaluate.average_precision(test["label"], pred)
    prevalence = float(test["label"].mean())
    assert ap > prevalence + 0.15, (ap, prevalence)
    assert model.n_params_ == spec.n_params(cube.sizes["mark"])
    assert model.epochs_run_ == len(model.history_) == 6
    assert {"loss", "val_loss", "seconds"} <= set(model.history_[0])


def test_neural_model__early_stopping_stops(cube, xchrom) -> None:
    # Random inputs of unseen loci carry nothing: the validation loss soon stops improving.
    spec = ModelSpec("dense", inputs="random", units=(32,), n_random=16)
    model = make_model(spec, cube, max_epochs=40, patience=2, batches_per_epoch=10)
    model.fit(xchrom.train(cube), xchrom.valid(cube))
    assert model.stopped_early_
    assert model.epochs_run_ < 40
    assert model.epochs_run_ == model.best_epoch_ + 1 + 2


def test_neural_model__sequence_model_predicts_every_cell_type(cube, cross_ct) -> None:
    spec = ModelSpec("combined", units=(4,), filters=(2,), seq_units=(4,), joint_units=4)
    model = make_model(spec, cube, max_epochs=1, batches_per_epoch=3, valid_size=64)
    model.fit(cross_ct.train(cube), cross_ct.valid(cube))
    valid = cross_ct.valid(cube).isel(locus=slice(0, 40))
    pred = model.predict(valid)
    assert pred.shape == (1, 40) and np.isfinite(pred.values).all()
    seq_only = make_model(
        ModelSpec("seq_conv", filters=(2,), units=(2,), permuted=True),
        cube,
        max_epochs=1,
        batches_per_epoch=2,
    )
    seq_only.fit(cross_ct.train(cube))
    pred = seq_only.predict(cross_ct.train(cube).isel(locus=slice(0, 70)))
    assert pred.shape == (3, 70)
    # Sequence-only inputs do not depend on the cell type: neither do the predictions.
    np.testing.assert_array_equal(pred.values[0], pred.values[2])


def test_neural_model__freed_once_dropped(cube, xchrom) -> None:
    # A sweep worker trains model after model: each must go with its loaders and chunk cache
    # (TensorFlow's registry of from_generator generators held them all, pitfall.loaders.to_tf).
    spec = ModelSpec("dense", units=(2,))
    model = make_model(spec, cube, max_epochs=1, batches_per_epoch=2, valid_size=64)
    model.fit(xchrom.train(cube), xchrom.valid(cube)).predict(xchrom.test(cube))
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None


def test_gbm__learns_and_counts_actual_leaves(cube, xchrom) -> None:
    spec = ModelSpec("xgboost", inputs="signal", n_trees=15, max_depth=3)
    model = make_model(spec, cube, sample_size=2000, n_jobs=1)
    model.fit(xchrom.train(cube), xchrom.valid(cube))
    test = xchrom.test(cube)
    pred = model.predict(test)
    assert pred.dims == ("cell_type", "locus") and pred.shape == (1, test.sizes["locus"])
    ap = evaluate.average_precision(test["label"], pred)
    assert ap > float(test["label"].mean()) + 0.15
    leaves = int((model.booster_.trees_to_dataframe()["Feature"] == "Leaf").sum())
    assert model.complexity_ == leaves == model.n_params_
    assert model.n_trees_ == 15 and leaves <= spec.n_params()
    assert np.isfinite(model.valid_loss_)


def test_gbm__sequence_inputs_are_flattened_one_hot(cube, cross_ct) -> None:
    spec = ModelSpec("xgboost", inputs="both", n_trees=2, max_depth=2)
    model = make_model(spec, cube, sample_size=200, n_jobs=1).fit(cross_ct.train(cube))
    assert model.booster_.num_features() == cube.sizes["position"] * 4 + cube.sizes["mark"]


def test_residual_target__predictions_back_on_score_scale(cube, cross_ct) -> None:
    spec = ModelSpec("dense", units=(8,), target="residual")
    model = make_model(spec, cube, max_epochs=2, batches_per_epoch=10, valid_size=200)
    model.fit(cross_ct.train(cube), cross_ct.valid(cube))
    test = cross_ct.test(cube)
    pred = model.predict(test)
    # the average over the cell types the model saw (training and validation)
    seen = [*cross_ct.train_cell_types, *cross_ct.valid_cell_types]
    avg = locus_mean(cube["label"].sel(cell_type=seen)).values[test["locus"].values]
    xs, _, _ = inp.assemble(cube, test, "signal")
    raw = model.model_.predict_on_batch(xs[0]).ravel()
    np.testing.assert_allclose(pred.values[0], raw + avg, atol=1e-5)
    assert np.nanmin(pred.values) >= -1 and np.nanmax(pred.values) <= 2
    gbm = make_model(
        ModelSpec("xgboost", inputs="signal", n_trees=3, max_depth=2, target="residual"),
        cube,
        sample_size=300,
        n_jobs=1,
    )
    gpred = gbm.fit(cross_ct.train(cube)).predict(test)
    assert np.isfinite(gpred.values).all()


def test_residual_target__refuses_the_test_cell_types_own_labels(cube, xchrom) -> None:
    # across chromosomes the only cell type seen is the target: nothing else to average
    spec = ModelSpec("dense", units=(2,), target="residual")
    with pytest.raises(ValueError, match="average_cell_types"):
        make_model(spec, cube, max_epochs=1, batches_per_epoch=2).fit(xchrom.train(cube))
    # given other cell types, the target's own labels still never enter its average
    others = [c for c in map(str, cube["cell_type"].values) if c != "E003"]
    model = make_model(
        spec, cube, max_epochs=1, batches_per_epoch=2, average_cell_types=["E003", *others]
    )
    model.fit(xchrom.train(cube))
    test = xchrom.test(cube)
    avg = locus_mean(cube["label"].sel(cell_type=others)).values[test["locus"].values]
    raw = model.model_.predict_on_batch(inp.assemble(cube, test, "signal")[0][0]).ravel()
    np.testing.assert_allclose(model.predict(test).values[0], raw + avg, atol=1e-5)


def _poisoned(cube, how: str):
    """The cube with the target E003's labels replaced (NaN or flipped), in memory, with no
    store to read the clean labels from."""
    lab = cube["label"].values.copy()
    t = list(map(str, cube["cell_type"].values)).index("E003")
    lab[t] = np.nan if how == "nan" else np.where(np.isnan(lab[t]), np.nan, 1 - lab[t])
    out = cube.copy()
    out["label"] = (cube["label"].dims, lab)
    out["label"].encoding = dict(cube["label"].encoding)  # the same chunk grid: same draws
    out.encoding = {}
    return out


@pytest.mark.parametrize("how", ["nan", "flipped"])
@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec("dense", units=(4,), average=True),
        ModelSpec("seq_dense", units=(2,), average=True, target="residual"),
        ModelSpec("xgboost", inputs="signal", n_trees=2, max_depth=2, average=True),
    ],
    ids=lambda s: s.label,
)
def test_remedies__inputs_unchanged_when_the_target_labels_are_poisoned(
    cube, cross_ct, spec, how
) -> None:
    bad = _poisoned(cube, how)
    assert not np.array_equal(
        np.nan_to_num(bad["label"].values, nan=-1), np.nan_to_num(cube["label"].values, nan=-1)
    )
    kw = {
        "max_epochs": 1,
        "batches_per_epoch": 4,
        "valid_size": 64,
        "sample_size": 64,
        "in_memory": True,
    }
    models = []
    for ds in (cube, bad):
        m = make_model(spec, ds, **training_keywords(spec, kw))
        models.append(m.fit(cross_ct.train(ds), cross_ct.valid(ds)))
    clean, poisoned = models
    np.testing.assert_array_equal(clean.average_.sums, poisoned.average_.sums)
    np.testing.assert_array_equal(clean.average_.counts, poisoned.average_.counts)
    # what the model trains on, validates on, and scores at test: all the same
    for a, b in zip(
        clean.loader(cross_ct.train(cube)).epoch(0),
        poisoned.loader(cross_ct.train(bad)).epoch(0),
        strict=True,
    ):
        for k in a[0]:
            np.testing.assert_array_equal(a[0][k], b[0][k])
        np.testing.assert_array_equal(a[1], b[1])
    va, vb = (
        clean.validation_sample(cross_ct.valid(cube)),
        poisoned.validation_sample(cross_ct.valid(bad)),
    )
    np.testing.assert_array_equal(va[0]["average"], vb[0]["average"])
    np.testing.assert_array_equal(va[1], vb[1])
    fa, fb = clean.features(cross_ct.test(cube)), poisoned.features(cross_ct.test(bad))
    assert fa.keys() == fb.keys() and "average" in fa
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k])
    bases = [
        [base for *_, base in m.iter_inputs(cross_ct.test(ds))]
        for m, ds in ((clean, cube), (poisoned, bad))
    ]
    for a, b in zip(*bases, strict=True):
        np.testing.assert_array_equal(a, b)


def test_remedies__test_average_is_the_average_activity_baseline(cube, cross_ct) -> None:
    from pitfall import baselines

    spec = ModelSpec("dense", units=(2,), average=True, target="residual")
    model = make_model(spec, cube, max_epochs=1, batches_per_epoch=2, valid_size=64)
    model.fit(cross_ct.train(cube), cross_ct.valid(cube))
    test = cross_ct.test(cube)
    base = baselines.AverageActivity(cube).fit(cross_ct.train(cube), cross_ct.valid(cube))
    want = base.predict(test).values[0]
    got = model.features(test)["average"][0, :, 0]
    known = ~np.isnan(want)
    np.testing.assert_allclose(got[known], want[known], rtol=1e-6)
    # the residual's scores are the network's output plus exactly that average
    x = {k: v[0] for k, v in model.features(test).items()}
    raw = model.model_.predict_on_batch(x).ravel()
    np.testing.assert_allclose(model.predict(test).values[0], raw + got, atol=1e-5)


@pytest.mark.parametrize("target", ["label", "residual"])
def test_remedies__run_end_to_end_in_a_sweep(cube, chunked_cube_path, target) -> None:
    spec = ModelSpec("dense", units=(4,), average=True, target=target)
    exp = sweep.Experiment(
        cube=str(chunked_cube_path),
        task="expression",
        setting="hybrid",
        target="E003",
        spec=spec,
        valid_cell_types=("E113",),
        training=(("batches_per_epoch", 8), ("max_epochs", 2), ("valid_size", 64)),
    )
    row = sweep.run_experiment(exp)
    assert row["status"] == "ok", row["error"]
    assert 0 < row["ap"] <= 1 and "+average" in row["label"]
    assert row["n_params"] == spec.n_params(cube.sizes["mark"]) == (5 + 1 + 1) * 4 + 4 + 1


def test_spec__later_fields_only_in_the_dict_when_set() -> None:
    plain = ModelSpec("dense", units=(4,))
    assert "average" not in plain.to_dict()
    assert ModelSpec("dense", units=(4,), average=True).to_dict()["average"] is True
    assert ModelSpec.from_dict(ModelSpec("dense", units=(4,), average=True).to_dict()).average


def test_make_model__accepts_a_dict(cube) -> None:
    from pitfall.models.gbm import GBMModel, default_device

    model = make_model({"family": "xgboost", "n_trees": 2, "max_depth": 2}, cube)
    assert isinstance(model, GBMModel)
    assert default_device() in ("cpu", "cuda")


# ------------------------------------------------------------------------------------ recipe


def _reference_fit(
    spec, cube, train, valid, *, batches_per_epoch, max_epochs, patience, valid_size
):
    """The training loop before ``model.fit``: ``train_on_batch`` over the same balanced
    epochs, the validation loss computed by hand, early stopping and best weights by hand."""
    import keras

    from pitfall.models.nn import build_model

    keras.utils.set_random_seed(spec.seed)
    model = build_model(spec, n_marks=cube.sizes["mark"], seq_len=cube.sizes["position"])
    enc = inp.InputEncoder(spec.inputs, seed=spec.seed, n_random=spec.n_random)
    reader = ld.MemoryReader(cube)
    cts, loci = ld.selection_index(cube, train)
    stream = ld.BalancedBatches(
        reader, cts, loci, enc, batches_per_epoch=batches_per_epoch, seed=spec.seed, prefetch=False
    )
    vcts, vloci = ld.selection_index(cube, valid)
    val = ld.BalancedBatches(reader, vcts, vloci, enc, seed=spec.seed).balanced(valid_size, (2,))
    val_x, val_y = enc.encode(val)[0].copy(), val["y"]
    best, best_weights, stale, best_epoch, stopped, val_losses = np.inf, None, 0, 0, False, []
    for i, epoch in enumerate(stream.epochs(max_epochs)):
        for xs, y in stream.batches(epoch):
            model.train_on_batch(xs[0], y)
        p = np.clip(np.asarray(model.predict_on_batch(val_x)).ravel(), 1e-7, 1 - 1e-7)
        loss = float(-np.mean(val_y * np.log(p) + (1 - val_y) * np.log(1 - p)))
        val_losses.append(loss)
        if loss < best:
            best, best_weights, stale, best_epoch = loss, model.get_weights(), 0, i
        else:
            stale += 1
            if stale >= patience:
                stopped = True
                break
    model.set_weights(best_weights)
    return {
        "epochs": len(val_losses),
        "best_epoch": best_epoch,
        "stopped": stopped,
        "val_loss": np.array(val_losses),
        "model": model,
    }


@pytest.mark.parametrize(
    ("spec", "recipe", "recorded"),
    [
        # recorded: (epochs, best epoch) of the train_on_batch implementation (ef7dfbc) on
        # this cube and seed, measured before the training loop became model.fit
        (ModelSpec("dense", units=(16, 16), seed=0),
         {"batches_per_epoch": 25, "max_epochs": 30, "patience": 3, "valid_size": 800}, (12, 8)),
        (ModelSpec("dense", inputs="random", units=(32,), n_random=16),
         {"batches_per_epoch": 10, "max_epochs": 40, "patience": 2, "valid_size": 3200}, (6, 3)),
    ],
    ids=["dense", "random"],
)  # fmt: skip
def test_neural_model__recipe_equals_the_train_on_batch_loop(
    cube, xchrom, spec, recipe, recorded
) -> None:
    train, valid, test = xchrom.train(cube), xchrom.valid(cube), xchrom.test(cube)
    model = make_model(spec, cube, **recipe).fit(train, valid)
    ref = _reference_fit(spec, cube, train, valid, **recipe)
    assert model.epochs_run_ == ref["epochs"]
    assert model.best_epoch_ == ref["best_epoch"]
    assert model.stopped_early_ == ref["stopped"] is True
    assert model.epochs_run_ == model.best_epoch_ + 1 + recipe["patience"]
    # Keras computes the loss in float32: the same values within rounding
    np.testing.assert_allclose([h["val_loss"] for h in model.history_], ref["val_loss"], rtol=1e-5)
    # the best weights were restored: the same scores as the reference's best model
    xs, _, _ = inp.assemble(cube, test, spec.inputs, seed=spec.seed, n_random=spec.n_random)
    want = np.asarray(ref["model"].predict_on_batch(xs[0])).ravel()
    np.testing.assert_allclose(model.predict(test).values[0], want, atol=1e-6)
    epochs, best = recorded
    assert abs(model.epochs_run_ - epochs) <= 1 and abs(model.best_epoch_ - best) <= 1


def test_neural_model__trains_through_the_loader_on_full_epochs() -> None:
    from pitfall.models.nn import steps_per_execution

    assert [steps_per_execution(n) for n in (400, 25, 10, 7, 1)] == [8, 5, 5, 7, 1]
    assert steps_per_execution(400, 1) == 1


# ------------------------------------------------------------------------------------ registry


class _Centroid(TrainableModel):
    """A family outside the paper, for the registry test: distance to the class means."""

    def __init__(self, spec, cube, *, sample_size: int = 400, **common) -> None:
        super().__init__(spec, cube, **common)
        self.sample_size = sample_size

    def fit_loader(self, train, valid) -> None:
        x, y = train.sample(self.sample_size, key=3)
        f = ld.flatten(x)
        self.pos_, self.neg_ = f[y == 1].mean(0), f[y == 0].mean(0)
        self.n_params_ = 2 * f.shape[1]

    def score(self, x) -> np.ndarray:
        f = ld.flatten(x)
        d = ((f - self.neg_) ** 2).sum(1) - ((f - self.pos_) ** 2).sum(1)
        return (1 / (1 + np.exp(-d))).astype(np.float32)


def test_registry__every_family_is_a_predictor_and_one_registration_adds_one(
    cube, chunked_cube_path, xchrom
) -> None:
    from pitfall.models import FamilySpec, register_family

    assert list(FAMILIES)[:5] == ["dense", "seq_dense", "seq_conv", "combined", "xgboost"]
    for spec in [SPECS[0], SPECS[8], SPECS[11], ModelSpec("xgboost", n_trees=1, max_depth=1)]:
        model = make_model(spec, cube)
        assert isinstance(model, Predictor) and isinstance(model, TrainableModel)
        assert isinstance(model, FAMILIES[spec.family].model)
    with pytest.raises(SpecError, match="family"):
        ModelSpec("centroid")
    register_family(FamilySpec("centroid", _Centroid, inputs=("signal",),
                               n_params=lambda s, m, L, r: 2 * m, describe=lambda s: "centroid"))  # fmt: skip
    try:
        spec = ModelSpec("centroid")
        assert spec.inputs == "signal" and spec.label == "centroid"
        assert spec.n_params(n_marks=5) == 10
        model = make_model(spec, cube, sample_size=300)
        assert isinstance(model, Predictor)
        scores = model.fit(xchrom.train(cube), xchrom.valid(cube)).predict(xchrom.test(cube))
        test = xchrom.test(cube)
        assert evaluate.average_precision(test["label"], scores) > float(test["label"].mean())
        # the sweep builds it from the registry, and passes it only the keywords it takes
        exp = sweep.Experiment(
            cube=str(chunked_cube_path),
            task="expression",
            setting="cross-chromosome",
            target="E003",
            spec=spec,
            training=(("batches_per_epoch", 3), ("sample_size", 200)),
        )
        assert sweep._training_for(exp) == {"sample_size": 200, "store": str(chunked_cube_path)}
        row = sweep.run_experiment(exp)
        assert row["status"] == "ok", row["error"]
        assert row["family"] == "centroid" and row["n_params"] == 10 and row["device"] == "cpu"
    finally:
        FAMILIES.unregister("centroid")


def test_sweep_row__names_the_device(chunked_cube_path) -> None:
    exp = sweep.Experiment(
        cube=str(chunked_cube_path),
        task="expression",
        setting="cross-chromosome",
        target="E003",
        spec=ModelSpec("dense", units=(2,)),
        training=(("batches_per_epoch", 2), ("max_epochs", 1)),
    )
    row = sweep.run_experiment(exp)
    assert row["status"] == "ok", row["error"]
    assert row["device"] == devices.tensorflow_device("auto") and "device" in sweep.columns()


# ------------------------------------------------------------------------------------ devices


def test_devices__auto_cpu_or_an_error_for_cuda_where_none_is_usable() -> None:
    import tensorflow as tf

    has_tf_gpu = tf.test.is_built_with_cuda() and bool(tf.config.list_physical_devices("GPU"))
    assert devices.tensorflow_device("auto") == ("cuda" if has_tf_gpu else "cpu")
    assert devices.tensorflow_device("cpu") == "cpu"
    has_xgb_gpu = devices.xgboost_has_cuda() and devices.cuda_device_count() > 0
    assert devices.xgboost_device(None) == ("cuda" if has_xgb_gpu else "cpu")
    if not has_tf_gpu:
        with pytest.raises(devices.DeviceError, match="TensorFlow"):
            devices.tensorflow_device("cuda")
    if not has_xgb_gpu:
        with pytest.raises(devices.DeviceError, match="XGBoost"):
            devices.xgboost_device("cuda")
    with pytest.raises(ValueError, match="device"):
        devices.tensorflow_device("tpu")


def test_devices__gbm_trains_on_the_resolved_device(cube, xchrom) -> None:
    spec = ModelSpec("xgboost", inputs="signal", n_trees=2, max_depth=2)
    model = make_model(spec, cube, sample_size=200, n_jobs=1, device="cpu")
    model.fit(xchrom.train(cube))
    assert model.device_ == "cpu" and model._params()["device"] == "cpu"


@pytest.mark.parametrize(
    ("visible", "index", "pinned"),
    [("0,1", 3, "1"), ("2,5,7", 4, "5"), ("0", 1, None), ("", 0, None)],
)
def test_pin_worker_gpu__one_gpu_per_worker_by_index(visible, index, pinned) -> None:
    code = (
        "import os, sys; from pitfall.models.devices import pin_worker_gpu;"
        f"got = pin_worker_gpu({index}); print(got, os.environ.get('CUDA_VISIBLE_DEVICES'))"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == str(pinned)
    assert out[1:] == ([pinned] if pinned else ([visible] if visible else []))


def test_imputation_families__registered_with_their_class_and_labels() -> None:
    from pitfall.models.impute import FAMILIES_IMPUTATION, ImputationModel

    assert all(f in FAMILIES for f in FAMILIES_IMPUTATION)
    assert all(FAMILIES[f].model is ImputationModel for f in FAMILIES_IMPUTATION)
    spec = ModelSpec("avocado", units=(8,), embed=(2, 2, 4, 2), block_size=10)
    assert spec.label == "avocado embed 2/2/4/2 (block 10) / dense 8"
    assert ModelSpec("impute_xgboost", n_trees=5, max_depth=2).label == (
        "xgboost regression 5x2 (signal)"
    )
    assert ModelSpec("impute_dense", units=(4,), inputs="random").label == "dense 4 (random)"
    # the fields added for avocado stay out of other specs' dicts (their experiment ids)
    assert not {"embed", "block_size"} & set(ModelSpec("dense", units=(4,)).to_dict())
    assert {"embed", "block_size"} <= set(spec.to_dict())
