"""Every pipeline the README lists, run as a user runs it: ``--help`` for all, and a run at
``--size quick`` on the synthetic default (or on ../shared/data for the real-data ones).

Each run is checked against what it must have done, counted independently of the
experiment modules: the sweep's rows against the grid, the saved tables against the cube,
the saved findings against a recomputation from the saved table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = sorted(p.stem for p in (ROOT / "pipelines").glob("*.py") if not p.stem.startswith("_"))


def _run(script: str, *args: str | Path, cwd: Path, timeout: int = 1200) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / f"{script}.py"), *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output folder with the synthetic default's two cubes built, shared by the runs."""
    from pitfall import demo

    out = tmp_path_factory.mktemp("pipelines")
    demo.build_cubes(out, workers=1)
    return out


def _png(out: Path, name: str) -> None:
    assert (out / "figures" / f"{name}.png").stat().st_size > 10_000


def _grid_rows(spec: dict) -> int:
    from pitfall import sweep

    return len(sweep.sweep_from_dict(spec, root=Path.cwd()).experiments)


@pytest.mark.parametrize("script", PIPELINES)
def test_pipeline__help(script: str, tmp_path: Path) -> None:
    out = _run(script, "--help", cwd=tmp_path, timeout=300)
    assert out.startswith("usage:") and f"{script}.py" in out


def test_pipelines__every_one_is_tested() -> None:
    tested = {
        part
        for name in globals()
        if name.startswith("test_pipeline_run__")
        for part in name.removeprefix("test_pipeline_run__").split("__")
    }
    assert set(PIPELINES) <= tested, set(PIPELINES) - tested


@pytest.mark.parametrize("task", ["expression", "tad"])
def test_pipeline_run__fig1_expression__fig1_tad__every_grid_model_trains(
    default: Path, task: str
) -> None:
    from pitfall import sweep
    from pitfall.experiments import grids

    script = "fig1_expression" if task == "expression" else "fig1_tad"
    _run(script, "--size", "quick", "--workers", "0", "--out", default, cwd=default)
    table = sweep.read_results(default / f"results_{task}")
    spec = grids.sweep_spec(str(default / "store" / task), task, "E003", "quick")
    assert len(table) == _grid_rows(spec) and (table["status"] == "ok").all()
    name = "figure1_def_expression" if task == "expression" else "figure1_ghi_tad"
    _png(default, name)
    found = json.loads((default / "results" / f"{name}.json").read_text())["findings"]
    hybrid = table[table["setting"] == "hybrid"]
    assert found["hybrid"]["best_model_ap"] == pytest.approx(hybrid["ap"].max())


def test_pipeline_run__gbm_sweep(default: Path) -> None:
    from pitfall import sweep
    from pitfall.experiments import grids

    _run("gbm_sweep", "--size", "quick", "--workers", "0", "--out", default, cwd=default)
    table = sweep.read_results(default / "results_gbm")
    spec = grids.sweep_spec(
        str(default / "store" / "expression"), "expression", "E003", "quick", gbm=True
    )
    assert len(table) == _grid_rows(spec) and set(table["family"]) == {"xgboost"}
    _png(default, "figure_s1_trees")


def test_pipeline_run__controls(default: Path) -> None:
    from pitfall import sweep

    _run("controls", "--size", "quick", "--workers", "0", "--out", default, cwd=default)
    table = sweep.read_results(default / "results_controls")
    assert set(table["inputs"]) <= {"random", "permuted"} and len(table) > 0
    assert set(table["setting"]) == {"cross-cell-type", "hybrid"}
    _png(default, "controls")


def test_pipeline_run__preprint_figS2_gaussians(default: Path) -> None:
    _run("preprint_figS2_gaussians", "--size", "quick", "--out", default, cwd=default)
    _png(default, "preprint_figure_s2_gaussians")
    stem = default / "results" / "preprint_figure_s2_gaussians"
    found = json.loads(stem.with_suffix(".json").read_text())["findings"]
    nets = pd.read_csv(f"{stem}_networks.tsv", sep="\t")
    means = nets.groupby("n_params")[["ap", "ap_bayes"]].mean()
    assert found["spread"] == pytest.approx(means["ap"].max() - means["ap"].min())
    assert found["gap_to_bayes"] == pytest.approx((means["ap_bayes"] - means["ap"]).max())


def test_pipeline_run__preprint_figS1_pca_umap(default: Path) -> None:
    from pitfall import cube

    _run("preprint_figS1_pca_umap", "--size", "quick", "--out", default, cwd=default)
    _png(default, "preprint_figure_s1_pca_umap")
    stem = default / "results" / "preprint_figure_s1_pca_umap"
    found = json.loads(stem.with_suffix(".json").read_text())["findings"]
    ds = cube.open_cube(default / "store" / "expression")
    assert found["n_loci"] == ds.sizes["locus"]
    assert 0 < found["explained"][1] <= found["explained"][0] < 1


def test_pipeline_run__single_cell_types(default: Path) -> None:
    from pitfall import cube, evaluate

    _run("single_cell_types", "--out", default, cwd=default)
    _png(default, "single_cell_types_vs_similarity")
    table = pd.read_csv(
        default / "results" / "single_cell_types_vs_similarity_cell_types.tsv", sep="\t"
    )
    ds = cube.open_cube(default / "store" / "expression")
    assert sorted(table["cell_type"]) == sorted(str(c) for c in ds.cell_type.values if c != "E003")
    # one cell type's AP, recomputed from the cube's labels
    row = table.iloc[0]
    y = ds["label"].sel(cell_type="E003").values
    s = ds["label"].sel(cell_type=row["cell_type"]).values
    keep = ~np.isnan(y) & ~np.isnan(s)
    assert row["ap"] == pytest.approx(evaluate.average_precision(y[keep], s[keep]))


@pytest.mark.slow
def test_pipeline_run__imputation(default: Path) -> None:
    from pitfall import cube
    from pitfall.experiments import grids

    _run("imputation", "--size", "quick", "--out", default, cwd=default)
    _png(default, "imputation")
    table = pd.read_csv(default / "results" / "imputation_models.tsv", sep="\t")
    models = table[table["kind"] != "baseline"]
    assert len(models) == len(grids.imputation_grid("quick")) * 2  # every model, both settings
    # zero's MSE is the target track's mean square, counted from the cube
    ds = cube.open_cube(default / "store" / "imputation")
    y = ds["signal"].sel(cell_type="E003", mark="H3K4me3").values.astype(np.float64)
    on_chr1 = ds["chrom"].values == "chr1"
    zero = table[table["baseline"] == "zero"].set_index("setting")["mse"]
    assert zero["cross-cell-type"] == pytest.approx(float(np.mean(y**2)), rel=1e-5)
    assert zero["hybrid"] == pytest.approx(float(np.mean(y[on_chr1] ** 2)), rel=1e-5)
    found = json.loads((default / "results" / "imputation.json").read_text())
    for setting, rows in models.groupby("setting"):
        best = rows.groupby("kind")["mse"].min()
        for kind, d in found["findings"][setting]["families"].items():
            assert d["best_mse"] == pytest.approx(best[kind])


def test_pipeline_run__figS4_partitioned(default: Path) -> None:
    _run("figS4_partitioned", "--size", "quick", "--workers", "0", "--out", default, cwd=default)
    _png(default, "figure_s4_partitioned")
    tests = pd.read_csv(default / "results" / "figure_s4_partitioned_tests.tsv", sep="\t")
    assert set(tests["comparison"]) >= {"epigenomic > sequence"}
    assert (
        tests["p_value"].dropna() >= tests.loc[tests["p_value"].notna(), "p_floor"] * (1 - 1e-9)
    ).all()


@pytest.mark.slow
def test_pipeline_run__remedies(default: Path) -> None:
    _run("remedies", "--size", "quick", "--workers", "0", "--out", default, cwd=default)
    table = pd.read_csv(default / "results" / "remedies_remedies.tsv", sep="\t")
    assert set(table["remedy"]) == {"none", "average input", "residual target", "both"}
    assert set(table["setting"]) == {"cross-cell-type", "hybrid"}


@pytest.mark.slow
def test_pipeline_run__robustness(tmp_path: Path) -> None:
    _run(
        "robustness",
        "--artefact",
        "0.5",
        "--noise",
        "1",
        "--workers",
        "0",
        "--out",
        tmp_path,
        cwd=tmp_path,
    )
    tables = list((tmp_path / "results").glob("robustness_*_variants.tsv"))
    assert len(tables) == 1 and len(pd.read_csv(tables[0], sep="\t")) == 1


def test_pipeline_run__figS5_baseline_vs_similarity(shared_data: Path, tmp_path: Path) -> None:
    from pitfall import cube

    _run("figS5_baseline_vs_similarity", shared_data, "--out", tmp_path, cwd=tmp_path)
    _png(tmp_path, "figure_s5_baseline_vs_similarity")
    table = pd.read_csv(
        tmp_path / "results" / "figure_s5_baseline_vs_similarity_targets.tsv", sep="\t"
    )
    ds = cube.open_cube(tmp_path / "store" / "roadmap")
    assert sorted(table["cell_type"]) == sorted(map(str, ds.cell_type.values))


def test_pipeline_run__real_roadmap(shared_data: Path, tmp_path: Path) -> None:
    _run("real_roadmap", shared_data, "--out", tmp_path, cwd=tmp_path)
    found = json.loads((tmp_path / "results" / "real_roadmap.json").read_text())
    assert set(found) == {"cross-cell-type, chr1-22", "hybrid, test chr1"}


def test_pipeline_run__real_tads(shared_data: Path, tmp_path: Path) -> None:
    out = _run("real_tads", shared_data, "--out", tmp_path, cwd=tmp_path)
    assert list((tmp_path / "results").glob("*.json")), out


@pytest.mark.slow
def test_pipeline_run__real_ctcf(shared_data: Path, tmp_path: Path) -> None:
    _run("real_ctcf", shared_data, "--out", tmp_path, "--workers", "2", cwd=tmp_path, timeout=1800)
    rows = json.loads((tmp_path / "results" / "real_ctcf.json").read_text())
    assert len({r["cell_type"] for r in rows}) == 7


def test_pipeline_run__figS3_encode_dream(tmp_path: Path) -> None:
    """A ctcf/ folder in the data README's layout (tiny chromosomes, generated peaks) and two
    generated submissions: one knows the target's binding, one scores every bin alike."""
    import gzip

    from pitfall import genome
    from pitfall.datasets import ctcf

    def gz(path: Path, text: str) -> None:
        with gzip.open(path, "wt") as fh:
            fh.write(text)

    data = tmp_path / "data" / "ctcf"
    data.mkdir(parents=True)
    chroms = list(genome.AUTOSOMES)
    (data / "hg19.autoX.chrom.sizes").write_text("".join(f"{c}\t1000\n" for c in chroms))
    gz(data / "blacklist.bed.gz", "chr3\t0\t100\n")
    target = "MCF-7"
    # Every line binds chr2:0-50 (bin 0); two training lines also chr2:400-410 (bins starting
    # 250-400: seen, unbound in the target); only the target chr2:790-800 (bins 600-750).
    peaks = {line: [("chr2", 0, 50)] for line in ctcf.CTCF_CELL_LINES}
    for line in ("A549", "H1-hESC"):
        peaks[line].append(("chr2", 400, 410))
    peaks[target].append(("chr2", 790, 800))
    for line, rows in peaks.items():
        text = "".join(f"{c}\t{s}\t{e}\t.\t0\t.\t5\t-1\t3\t5\n" for c, s, e in rows)
        gz(data / ctcf.peak_file(line).name, text)
    bins = [(c, s, s + 200) for c in chroms for s in range(0, 801, 50)]
    truth = {
        (c, s) for c, s, e in bins for pc, ps, pe in peaks[target] if c == pc and s < pe and ps < e
    }
    good = "".join(f"{c}\t{s}\t{e}\t{0.9 if (c, s) in truth else 0.1}\n" for c, s, e in bins)
    gz(tmp_path / "F.CTCF.MCF-7.tab.gz", good)
    gz(tmp_path / "flat.tab.gz", "".join(f"{c}\t{s}\t{e}\t0.5\n" for c, s, e in bins))
    out = tmp_path / "out"
    subs = [tmp_path / "F.CTCF.MCF-7.tab.gz", tmp_path / "flat.tab.gz"]
    args = ["--target", target, "--name", "good", "--name", "flat", "--out", out]
    _run("figS3_encode_dream", tmp_path / "data", *subs, *args, cwd=tmp_path)
    _png(out, "figure_s3_encode_dream")
    table = pd.read_csv(out / "results" / "figure_s3_encode_dream_ap.tsv", sep="\t")
    rows = table.set_index(["predictor", "group"])
    assert set(table["predictor"]) == {"good", "flat", "average activity"}
    # Only chr2 has peaks (the other chromosomes are NaN): seen = bins 0 and 250-400 (the
    # target bound at bin 0 only), not seen = the other 12 of chr2's 17 bins (4 bound).
    seen, rest = (
        rows.loc["good"].loc["seen in training"],
        rows.loc["good"].loc["not seen in training"],
    )
    assert (seen["n_loci"], seen["n_bound"], rest["n_loci"], rest["n_bound"]) == (5, 1, 12, 4)
    assert seen["ap"] == 1.0 and rest["ap"] == 1.0
    # The flat submission ties every bin: its AP is each set's prevalence; the baseline
    # ranks bin 0 (bound in all six) above bins 250-400 (in two of six) among the seen.
    assert rows.loc[("flat", "seen in training"), "ap"] == pytest.approx(1 / 5)
    assert rows.loc[("flat", "not seen in training"), "ap"] == pytest.approx(4 / 12)
    assert rows.loc[("average activity", "seen in training"), "ap"] == 1.0
