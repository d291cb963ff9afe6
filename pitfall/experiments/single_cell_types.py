"""Single cell types as predictors of a target, against their similarity to it (not a paper figure).

Each other cell type's labels, used alone, predict the target's; plotted against that cell
type's similarity to the target, with the average of all of them as a line. Even the most
similar single cell type falls below the average. The paper's Figure S5 (the average's AP
against similarity, every cell type a target) is :mod:`pitfall.experiments.figure_s5`.
"""

from __future__ import annotations

import pandas as pd
import xarray as xr

from pitfall import baselines, splits
from pitfall._plotting import scatter
from pitfall.experiments._result import Result

__all__ = ["make", "strength_vs_similarity"]


def strength_vs_similarity(ds: xr.Dataset, target: str, on: str | None = None) -> pd.DataFrame:
    """Single cell types as predictors (the project's own figure, not the paper's).

    Each other cell type's labels, used alone to predict the target's, against its
    similarity to the target (:meth:`pitfall.baselines.MostSimilar.similarity`, over every
    locus): how far the best single cell type falls below the average of all of them.

    Returns
    -------
    pandas.DataFrame
        ``cell_type``, ``similarity``, ``ap``, one row per other cell type
        (:func:`pitfall.baselines.single_cell_type_aps`).
    """
    others = [str(c) for c in ds["cell_type"].values if str(c) != target]
    train = ds.sel(cell_type=others)
    sim = baselines.MostSimilar(ds, on=on).fit(train).similarity(target)
    return baselines.single_cell_type_aps(ds["label"], target, sim)


def make(ds: xr.Dataset, target: str) -> Result:
    """Each other cell type's labels alone as predictors of ``target``, against similarity.

    Similarity is the correlation of the signal with the target's (of the labels on a
    labels-only cube); the line is the average activity of all the others, scored on the
    same loci.

    Returns
    -------
    Result
        ``tables["cell_types"]``: :func:`strength_vs_similarity`; ``findings``: the
        average's AP and the best single cell type's.
    """
    on = "signal" if "signal" in ds else "label"
    table = strength_vs_similarity(ds, target, on=on)
    others = [str(c) for c in ds.cell_type.values if str(c) != target]
    chroms = tuple(splits.cube_chroms(ds))
    whole = splits.Split(
        tuple(others), chroms, (), (), (target,), chroms, setting="cross-cell-type"
    )
    avg = float(baselines.baseline_aps(ds, whole, ["average_activity"])["ap_average_activity"])
    best = table.loc[table["ap"].idxmax()] if len(table) else None
    found = {
        "ap_average_activity": avg,
        "best_single": str(best["cell_type"]) if best is not None else None,
        "ap_best_single": float(best["ap"]) if best is not None else float("nan"),
    }
    sentences = []
    if best is not None:
        sentences.append(
            f"The average activity of all {len(others)} other cell types scores AP {avg:.3f}; "
            f"the best single cell type, {found['best_single']}, {found['ap_best_single']:.3f}."
        )
    title = f"Single cell types as predictors of {target}"
    fig = scatter(
        table["similarity"].to_numpy(),
        table["ap"].to_numpy(),
        labels=table["cell_type"].tolist(),
        xlabel=f"similarity to {target} (correlation of the {on})",
        ylabel="AP of that cell type's labels alone",
        title=title,
        hline={f"average activity of all {len(others)}": avg},
    )
    return Result(
        name="single_cell_types_vs_similarity",
        title=f"{title} (not a paper figure)",
        figure=fig,
        findings=found,
        sentences=sentences,
        tables={"cell_types": table},
    )
