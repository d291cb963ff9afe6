"""The main job: ``pitfall demo --quick`` and the paper's findings on the synthetic default.

One quick demo (demo-size compendium: 3,000 genes x 18 cell types x 5 marks; a short
training recipe) feeds every test here. The assertions are the paper's claims, with
margins, checked on the results table the report was drawn from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pitfall import cube, demo, sweep  # noqa: E402
from pitfall.experiments import figure1, grids  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    # a relative --out, as the README's command gives it
    cwd = Path.cwd()
    os.chdir(root)
    try:
        demo.run(Path("out") / "demo", quick=True)
    finally:
        os.chdir(cwd)
    return root / "out" / "demo"


@pytest.fixture(scope="module")
def results(quick: Path) -> pd.DataFrame:
    table = sweep.read_results(quick / "results")
    assert (table["status"] == "ok").all(), table.loc[table.status != "ok", "error"].tolist()
    return table


def _ap(results: pd.DataFrame, setting: str, label: str) -> float:
    row = results[(results.task == "expression") & (results.setting == setting)
                  & (results.label == label)]  # fmt: skip
    assert len(row) == 1, (setting, label)
    return float(row["ap"].iloc[0])


def test_demo__writes_a_self_contained_report(quick: Path) -> None:
    html = (quick / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6
    assert "<script" not in html and "src='http" not in html
    for name in ("figure1_def_expression", "figure_s1_trees", "figure_s4_partitioned",
                 "figure_s5_baseline_vs_similarity", "preprint_figure_s1_pca_umap",
                 "preprint_figure_s2_gaussians", "single_cell_types_vs_similarity"):  # fmt: skip
        assert (quick / "figures" / f"{name}.png").stat().st_size > 10_000
    assert "snapshot" in html and "tensorflow" in html


def test_demo__large_sequence_model_memorises_across_cell_types(results: pd.DataFrame) -> None:
    small = _ap(results, "cross-cell-type", "seq dense 1")
    large = _ap(results, "cross-cell-type", "seq dense 512")
    baseline = results.loc[results.setting == "cross-cell-type", "ap_average_activity"].iloc[0]
    assert large > small + 0.1
    assert baseline > large and baseline > small


def test_demo__hybrid_removes_the_gain(results: pd.DataFrame) -> None:
    small = _ap(results, "hybrid", "seq dense 1")
    large = _ap(results, "hybrid", "seq dense 512")
    ctt_gain = _ap(results, "cross-cell-type", "seq dense 512") - _ap(
        results, "cross-cell-type", "seq dense 1"
    )
    assert large - small < 0.05
    assert large - small < ctt_gain / 3


def test_demo__findings_match_the_paper(quick: Path, results: pd.DataFrame) -> None:
    f = json.loads((quick / "findings.json").read_text())["expression"]
    assert f == json.loads(json.dumps(figure1.findings(results, "expression"), default=float))
    ctt, hyb = f["cross-cell-type"], f["hybrid"]
    # cross-cell-type: AP rises with parameters for sequence-input models (and for the
    # random control, which can only identify loci), and the baseline beats every model
    assert (
        ctt["sequence"]["gain"] > 0.1 and ctt["sequence"]["ap_largest"] > ctt["sequence"]["ap_min"]
    )
    assert ctt["random"]["gain"] > 0.1
    assert ctt["baseline_beats_all"]
    # hybrid: the trend is gone
    assert hyb["sequence"]["gain"] < 0.05 and hyb["random"]["gain"] < 0.05
    assert hyb["baseline_beats_all"]
    # epigenomic-only models: size helps them far less than it helps sequence models, and
    # their largest model does as well on unseen chromosomes as across cell types (nothing
    # memorised)
    assert ctt["signal"]["gain"] < ctt["sequence"]["gain"] / 2
    assert (
        abs(ctt["signal"]["ap_largest"] - hyb["signal"]["ap_largest"]) < figure1.EPIGENOMIC_MARGIN
    )


def test_demo__rerun_trains_nothing_new(quick: Path, results: pd.DataFrame) -> None:
    again = demo.run_sweeps(
        {"expression": quick / "store" / "expression"}, quick, size="quick", workers=0
    )
    assert again["finished_at"].tolist() == results["finished_at"].tolist()


def test_demo__report_has_the_remedies(quick: Path) -> None:
    table = pd.read_csv(quick / "remedies" / "remedies.tsv", sep="\t")
    # every model of the quick remedy grid under each remedy, in both settings
    expected = {(s, r) for s in grids.REMEDY_SETTINGS for r in grids.REMEDIES}
    assert set(zip(table.setting, table.remedy, strict=True)) == expected
    assert len(table) == len(grids.remedy_grid("quick")) * len(grids.REMEDY_SETTINGS)
    html = (quick / "report.html").read_text()
    assert "Remedies: the average activity as an input" in html


def test_demo__imputation_findings_against_the_cube(quick: Path) -> None:
    f = json.loads((quick / "findings.json").read_text())["imputation"]
    ds = cube.open_cube(quick / "store" / "imputation")
    sig = ds["signal"].sel(mark=demo.IMPUTATION_MARK).values  # (cell_type, locus)
    obs = ds["observed"].sel(mark=demo.IMPUTATION_MARK).values
    cts = [str(c) for c in ds["cell_type"].values]
    target = cts.index("E003")
    others = [i for i in range(len(cts)) if i != target and obs[i]]
    # the Average by hand: the mark's mean over the other cell types that have it
    average, truth = sig[others].mean(axis=0), sig[target]
    on_chr1 = ds["chrom"].values == "chr1"
    for setting, loci in (("cross-cell-type", np.ones_like(on_chr1)), ("hybrid", on_chr1)):
        got = f[setting]["baselines"]["track_average"]["mse"]
        assert got == pytest.approx(float(np.mean((average - truth)[loci] ** 2)), rel=1e-4)
    # the other marks carry E003's own activity: XGBoost reading them beats the Average on
    # unseen chromosomes, which locus-constant random inputs cannot
    assert f["hybrid"]["families"]["impute_xgboost"]["beats_average_mse"]
    assert not f["hybrid"]["families"]["random"]["beats_average_mse"]
    html = (quick / "report.html").read_text()
    assert "Imputation across cell types: H3K4me3 in E003" in html
