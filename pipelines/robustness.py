"""Robustness: the demo's findings at three levels of locus artefacts and of noise.

    python pipelines/robustness.py [--out DIR] [--artefact 0 0.5 1.5] [--noise 0.5 1 2]
                                   [--noise-param chromatin_noise] [--design grid|diagonal]
                                   [--seed 0] [--workers N]

The demo asserts the paper's findings on one synthetic compendium (``pitfall.synth``'s
``demo`` preset). A finding that holds only at that preset's values is a calibration, not a
finding. This pipeline re-synthesizes the demo compendium with two parameters changed,
builds its expression cube, runs the demo's quick model sweep on it (``pitfall.paper``'s
``quick`` grid over the three split settings, as ``pitfall demo --quick`` trains it, less
the gradient-boosted trees) and prints, per variant, the findings the demo asserts
(``pitfall.paper.findings``) with the margins ``tests/test_demo.py`` uses.

The two parameters:

``artefact_strength`` (``--artefact``, absolute levels)
    Per-locus, per-mark signal artefacts identical in every cell type (mappability, GC,
    CpG islands). They let a model recognise a locus from its marks, so epigenomic models
    may memorise too. Default levels: none, the preset's, three times the preset's.
a noise parameter (``--noise-param``, ``--noise`` multiplies the preset's value)
    ``chromatin_noise`` (default): the per cell type and locus discordance between
    chromatin and activity, shared by all marks, which decides how well a cell type's own
    marks read its activity; it touches neither the sequence nor the labels, so the
    sequence models' and the random control's findings cannot move with it.
    ``cell_noise``: the per cell type and locus noise of the activity itself, which decides
    how well the average over other cell types (the baseline, and what memorising models
    learn) predicts a new cell type; it changes the labels. ``mark_noise``: each mark's own
    noise. Default multipliers: half, the preset's, twice.

``--design grid`` (the default) runs all 3 x 3 combinations, so that each parameter's
effect can be seen at every level of the other; ``diagonal`` runs three variants that raise
both together. Each variant lives in its own folder under ``--out``; a rerun reuses what is
there (synthesis, cube, finished models) and only trains what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from pitfall import featurize, paper, sweep, synth  # noqa: E402

PRESET = synth.PRESETS["demo"]

#: The findings ``tests/test_demo.py`` asserts on the quick demo, with its margins, as
#: predicates of ``paper.findings(...)`` for the expression task.
CHECKS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "ctt: sequence gain > 0.1": lambda f: (
        f["cross-cell-type"]["sequence"]["gain"] > 0.1
        and f["cross-cell-type"]["sequence"]["ap_largest"]
        > f["cross-cell-type"]["sequence"]["ap_min"]
    ),
    "ctt: random gain > 0.1": lambda f: f["cross-cell-type"]["random"]["gain"] > 0.1,
    "ctt: baseline beats all": lambda f: f["cross-cell-type"]["baseline_beats_all"],
    "hybrid: seq and random gain < 0.05": lambda f: (
        f["hybrid"]["sequence"]["gain"] < 0.05 and f["hybrid"]["random"]["gain"] < 0.05
    ),
    "hybrid: baseline beats all": lambda f: f["hybrid"]["baseline_beats_all"],
    "ctt: signal gain < sequence gain / 2": lambda f: (
        f["cross-cell-type"]["signal"]["gain"] < f["cross-cell-type"]["sequence"]["gain"] / 2
    ),
    "largest signal model ctt ~ hybrid": lambda f: (
        abs(f["cross-cell-type"]["signal"]["ap_largest"] - f["hybrid"]["signal"]["ap_largest"])
        < paper.EPIGENOMIC_MARGIN
    ),
}


def variants(
    artefact: list[float], noise: list[float], param: str, design: str
) -> list[tuple[str, dict[str, float]]]:
    """(name, synth overrides) of every variant of the design; noise levels are multipliers."""
    if design == "diagonal":
        if len(artefact) != len(noise):
            raise SystemExit("--design diagonal needs as many --artefact as --noise levels")
        pairs = list(zip(artefact, noise, strict=True))
    else:
        pairs = [(a, n) for n in noise for a in artefact]
    base = getattr(PRESET, param)
    return [
        (f"artefact{a:g}_{param}{n * base:g}", {"artefact_strength": a, param: n * base})
        for a, n in pairs
    ]


def run_variant(
    root: Path, overrides: dict[str, float], *, seed: int, target: str, workers: int | None
) -> tuple[dict[str, Any], float]:
    """Synthesize, build the expression cube, sweep; the findings and the seconds it took."""
    t0 = time.perf_counter()
    comp_dir, cube_dir = root / "compendium", root / "store" / "expression"
    if not (comp_dir / "manifest.toml").exists():
        synth.synthesize(comp_dir, "demo", workers=workers or 2, seed=seed, **overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a variant killed while building resumes its build instead of failing to open it
        featurize.ensure_built(comp_dir / "manifest.toml", cube_dir, workers=workers,
                               progress=False)  # fmt: skip
    spec = paper.sweep_spec(str(cube_dir), "expression", target, "quick")
    experiments = sweep.sweep_from_dict(spec, root=root).experiments
    table = sweep.run_sweep(experiments, root / "results", workers=workers)
    failed = table[table["status"] != "ok"]
    if len(failed):
        print(f"  {len(failed)} of {len(table)} models failed: {failed['error'].iloc[0]}")
    f = paper.findings(table, "expression")
    (root / "findings.json").write_text(json.dumps(f, indent=2, default=float))
    return f, time.perf_counter() - t0


def summary_row(name: str, overrides: dict[str, float], f: dict[str, Any]) -> dict[str, Any]:
    """One line of the table: the numbers behind the findings, then each check."""
    row: dict[str, Any] = {"variant": name, **overrides}
    for short, setting in (("ctt", "cross-cell-type"), ("hyb", "hybrid")):
        s = f[setting]
        row |= {
            f"{short} seq gain": s["sequence"]["gain"],
            f"{short} random gain": s["random"]["gain"],
            f"{short} signal gain": s["signal"]["gain"],
            f"{short} signal largest": s["signal"]["ap_largest"],
            f"{short} baseline AP": s["average_activity_ap"],
            f"{short} best model": f"{s['best_model']} {s['best_model_ap']:.3f}",
        }
    for label, check in CHECKS.items():
        try:
            row[label] = "yes" if check(f) else "NO"
        except KeyError:  # a setting or panel without models
            row[label] = "n/a"
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/robustness"), help="output folder")
    ap.add_argument("--artefact", type=float, nargs="+",
                    default=[0.0, PRESET.artefact_strength, 3 * PRESET.artefact_strength],
                    help="artefact_strength levels")  # fmt: skip
    ap.add_argument("--noise", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                    help="noise levels, as multipliers of the preset's value")  # fmt: skip
    ap.add_argument("--noise-param", default="chromatin_noise",
                    choices=["chromatin_noise", "cell_noise", "mark_noise"],
                    help="the noise parameter --noise scales")  # fmt: skip
    ap.add_argument("--design", choices=["grid", "diagonal"], default="grid")
    ap.add_argument("--seed", type=int, default=PRESET.seed, help="synthesis seed")
    ap.add_argument("--target", default="E003", help="target cell type")
    ap.add_argument("--workers", type=int, default=None, help="local Dask workers")
    args = ap.parse_args()
    out = args.out.resolve()
    t_all = time.perf_counter()
    rows = []
    todo = variants(args.artefact, args.noise, args.noise_param, args.design)
    for i, (name, overrides) in enumerate(todo, 1):
        print(f"[robustness] {i}/{len(todo)} {name}", flush=True)
        f, seconds = run_variant(
            out / name, overrides, seed=args.seed, target=args.target, workers=args.workers
        )
        rows.append(summary_row(name, overrides, f) | {"seconds": round(seconds)})
        print(f"[robustness] {name} done in {seconds:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    tsv = f"robustness_{args.noise_param}_{args.design}.tsv"
    table.to_csv(out / tsv, sep="\t", index=False, float_format="%.3f")
    with pd.option_context("display.width", 250, "display.max_columns", None,
                           "display.float_format", "{:.3f}".format):  # fmt: skip
        numbers = [c for c in table.columns if c not in CHECKS]
        print(table[numbers].to_string(index=False))
        print(table[["variant", *CHECKS]].to_string(index=False))
    held = {label: int((table[label] == "yes").sum()) for label in CHECKS}
    print("\nfinding held in " + ", ".join(f"{k}: {v}/{len(table)}" for k, v in held.items()))
    print(f"[robustness] {len(table)} variants in {time.perf_counter() - t_all:.0f} s; "
          f"table: {out / tsv}")  # fmt: skip


if __name__ == "__main__":
    main()
