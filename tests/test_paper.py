"""The paper's model grids (every power of two of the methods) and the remedies' experiments."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

from pitfall import sweep  # noqa: E402
from pitfall.experiments import grids, remedies  # noqa: E402
from pitfall.models import ModelSpec  # noqa: E402

SHAPE = (grids.PAPER_SHAPE["n_marks"], grids.PAPER_SHAPE["seq_len"])


def family_of(spec: ModelSpec) -> str:
    """The grid's families: the architecture, and the controls apart."""
    if spec.inputs == "random":
        return "random"
    if spec.permuted:
        return "permuted"
    return spec.family


def grid_specs(task: str, size: str) -> dict[str, list[ModelSpec]]:
    out: dict[str, list[ModelSpec]] = {}
    for table in grids.model_grid(task, size):
        for spec in sweep.expand_models(table, [0]):
            out.setdefault(family_of(spec), []).append(spec)
    return out


# ----------------------------------------------------------------------------- paper grid


def test_paper_grid__every_power_of_two_of_the_methods() -> None:
    # the methods' ranges, enumerated independently of paper.py
    def stacks(depths, top):
        return {(2**k,) * n for n in depths for k in range(top + 1)}

    specs = grid_specs("expression", "paper")
    assert {s.units for s in specs["dense"]} == stacks(range(1, 6), 12)
    assert {s.units for s in specs["random"]} == stacks(range(1, 6), 12)
    assert {s.units for s in specs["seq_dense"]} == stacks(range(1, 4), 10)
    assert {s.units for s in specs["permuted"]} == stacks(range(1, 4), 10)
    conv = {(s.filters, s.units) for s in specs["seq_conv"]}
    assert conv == set(itertools.product(stacks(range(1, 4), 8), stacks([1], 10)))
    counts = {k: len(v) for k, v in specs.items()}
    assert counts == {"dense": 65, "seq_dense": 33, "seq_conv": 297, "combined": 100,
                      "random": 65, "permuted": 33}  # fmt: skip
    for family in specs.values():  # no model twice
        assert len(set(family)) == len(family)


def test_paper_grid__tad_gets_every_family_of_expression() -> None:
    for size in ("quick", "demo", "paper"):
        assert grids.model_grid("tad", size) == grids.model_grid("expression", size)


def test_combined_draw__seeded_random_and_spans_up_to_1e8() -> None:
    draw = grids.combined_draw()
    assert draw == grids.combined_draw()  # deterministic
    assert draw != grids.combined_draw(seed=1)
    specs = [ModelSpec.from_dict(t) for t in draw]
    assert len(set(specs)) == len(specs) == 100
    sizes = np.array([s.n_params(*SHAPE) for s in specs], dtype=float)
    assert np.all(np.diff(sizes) >= 0)  # by increasing size
    assert 0.9e8 <= sizes.max() <= 1e8  # reaching about 10^8
    assert sizes.min() < 1e3
    # spread over the range: no gap of more than half a decade
    assert np.diff(np.log10(sizes)).max() < 0.5
    # every one a convolutional sequence branch and an epigenomic branch, in the ranges
    for s in specs:
        assert 1 <= len(s.filters) <= 3 and len(s.seq_units) == 1
        assert 1 <= len(s.units) <= 5 and s.joint_units >= 1
        assert len(set(s.filters)) == 1 and len(set(s.units)) == 1
    # drawn, not a sweep of one axis: every axis takes several values
    for field in ("filters", "seq_units", "units", "joint_units"):
        assert len({getattr(s, field) for s in specs}) >= 5


def _extremes() -> list[ModelSpec]:
    out = []
    for specs in grid_specs("expression", "paper").values():
        by_size = sorted(specs, key=lambda s: s.n_params(*SHAPE))
        out += [by_size[0], by_size[-1]]
    return out


@pytest.mark.parametrize("spec", _extremes(), ids=lambda s: s.label)
def test_paper_grid__extremes_equal_keras_count_params(spec: ModelSpec) -> None:
    # The largest (a 1.3e8-parameter convolutional network, the ~1e8 combined one) are
    # built too: 4 bytes a parameter, a few seconds and ~0.5 GB each on a CPU.
    from pitfall.models import devices
    from pitfall.models.nn import build_model

    model = build_model(spec, n_marks=SHAPE[0], seq_len=SHAPE[1])
    try:
        assert model.count_params() == spec.n_params(*SHAPE)
    finally:
        del model
        devices.keras().backend.clear_session()


def test_paper_grid__parameter_ranges() -> None:
    ranges = {
        family: (min(s.n_params(*SHAPE) for s in specs), max(s.n_params(*SHAPE) for s in specs))
        for family, specs in grid_specs("expression", "paper").items()
    }
    # by hand: (inputs + 1) * units per layer, plus the output unit
    assert ranges["dense"] == ((5 + 1) * 1 + 2, 6 * 4096 + 4 * 4097 * 4096 + 4097)
    assert ranges["seq_dense"][1] == 8001 * 1024 + 2 * 1025 * 1024 + 1025
    # one conv layer of 256 filters leaves (2000 - 7) // 4 = 498 positions x 256 channels
    assert ranges["seq_conv"][1] == 33 * 256 + (498 * 256 + 1) * 1024 + 1025
    assert ranges["random"][0] == 101 + 2


def test_gbm_grid__paper_every_power_of_two_trees() -> None:
    grid = {t["inputs"]: t["n_trees"] for t in grids.gbm_grid("paper")}
    assert grid["signal"] == grid["random"] == [2**k for k in range(11)]
    assert grid["sequence"] == [2**k for k in range(10)]


def test_sweep_spec__paper_grid_expands_to_experiments(tmp_path) -> None:
    spec = grids.sweep_spec(str(tmp_path / "cube"), "tad", "E003", "paper")
    exps = sweep.sweep_from_dict(spec, root=tmp_path).experiments
    assert len(exps) == 3 * 593
    assert len({e.id for e in exps}) == len(exps)


# ----------------------------------------------------------------------------- quick, demo


@pytest.mark.parametrize("size", ["quick", "demo"])
@pytest.mark.parametrize("task", ["expression", "tad"])
def test_small_grids__each_family_at_both_ends(task: str, size: str) -> None:
    paper_specs = grid_specs(task, "paper")
    small = grid_specs(task, size)
    if size == "demo":
        assert set(small) == set(paper_specs)
    else:
        assert {"dense", "seq_dense", "random"} <= set(small)
    for family, specs in small.items():
        sizes = sorted(s.n_params(*SHAPE) for s in specs)
        smallest_paper = min(paper_specs[family], key=lambda s: s.n_params(*SHAPE))
        # the smallest end: every layer one unit (or filter) wide, as the paper's smallest
        # (quick's epigenomic models start at 4 units: a single unit is dead at seed 0)
        narrowest = min(specs, key=lambda s: s.n_params(*SHAPE))
        width = 4 if (size, family) == ("quick", "dense") else 1
        assert max((*narrowest.units, *narrowest.filters, *narrowest.seq_units,
                    narrowest.joint_units)) == width, family  # fmt: skip
        if width == 1:
            assert sizes[0] <= smallest_paper.n_params(*SHAPE), family
        # the largest end: at least two decades bigger, inside the paper's range
        assert sizes[-1] >= 100 * sizes[0], family
        assert sizes[-1] <= max(s.n_params(*SHAPE) for s in paper_specs[family]), family
        for s in specs:
            s.validate()


# ----------------------------------------------------------------------------- remedies

TINY_RECIPE = {"batches_per_epoch": 4, "max_epochs": 1, "patience": 1, "valid_size": 64,
               "sample_size": 64}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_cube_path(tmp_path_factory: pytest.TempPathFactory):
    from pitfall import featurize, synth

    root = tmp_path_factory.mktemp("paper")
    comp = synth.synthesize(root / "synth", "tiny")
    featurize.build(comp.manifest, root / "cube", workers=1, processes=False, progress=False)
    return root / "cube"


@pytest.fixture(scope="module")
def remedy_run(tiny_cube_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("remedies") / "results"
    rep = remedies.make(tiny_cube_path, out, size="quick", workers=0, training=TINY_RECIPE,
                         progress=False)  # fmt: skip
    return rep, out


def test_remedy_grid__every_model_under_every_remedy() -> None:
    for size in ("quick", "demo", "paper"):
        specs = [s for t in grids.remedy_grid(size) for s in sweep.expand_models(t, [0])]
        by_model: dict[str, set[str]] = {}
        for s in specs:
            d = s.to_dict()
            by_model.setdefault(remedies._base_label(d), set()).add(remedies.remedy_of(d))
        assert all(v == set(grids.REMEDIES) for v in by_model.values()), by_model
        assert {s.inputs for s in specs} >= {"signal", "sequence"}
    assert grids.remedies_spec("c", "expression", "E003")["settings"] == [
        "cross-cell-type", "hybrid"]  # fmt: skip


def test_remedies__table_against_independent_aps(remedy_run, tiny_cube_path) -> None:
    from sklearn.metrics import average_precision_score

    from pitfall import open_cube, tasks

    rep, out = remedy_run
    assert (rep.tables["results"]["status"] == "ok").all(), rep.tables["results"]["error"].tolist()
    assert len(rep.tables["remedies"]) == 2 * 4 * 2  # models x remedies x settings
    ds = open_cube(tiny_cube_path)
    names = list(map(str, ds["cell_type"].values))
    for _, r in rep.tables["results"].iterrows():
        remedy = remedies.remedy_of(json.loads(r["spec"]))
        pick = (
            (rep.tables["remedies"]["setting"] == r["setting"])
            & (rep.tables["remedies"]["n_params"] == r["n_params"])
            & (rep.tables["remedies"]["remedy"] == remedy)
        )
        row = rep.tables["remedies"][pick]
        assert len(row) == 1
        row = row.iloc[0]
        # the model's AP and the baseline's, computed here from the cube's labels
        split = tasks.get_task("expression").split(ds, r["setting"], "E003")
        scores = sweep.read_predictions(out, r["id"]).sel(cell_type="E003")
        loci = scores["locus"].values
        y = ds["label"].values[names.index("E003"), loci]
        seen = [names.index(c) for c in (*split.train_cell_types, *split.valid_cell_types)]
        avg = np.nanmean(ds["label"].values[seen][:, loci], axis=0)
        known = ~np.isnan(y)
        assert row["ap"] == pytest.approx(
            average_precision_score(y[known], scores.values[known]), abs=1e-9
        )
        assert row["ap_average_activity"] == pytest.approx(
            average_precision_score(y[known], avg[known]), abs=1e-9
        )
        assert row["ap"] == pytest.approx(r["ap"], abs=1e-9)
        assert row["ap_average_activity"] == pytest.approx(r["ap_average_activity"], abs=1e-9)
        assert row["leakage"] == (1.0 if r["setting"] == "cross-cell-type" else 0.0)
        # per group: loci active in g of the seen cell types
        n_active = np.nansum(ds["label"].values[seen][:, loci] == 1, axis=0)
        groups = rep.tables["groups"][(rep.tables["groups"]["setting"] == r["setting"])
                            & (rep.tables["groups"]["model"] == row["model"])
                            & (rep.tables["groups"]["remedy"] == row["remedy"])]  # fmt: skip
        for _, g in groups.iterrows():
            m = (n_active == g["group"]) & known
            assert g["n_loci"] == m.sum()
            if 0 < y[m].sum() < m.sum():
                assert g["ap_model"] == pytest.approx(
                    average_precision_score(y[m], scores.values[m]), abs=1e-9
                )
    hybrid_base = (
        rep.tables["remedies"]
        .loc[rep.tables["remedies"].setting == "hybrid", "ap_average_activity"]
        .median()
    )
    assert rep.sentences and f"AP {hybrid_base:.3f}" in rep.sentences[0]
    section = rep.section(tables=["summary"])
    assert section["findings"] == rep.sentences and len(section["tables"][0]) == len(
        rep.tables["remedies"]
    )


def test_remedies__rerun_trains_nothing(remedy_run, tiny_cube_path) -> None:
    rep, out = remedy_run
    again = remedies.make(tiny_cube_path, out, size="quick", workers=0, training=TINY_RECIPE,
                           progress=False)  # fmt: skip
    assert (
        again.tables["results"]["finished_at"].tolist()
        == rep.tables["results"]["finished_at"].tolist()
    )


def _table(rows):
    import pandas as pd

    cols = ["setting", "model", "inputs", "remedy", "ap", "ap_average_activity", "gain",
            "within_group_gain", "within_group_p"]  # fmt: skip
    table = pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])
    # intervals of +-0.02 around each gain; beating: above the margin, interval above 0
    table["gain_ci"] = [[g - 0.02, g + 0.02] for g in table["gain"]]
    table["beats_baseline"] = (table["gain"] > 0.01) & (table["gain"] - 0.02 > 0)
    return table


def test_describe_remedies__sentences_follow_the_numbers() -> None:
    h = "hybrid"
    table = _table([
        (h, "dense 64", "signal", "none", 0.80, 0.90, -0.10, 0.20, 0.001),
        (h, "dense 64", "signal", "average input", 0.95, 0.90, 0.05, 0.15, 0.001),
        (h, "dense 64", "signal", "residual target", 0.905, 0.90, 0.005, 0.10, 0.01),
        (h, "seq dense 512", "sequence", "none", 0.60, 0.90, -0.30, 0.01, 0.6),
        (h, "seq dense 512", "sequence", "residual target", 0.90, 0.90, 0.0, 0.0, 1.0),
        ("cross-cell-type", "seq dense 512", "sequence", "none", 0.99, 0.95, 0.04, 0.0, 1.0),
    ])  # fmt: skip
    lines = remedies.describe_remedies(table)
    assert "baseline scores AP 0.900" in lines[0]
    assert "epigenomic models reach AP 0.800 plain, 0.950 with the average as an input" in lines[0]
    # beating (gain above the margin, interval above 0): 0.95 only; level (interval holds
    # 0): the residual models
    assert lines[1].startswith("1 of 3 remedied models beat the baseline (by more than 0.01 "
                               "AP, with a 95% interval above 0), 2 are level")  # fmt: skip
    assert "(average input, +0.050 [+0.030, +0.070])" in lines[1]
    # Holm over the five hybrid models: 0.001, 0.001, 0.01 -> 0.005, 0.005, 0.03 (< 0.05)
    assert "+0.100 to +0.200 AP over a random ranking" in lines[2]
    assert "Holm-adjusted over the 5 models, p < 0.05) in 3 of 3" in lines[2]
    assert "+0.000 to +0.010" in lines[2] and "in 0 of 2" in lines[2]
    assert lines[3].startswith("So a remedy brings an epigenomic model above the baseline")
    # every interval below 0: the other conclusion
    low = _table([(*r[:6], r[6] - 0.3, *r[7:]) for r in table[[
        "setting", "model", "inputs", "remedy", "ap", "ap_average_activity", "gain",
        "within_group_gain", "within_group_p"]].itertuples(index=False)])  # fmt: skip
    assert remedies.describe_remedies(low)[-1].startswith("Every remedied model falls short")
    assert remedies.describe_remedies(table[table.setting != h]) == []
