"""Sweeps: spec expansion, one row per model with every column, restart, failures."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pitfall import cube, evaluate, featurize, sweep, synth  # noqa: E402
from pitfall.models.spec import ModelSpec  # noqa: E402

TRAINING = {"batches_per_epoch": 5, "max_epochs": 2, "patience": 1, "valid_size": 64}


@pytest.fixture(scope="module")
def tiny_cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    comp = synth.synthesize(root / "comp", "tiny")
    featurize.build(comp.manifest, root / "cube", workers=1, processes=False, progress=False)
    return root / "cube"


def _spec(tiny_cube: Path, models: list[dict]) -> dict:
    return {
        "cube": str(tiny_cube),
        "task": "expression",
        "target": "E003",
        "settings": ["cross-chromosome", "hybrid"],
        # the tiny compendium has 6 cell types: keep three to train on in the hybrid split
        "valid_cell_types": ["E004"],
        "seeds": [0],
        "training": TRAINING,
        "models": models,
    }


def test_expand_models__grid_of_alternatives() -> None:
    specs = sweep.expand_models(
        {"family": "dense", "inputs": "signal", "units": [[4], [8, 8]]}, seeds=[0, 1]
    )
    assert [(s.units, s.seed) for s in specs] == [((4,), 0), ((4,), 1), ((8, 8), 0), ((8, 8), 1)]
    one = sweep.expand_models({"family": "dense", "units": [4, 4]}, seeds=[0])
    assert [s.units for s in one] == [(4, 4)]
    trees = sweep.expand_models({"family": "xgboost", "n_trees": [1, 10], "max_depth": 2}, [0])
    assert [s.n_trees for s in trees] == [1, 10]


def test_sweep_from_dict__refuses_bad_specs(tiny_cube: Path) -> None:
    with pytest.raises(sweep.SweepError, match="missing required key 'models'"):
        sweep.sweep_from_dict({"cube": "x"}, root=Path("."))
    with pytest.raises(sweep.SweepError, match="settings"):
        sweep.sweep_from_dict({"cube": "x", "models": [], "settings": ["x"]}, root=Path("."))
    with pytest.raises(sweep.SweepError, match=r"\[\[models\]\] number 1"):
        sweep.sweep_from_dict(
            {"cube": "x", "models": [{"family": "dense", "units": [[99999]]}]}, root=Path(".")
        )


def test_run_sweep__rows_columns_restart_and_failures(tiny_cube: Path, tmp_path: Path) -> None:
    models = [
        {"family": "dense", "inputs": "signal", "units": [[2], [16]]},
        {"family": "xgboost", "inputs": "signal", "n_trees": 3, "max_depth": 2},
    ]
    spec = sweep.sweep_from_dict(_spec(tiny_cube, models), root=tmp_path)
    assert len(spec.experiments) == 3 * 2
    results = tmp_path / "results"
    table = sweep.run_sweep(
        spec.experiments, results, workers=0, progress=False, save_predictions=True
    )
    assert len(table) == 6
    assert list(table.columns) == sweep.columns()
    assert (table["status"] == "ok").all(), table["error"].tolist()
    assert table["n_params"].gt(0).all() and table["ap"].between(0, 1).all()
    assert table["snapshot"].eq(cube.open_cube(tiny_cube).attrs["snapshot"]).all()
    assert set(table["setting"]) == {"cross-chromosome", "hybrid"}
    dense2 = table[(table.label == "dense 2")].iloc[0]
    assert dense2["n_params"] == ModelSpec("dense", units=(2,)).n_params(n_marks=5)
    # the stored AP is the AP of the saved predictions against the cube's labels
    row = table.iloc[0]
    scores = sweep.read_predictions(results, row["id"])
    labels = cube.open_cube(tiny_cube)["label"].sel(
        cell_type=list(scores.cell_type.values), locus=scores.locus.values
    )
    assert evaluate.average_precision(labels, scores) == pytest.approx(row["ap"], abs=1e-12)
    assert pd.read_parquet(results / sweep.RESULTS_FILE)["id"].tolist() == table["id"].tolist()

    # a restart with one more model trains only that one
    more = [*models, {"family": "dense", "inputs": "random", "units": [[4]]}]
    again = sweep.sweep_from_dict(_spec(tiny_cube, more), root=tmp_path)
    table2 = sweep.run_sweep(again.experiments, results, workers=0, progress=False)
    assert len(table2) == 8
    assert table2.iloc[:6]["finished_at"].tolist() == table["finished_at"].tolist()

    # a failing model is recorded with its error, not lost, and not retried by default
    bad = sweep.Experiment(
        cube=str(tmp_path / "no-such-cube"),
        task="expression",
        setting="hybrid",
        target="E003",
        spec=ModelSpec("dense", units=(2,)),
    )
    table3 = sweep.run_sweep([bad], results, workers=0, progress=False)
    failed = table3[table3["status"] == "failed"]
    assert len(failed) == 1 and "not a pitfall cube" in failed["error"].iloc[0]
    table4 = sweep.run_sweep([bad], results, workers=0, progress=False)
    assert table4["finished_at"].tolist() == table3["finished_at"].tolist()
    # what a rerun would skip: every row by default, the failed one retried otherwise
    assert sweep.skipped_ids(results) == set(table4["id"])
    assert sweep.skipped_ids(results, retry_failed=True) == set(table4["id"]) - {bad.id}


def test_run_sweep__on_a_local_worker_process_same_rows_as_in_process(
    tiny_cube: Path, tmp_path: Path
) -> None:
    # The cluster that build and append use (pitfall.cluster.dask_client) runs the sweep too.
    models = [{"family": "xgboost", "inputs": "signal", "n_trees": 3, "max_depth": 2}]
    spec = sweep.sweep_from_dict(_spec(tiny_cube, models), root=tmp_path)
    here = sweep.run_sweep(spec.experiments, tmp_path / "here", workers=0, progress=False)
    there = sweep.run_sweep(spec.experiments, tmp_path / "there", workers=1, progress=False)
    assert (there["status"] == "ok").all(), there["error"].tolist()
    assert there["id"].tolist() == here["id"].tolist()
    assert there["ap"].tolist() == pytest.approx(here["ap"].tolist(), abs=1e-12)


def test_sweep_from_dict__targets_and_folds(tiny_cube: Path, tmp_path: Path) -> None:
    raw = {**_spec(tiny_cube, [{"family": "dense", "inputs": "random", "units": [[2]]}])}
    del raw["target"]
    raw |= {"targets": ["E003", "E116"], "settings": ["hybrid"],
            "folds": [{"test": ["chr1"], "valid": ["chr2"]}, {"test": ["chr2"], "valid": ["chr1"]}]}  # fmt: skip
    exps = sweep.sweep_from_dict(raw, root=tmp_path).experiments
    assert [(e.target, e.test_chroms) for e in exps] == [
        ("E003", ("chr1",)), ("E003", ("chr2",)), ("E116", ("chr1",)), ("E116", ("chr2",))
    ]  # fmt: skip
    assert len({e.id for e in exps}) == 4
    # without a fold an experiment keeps the id it had before folds existed (restarts skip it)
    plain = sweep.Experiment(str(tiny_cube), "expression", "hybrid", "E003", exps[0].spec)
    old_key = json.dumps([plain.cube, "expression", "hybrid", "E003", plain.spec.to_dict(), [],
                          None], sort_keys=True, default=str)  # fmt: skip
    assert plain.id == hashlib.sha1(old_key.encode()).hexdigest()[:16] != exps[0].id
    ds = cube.open_cube(tiny_cube)
    split = sweep.make_split(ds, exps[3])
    assert split.test_cell_types == ("E116",) and split.test_chroms == ("chr2",)
    assert "chr2" not in split.train_chroms and "chr1" in split.train_chroms
    table = sweep.run_sweep(exps[3:], tmp_path / "r", workers=0, progress=False,
                            save_predictions=True)  # fmt: skip
    row = table.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert (row["target"], row["test_chroms"]) == ("E116", "chr2")
    scores = sweep.read_predictions(tmp_path / "r", row["id"])
    assert set(ds["chrom"].sel(locus=scores.locus.values).values.tolist()) == {"chr2"}
    labels = ds["label"].sel(cell_type=["E116"], locus=scores.locus.values)
    assert evaluate.average_precision(labels, scores) == pytest.approx(row["ap"], abs=1e-12)
    with pytest.raises(sweep.SweepError, match="target or targets"):
        sweep.sweep_from_dict({**raw, "target": "E003"}, root=tmp_path)
    with pytest.raises(sweep.SweepError, match="valid"):
        sweep.sweep_from_dict({**raw, "folds": [{"test": ["chr1"]}]}, root=tmp_path)
