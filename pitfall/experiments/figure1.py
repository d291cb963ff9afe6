"""Figure 1: AP against the number of parameters in the three settings, per input type.

Figure 1 d-f (gene expression) and g-i (TAD boundaries) of Schreiber et al. 2020: every
model of a sweep (:func:`pitfall.experiments.grids.model_grid`) is a point, coloured by its
inputs, in the cross-chromosome, cross-cell-type and hybrid panels; the baselines are lines.
:func:`findings` measures what the paper claims on the results table and :func:`describe`
says it in words, so the report's sentences and the tests read the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pitfall import baselines, splits
from pitfall._plotting import INPUT_COLORS, INPUT_NAMES, legend_entries, log_axis, pyplot
from pitfall.experiments._result import Result

__all__ = ["EPIGENOMIC_MARGIN", "describe", "findings", "make", "plot", "trend"]


#: How far apart the largest epigenomic model's APs across cell types and on unseen
#: chromosomes may be before its gain counts as memorised: above the gaps that seeded
#: quick-recipe runs of the synthetic compendium show at several artefact and noise levels
#: (``docs/performance.rst``).
EPIGENOMIC_MARGIN = 0.02


def trend(results: pd.DataFrame, setting: str, inputs: Sequence[str]) -> dict[str, float]:
    """Spearman correlation of AP with log parameter count, and the AP range, for one panel."""
    rows = results[
        (results["status"] == "ok")
        & (results["setting"] == setting)
        & (results["inputs"].isin(list(inputs)))
    ]
    if len(rows) < 2:
        return {"n": len(rows), "rho": float("nan"), "p": float("nan"), "gain": float("nan")}
    rho, p = (float("nan"), float("nan"))
    if len(rows) >= 3:
        rho, p = stats.spearmanr(np.log10(rows["n_params"].astype(float)), rows["ap"].astype(float))
    small = rows.loc[rows["n_params"].astype(float).idxmin()]
    large = rows.loc[rows["n_params"].astype(float).idxmax()]
    return {
        "n": int(len(rows)),
        "rho": float(rho),
        "p": float(p),
        "gain": float(large["ap"] - small["ap"]),
        "ap_min": float(rows["ap"].min()),
        "ap_max": float(rows["ap"].max()),
        "ap_smallest": float(small["ap"]),
        "ap_largest": float(large["ap"]),
        "baseline": float(rows["ap_average_activity"].median()),
        "random": float(rows["ap_random"].median()),
    }


def findings(results: pd.DataFrame, task: str) -> dict[str, Any]:
    """What the paper claims, measured on this results table.

    For each setting: the trend with size of sequence-only models (the permuted control
    included), of the locus-constant random control, of epigenomic-only models, and whether
    the average-activity baseline beats every model.
    """
    res = results[(results["task"] == task) & (results["status"] == "ok")]
    nets = res[res["family"] != "xgboost"]
    out: dict[str, Any] = {}
    for setting in splits.SETTINGS:
        part = res[res["setting"] == setting]
        if part.empty:
            continue
        best = float(part["ap"].max())
        base = float(part["ap_average_activity"].median())
        out[setting] = {
            "sequence": trend(nets, setting, ["sequence", "permuted"]),
            "random": trend(nets, setting, ["random"]),
            "signal": trend(nets, setting, ["signal"]),
            "best_model_ap": best,
            "best_model": str(part.loc[part["ap"].idxmax(), "label"]),
            "average_activity_ap": base,
            "baseline_beats_all": bool(base > best),
        }
    return out


def describe(f: dict[str, Any], task: str) -> list[str]:
    """Plain-language sentences for the findings of one task."""
    lines = []
    ctt, hyb = f.get("cross-cell-type"), f.get("hybrid")
    if ctt:
        s = ctt["sequence"]
        lines.append(
            f"Cross-cell-type ({task}): sequence-only models go from AP "
            f"{s.get('ap_smallest', float('nan')):.3f} (smallest) to {s.get('ap_largest', float('nan')):.3f} "
            f"(largest), Spearman rho of AP with log(parameters) = {s['rho']:.2f}; the "
            f"locus-constant random control, which carries no biology, gives rho = "
            f"{ctt['random']['rho']:.2f}. The average-activity baseline scores "
            f"{ctt['average_activity_ap']:.3f}, "
            + (
                "above every model"
                if ctt["baseline_beats_all"]
                else f"below the best model ({ctt['best_model']}, {ctt['best_model_ap']:.3f})"
            )
            + "."
        )
    if hyb:
        s, r = hyb["sequence"], hyb["random"]
        gone = max(s.get("gain", 0.0), r.get("gain", 0.0)) < 0.05
        lines.append(
            f"Hybrid ({task}, unseen cell type and unseen chromosome): the same sequence-only "
            f"models span AP {s.get('ap_min', float('nan')):.3f}-"
            f"{s.get('ap_max', float('nan')):.3f} (largest minus smallest "
            f"{s.get('gain', float('nan')):+.3f}), the random control "
            f"{r.get('gain', float('nan')):+.3f}: "
            + (
                "memorising a locus does not pay on unseen chromosomes."
                if gone
                else "size still helps here, so not all of the gain is memorisation."
            )
        )
    if ctt and hyb and ctt["signal"]["n"] >= 2 and hyb["signal"]["n"] >= 2:
        e, h = ctt["signal"], hyb["signal"]
        # Read memorisation off the largest model, the one that could memorise most: the
        # smallest networks' fits vary from run to run (a 4-unit network may or may not
        # converge in a short recipe), which makes largest-minus-smallest a noisy measure.
        same = abs(e["ap_largest"] - h["ap_largest"]) < EPIGENOMIC_MARGIN
        lines.append(
            f"Epigenomic-only models span AP {e['ap_min']:.3f}-{e['ap_max']:.3f} across cell "
            f"types and {h['ap_min']:.3f}-{h['ap_max']:.3f} on unseen chromosomes; the "
            f"largest reaches {e['ap_largest']:.3f} across cell types and "
            f"{h['ap_largest']:.3f} on unseen chromosomes, "
            + (
                "about the same: what they learn is how marks relate to activity, not which "
                "locus is which."
                if same
                else "more across cell types than on unseen chromosomes: part of it is memorised."
            )
        )
    return lines


def _plain_number(x: float, _pos: int | None = None) -> str:
    return f"{x:,.0f}" if x >= 1 else f"{x:g}"


def plot(
    results: pd.DataFrame,
    *,
    task: str | None = None,
    settings: Sequence[str] = splits.SETTINGS,
    title: str | None = None,
    xlabel: str = "trainable parameters",
    baselines: Mapping[str, tuple[str, str, str]] | None = None,
):
    """Figure 1 d-f / g-i: AP against trainable parameters, one panel per setting.

    Points are models coloured by input type (log-scale x, :func:`pitfall._plotting.log_axis`); horizontal
    lines are the baselines' APs on the same test loci (the median over the panel's rows).
    The same figure shows Figure S1 (trees, ``xlabel="trees x leaves"``) and S2 (the
    controls).

    Parameters
    ----------
    baselines
        ``{column: (label, color, linestyle)}`` of the baseline columns to draw
        (:func:`pitfall.baselines.figure_styles`); default every ``ap_*`` column, in grey.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    rows = results[results["status"] == "ok"] if "status" in results else results
    if task is not None:
        rows = rows[rows["task"] == task]
    settings = [s for s in settings if s in set(rows["setting"])]
    fig, axes = plt.subplots(
        1, max(len(settings), 1), figsize=(4.2 * max(len(settings), 1), 3.8), sharey=True
    )
    axes = np.atleast_1d(axes)
    for ax, setting in zip(axes, settings, strict=False):
        part = rows[rows["setting"] == setting]
        for inputs, group in part.groupby("inputs", sort=False):
            ax.scatter(
                group["n_params"],
                group["ap"],
                s=22,
                alpha=0.85,
                color=INPUT_COLORS.get(inputs, "0.3"),
                label=INPUT_NAMES.get(inputs, inputs),
                edgecolor="white",
                linewidth=0.4,
            )
        if baselines is None:
            baselines = {
                c: (c.removeprefix("ap_").replace("_", " "), "0.4", "--")
                for c in rows.columns
                if c.startswith("ap_")
            }
        for col, (name, color, style) in baselines.items():
            if col in part and part[col].notna().any():
                ax.axhline(part[col].median(), color=color, ls=style, lw=1.2, label=name)
        log_axis(ax, rows["n_params"])  # the same ticks in every panel
        ax.set_title(setting)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.25, which="major", lw=0.5)
    axes[0].set_ylabel("average precision (test)")
    handles, labels_ = legend_entries(axes)
    fig.legend(handles, labels_, loc="lower center", ncol=min(len(labels_), 4), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12 if len(labels_) <= 4 else 0.18, 1, 1))
    return fig


#: File stem and heading of each paper task's Figure 1 panels.
PANELS = {
    "expression": ("figure1_def_expression", "Figure 1 d-f: gene expression"),
    "tad": ("figure1_ghi_tad", "Figure 1 g-i: TAD boundaries"),
}

CAPTION = (
    "Each point is one trained model (x: trainable parameters, log scale); colours are "
    "input types; lines are baselines on the same test loci."
)

#: The columns of the models' table.
MODEL_COLUMNS = ["setting", "inputs", "label", "n_params", "ap", "ap_average_activity", "ap_random"]


def _target(rows: pd.DataFrame) -> str | None:
    targets = rows["target"].dropna().unique() if "target" in rows else []
    return str(targets[0]) if len(targets) == 1 else None


def make(results: pd.DataFrame, task: str = "expression") -> Result:
    """Figure 1 for one task, from a sweep's results table.

    Parameters
    ----------
    results : pandas.DataFrame
        A sweep's results table (:mod:`pitfall.sweep`), one row per model; the task's
        neural networks that trained (``status == "ok"``) are drawn and measured (the
        trees have their own figure, :mod:`pitfall.experiments.figure_s1`).
    task : str
        The task whose rows are shown.

    Returns
    -------
    Result
        ``findings``: :func:`findings` of the task (``{setting: ...}``); ``sentences``:
        :func:`describe`; ``tables["models"]``: one row per model.

    Examples
    --------
    >>> import pandas as pd
    >>> from pitfall.experiments import figure1
    >>> rows = pd.DataFrame({
    ...     "task": "expression", "status": "ok", "family": "dense", "target": "E003",
    ...     "setting": "hybrid", "inputs": "sequence", "label": ["small", "large"],
    ...     "n_params": [10, 10_000], "ap": [0.50, 0.52], "ap_average_activity": 0.6,
    ...     "ap_random": 0.3})
    >>> exp = figure1.make(rows, "expression")
    >>> exp.title
    'Figure 1 d-f: gene expression (E003)'
    >>> round(exp.findings["hybrid"]["sequence"]["gain"], 2)
    0.02
    """
    rows = results[
        (results["task"] == task) & (results["status"] == "ok") & (results["family"] != "xgboost")
    ]
    name, heading = PANELS.get(task, (f"figure1_{task}", f"Figure 1 layout: {task}"))
    target = _target(rows)
    title = f"{heading} ({target})" if target else heading
    found = findings(rows, task)
    models = rows[[c for c in MODEL_COLUMNS if c in rows]].sort_values(
        ["setting", "inputs", "n_params"]
    )
    return Result(
        name=name,
        title=title,
        figure=plot(rows, title=title, baselines=baselines.figure_styles()) if len(rows) else None,
        findings=found,
        sentences=describe(found, task),
        tables={"models": models.reset_index(drop=True)},
        caption=[CAPTION],
    )
