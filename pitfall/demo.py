"""``pitfall demo``: the main job on the embedded default, the synthetic compendium.

It synthesizes the compendium (demo size), builds its expression and TAD cubes, sweeps the
paper's model families over the three split settings with the baselines and controls,
runs the figures' experiments and the paper's two remedies, and writes ``report.html``
(self-contained), its figures as PNG, ``findings.json`` and the results table. ``--quick``
trains fewer, shorter models (docs/performance.rst gives the times).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import pandas as pd

from pitfall import cube, featurize, sweep, synth
from pitfall._atomic import atomic_write_text
from pitfall._html_page import write_page
from pitfall.experiments import (
    Result,
    figure1,
    figure_s1,
    figure_s4,
    figure_s5,
    grids,
    imputation,
    preprint_s1,
    preprint_s2,
    remedies,
    single_cell_types,
)

__all__ = [
    "DemoError",
    "FINDINGS",
    "IMPUTATION_MARK",
    "build_cubes",
    "experiments",
    "run",
    "run_sweeps",
]


class DemoError(RuntimeError):
    """The demo could not produce its results (every model failed)."""


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def build_cubes(out: Path, workers: int | None) -> dict[str, Path]:
    """Synthesize the demo compendium and build its cubes (skipped when present)."""
    comp_dir, store = out / "compendium", out / "store"
    manifests = {
        "expression": "manifest.toml",
        "tad": "manifest_tad.toml",
        "imputation": "manifest_imputation.toml",
    }
    if not all((comp_dir / m).exists() for m in manifests.values()):
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
    for task, manifest in manifests.items():
        path = store / task
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the summary lists them
            summary = featurize.ensure_built(comp_dir / manifest, path, workers=workers)
        if summary is not None:
            _say(
                f"{task} cube: {summary.n_loci:,} loci x {len(summary.cell_types)} cell types "
                f"x {len(summary.marks)} marks ({summary.seconds:.0f} s) at {path}"
            )
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
        spec = grids.sweep_spec(str(paths[task]), task, target, size)
        experiments += sweep.sweep_from_dict(spec, root=out).experiments
    gbm = grids.sweep_spec(str(paths["expression"]), "expression", "E003", size, gbm=True)
    experiments += sweep.sweep_from_dict(gbm, root=out).experiments
    _say(f"training {len(experiments)} models ({size} recipe: {grids.TRAINING[size]})")
    t0 = time.perf_counter()
    table = sweep.run_sweep(experiments, out / "results", workers=workers, save_predictions=True)
    _say(f"sweep done in {time.perf_counter() - t0:.0f} s")
    return table


def experiments(
    paths: dict[str, Path], table: pd.DataFrame, out: Path, size: str
) -> dict[str, Result]:
    """The demo's figures from its sweep's results table and its cubes, keyed as in
    ``findings.json``."""
    ds = cube.open_cube(paths["expression"])
    made = {
        task: figure1.make(table, task)
        for task in ("expression", "tad")
        if len(table[(table["task"] == task) & (table["status"] == "ok")])
    }
    if len(table[(table["family"] == "xgboost") & (table["status"] == "ok")]):
        made["trees"] = figure_s1.make(table, "expression")
    made["partitioned"] = figure_s4.make(ds, table, str(out / "results"), target="E003")
    made["baseline_vs_similarity"] = figure_s5.make(ds, task="expression")
    made["embedding"] = preprint_s1.make(ds, "E003", umap=size != "quick")
    made["gaussians"] = preprint_s2.make(size)
    made["single_cell_types"] = single_cell_types.make(ds, "E003")
    made["imputation"] = imputation.make(
        cube.open_cube(paths["imputation"]),
        cell_type="E003",
        mark=IMPUTATION_MARK,
        size=size,
        say=lambda line: _say(f"imputation: {line}"),
    )
    return made


#: The experiments whose findings ``findings.json`` keeps.
FINDINGS = ("expression", "tad", "partitioned", "baseline_vs_similarity", "gaussians", "imputation")
#: The imputed track's mark (in E003, the demo's target cell type).
IMPUTATION_MARK = "H3K4me3"


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
    made = experiments(paths, table, out, size)
    sections = []
    for exp in made.values():
        exp.save_figure(out / "figures")
        sections.append(exp.section())
    atomic_write_text(
        out / "findings.json",
        json.dumps({k: made[k].findings for k in FINDINGS if k in made}, indent=2, default=float),
    )
    t1 = time.perf_counter()
    remedied = remedies.make(paths["expression"], out / "remedies", size=size, workers=workers)
    atomic_write_text(
        out / "remedies" / "remedies.tsv",
        remedied.tables["remedies"].to_csv(sep="\t", index=False),
    )
    sections.append(remedied.section(tables=["summary"]))
    n_remedies = len(remedied.tables["results"])
    _say(f"remedies: {n_remedies} models in {time.perf_counter() - t1:.0f} s")
    snapshots = {
        task: cube.open_cube(p).attrs["snapshot"]
        for task, p in paths.items()
        if task != "compendium"
    }
    ok = table[table["status"] == "ok"]
    sections.append(
        {
            "heading": "All models",
            "tables": [
                ok[
                    [
                        "task",
                        "setting",
                        "inputs",
                        "label",
                        "n_params",
                        "ap",
                        "ap_average_activity",
                        "ap_most_similar",
                        "ap_random",
                        "epochs",
                        "train_seconds",
                    ]
                ].sort_values(["task", "setting", "inputs", "n_params"])
            ],
        }
    )
    path = write_page(
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
