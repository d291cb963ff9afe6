"""The paper's Figure 1 families on real inputs: the report of a folder ``pitfall fetch`` filled.

``pitfall report real DATA`` runs this report when ``DATA`` holds a complete fetch with the
genome and the marks (:func:`pitfall.datasets.roadmap.fetched_manifest`), and the labels-only
report (:mod:`pitfall.experiments.real_labels`) otherwise. From the fetch's own manifest it
builds the expression cube (labels, signal and sequence; ``pitfall build``'s path), sweeps
every family of the paper on target H1 (E003) in the three settings -- sequence-only (dense
and convolutional), epigenomic-only, combined, the permuted-sequence and locus-constant
random controls, gradient-boosted trees -- and draws, with the same experiment functions the
demo calls on the synthetic compendium:

- Figure 1 d-f (:mod:`.figure1`), the controls (Figure S2, :mod:`.controls`) and the trees
  (Figure S1, :mod:`.figure_s1`);
- Figure S4 (:mod:`.figure_s4`): epigenomic against sequence models within activity groups;
- Figure S5 (:mod:`.figure_s5`) and preprint Figure S1 (:mod:`.preprint_s1`: PCA and UMAP
  of the marks);
- imputation (:mod:`pitfall.experiments.imputation`) on a second cube: genome bins over a few chromosomes with
  every epigenome's consolidated marks (:func:`pitfall.datasets.roadmap.imputation_manifest`).

Sweeps are rows of :mod:`pitfall.sweep`: a killed report restarts where it stopped.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pitfall import cube, featurize, splits, sweep
from pitfall._atomic import atomic_write_text
from pitfall._html_page import write_page
from pitfall.datasets import roadmap
from pitfall.experiments import (
    controls,
    figure1,
    figure_s1,
    figure_s4,
    figure_s5,
    grids,
    imputation,
    preprint_s1,
)
from pitfall.experiments._result import Result

__all__ = [
    "IMPUTATION_MARK",
    "SIZES",
    "QUICK_EXTRA",
    "TARGET",
    "FetchedPlan",
    "make_plan",
    "run",
    "which_section",
]

#: The paper's target: H1 (E003).
TARGET = "E003"
#: The imputed track's mark (in the target).
IMPUTATION_MARK = "H3K4me3"

#: What the quick recipe adds to :func:`pitfall.experiments.grids.model_grid`'s ``quick``
#: grid so that every family of the paper has models: a convolutional sequence network, two
#: combined networks (Figure S4 draws a family with one model per group as a line, not a
#: box) and the permuted-sequence control (small and large).
QUICK_EXTRA: list[dict[str, Any]] = [
    {"family": "seq_conv", "filters": [[4]], "units": [[16]]},
    {"family": "combined", "filters": [1], "seq_units": [1], "units": [4], "joint_units": 1},
    {"family": "combined", "filters": [4], "seq_units": [16], "units": [16], "joint_units": 16},
    {"family": "seq_dense", "permuted": True, "units": [[1], [512]]},
]


@dataclass(frozen=True)
class FetchedPlan:
    """What the report of a fetched folder trains.

    Attributes
    ----------
    training
        The sweep's ``[training]``.
    models, gbm
        ``[[models]]`` tables: the networks of Figure 1 and the trees of Figure S1.
    umap
        Preprint Figure S1 with UMAP (else PCA alone).
    gbm_sample
        Training pairs of each tree model (None: the recipe's); one-hot sequence of every
        pair of a full compendium would not fit in memory.
    imputation_size
        The imputation grid and recipe (:func:`pitfall.experiments.grids.imputation_grid`);
        None leaves imputation out.
    imputation_bin
        The imputation cube's bin size (bp).
    note
        A sentence the report puts before Figure 1 (what this plan can and cannot show).
    """

    training: dict[str, Any]
    models: list[dict[str, Any]]
    gbm: list[dict[str, Any]]
    umap: bool = True
    gbm_sample: int | None = None
    imputation_size: str | None = "quick"
    imputation_bin: int = roadmap.IMPUTATION_BIN
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The sizes of :func:`make_plan`: ``paper`` is the paper's grid and recipe (a GPU's work at
#: full size); ``quick`` checks the machinery.
SIZES = ("quick", "paper")


def make_plan(size: str) -> FetchedPlan:
    """The plan of a size of :data:`SIZES` (built on call: the paper's grid draws its
    combined architectures, :func:`pitfall.experiments.grids.combined_draw`)."""
    if size == "paper":
        return FetchedPlan(
            training=grids.TRAINING["paper"],
            models=grids.model_grid("expression", "paper"),
            gbm=grids.gbm_grid("paper"),
            # as the labels-only report's trees (real_labels.PLANS["paper"].gbm_sample)
            gbm_sample=400_000,
            imputation_size="paper",
        )
    if size == "quick":
        return FetchedPlan(
            training=grids.TRAINING["quick"],
            models=grids.model_grid("expression", "quick") + QUICK_EXTRA,
            gbm=grids.gbm_grid("quick"),
            umap=False,
            note=(
                "The quick recipe checks the machinery: a few models per family, trained for "
                "a few short epochs on a sample of the pairs; the paper's grid and recipe "
                "(--size paper) are the ones to read trends with size from."
            ),
        )
    raise ValueError(f"size {size!r} is not one of {', '.join(SIZES)}")


def which_section(kind: str, data: Path, why: Sequence[str]) -> dict[str, Any]:
    """The report's first section: which report ran on ``data`` and why.

    Parameters
    ----------
    kind
        ``"full"`` or ``"labels-only"``.
    data
        The data folder.
    why
        For ``full``: what the folder holds; for ``labels-only``: what the full report
        lacked there.
    """
    if kind == "full":
        text = [
            f"Full report: {data} holds a complete `pitfall fetch roadmap` (the genome, the "
            f"consolidated mark bigWigs and the RPKM matrix): {'; '.join(why)}."
        ]
    else:
        text = [
            f"Labels-only report: {data} lacks what the full report (sequence, epigenomic and "
            f"combined models, Figure S4, preprint S1) needs: {'; '.join(why)}. Fetch it with "
            f"`pitfall fetch roadmap --dest {data} --epigenomes all` (genome and marks), then "
            "run this command again."
        ]
    return {"heading": "Which report", "findings": text}


def _say(msg: str) -> None:
    print(f"pitfall report real: {msg}", flush=True)


def _build(manifest: Path, store: Path, workers: int | None, what: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the build summary lists them
        summary = featurize.ensure_built(manifest, store, workers=workers)
    if summary is not None:
        _say(
            f"{what} cube: {summary.n_loci:,} loci x {len(summary.cell_types)} epigenomes x "
            f"{len(summary.marks)} marks ({summary.seconds:.0f} s) at {store}"
        )
    return store


def _experiments(cube_path: Path, target: str, plan: FetchedPlan, out: Path) -> list:
    spec = grids.sweep_spec(str(cube_path), "expression", target, "quick")
    spec["training"] = dict(plan.training)
    nets = dict(spec, models=plan.models)
    trees = dict(spec, models=plan.gbm)
    if plan.gbm_sample is not None:
        trees["training"] = dict(plan.training, sample_size=plan.gbm_sample)
    return [
        *sweep.sweep_from_dict(nets, root=out).experiments,
        *sweep.sweep_from_dict(trees, root=out).experiments,
    ]


def run(
    data: str | Path,
    out: str | Path = "out/real",
    *,
    size: str = "paper",
    plan: FetchedPlan | None = None,
    imputation_chroms: Sequence[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    say: Callable[[str], None] = _say,
) -> Path:
    """Build the fetched folder's cubes, run every family, write ``out/report.html``.

    Parameters
    ----------
    data
        A folder :func:`pitfall.datasets.roadmap.fetch` completed with the genome and marks.
    out
        Output folder: ``store/`` (cubes), ``manifests/``, ``results/`` (the sweep table and
        test scores), ``figures/``, ``findings.json``, ``report.html``. A rerun skips what
        is done.
    size, plan
        A size of :func:`make_plan`, or an explicit :class:`FetchedPlan`.
    imputation_chroms
        Chromosomes of the imputation cube (default: the last two of the fetch's; the
        hybrid setting tests the first of them).
    workers, scheduler
        Build and sweep workers (local processes; 0 runs in this process) or a Dask
        scheduler.
    progress, say
        Progress bars; where progress lines go.

    Returns
    -------
    pathlib.Path
        The report.

    Raises
    ------
    FileNotFoundError
        When ``data`` is not a complete fetch, naming what is missing.
    """
    t0 = time.perf_counter()
    data, out = Path(data).resolve(), Path(out).resolve()
    if plan is None:
        plan = make_plan(size)
    manifest, missing = roadmap.fetched_manifest(data)
    if manifest is None:
        raise FileNotFoundError(f"{data} is not a complete fetch: missing {'; '.join(missing)}")
    store = _build(manifest, out / "store" / "roadmap_fetched", workers, "expression")
    ds = cube.open_cube(store)
    cell_types = [str(c) for c in ds["cell_type"].values]
    target = TARGET if TARGET in cell_types else cell_types[0]
    holds = [
        f"{len(cell_types)} epigenomes, marks {', '.join(map(str, ds['mark'].values))}, "
        f"{ds.sizes['locus']:,} genes on {', '.join(splits.cube_chroms(ds))}, "
        f"{ds.sizes['position']:,} bp of sequence each; target {target}"
    ]
    todo = _experiments(store, target, plan, out)
    table, n_found, train_seconds = sweep.run_sweep_timed(
        todo,
        out / "results",
        say=say,
        workers=workers,
        scheduler=scheduler,
        save_predictions=True,
        progress=progress,
    )
    ids = {e.id for e in todo}
    table = table[table["id"].isin(ids)]
    failed = table[table["status"] != "ok"]
    if len(failed):
        say(f"{len(failed)} models failed; the first: {failed['error'].iloc[0]}")
    made: dict[str, Result] = {"expression": figure1.make(table, "expression")}
    if plan.note:
        made["expression"].sentences.insert(0, plan.note)
    made["controls"] = controls.make(table, "expression")
    if len(table[(table["family"] == "xgboost") & (table["status"] == "ok")]):
        made["trees"] = figure_s1.make(table, "expression")
    made["partitioned"] = figure_s4.make(ds, table, str(out / "results"), target=target)
    made["baseline_vs_similarity"] = figure_s5.make(ds, task="expression")
    made["embedding"] = preprint_s1.make(ds, target, umap=plan.umap)
    found: dict[str, Any] = {
        "report": {"kind": "full", "data": str(data), "manifest": str(manifest), "why": holds}
    }
    if plan.imputation_size is not None:
        chroms = list(imputation_chroms or splits.cube_chroms(ds)[-2:])
        imp_manifest = roadmap.imputation_manifest(
            data, out / "manifests" / "imputation", chroms=chroms, bin_size=plan.imputation_bin
        )
        imp_store = _build(
            imp_manifest, out / "store" / "imputation_fetched", workers, "imputation"
        )
        imp = cube.open_cube(imp_store)
        mark = IMPUTATION_MARK if IMPUTATION_MARK in imp["mark"].values else str(imp["mark"][0])
        made["imputation"] = imputation.make(
            imp,
            cell_type=target,
            mark=mark,
            size=plan.imputation_size,
            test_chroms=chroms[:1],
            say=lambda line: say(f"imputation: {line}"),
        )
        found["imputation_cube"] = {
            "chroms": chroms,
            "bin_size": plan.imputation_bin,
            "n_loci": int(imp.sizes["locus"]),
            "mark": mark,
        }
    ran = table[table["status"] == "ok"].groupby(["family", "inputs"], sort=False).size()
    holds.append(
        "models trained (sizes x settings): "
        + ", ".join(f"{n} {family} on {inputs}" for (family, inputs), n in ran.items())
    )
    sections = [which_section("full", data, holds)]
    for exp in made.values():
        exp.save_figure(out / "figures")
        sections.append(exp.section())
    found.update({k: r.findings for k, r in made.items()})
    found["run"] = {
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "n_models": len(todo),
        "n_trained_now": len(todo) - n_found,
        "target": target,
        "plan": plan.to_dict(),
    }
    atomic_write_text(out / "findings.json", json.dumps(found, indent=2, default=str))
    ok = table[table["status"] == "ok"]
    sections.append(
        {
            "heading": "All models",
            "tables": [
                ok[
                    [
                        "setting",
                        "inputs",
                        "label",
                        "n_params",
                        "ap",
                        "ap_average_activity",
                        "ap_random",
                        "epochs",
                        "train_seconds",
                    ]
                ].sort_values(["setting", "inputs", "n_params"])
            ],
        }
    )
    path = write_page(
        out / "report.html",
        title="pitfall on fetched Roadmap data: every family of the paper",
        sections=sections,
        footer={
            "run": f"{len(todo)} models ({len(todo) - n_found} trained in this run), "
            f"{time.perf_counter() - t0:.0f} s ({train_seconds:.0f} s training)",
            "cube snapshot": ds.attrs["snapshot"],
            "packages": ", ".join(f"{k} {v}" for k, v in sweep.package_versions().items()),
            "results table": str(out / "results" / sweep.RESULTS_FILE),
        },
    )
    say(f"report: {path} ({time.perf_counter() - t0:.0f} s)")
    return path
