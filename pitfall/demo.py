"""``pitfall demo``: the main job on the embedded default, the synthetic compendium.

It synthesizes the compendium (demo size), builds its expression and TAD cubes, sweeps the
paper's model families over the three split settings with the baselines and controls,
runs the figures' experiments and the paper's two remedies, and writes ``report.html``
(self-contained), its figures as PNG, ``findings.json`` and the results table. ``--quick``
trains fewer, shorter models (under 3 minutes on 2 cores); the default, about 25.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from pitfall import baselines, cube, featurize, paper, report, sweep, synth, tasks, toy
from pitfall.atomic import atomic_write_text


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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the summary lists them
            summary = featurize.ensure_built(comp_dir / manifest, path, workers=workers)
        if summary is not None:
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
                title="Figure S1: gradient-boosted trees (expression, E003)",
                xlabel="trees x leaves",
                baselines=STYLES,
            ),
            figs / "figure_s1_trees.png",
        )
        sections.append({"heading": "Figure S1: gradient-boosted trees", "figures": [path],
                         "text": ["Complexity = trees x leaves. The same pitfall holds for "
                                  "trees: more trees memorise more loci."]})  # fmt: skip

    ds = cube.open_cube(paths["expression"])
    # Figure S4 (preprint S3): partitioned evaluation in the cross-cell-type setting
    split = tasks.get_task("expression").split(ds, "cross-cell-type", "E003")
    rows = nets[(nets["task"] == "expression") & (nets["setting"] == "cross-cell-type")]
    part, tests = paper.partitioned_table(ds, split, rows, str(out / "results"))
    path = report.save(
        report.partitioned_boxes(
            part, tests, title="Cross-cell-type (E003), loci grouped by activity"
        ),
        figs / "figure_s4_partitioned.png",
    )
    summary = paper.partitioned_summary(tests)
    main = summary.get(paper.PARTITIONED_TESTS[0][0])
    found = []
    if main:
        if main["significant"] * 2 >= main["groups"]:
            verdict = (
                "once the average activity is held fixed, only the cell type's own "
                "signal still ranks its loci."
            )
        elif main["reachable"] == 0:
            verdict = (
                f"with so few models no group can pass 0.05 here, whatever the APs, but in "
                f"{main['at_floor']} groups every epigenomic model beats every sequence model, "
                "the strongest result the test can give; a larger grid (not --quick) can "
                "decide."
            )
        else:
            verdict = "the test does not support the paper's claim on this run."
        found.append(
            f"Within groups of loci active in the same number of training + validation cell "
            f"types, the {main['n_a']} epigenomic models' APs exceed the {main['n_b']} "
            f"sequence models' (one-sided Mann-Whitney U over the models' APs) with p < 0.05 "
            f"in {main['significant']} of {main['groups']} groups; the smallest p the exact "
            f"test can give with these numbers of models is {main['p_floor']:.3g}: {verdict}"
        )  # fmt: skip
    sections.append(
        {
            "heading": "Figure S4 (preprint S3): partitioned evaluation",
            "findings": found,
            "text": [
                "Boxes: the APs of each input type's models within each group; black bars: "
                "a random ranking's expected AP there (the average-activity baseline ties "
                "within a group, so it scores only the prevalence; a random order of the "
                "group's loci earns this on average, the fair reference). The controls have their own boxes and their "
                "own tests against the epigenomic models (dashed), never pooled with the "
                "sequence models. Shaded: p-values the exact test cannot reach with these "
                "numbers of models."
            ],
            "figures": [path],
            "tables": [tests],
        }
    )
    all_findings["partitioned"] = summary

    # Figure S5: the average-activity baseline against similarity, every cell type a target
    hybrid = tasks.get_task("expression").split(ds, "hybrid", "E003")
    strength = paper.baseline_vs_similarity(ds, hybrid.train_chroms, hybrid.test_chroms)
    sim = paper.similarity_summary(strength)
    fig = report.baseline_vs_similarity(
        strength,
        xlabel="target's mean correlation with the other cell types\n(labels, training "
        "chromosomes' loci)",
        title=f"Figure S5: the average-activity baseline, {len(strength)} targets "
        f"(tested on {', '.join(hybrid.test_chroms)})",
    )
    raw, norm = sim["mean_similarity vs ap"], sim["mean_similarity vs ap_normalised"]
    relation = (
        "the more a target resembles the others, the better the baseline does on it"
        if any(r["p"] < 0.05 and r["rho"] > 0 for r in (raw, norm))
        else "no clear positive relation on this compendium"
    )
    sections.append(
        {
            "heading": "Figure S5: the baseline's strength against cell-type similarity",
            "findings": [
                f"Every cell type in turn is the target of the average of the others; its "
                f"similarity is the mean correlation of its labels with theirs on the "
                f"training chromosomes. Spearman rho = {raw['rho']:.2f} (p = {raw['p']:.2g}) "
                f"with the AP, {norm['rho']:.2f} (p = {norm['p']:.2g}) with the AP above the "
                f"prevalence, {norm['n']} targets: {relation}."
            ],
            "figures": [report.save(fig, figs / "figure_s5_baseline_vs_similarity.png")],
            "tables": [strength.drop(columns=["name"])],
        }
    )  # fmt: skip
    all_findings["baseline_vs_similarity"] = sim

    # Preprint Figure S1: PCA (and UMAP, when installed and not --quick) of E003's signal
    emb = paper.signal_embedding(ds, "E003", umap=size != "quick")
    fig = report.signal_embedding(emb, "Preprint Figure S1: epigenomic signal of E003")
    sections.append({"heading": "Preprint Figure S1: the epigenomic signal",
                     "figures": [report.save(fig, figs / "preprint_figure_s1_pca_umap.png")],
                     "text": ["Each point a locus, its five marks standardised; active and "
                              "inactive loci lie on either side of a simple boundary."]})  # fmt: skip

    # Preprint Figure S2: why epigenomic models stay flat with size
    gauss = toy.size_sweep(
        (1, 4, 16, 64, 256) if size == "quick" else (1, 4, 16, 64, 256, 1024),
        seeds=(0,) if size == "quick" else (0, 1),
        n_test=10_000,
        max_iter=200 if size == "quick" else 300,
    )
    means = gauss.table.groupby("n_params")[["ap", "ap_bayes"]].mean()
    spread = float(means["ap"].max() - means["ap"].min())
    gap = float((means["ap_bayes"] - means["ap"]).max())
    fig = report.gaussians(gauss, "Preprint Figure S2: two overlapping Gaussians")
    sections.append({"heading": "Preprint Figure S2: two overlapping Gaussians",
                     "figures": [report.save(fig, figs / "preprint_figure_s2_gaussians.png")],
                     "findings": [f"Networks from {means.index.min():,} to "
                                  f"{means.index.max():,} parameters score AP within "
                                  f"{spread:.3f} of each other and at most {gap:.3f} below "
                                  "the Bayes-optimal rule: when the boundary is simple, "
                                  "capacity buys nothing, as for the epigenomic models of "
                                  "Figure 1."]})  # fmt: skip
    all_findings["gaussians"] = {"spread": spread, "gap_to_bayes": gap}

    # The project's own: single cell types as predictors, against similarity
    single = paper.strength_vs_similarity(ds, "E003")
    fig = report.scatter(
        single["similarity"].to_numpy(),
        single["ap"].to_numpy(),
        labels=single["cell_type"].tolist(),
        xlabel="similarity to E003 (correlation of epigenomic signal)",
        ylabel="AP of that cell type's labels alone",
        title="Single cell types as predictors of E003",
        hline={"average activity of all": float(nets.loc[
            (nets.task == "expression") & (nets.setting == "cross-cell-type"),
            "ap_average_activity"].median())},
    )  # fmt: skip
    sections.append({"heading": "Single cell types as predictors (not a paper figure)",
                     "figures": [report.save(fig, figs / "single_cell_types_vs_similarity.png")],
                     "tables": [single]})  # fmt: skip
    atomic_write_text(out / "findings.json", json.dumps(all_findings, indent=2, default=float))
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
    t1 = time.perf_counter()
    remedied = paper.remedies(paths["expression"], out / "remedies", size=size, workers=workers)
    atomic_write_text(
        out / "remedies" / "remedies.tsv", remedied.table.to_csv(sep="\t", index=False)
    )
    sections.append(remedied.section())
    _say(f"remedies: {len(remedied.results)} models in {time.perf_counter() - t1:.0f} s")
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
