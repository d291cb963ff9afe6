"""Figure S1: gradient-boosted trees, AP against trees x leaves in the three settings.

The same pitfall holds for trees: more trees memorise more loci (grid:
:func:`pitfall.experiments.grids.gbm_grid`).
"""

from __future__ import annotations

import pandas as pd

from pitfall import baselines
from pitfall.experiments import figure1
from pitfall.experiments._result import Result

__all__ = ["make"]

CAPTION = (
    "Complexity = trees x leaves. The same pitfall holds for trees: more trees memorise more loci."
)


def make(results: pd.DataFrame, task: str = "expression") -> Result:
    """Figure S1 from a sweep's results table (its XGBoost rows of ``task``).

    Returns
    -------
    Result
        ``tables["models"]``: one row per model; ``findings``: :func:`pitfall.experiments.figure1.trend`
        of each setting and input type.
    """
    rows = results[
        (results["task"] == task) & (results["status"] == "ok") & (results["family"] == "xgboost")
    ]
    target = figure1._target(rows)
    title = f"Figure S1: gradient-boosted trees ({task}{', ' + target if target else ''})"
    trends = {
        setting: {
            inputs: figure1.trend(rows, setting, [inputs])
            for inputs in rows.loc[rows["setting"] == setting, "inputs"].unique()
        }
        for setting in rows["setting"].unique()
    }
    cols = [c for c in figure1.MODEL_COLUMNS if c in rows]
    return Result(
        name="figure_s1_trees",
        title=title,
        figure=figure1.plot(
            rows, title=title, xlabel="trees x leaves", baselines=baselines.figure_styles()
        )
        if len(rows)
        else None,
        findings=trends,
        tables={
            "models": rows[cols]
            .sort_values(["setting", "inputs", "n_params"])
            .reset_index(drop=True)
        },
        caption=[CAPTION],
    )
