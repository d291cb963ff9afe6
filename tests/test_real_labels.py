"""The real-label report on ../shared/data at a tiny plan: its numbers against naive ones."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pitfall import cube  # noqa: E402
from pitfall.experiments import real_labels  # noqa: E402

TINY = real_labels.Plan(
    training={"batches_per_epoch": 4, "max_epochs": 2, "patience": 1, "valid_size": 64},
    curve_units=((1,), (8,)),
    grid_units=((1,), (8,)),
    n_targets=2,
    seeds=(0, 1),
    gbm_trees=(2,),
    gbm_depth=2,
    gbm_sample=2_000,
    tad_units=((2,),),
)


@pytest.fixture(scope="module")
def report(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real")
    real_labels.run(shared_data, out, plan=TINY, workers=0, progress=False)
    return out


def test_pick_targets__one_per_group_largest_first(report: Path) -> None:
    ds = cube.open_cube(report / "store" / "roadmap")
    picked = real_labels.pick_targets(ds, 6, exclude=["E004", "E037"])
    group = dict(zip(ds["cell_type"].values.tolist(), ds["cell_type_group"].values.tolist(),
                     strict=True))  # fmt: skip
    assert picked[0] == "E003" and len(picked) == 6
    assert len({group[c] for c in picked}) == 6 and not {"E004", "E037"} & set(picked)
    sizes = pd.Series(list(group.values())).value_counts()
    assert [sizes[group[c]] for c in picked[1:]] == sorted(
        (sizes[group[c]] for c in picked[1:]), reverse=True
    )


def test_run__report_and_findings_against_naive_numbers(report: Path) -> None:
    assert (report / "report.html").stat().st_size > 10_000
    found = json.loads((report / "findings.json").read_text())
    # no fetch there: the labels-only report, saying what the full one lacked
    assert found["report"]["kind"] == "labels-only" and "hg19/hg19.fa" in found["report"]["why"]
    assert "Labels-only report:" in (report / "report.html").read_text()
    ds = cube.open_cube(report / "store" / "roadmap")
    y = ds["label"].sel(cell_type="E003")
    on_chr1 = (ds["chrom"] == "chr1").values
    # hybrid tests E003 on chr1; across cell types on every other chromosome
    hybrid, cct = found["curve"]["hybrid"], found["curve"]["cross-cell-type"]
    assert hybrid["prevalence"] == pytest.approx(float(np.nanmean(y.values[on_chr1])), abs=1e-12)
    assert cct["prevalence"] == pytest.approx(float(np.nanmean(y.values[~on_chr1])), abs=1e-12)
    from sklearn.metrics import average_precision_score

    # the baseline of the hybrid row: the mean label of the 55 other epigenomes on chr1,
    # scored by scikit-learn
    others = [c for c in ds["cell_type"].values.tolist() if c != "E003"]
    avg = ds["label"].sel(cell_type=others).values[:, on_chr1].mean(axis=0)
    assert hybrid["ap_average_activity"] == pytest.approx(
        average_precision_score(y.values[on_chr1], avg), abs=1e-9
    )
    grid = found["grid"]
    assert grid["targets"][0] == "E003" and len(grid["targets"]) == 2
    assert grid["folds"] == ["chr1", "chr2"] and grid["n_seeds"] == 2
    assert grid["cross_cell_type_largest"]["n_cells"] == grid["hybrid"]["n_cells"] // 2 == 4
    assert set(found["gbm"]) == {"cross-cell-type", "hybrid"} and "tad_curve" in found
    assert found["s5"]["n_targets"] == 56
    # trees are sized in leaves, networks in parameters
    said = real_labels.describe(found)
    assert " leaves; best" in said["gbm"][0] and " parameters; best" in said["curve"][0]
    figures = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert figures == sorted(["real_curve.png", "real_tad_curve.png", "real_gbm.png",
                              "real_grid.png", "real_partitioned.png",
                              "figure_s5_baseline_vs_similarity.png"])  # fmt: skip


def test_grid_summary__seeds_range_equals_the_rows(report: Path) -> None:
    from pitfall import sweep

    table = sweep.read_results(report / "results")
    grid = table[(table["task"] == "expression") & (table["family"] == "dense")
                 & (table["target"] != "E003")]  # fmt: skip
    summary = real_labels.grid_summary(grid.assign(prevalence=0.5))
    for _, r in summary.iterrows():
        aps = grid[(grid["setting"] == r["setting"]) & (grid["test_chroms"] == r["test_chroms"])
                   & (grid["label"] == r["label"])]["ap"]  # fmt: skip
        assert r["n_seeds"] == len(aps) == 2
        assert (r["ap_min"], r["ap_max"]) == (aps.min(), aps.max())
        assert r["ap_mean"] == pytest.approx(aps.mean())


def test_partitioned_baselines__control_against_a_random_ranking_within_groups(
    report: Path,
) -> None:
    from pitfall import sweep

    ds = cube.open_cube(report / "store" / "roadmap")
    table = sweep.read_results(report / "results")
    grid = table[(table["family"] == "dense") & (table["task"] == "expression")]
    exps = real_labels.plan_experiments(
        report / "store" / "roadmap", report / "store" / "tads", TINY
    )["grid"]
    part, summary = real_labels.partitioned_baselines(ds, grid, exps, report / "results")
    assert set(part["setting"]) == set(summary["setting"]) == {"cross-cell-type", "hybrid"}
    e003 = ds["label"].sel(cell_type="E003").values
    on_chr1 = (ds["chrom"] == "chr1").values
    for setting, loci in (("hybrid", on_chr1), ("cross-cell-type", ~on_chr1)):
        rows = part[part["setting"] == setting]
        assert rows["n_loci"].sum() == int(np.isfinite(e003[loci]).sum())
        # the reference within a group: a random ranking's expected AP (harmonic numbers),
        # not the prevalence a tied baseline scores there
        both = rows[(rows["n_positive"] > 0) & (rows["n_positive"] < rows["n_loci"])]
        for _, r in both.iterrows():
            n, k = int(r["n_loci"]), int(r["n_positive"])
            h = sum(1 / i for i in range(1, n + 1))
            assert r["ap_random_expected"] == pytest.approx((h + (k - 1) / (n - 1) * (n - h)) / n)
            assert r["ap_random_expected"] > r["prevalence"]
            assert r["gain"] == pytest.approx(r["ap"] - r["ap_random_expected"])
        s = summary[summary["setting"] == setting].iloc[0]
        weights = both["n_loci"] / both["n_loci"].sum()
        assert s["within_group_gain"] == pytest.approx(float((weights * both["gain"]).sum()))
    sentences = real_labels.describe_partitioned(summary)
    assert len(sentences) == 2 and "against a random ranking of each group" in sentences[0]


@pytest.mark.slow
def test_report_real_command__quick_size_as_the_readme_gives_it(
    shared_data: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    out = tmp_path / "real"
    cmd = [sys.executable, "-m", "pitfall.cli", "report", "real", str(shared_data)]
    proc = subprocess.run(
        [*cmd, "--size", "quick", "--out", str(out), "--workers", "0"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads((out / "findings.json").read_text())
    plan = real_labels.PLANS["quick"]
    assert found["run"]["n_models"] == found["run"]["n_trained_now"] > 0
    assert found["run"]["plan"] == json.loads(json.dumps(plan.to_dict(), default=str))
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list((out / "figures").glob("*.png")))
    # the quick recipe says what it cannot show, once before each memorisation curve
    assert html.count("too little for the random control to memorise") == 3
