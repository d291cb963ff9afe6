"""Combined (sequence + epigenome) networks: the warm start from the better branch, and the
finding it guarantees at demo size (combined at least as good as the better single input,
across chromosomes)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pitfall import open_cube, splits  # noqa: E402
from pitfall.models import ModelSpec, make_model  # noqa: E402
from pitfall.models import nn as nn_models  # noqa: E402

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def cube(chunked_cube_path):
    return open_cube(chunked_cube_path)


@pytest.fixture(scope="module")
def xchrom(cube) -> splits.Split:
    return splits.preset(cube, "cross-chromosome", "E003")


def _inputs(rng: np.random.Generator, n: int, seq_len: int, n_marks: int, average: bool):
    seq = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, seq_len))]
    x = {"sequence": seq, "signal": rng.gamma(2.0, 1.0, (n, n_marks)).astype(np.float32)}
    if average:
        x["average"] = rng.random((n, 1)).astype(np.float32)
    return x


@pytest.mark.parametrize(
    ("joint_units", "target", "average"),
    [(1, "label", False), (2, "label", False), (7, "label", True), (5, "residual", False)],
)
@pytest.mark.parametrize("which", nn_models.BRANCHES)
def test_start_from_branch__combined_computes_the_branch(
    which: str, joint_units: int, target: str, average: bool
) -> None:
    spec = ModelSpec(
        "combined", units=(3, 2), filters=(2,), seq_units=(4,), joint_units=joint_units,
        target=target, average=average,
    )  # fmt: skip
    model = nn_models.build_model(spec, n_marks=5, seq_len=64)
    branches = nn_models.branch_models(model, spec)
    assert set(branches) == set(nn_models.BRANCHES)
    assert model.count_params() == spec.n_params(5, 64)  # the heads are not the model's
    branch = branches[which]
    rng = np.random.default_rng(3)
    # a branch with weights of its own (as after training), logits of both signs
    for layer in branch.layers:
        layer.set_weights([rng.normal(0, 0.7, w.shape) for w in layer.get_weights()])
    x = _inputs(rng, 300, 64, 5, average)
    want = np.asarray(branch.predict_on_batch({t.name: x[t.name] for t in branch.inputs})).ravel()
    middle = 0.0 if target == "residual" else 0.5  # logit 0: tanh's or sigmoid's
    assert want.min() < middle < want.max()
    nn_models.start_from_branch(model, branch, which)
    got = np.asarray(model.predict_on_batch(x)).ravel()
    # the one-unit pass (relu(z + 10) - 10) is exact above z = -10
    np.testing.assert_allclose(got, want, atol=1e-5)


RECIPE = {"max_epochs": 4, "patience": 1, "batches_per_epoch": 10, "valid_size": 256}
SMALL = ModelSpec("combined", units=(8,), filters=(2,), seq_units=(8,), joint_units=4)


def test_neural_model__combined_starts_from_its_epigenomic_branch(cube, xchrom) -> None:
    model = make_model(SMALL, cube, **RECIPE).fit(xchrom.train(cube), xchrom.valid(cube))
    stages = [row["stage"] for row in model.history_]
    n_signal = stages.count("signal")
    assert n_signal >= 1 and stages == ["signal"] * n_signal + ["combined"] * (
        len(stages) - n_signal
    )
    assert model.start_ == "signal"
    x, y = model.validation_sample(xchrom.valid(cube))
    final = nn_models.validation_loss(y, model.score(x))
    start = min(r["val_loss"] for r in model.history_ if r["stage"] == "signal")
    assert final <= start + 1e-4


def test_neural_model__combined_from_scratch_or_a_bad_warm_start(cube, xchrom) -> None:
    model = make_model(SMALL, cube, warm_start="none", **RECIPE)
    model.fit(xchrom.train(cube), xchrom.valid(cube))
    assert model.start_ is None and "stage" not in model.history_[0]
    with pytest.raises(ValueError, match="warm_start must be one of"):
        make_model(SMALL, cube, warm_start="epigenome")


def test_neural_model__combined_starts_from_the_better_branch(cube, xchrom) -> None:
    spec = SMALL
    model = make_model(spec, cube, warm_start="better", **RECIPE)
    model.fit(xchrom.train(cube), xchrom.valid(cube))
    stages = [row["stage"] for row in model.history_]
    # the branches alone, then the whole network, each by the recipe
    assert stages == sorted(stages, key=["sequence", "signal", "combined"].index)
    assert set(stages) == {"sequence", "signal", "combined"}
    assert model.epochs_run_ == len(model.history_)
    best_branch = {
        s: min(r["val_loss"] for r in model.history_ if r["stage"] == s) for s in nn_models.BRANCHES
    }
    assert model.start_ == min(best_branch, key=best_branch.__getitem__)
    # kept weights: never worse on the validation sample than the better branch alone
    x, y = model.validation_sample(xchrom.valid(cube))
    final = nn_models.validation_loss(y, model.score(x))
    assert final <= best_branch[model.start_] + 1e-4
    assert model.n_params_ == spec.n_params(cube.sizes["mark"], cube.sizes["position"])


@pytest.mark.slow
def test_demo_size__combined_at_least_as_good_as_its_better_input(tmp_path: Path) -> None:
    """At demo size (the demo compendium and recipe), across chromosomes, each combined
    network of the demo grid scores at least the AP of the better of the two single-input
    networks of its branches' architectures, within seed noise. The quick demo (what CI
    runs) trains no combined network, so this is its own test."""
    from pitfall import demo, sweep
    from pitfall.experiments import grids

    paths = demo.build_cubes(tmp_path, workers=1)
    combined = {
        "expression": {"filters": [4], "seq_units": [64], "units": [16], "joint_units": 16},
        "tad": {"filters": [4], "seq_units": [64], "units": [16], "joint_units": 16},
    }
    for task, c in combined.items():
        spec = grids.sweep_spec(str(paths[task]), task, "E003", "demo")
        spec["settings"] = ["cross-chromosome"]
        spec["models"] = [
            {"family": "combined", **c},
            {"family": "dense", "inputs": "signal", "units": c["units"]},
            {"family": "seq_conv", "filters": c["filters"], "units": c["seq_units"]},
        ]
        exps = sweep.sweep_from_dict(spec, root=tmp_path / task).experiments
        table = sweep.run_sweep(exps, tmp_path / task / "results", workers=0)
        assert (table["status"] == "ok").all(), table["error"].tolist()
        ap = dict(zip(table["inputs"], table["ap"], strict=True))
        better = max(ap["signal"], ap["sequence"])
        assert ap["both"] >= better - 0.02, (task, ap)
