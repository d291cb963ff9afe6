"""``pitfall demo``: the main job on the embedded default, the synthetic compendium.

It synthesizes the compendium (demo size), builds its expression and TAD cubes, sweeps the
paper's model families over the three split settings with the baselines and controls,
runs the figures' experiments, and writes ``report.html`` (self-contained), its figures as
PNG, ``findings.json`` and the results table. ``--quick`` trains fewer, shorter models
(about 2 minutes on 2 cores); the default takes about 15.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from pitfall import baselines, cube, featurize, paper, report, sweep, synth, tasks, toy


class DemoError(RuntimeError):
    """The demo could not produce its results (every model failed)."""


STYLES = baselines.figure_styles()


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def build_cubes(out: Path, workers: int | None) -> dict[str, Path]:
    """Synthesize the demo compendium and build its two cubes (skipped when present)."""
    comp_dir, store = out / "compendium", out / "store"
    if not (comp_dir / "manifest.toml").exists():
        # A run killed while synthesizing left a partial compendium: synthesize writes over
        # its own (marked) folder, and refuses one it did not write.
        t0 = time.perf_counter()
        comp = synth.synthesize(comp_dir, "demo", workers=workers or 2)
        _say(
            f"synthesized the compendium: {comp.params.n_genes:,} genes, "
            f"{len(comp.cell_types)} cell types, {len(comp.marks)} marks "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    paths = {"compendium": comp_dir}
    for task, manifest in (("expression", "manifest.toml"), ("tad", "manifest_tad.toml")):
        path = store / task
        if not path.exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the summary lists them
                summary = featurize.build(comp_dir / manifest, path, workers=workers)
            _say(f"{task} cube: {summary.n_loci:,} loci x {len(summary.cell_types)} cell types "
                 f"x {len(summary.marks)} marks ({summary.seconds:.0f} s) at {path}")  # fmt: skip
        paths[task] = path
    return paths


def run_sweeps(
    paths: dict[str, Path], out: Path, *, size: str, workers: int | None
) -> pd.DataFrame:
    """The model sweeps of Figure 1 (both tasks) and the gradient-boosted trees."""
    experiments = []
    tasks = (
        [("expression", "E003")] if size == "quick" else [("expression", "E003"), ("tad", "E003")]
    )
    for task, target in tasks:
        spec = paper.sweep_spec(str(paths[task]), task, target, size)
        experiments += sweep.sweep_from_dict(spec, root=out).experiments
    gbm = paper.sweep_spec(str(paths["expression"]), "expression", "E003", size, gbm=True)
    experiments += sweep.sweep_from_dict(gbm, root=out).experiments
    _say(f"training {len(experiments)} models ({size} recipe: {paper.TRAINING[size]})")
    t0 = time.perf_counter()
    table = sweep.run_sweep(experiments, out / "results", workers=workers, save_predictions=True)
    _say(f"sweep done in {time.perf_counter() - t0:.0f} s")
    return table


def _figures(paths: dict[str, Path], table: pd.DataFrame, out: Path, size: str) -> list[dict]:
    figs = out / "figures"
    sections: list[dict[str, Any]] = []
    nets = table[(table["family"] != "xgboost") & (table["status"] == "ok")]
    all_findings: dict[str, Any] = {}
    for task, fig_name, title in (
        ("expression", "figure1_def_expression.png", "Figure 1 d-f: gene expression (E003)"),
        ("tad", "figure1_ghi_tad.png", "Figure 1 g-i: TAD boundaries (E003)"),
    ):
        rows = nets[nets["task"] == task]
        if rows.empty:
            continue
        f = paper.findings(rows, task)
        all_findings[task] = f
        path = report.save(
            report.ap_vs_params(rows, title=title, baselines=STYLES), figs / fig_name
        )
        sections.append(
            {
                "heading": title,
                "findings": paper.describe(f, task),
                "text": [
                    "Each point is one trained model (x: trainable parameters, log scale); "
                    "colours are input types; lines are baselines on the same test loci."
                ],
                "figures": [path],
            }
        )
    gbm = table[(table["family"] == "xgboost") & (table["status"] == "ok")]
    if len(gbm):
        path = report.save(
            report.ap_vs_params(
                gbm,
                title="Gradient-boosted trees (expression, E003)",
                xlabel="trees x leaves",
                baselines=STYLES,
            ),
            figs / "gbm_sweep.png",
        )
        sections.append({"heading": "Gradient-boosted trees", "figures": [path],
                         "text": ["Complexity = trees x leaves. The same pitfall holds for "
                                  "trees: more trees memorise more loci."]})  # fmt: skip

    ds = cube.open_cube(paths["expression"])
    # Figure S3: partitioned evaluation in the cross-cell-type setting
    split = tasks.get_task("expression").split(ds, "cross-cell-type", "E003")
    rows = nets[(nets["task"] == "expression") & (nets["setting"] == "cross-cell-type")]
    part, tests = paper.partitioned_table(ds, split, rows, str(out / "results"))
    path = report.save(
        report.partitioned_boxes(part, tests, title="Cross-cell-type, loci grouped by activity"),
        figs / "figure_s3_partitioned.png",
    )
    sig = tests[tests["p_value"] < 0.05] if len(tests) else tests
    sections.append(
        {
            "heading": "Figure S3: partitioned evaluation",
            "findings": [
                f"Within groups of loci active in the same number of other cell types, "
                f"epigenomic models beat sequence-based ones (one-sided Mann-Whitney U, p < "
                f"0.05) in {len(sig)} of {len(tests)} groups: once the average activity is "
                "held fixed, only the cell type's own signal ranks its loci."
            ],
            "figures": [path],
        }
    )
    all_findings["partitioned"] = {"groups": len(tests), "significant": len(sig)}

    # Figure S1: PCA of the target's signal coloured by activity
    pcs = paper.pca_of_signal(ds, "E003")
    fig = report.pca_scatter(pcs, "Figure S1: epigenomic signal of E003, 5 marks")
    sections.append({"heading": "Figure S1: epigenomic signal",
                     "figures": [report.save(fig, figs / "figure_s1_pca.png")],
                     "text": ["Active and inactive genes separate along the first component: "
                              "the marks carry the cell type's own activity."]})  # fmt: skip

    # Figure S2: the pitfall in two dimensions
    sizes = (1, 4, 16, 64) if size == "quick" else (1, 4, 16, 64, 256)
    toy_table = toy.size_sweep(sizes, n_loci=600 if size == "quick" else 1000, max_iter=200)
    sections.append({"heading": "Figure S2: the pitfall in two dimensions",
                     "figures": [report.save(report.toy_curves(toy_table),
                                             figs / "figure_s2_toy.png")],
                     "text": ["Loci are points from two overlapping Gaussians plus a per-locus "
                              "offset no input reveals; a random code identifies each locus. "
                              "Bigger networks memorise the training loci (cross-cell-type "
                              "rises); on new loci (hybrid) they cannot."]})  # fmt: skip

    # Baseline strength against cell-type similarity
    strength = paper.strength_vs_similarity(ds, "E003")
    fig = report.scatter(
        strength["similarity"].to_numpy(),
        strength["ap"].to_numpy(),
        labels=strength["cell_type"].tolist(),
        xlabel="similarity to E003 (correlation of epigenomic signal)",
        ylabel="AP of that cell type's labels alone",
        title="Single cell types as predictors of E003",
        hline={"average activity of all": float(nets.loc[
            (nets.task == "expression") & (nets.setting == "cross-cell-type"),
            "ap_average_activity"].median())},
    )  # fmt: skip
    sections.append({"heading": "Baseline strength against cell-type similarity",
                     "figures": [report.save(fig, figs / "strength_vs_similarity.png")],
                     "tables": [strength]})  # fmt: skip
    (out / "findings.json").write_text(json.dumps(all_findings, indent=2, default=float))
    return sections


def run(out: Path, *, quick: bool = False, workers: int | None = None) -> Path:
    """Run the demo into ``out``; return the report's path."""
    t0 = time.perf_counter()
    out = Path(out).resolve()
    size = "quick" if quick else "demo"
    paths = build_cubes(out, workers)
    table = run_sweeps(paths, out, size=size, workers=workers)
    failed = table[table["status"] == "failed"]
    if len(failed) == len(table):
        raise DemoError(f"every model failed; the first error:\n{failed['error'].iloc[0]}")
    if len(failed):
        _say(f"{len(failed)} models failed; their errors are in the results table")
    sections = _figures(paths, table, out, size)
    snapshots = {task: cube.open_cube(p).attrs["snapshot"] for task, p in paths.items()
                 if task != "compendium"}  # fmt: skip
    ok = table[table["status"] == "ok"]
    sections.append({"heading": "All models", "tables": [ok[[
        "task", "setting", "inputs", "label", "n_params", "ap", "ap_average_activity",
        "ap_most_similar", "ap_random", "epochs", "train_seconds"]].sort_values(
        ["task", "setting", "inputs", "n_params"])]})  # fmt: skip
    path = report.html_report(
        out / "report.html",
        title="pitfall demo: the pitfall on the synthetic compendium",
        sections=sections,
        footer={
            "run": f"pitfall demo{' --quick' if quick else ''}, {time.perf_counter() - t0:.0f} s",
            **{f"cube {k} snapshot": v for k, v in snapshots.items()},
            "packages": ", ".join(f"{k} {v}" for k, v in sweep.package_versions().items()),
            "results table": str(out / "results" / sweep.RESULTS_FILE),
        },
    )
    _say(f"done in {time.perf_counter() - t0:.0f} s")
    _say(f"report: {path}")
    if len(failed):
        raise DemoError(f"{len(failed)} of {len(table)} models failed; the report is at {path}")
    return path
