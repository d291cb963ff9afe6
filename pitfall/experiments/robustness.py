"""Robustness: the demo's findings at several levels of locus artefacts and of noise.

The demo asserts the paper's findings on one synthetic compendium (``pitfall.synth``'s
``demo`` preset). A finding that holds only at that preset's values is a calibration, not a
finding. Each variant re-synthesizes the demo compendium with two parameters changed,
builds its expression cube, runs the quick model sweep on it
(:func:`pitfall.experiments.grids.model_grid`, three split settings) and checks the
findings the demo asserts (:data:`CHECKS`, on :func:`pitfall.experiments.figure1.findings`).

The two parameters:

``artefact_strength`` (absolute levels)
    Per-locus, per-mark signal artefacts identical in every cell type (mappability, GC,
    CpG islands). They let a model recognise a locus from its marks, so epigenomic models
    may memorise too.
a noise parameter (levels multiply the preset's value)
    ``chromatin_noise``: the per cell type and locus discordance between chromatin and
    activity, shared by all marks; it touches neither the sequence nor the labels.
    ``cell_noise``: the per cell type and locus noise of the activity itself, which decides
    how well the average over other cell types predicts a new cell type. ``mark_noise``:
    each mark's own noise.

The ``grid`` design runs every combination; ``diagonal`` raises both together. Each variant
lives in its own folder; a rerun reuses what is there and only trains what is missing.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pitfall import featurize, sweep, synth
from pitfall.experiments import figure1, grids
from pitfall.experiments._result import Result

__all__ = ["CHECKS", "PRESET", "make", "run_variant", "summary_row", "variants"]

log = logging.getLogger(__name__)


PRESET = synth.PRESETS["demo"]


#: The findings ``tests/test_demo.py`` asserts on the quick demo, with its margins, as
#: predicates of ``figure1.findings(...)`` for the expression task.
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
        < figure1.EPIGENOMIC_MARGIN
    ),
}


def variants(
    artefact: list[float], noise: list[float], param: str, design: str
) -> list[tuple[str, dict[str, float]]]:
    """(name, synth overrides) of every variant of the design; noise levels are multipliers."""
    if design == "diagonal":
        if len(artefact) != len(noise):
            raise ValueError("the diagonal design needs as many artefact as noise levels")
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
        featurize.ensure_built(
            comp_dir / "manifest.toml", cube_dir, workers=workers, progress=False
        )
    spec = grids.sweep_spec(str(cube_dir), "expression", target, "quick")
    experiments = sweep.sweep_from_dict(spec, root=root).experiments
    table = sweep.run_sweep(experiments, root / "results", workers=workers)
    failed = table[table["status"] != "ok"]
    if len(failed):
        log.warning("%d of %d models failed: %s", len(failed), len(table), failed["error"].iloc[0])
    f = figure1.findings(table, "expression")
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


def make(
    out: str | Path,
    *,
    artefact: Sequence[float] | None = None,
    noise: Sequence[float] = (0.5, 1.0, 2.0),
    noise_param: str = "chromatin_noise",
    design: str = "grid",
    seed: int = PRESET.seed,
    target: str = "E003",
    workers: int | None = None,
) -> Result:
    """Run every variant of the design under ``out`` and check the findings in each.

    Parameters
    ----------
    out
        Folder of the variants (one subfolder each).
    artefact
        ``artefact_strength`` levels (default: none, the preset's, three times the preset's).
    noise
        Multipliers of the preset's ``noise_param``.
    noise_param : {"chromatin_noise", "cell_noise", "mark_noise"}
    design : {"grid", "diagonal"}
    seed, target, workers
        Synthesis seed, target cell type, local Dask workers (0: in this process).

    Returns
    -------
    Result
        ``tables["variants"]``: one row per variant, the numbers behind the findings and
        each check of :data:`CHECKS` (``yes``, ``NO`` or ``n/a``); ``findings``: in how
        many variants each check held. No figure.
    """
    if artefact is None:
        artefact = [0.0, PRESET.artefact_strength, 3 * PRESET.artefact_strength]
    out = Path(out).resolve()
    rows = []
    todo = variants(list(artefact), list(noise), noise_param, design)
    for i, (name, overrides) in enumerate(todo, 1):
        log.info("variant %d/%d %s", i, len(todo), name)
        f, seconds = run_variant(out / name, overrides, seed=seed, target=target, workers=workers)
        rows.append(summary_row(name, overrides, f) | {"seconds": round(seconds)})
    table = pd.DataFrame(rows)
    held = {label: int((table[label] == "yes").sum()) for label in CHECKS}
    return Result(
        name=f"robustness_{noise_param}_{design}",
        title=f"The demo's findings over {len(table)} variants of the synthetic compendium",
        findings={"held": held, "n_variants": len(table)},
        sentences=[f"{label}: held in {n} of {len(table)} variants." for label, n in held.items()],
        tables={"variants": table},
    )
