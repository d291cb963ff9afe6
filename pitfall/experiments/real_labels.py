"""The paper's experiments on real labels: Roadmap expression and TAD boundaries.

``pitfall report real DATA`` (or :func:`run`) runs the full report of
:mod:`pitfall.experiments.real_fetched` (every family of the paper) when ``DATA`` holds a
complete ``pitfall fetch roadmap`` with the genome and the marks. Otherwise it builds the
label cubes from a data folder laid out as ``../shared/data`` and runs, with the paper's
training recipe:

- the memorisation curve: the locus-constant random control (a random vector per locus,
  the same in every cell type: it carries identity, no biology) over network size, across
  cell types and in the hybrid setting, for H1 (E003) expression and for hESC TAD
  boundaries;
- the same control over a grid of targets from different Roadmap groups, two chromosome
  folds, the smallest and the largest network and several seeds, so each claim is checked
  with its spread rather than on one run;
- XGBoost on the random inputs, trained on hundreds of thousands of pairs (enough rows for
  trees to memorise 17k loci);
- the partitioned evaluation: AP within groups of loci active in the same number of
  training cell types, for the average-activity baseline and the random controls;
- Figure S5: the average-activity baseline's AP against the target's similarity to the
  training cell types, every epigenome as the target (no training needed).

The findings (:func:`findings`) are computed from the results table and the cube, and the
report's sentences read them, so every number in ``report.html`` is in ``findings.json``.
Experiments are sweep rows (:mod:`pitfall.sweep`): a killed report restarts where it
stopped, and the results table keeps every model's spec, seed and training time.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pitfall import baselines, cube, datasets, splits, sweep, tasks
from pitfall._atomic import atomic_write_text
from pitfall._html_page import write_page
from pitfall._plotting import legend_entries, pyplot
from pitfall.experiments import figure1, figure_s5, real_fetched
from pitfall.experiments._result import Result
from pitfall.experiments.grids import TRAINING

__all__ = [
    "PLANS",
    "Plan",
    "describe",
    "findings",
    "grid_summary",
    "describe_partitioned",
    "partitioned_baselines",
    "pick_targets",
    "plan_experiments",
    "run",
    "with_prevalence",
]

log = logging.getLogger(__name__)

#: The roadmap cube's cell types are epigenomes; the TAD cube's, cell lines.
ROADMAP_TARGET, TAD_TARGET = "E003", "hESC"


@dataclass(frozen=True)
class Plan:
    """What a real-label report trains.

    Attributes
    ----------
    training
        The sweep's ``[training]`` (the paper's recipe at ``paper`` size).
    curve_units
        Hidden layers of the random control along the memorisation curve (smallest first).
    grid_units
        The grid's smallest and largest random control.
    n_targets
        Targets of the grid: E003, then one epigenome from each of the largest other groups.
    folds
        ``(test chromosomes, validation chromosomes)`` of each fold.
    seeds
        Seeds of the grid (the curve uses the first).
    gbm_trees, gbm_depth, gbm_sample
        XGBoost on random inputs: tree counts, depth, and training pairs.
    note
        A sentence the report puts before each memorisation curve (what this plan can and
        cannot show).
    """

    training: dict[str, Any]
    curve_units: tuple[tuple[int, ...], ...]
    grid_units: tuple[tuple[int, ...], tuple[int, ...]]
    n_targets: int = 6
    folds: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
        (("chr1",), ("chr2",)),
        (("chr2",), ("chr1",)),
    )
    seeds: tuple[int, ...] = (0, 1, 2)
    gbm_trees: tuple[int, ...] = (1, 4, 16, 64, 256)
    gbm_depth: int = 8
    gbm_sample: int = 400_000
    tad_units: tuple[tuple[int, ...], ...] = field(default=())
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_POWERS = tuple((2**k,) for k in range(0, 13, 2))  # 1, 4, 16, ..., 4096 units


#: Plans by size: ``paper`` is the report; ``quick`` checks the machinery with a short recipe.
PLANS: dict[str, Plan] = {
    "paper": Plan(
        training=TRAINING["paper"],
        curve_units=(*_POWERS, (1024, 1024)),
        # 10^5 parameters memorise as well as 4096 units here at a fraction of the cost;
        # 10^6 would make the grid much longer (``docs/performance.rst``).
        grid_units=((1,), (1024,)),
        tad_units=_POWERS,
    ),
    "quick": Plan(
        training=TRAINING["quick"],
        curve_units=((1,), (64,), (1024,)),
        grid_units=((1,), (1024,)),
        n_targets=2,
        seeds=(0, 1),
        gbm_trees=(1, 64),
        gbm_depth=6,
        gbm_sample=50_000,
        tad_units=((1,), (1024,)),
        note=(
            "The quick recipe checks the machinery: its models train for a few short epochs "
            "on a sample of the pairs, too little for the random control to memorise "
            "thousands of loci, so its curve stays far below the baseline; the paper's "
            "recipe (--size paper) is the one that shows the memorisation."
        ),
    ),
}


def pick_targets(
    ds: xr.Dataset, n: int, *, first: str = ROADMAP_TARGET, exclude: Sequence[str] = ()
) -> list[str]:
    """``first``, then one cell type from each other group, largest groups first.

    Groups are the cube's ``cell_type_group``; within a group the first cell type in cube
    order that is not in ``exclude`` (validation cell types) is taken. Without groups,
    the first cell types in cube order.

    Returns
    -------
    list of str
        ``n`` cube ids (fewer when the cube has fewer groups).
    """
    cts = [str(c) for c in ds["cell_type"].values]
    if first not in cts:
        raise splits.SplitError(f"target {first!r} is not in the cube")
    out = [first]
    if "cell_type_group" in ds.coords:
        group = dict(zip(cts, map(str, ds["cell_type_group"].values), strict=True))
        sizes = pd.Series(list(group.values())).value_counts()
        order = sorted(sizes.index, key=lambda g: (-sizes[g], g))
        for g in order:
            if len(out) >= n:
                break
            if g == group[first]:
                continue
            pick = [c for c in cts if group[c] == g and c not in exclude and c not in out]
            if pick:
                out.append(pick[0])
    else:
        out += [c for c in cts if c not in exclude and c != first][: n - 1]
    return out


def _random_models(units: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
    return [{"family": "dense", "inputs": "random", "units": [list(u) for u in units]}]


def _folds(plan: Plan, which: Sequence[int] | None = None) -> list[dict[str, list[str]]]:
    chosen = [plan.folds[i] for i in which] if which is not None else list(plan.folds)
    return [{"test": list(t), "valid": list(v)} for t, v in chosen]


def plan_experiments(
    roadmap: str | Path, tads: str | Path, plan: Plan
) -> dict[str, list[sweep.Experiment]]:
    """The report's experiments by part: ``curve``, ``tad_curve``, ``grid``, ``gbm``.

    The curve is the grid's first fold with its first seed, so the grid's E003 models of
    that fold and seed are the curve's (one training, one row).
    """
    ds = cube.open_cube(roadmap)
    expression = tasks.get_task("expression")
    valid = tasks.resolve_cell_types(ds, expression.valid_cell_types)
    targets = pick_targets(ds, plan.n_targets, exclude=valid)
    both = ["cross-cell-type", "hybrid"]

    def spec(cube_path: str | Path, task: str, **kw: Any) -> list[sweep.Experiment]:
        raw = {
            "cube": str(Path(cube_path).resolve()),
            "task": task,
            "settings": both,
            "training": dict(plan.training),
            **kw,
        }
        return sweep.sweep_from_dict(raw, root=Path.cwd()).experiments

    gbm_training = {"sample_size": plan.gbm_sample, "valid_size": plan.training["valid_size"]}
    return {
        "curve": spec(
            roadmap,
            "expression",
            target=ROADMAP_TARGET,
            folds=_folds(plan, [0]),
            seeds=[plan.seeds[0]],
            models=_random_models(plan.curve_units),
        ),
        "tad_curve": spec(
            tads,
            "tad",
            target=TAD_TARGET,
            seeds=[plan.seeds[0]],
            models=_random_models(plan.tad_units or plan.curve_units),
        ),
        "grid": spec(
            roadmap,
            "expression",
            targets=targets,
            folds=_folds(plan),
            seeds=list(plan.seeds),
            models=_random_models(plan.grid_units),
        ),
        "gbm": [
            replace(e, training=tuple(sorted(gbm_training.items())))
            for e in spec(
                roadmap,
                "expression",
                target=ROADMAP_TARGET,
                folds=_folds(plan, [0]),
                seeds=[plan.seeds[0]],
                models=[
                    {
                        "family": "xgboost",
                        "inputs": "random",
                        "n_trees": list(plan.gbm_trees),
                        "max_depth": plan.gbm_depth,
                    }
                ],
            )
        ],
    }


def with_prevalence(
    ds: xr.Dataset, rows: pd.DataFrame, experiments: Sequence[sweep.Experiment]
) -> pd.DataFrame:
    """``rows`` with a ``prevalence`` column: the share of active loci among the test loci
    of each row's split (the expected AP of a random ranking)."""
    by_id = {e.id: e for e in experiments}
    cache: dict[str, float] = {}
    out = []
    for rid in rows["id"]:
        split = sweep.make_split(ds, by_id[rid])
        key = json.dumps(split.to_dict(), sort_keys=True)
        if key not in cache:
            y = split.test(ds)["label"].values
            y = y[np.isfinite(y)]
            cache[key] = float(y.mean()) if y.size else float("nan")
        out.append(cache[key])
    return rows.assign(prevalence=out)


def grid_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, target, fold, model): the seeds' mean, min and max AP.

    Columns: ``setting``, ``target``, ``test_chroms``, ``label``, ``n_params``, ``n_seeds``,
    ``ap_mean``, ``ap_min``, ``ap_max``, ``ap_average_activity``, ``prevalence``.
    """
    t = rows
    keys = ["setting", "target", "test_chroms", "label", "n_params"]
    agg = t.groupby(keys, sort=False).agg(
        n_seeds=("ap", "size"),
        ap_mean=("ap", "mean"),
        ap_min=("ap", "min"),
        ap_max=("ap", "max"),
        ap_average_activity=("ap_average_activity", "first"),
        prevalence=("prevalence", "first"),
    )
    return agg.reset_index()


def findings(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The numbers the report's sentences state, from the results rows of each part (with
    their ``prevalence``, :func:`with_prevalence`).

    Returns
    -------
    dict
        ``curve`` / ``tad_curve`` / ``gbm``: per setting, the AP of the smallest and of the
        largest model, the best AP, the baseline's AP and the prevalence; ``grid``: per
        setting, how many (target, fold) cells reach what, with the worst cases.
    """
    out: dict[str, Any] = {}
    for part in ("curve", "tad_curve", "gbm"):
        t = tables.get(part)
        if t is None or not len(t):
            continue
        t = t.sort_values("n_params")
        out[part] = {
            s: {
                "target": str(g["target"].iloc[0]),
                "smallest": {
                    "label": g["label"].iloc[0],
                    "n_params": int(g["n_params"].iloc[0]),
                    "ap": float(g["ap"].iloc[0]),
                },
                "largest": {
                    "label": g["label"].iloc[-1],
                    "n_params": int(g["n_params"].iloc[-1]),
                    "ap": float(g["ap"].iloc[-1]),
                },
                "best_ap": float(g["ap"].max()),
                "ap_average_activity": float(g["ap_average_activity"].iloc[0]),
                "prevalence": float(g["prevalence"].iloc[0]),
                "above_baseline": int((g["ap"] > g["ap_average_activity"]).sum()),
                "n_models": len(g),
            }
            for s, g in t.groupby("setting")
        }
    grid = tables.get("grid")
    if grid is not None and len(grid):
        summary = grid_summary(grid)
        largest = summary["n_params"] == summary["n_params"].max()
        cct = summary[largest & (summary["setting"] == "cross-cell-type")]
        hyb = summary[summary["setting"] == "hybrid"]
        gap = (cct["ap_max"] - cct["ap_average_activity"]).to_numpy()
        dev = np.maximum(
            abs(hyb["ap_max"] - hyb["prevalence"]), abs(hyb["ap_min"] - hyb["prevalence"])
        )
        out["grid"] = {
            "targets": list(dict.fromkeys(summary["target"])),
            "folds": list(dict.fromkeys(summary["test_chroms"])),
            "n_seeds": int(summary["n_seeds"].max()),
            "cross_cell_type_largest": {
                "n_cells": len(cct),
                "ap_min": float(cct["ap_min"].min()),
                "ap_mean": float(cct["ap_mean"].mean()),
                "baseline_min": float(cct["ap_average_activity"].min()),
                "share_of_baseline_gain_min": float(
                    (
                        (cct["ap_mean"] - cct["prevalence"])
                        / (cct["ap_average_activity"] - cct["prevalence"])
                    ).min()
                ),
                "n_above_baseline": int((gap > 0).sum()),
                "max_above_baseline": float(gap.max()),
                "n_at_least_095": int((cct["ap_min"] >= 0.95).sum()),
            },
            "hybrid": {
                "n_cells": len(hyb),
                "max_abs_from_prevalence": float(dev.max()),
                "n_within_002": int((dev <= 0.02).sum()),
                "worst": hyb.iloc[int(np.argmax(dev.to_numpy()))][
                    ["target", "test_chroms", "label"]
                ]
                .astype(str)
                .to_dict(),
            },
        }
    return out


def describe(f: dict[str, Any]) -> dict[str, list[str]]:
    """The report's sentences, by part, from :func:`findings`."""
    out: dict[str, list[str]] = {}
    for part, what in (
        ("curve", "H1 (E003) expression"),
        ("tad_curve", "hESC TAD boundaries"),
        ("gbm", "H1 (E003) expression, XGBoost"),
    ):
        if part not in f:
            continue
        # A tree ensemble's size is its leaves (summed over its trees), not parameters.
        unit = "leaves" if part == "gbm" else "parameters"
        lines = []
        for setting, d in f[part].items():
            lines.append(
                f"{setting}: the random control goes from AP {d['smallest']['ap']:.3f} "
                f"({d['smallest']['label']}) to {d['largest']['ap']:.3f} "
                f"({d['largest']['label']}, {d['largest']['n_params']:,} {unit}; best "
                f"{d['best_ap']:.3f}); the average-activity baseline scores "
                f"{d['ap_average_activity']:.3f} and a random ranking {d['prevalence']:.3f} "
                f"(the prevalence); {d['above_baseline']} of {d['n_models']} models score "
                f"above the baseline."
            )
        out[part] = [f"{what}. " + lines[0], *lines[1:]]
    if "grid" in f:
        g, c, h = f["grid"], f["grid"]["cross_cell_type_largest"], f["grid"]["hybrid"]
        out["grid"] = [
            f"{len(g['targets'])} targets ({', '.join(g['targets'])}) x {len(g['folds'])} "
            f"chromosome folds ({', '.join(g['folds'])}) x {g['n_seeds']} seeds.",
            f"Across cell types the largest random control scores AP {c['ap_mean']:.3f} on "
            f"average (lowest seed {c['ap_min']:.3f}); it reaches at least 0.95 in "
            f"{c['n_at_least_095']} of {c['n_cells']} target x fold cells (every seed), and "
            f"closes at least {c['share_of_baseline_gain_min']:.0%} of the gap from the "
            f"prevalence to the average-activity baseline in every cell. It scores above the "
            f"baseline in {c['n_above_baseline']} of {c['n_cells']} cells (largest excess "
            f"{c['max_above_baseline']:+.3f}).",
            f"In the hybrid setting every model stays within {h['max_abs_from_prevalence']:.3f} "
            f"of the prevalence ({h['n_within_002']} of {h['n_cells']} cells within 0.02 for "
            f"every seed; the farthest: {h['worst']['label']} on {h['worst']['target']}, "
            f"{h['worst']['test_chroms']}).",
        ]
    return out


def partitioned_baselines(
    ds: xr.Dataset,
    grid: pd.DataFrame,
    experiments: Sequence[sweep.Experiment],
    results_dir: str | Path,
    target: str = ROADMAP_TARGET,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The random control within activity groups of ``target``'s test loci, per setting.

    For the first fold and seed of the grid, in each setting: the largest random control
    trained in that setting (its saved test scores) on that setting's test loci (across
    cell types the loci trained on; in the hybrid setting the held-out chromosome), audited
    with the setting's training and validation cell types and chromosomes declared
    (:func:`pitfall.audit.audit_predictions`). Groups: the number of those cell types in
    which each locus is active. Within a group the average-activity baseline is one value,
    so its AP there (ties grouped) is the group's prevalence, below what a random order of
    the group's loci earns on average; the reference is that expectation.

    Returns
    -------
    groups : pandas.DataFrame
        Per setting and group: ``setting``, ``predictor``, ``group``, ``n_loci``,
        ``n_positive``, ``prevalence``, ``ap`` (the control's), ``ap_random_expected``,
        ``random_low``/``random_high`` (the central 95 % of the permutation null),
        ``gain``, ``p``, ``p_adjusted``.
    summary : pandas.DataFrame
        Per setting: ``setting``, ``predictor``, ``ap``, ``ap_average_activity``,
        ``within_group_gain`` with ``within_group_gain_ci``, ``within_group_p``,
        ``n_groups_tested``, ``n_groups_significant``.
    """
    from pitfall import audit

    rows = grid[(grid["target"] == target) & (grid["seed"] == grid["seed"].min())]
    rows = rows[rows["test_chroms"] == rows["test_chroms"].iloc[0]]
    largest = rows[rows["n_params"] == rows["n_params"].max()].set_index("setting")
    by_id = {e.id: e for e in experiments}
    parts, summary = [], []
    for setting, row in largest.iterrows():
        split = sweep.make_split(ds, by_id[row["id"]])
        name = f"random control, {row['label'].split(' (')[0]}"
        pred = sweep.read_predictions(results_dir, row["id"]).sel(cell_type=[target])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", audit.AuditWarning)  # unlabelled loci: left out
            rep = audit.audit_predictions(
                pred,
                ds,
                train_cell_types=[*split.train_cell_types, *split.valid_cell_types],
                train_chroms=[*split.train_chroms, *split.valid_chroms],
                n_bootstrap=500,
            )
        part = rep.partitions[rep.partitions["cell_type"] == target]
        part = part.rename(columns={"ap_model": "ap"}).drop(columns=["cell_type"])
        parts.append(part.assign(setting=setting, predictor=name))
        top = rep.summary.iloc[0]
        summary.append(
            {
                "setting": setting,
                "predictor": name,
                "ap": top["ap_model"],
                "ap_average_activity": top["ap_average_activity"],
                "within_group_gain": top["within_group_gain"],
                "within_group_gain_ci": top["within_group_gain_ci"],
                "within_group_p": top["within_group_p"],
                "n_groups_tested": top["n_groups_tested"],
                "n_groups_significant": top["n_groups_significant"],
            }
        )
    columns = [
        "setting",
        "predictor",
        "group",
        "n_loci",
        "n_positive",
        "prevalence",
        "ap",
        "ap_random_expected",
        "random_low",
        "random_high",
        "gain",
        "p",
        "p_adjusted",
    ]
    return pd.concat(parts, ignore_index=True)[columns], pd.DataFrame(summary)


def describe_partitioned(summary: pd.DataFrame) -> list[str]:
    """One sentence per setting on the random control within activity groups."""
    out = []
    for _, r in summary.iterrows():
        low, high = r["within_group_gain_ci"]
        out.append(
            f"{r['setting']}: within groups of loci active in the same number of training "
            f"cell types, the {r['predictor']} scores {r['within_group_gain']:+.3f} AP "
            f"[{low:+.3f}, {high:+.3f}] against a random ranking of each group (permutation "
            f"p = {r['within_group_p']:.3g}; {r['n_groups_significant']} of "
            f"{r['n_groups_tested']} groups significant after Holm's correction)."
        )
    return out


def _say(msg: str) -> None:
    print(f"pitfall report real: {msg}", flush=True)


def run(
    data: str | Path,
    out: str | Path = "out/real",
    *,
    size: str = "paper",
    plan: Plan | None = None,
    fetched_plan: real_fetched.FetchedPlan | None = None,
    imputation_chroms: Sequence[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> Path:
    """The real-data report: every family when ``data`` holds a fetch, else the labels.

    When ``data`` holds what ``pitfall fetch roadmap`` writes with the genome and the marks
    (:func:`pitfall.datasets.roadmap.fetched_manifest`), this is
    :func:`pitfall.experiments.real_fetched.run` (every family of the paper, Figure S4,
    preprint S1, imputation). Otherwise it builds the real label cubes, runs the
    label experiments and writes ``out/report.html``; its first section says which report
    ran and what the full one lacked.

    Parameters
    ----------
    data
        A folder ``pitfall fetch roadmap`` filled, or one laid out as ``../shared/data``
        (``roadmap/``, ``tads/``).
    out
        Output folder: ``store/`` (cubes), ``results/`` (the sweep table and test scores),
        ``figures/``, ``findings.json``, ``report.html``. A rerun skips what is done.
    size
        ``"paper"`` (the paper's recipe) or ``"quick"`` (a short recipe).
    plan, fetched_plan
        Override ``size`` with an explicit :class:`Plan` (labels-only report) or
        :class:`pitfall.experiments.real_fetched.FetchedPlan` (full report).
    imputation_chroms
        The full report's imputation chromosomes
        (:func:`pitfall.experiments.real_fetched.run`).
    workers, scheduler
        Sweep workers (local processes; 0 runs in this process) or a Dask scheduler.

    Returns
    -------
    pathlib.Path
        The report.
    """
    t0 = time.perf_counter()
    data, out = Path(data), Path(out).resolve()
    fetched, lacking = datasets.roadmap.fetched_manifest(data)
    if fetched is not None:
        _say(f"{data} holds a complete fetch (genome and marks): the full report")
        return real_fetched.run(
            data,
            out,
            size=size,
            plan=fetched_plan,
            imputation_chroms=imputation_chroms,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
        )
    if plan is None:
        if size not in PLANS:
            raise ValueError(f"size {size!r} is not one of {', '.join(PLANS)}")
        plan = PLANS[size]
    missing = [d for d in ("roadmap", "tads") if not (data / d).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{data} has no {' or '.join(d + '/' for d in missing)} folder (the labels-only "
            f"report's layout, as ../shared/data: see its README) and is no complete fetch "
            f"(missing {'; '.join(lacking)}): give either, or download with `pitfall fetch "
            "roadmap`"
        )
    _say(f"labels-only report: {data} lacks {'; '.join(lacking)}")
    paths = datasets.build_all_from_folder(("roadmap", "tads"), data, out, progress=progress)
    _say(f"cubes ready ({time.perf_counter() - t0:.0f} s): {paths['roadmap']}, {paths['tads']}")
    parts = plan_experiments(paths["roadmap"], paths["tads"], plan)
    todo = list(dict.fromkeys(e for exps in parts.values() for e in exps))
    table, n_found, train_seconds = sweep.run_sweep_timed(
        todo,
        out / "results",
        say=_say,
        workers=workers,
        scheduler=scheduler,
        save_predictions=True,
        progress=progress,
    )
    by_id = table.set_index("id")
    roadmap, tads = cube.open_cube(paths["roadmap"]), cube.open_cube(paths["tads"])
    tables = {}
    for part, exps in parts.items():
        ids = [e.id for e in exps if e.id in by_id.index]
        rows = by_id.loc[ids].reset_index()
        failed = rows[rows["status"] != "ok"]
        if len(failed):
            _say(f"{len(failed)} of the {part} models failed; the first: {failed['error'].iloc[0]}")
        ds = tads if part == "tad_curve" else roadmap
        tables[part] = with_prevalence(ds, rows[rows["status"] == "ok"], exps)
    found = findings(tables)
    sentences = describe(found)
    figs = out / "figures"
    shown: list[Result] = []
    styles = baselines.figure_styles(["average_activity", "random"])
    both = ["cross-cell-type", "hybrid"]
    for part, title in (
        ("curve", "Memorisation on real labels: Roadmap expression, target H1 (E003)"),
        ("tad_curve", "Memorisation on real labels: TAD boundaries, target hESC"),
        ("gbm", "XGBoost on the random control: Roadmap expression, target E003"),
    ):
        rows = tables[part]
        if not len(rows):
            continue
        xlabel = "leaves (summed over the trees)" if part == "gbm" else "trainable parameters"
        shown.append(
            Result(
                name=f"real_{part}",
                title=title,
                figure=figure1.plot(
                    rows, settings=both, title=title, baselines=styles, xlabel=xlabel
                ),
                sentences=([plan.note] if plan.note else []) + sentences.get(part, []),
                tables={
                    "models": rows[
                        [
                            "setting",
                            "label",
                            "n_params",
                            "ap",
                            "ap_average_activity",
                            "ap_random",
                            "epochs",
                            "train_seconds",
                        ]
                    ].sort_values(["setting", "n_params"])
                },
            )
        )
    grid = tables["grid"]
    if len(grid):
        summary = grid_summary(grid)
        shown.append(
            Result(
                name="real_grid",
                title="Across targets, chromosome folds and seeds",
                figure=grid_spread(
                    summary, title="The random control over targets, folds and seeds"
                ),
                sentences=sentences.get("grid", []),
                tables={"summary": summary},
            )
        )
        part, within = partitioned_baselines(roadmap, grid, parts["grid"], out / "results")
        shown.append(
            Result(
                name="real_partitioned",
                title="Partitioned evaluation: the random control within activity groups",
                figure=partitioned_lines(
                    part, title="Test loci of E003, grouped by the training cell types active there"
                ),
                sentences=describe_partitioned(within),
                caption=[
                    "Loci are grouped by how many training and validation epigenomes express "
                    "them. Within a group the average activity is one value, so its AP "
                    "there (ties grouped) is the group's prevalence, below what a random "
                    "order of the group's loci earns on average: its strength comes entirely "
                    "from ranking the groups, and the fair reference within a group is a "
                    "random ranking's expected AP (the line, with the central 95% of the "
                    "permutation null shaded). A model that learned the target's own "
                    "regulation would rank loci within a group above it."
                ],
                tables={"within": within, "groups": part},
            )
        )
    s5 = figure_s5.make(
        roadmap,
        train_chroms=[c for c in splits.cube_chroms(roadmap) if c != "chr1"],
        test_chroms=["chr1"],
        on="label",
    )
    found["s5"] = {"n_targets": len(s5.tables["targets"]), **s5.findings}
    shown.append(s5)
    sections = [real_fetched.which_section("labels-only", data, lacking)]
    found["report"] = {"kind": "labels-only", "data": str(data), "why": lacking}
    for exp in shown:
        exp.save_figure(figs)
        sections.append(exp.section())
    # A rerun finds finished models: its seconds are not the cost of the report, so the
    # record says how many models this run trained.
    found["run"] = {
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "n_models": len(todo),
        "n_trained_now": len(todo) - n_found,
        "plan": plan.to_dict(),
    }
    atomic_write_text(out / "findings.json", json.dumps(found, indent=2, default=str))
    path = write_page(
        out / "report.html",
        title="pitfall on real labels: memorisation across cell types",
        sections=sections,
        footer={
            "run": f"{len(todo)} models ({len(todo) - n_found} trained in this run, "
            f"{n_found} found from an earlier one), {time.perf_counter() - t0:.0f} s "
            f"({train_seconds:.0f} s training)",
            "cube roadmap snapshot": roadmap.attrs["snapshot"],
            "cube tads snapshot": tads.attrs["snapshot"],
            "packages": ", ".join(f"{k} {v}" for k, v in sweep.package_versions().items()),
            "results table": str(out / "results" / sweep.RESULTS_FILE),
        },
    )
    _say(f"report: {path} ({time.perf_counter() - t0:.0f} s)")
    return path


def grid_spread(summary: pd.DataFrame, title: str = ""):
    """AP of each model size over a grid of targets and chromosome folds, with the seeds'
    range, next to the average-activity baseline and the prevalence of each cell.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per (setting, target, fold, model) with ``setting``, ``target``,
        ``test_chroms``, ``label``, ``n_params``, ``ap_mean``, ``ap_min``, ``ap_max``,
        ``ap_average_activity`` and ``prevalence``
        (:func:`pitfall.real_labels.grid_summary`).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per setting; x: target and fold; a dot per model size at the seeds'
        mean, a bar over their range; a black tick for the baseline, a grey one for the
        prevalence.
    """
    plt = pyplot()
    settings = [s for s in splits.SETTINGS if s in set(summary["setting"])]
    cells = list(dict.fromkeys(zip(summary["target"], summary["test_chroms"], strict=True)))
    sizes = summary.drop_duplicates("label").sort_values("n_params")["label"].tolist()
    shades = plt.cm.RdPu(np.linspace(0.45, 0.95, max(len(sizes), 2)))[: len(sizes)]
    fig, axes = plt.subplots(
        1,
        len(settings),
        figsize=(max(4.5, 0.5 * len(cells) + 1.5) * len(settings), 4.6),
        sharey=True,
        squeeze=False,
    )
    width = 0.7
    for ax, setting in zip(axes[0], settings, strict=True):
        part = summary[summary["setting"] == setting]
        for x, (target, fold) in enumerate(cells):
            cell = part[(part["target"] == target) & (part["test_chroms"] == fold)]
            if not len(cell):
                continue
            first = cell.iloc[0]
            ax.hlines(
                first["ap_average_activity"],
                x - width / 2,
                x + width / 2,
                color="black",
                lw=1.6,
                label="average-activity baseline",
                zorder=2,
            )
            ax.hlines(
                first["prevalence"],
                x - width / 2,
                x + width / 2,
                color="0.55",
                lw=1.4,
                ls=(0, (2, 1)),
                label="prevalence (random ranking)",
                zorder=2,
            )
            for k, label in enumerate(sizes):
                row = cell[cell["label"] == label]
                if not len(row):
                    continue
                r = row.iloc[0]
                dx = (k - (len(sizes) - 1) / 2) * (width / max(len(sizes), 1))
                ax.vlines(x + dx, r["ap_min"], r["ap_max"], color=shades[k], lw=2.2, zorder=3)
                ax.scatter(
                    [x + dx],
                    [r["ap_mean"]],
                    s=22,
                    color=shades[k],
                    zorder=4,
                    edgecolor="white",
                    linewidth=0.4,
                    label=label,
                )
        ax.set_xticks(range(len(cells)), [f"{t}\n{f}" for t, f in cells], fontsize=7)
        ax.set_xlim(-0.6, len(cells) - 0.4)
        ax.set_title(setting)
        ax.grid(alpha=0.25, axis="y", lw=0.5)
    axes[0, 0].set_ylabel("average precision (test; bar: seeds' range)")
    handles, names = legend_entries([axes[0, 0]])
    fig.legend(handles, names, loc="lower center", ncol=2, frameon=False, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05 + 0.035 * ((len(names) + 1) // 2), 1, 1))
    return fig


def partitioned_lines(table: pd.DataFrame, title: str = ""):
    """AP within each activity group, one line per predictor, against a random ranking.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows ``group`` (an int, or ``"all"``, left out here), ``predictor``, ``n_loci``,
        ``ap`` and ``ap_random_expected`` (the expected AP of a random ranking of the
        group: :func:`pitfall.evaluate.partitioned_evaluation`, or an audit's partitions),
        optionally ``random_low``/``random_high`` (a band around it) and ``p_adjusted``
        (groups below 0.05 drawn filled); with a ``setting`` column, one column of panels
        per setting.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Top: AP per group for each predictor, and a random ranking's expected AP (the fair
        reference within a group, where a tied baseline scores only the prevalence);
        bottom: loci per group.
    """
    plt = pyplot()
    t = table[table["group"] != "all"].copy()
    t["group"] = t["group"].astype(int)
    if "setting" not in t:
        t["setting"] = ""
    settings = list(dict.fromkeys(t["setting"]))
    fig, axes = plt.subplots(
        2,
        len(settings),
        figsize=(5.2 * len(settings) + 1.8, 5.4),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
        squeeze=False,
    )
    colors = ["#0072B2", "#D55E00", "#CC79A7", "#009E73", "#E69F00"]
    for k, setting in enumerate(settings):
        ax, bars = axes[0, k], axes[1, k]
        part = t[t["setting"] == setting]
        first = part.drop_duplicates("group").sort_values("group")
        if {"random_low", "random_high"} <= set(first.columns):
            ax.fill_between(
                first["group"],
                first["random_low"].astype(float),
                first["random_high"].astype(float),
                color="0.8",
                lw=0,
                label="random ranking: central 95% of the permutation null",
            )
        ax.plot(
            first["group"],
            first["ap_random_expected"],
            color="0.35",
            lw=1.4,
            label="random ranking: expected AP (the reference within a group)",
        )
        for j, (name, rows) in enumerate(part.groupby("predictor", sort=False)):
            color = colors[j % len(colors)]
            ax.plot(rows["group"], rows["ap"], lw=1.0, color=color, alpha=0.7)
            sig = (rows["p_adjusted"] < 0.05).to_numpy() if "p_adjusted" in rows else None
            if sig is None:
                ax.plot(rows["group"], rows["ap"], "o", ms=3.5, color=color, label=name)
            else:
                ax.plot(
                    rows["group"][sig],
                    rows["ap"][sig],
                    "o",
                    ms=4,
                    color=color,
                    label=f"{name} (significant after Holm)",
                )
                ax.plot(
                    rows["group"][~sig],
                    rows["ap"][~sig],
                    "o",
                    ms=4,
                    mfc="white",
                    color=color,
                    label=f"{name} (not significant)",
                )
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.25, lw=0.5)
        ax.set_title(setting)
        bars.bar(first["group"], first["n_loci"], color="0.6", width=0.8)
        # One group (loci active nowhere, or everywhere) can hold most loci: on a linear
        # axis every other bar would vanish.
        bars.set_yscale("log")
        bars.set_xlabel("training cell types in which the locus is active")
    axes[0, 0].set_ylabel("AP within the group")
    axes[1, 0].set_ylabel("loci (log scale)")
    handles, names = legend_entries(axes[0])
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 2), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig
