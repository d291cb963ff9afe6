"""The controls over model size: permuted sequence and locus-constant random inputs.

Both carry no biology a model could learn, only each locus's identity (the same values for
a locus in every cell type). If they climb with size across cell types and not in the
hybrid setting, what climbs is memorisation. Their models are part of Figure 1's grid
(:func:`pitfall.experiments.grids.model_grid`; :func:`spec` keeps only them).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pitfall import baselines
from pitfall.experiments import figure1
from pitfall.experiments._result import Result
from pitfall.experiments.grids import sweep_spec

__all__ = ["CONTROLS", "SETTINGS", "make", "spec"]

#: The settings the controls are compared in.
SETTINGS = ("cross-cell-type", "hybrid")
#: The control input types.
CONTROLS = ("random", "permuted")


def spec(cube_path: str, task: str, target: str, size: str) -> dict[str, Any]:
    """The sweep spec of Figure 1's grid reduced to the controls, in :data:`SETTINGS`."""
    out = sweep_spec(cube_path, task, target, size)
    out["models"] = [m for m in out["models"] if m.get("inputs") == "random" or m.get("permuted")]
    out["settings"] = list(SETTINGS)
    return out


def make(results: pd.DataFrame, task: str = "expression") -> Result:
    """The controls' figure and their trend with size, from a sweep's results table.

    Returns
    -------
    Result
        ``findings[setting][control]``: :func:`pitfall.experiments.figure1.trend` of that
        control's models; ``sentences``: its AP from the smallest to the largest model.
    """
    rows = results[
        (results["task"] == task)
        & (results["status"] == "ok")
        & (results["family"] != "xgboost")
        & (results["inputs"].isin(CONTROLS))
        & (results["setting"].isin(SETTINGS))
    ]
    found: dict[str, dict[str, Any]] = {}
    sentences = []
    for setting in SETTINGS:
        for inputs in ("random", "permuted"):
            t = figure1.trend(rows, setting, [inputs])
            if t["n"] < 2:
                continue
            found.setdefault(setting, {})[inputs] = t
            sentences.append(
                f"{setting}, {inputs}: AP {t['ap_smallest']:.3f} (smallest) -> "
                f"{t['ap_largest']:.3f} (largest), Spearman rho with log(parameters) "
                f"{t['rho']:.2f}."
            )
    title = "Controls: inputs that only identify the locus"
    cols = [c for c in figure1.MODEL_COLUMNS if c in rows]
    return Result(
        name="controls",
        title=title,
        figure=figure1.plot(
            rows, settings=SETTINGS, title=title, baselines=baselines.figure_styles()
        )
        if len(rows)
        else None,
        findings=found,
        sentences=sentences,
        tables={
            "models": rows[cols]
            .sort_values(["setting", "inputs", "n_params"])
            .reset_index(drop=True)
        },
    )
