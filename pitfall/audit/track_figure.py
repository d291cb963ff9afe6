"""The figure of a continuous audit (:func:`continuous_figure`), drawn from its report.

Four panels: the density of predicted against observed values for the model and for the
Average, the nine metrics of every predictor relative to the Average's, and the residual
correlation per decile of cross-cell-type variance against its permutation null.
:func:`pitfall.audit.figure.audit_figure` dispatches here for ``kind="continuous"``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pitfall import track_metrics as tm
from pitfall.audit.figure import ci_suffix, group_panel
from pitfall.audit.report import PALETTE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pitfall.audit.report import AuditReport

__all__ = ["continuous_figure"]

_PALETTE_KEYS = {
    "model": "model",
    "average": "average activity",
    "most_similar": "most similar cell type",
    "zero": "zero",
}


def continuous_figure(report: AuditReport) -> Figure:
    """The figure of a continuous audit: what a reviewer looks at before the tables.

    Four panels: the density of predicted against observed values for the model and for
    the Average (hexbins, the diagonal dotted); the nine metrics of the model and of each
    baseline relative to the Average's (1 = the Average; the side where a predictor does
    better is shaded, lower-is-better metrics marked with a down arrow), the model's
    interval as a bar; and per decile of cross-cell-type variance the model's residual
    correlation against the central interval of its permutation null (filled: significant
    after correction). The title names the cell type, the mark and the call; colours are
    Okabe and Ito's (:data:`pitfall.audit.report.PALETTE`).
    """
    from pitfall._plotting import pyplot

    plt = pyplot()
    row = report.summary.iloc[-1]
    metrics = row["metrics"]
    curves = report.curves
    level = f"{report.settings['level']:.0%}"
    fig, axes = plt.subplots(2, 2, figsize=(13, 10), layout="constrained")
    (ax_model, ax_avg), (ax_metrics, ax_groups) = axes

    obs = np.asarray(curves["observed"], dtype=np.float64)
    shown = [obs, curves["model"], curves["average"]]
    lo = float(min(np.min(v) for v in shown))
    hi = float(max(np.max(v) for v in shown))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    for ax, key, cmap in ((ax_model, "model", "Blues"), (ax_avg, "average", "Greys")):
        name = "model" if key == "model" else "Average"
        hb = ax.hexbin(
            obs,
            curves[key],
            gridsize=45,
            bins="log",
            mincnt=1,
            cmap=cmap,
            extent=(lo, hi, lo, hi),
            linewidths=0,
        )
        ax.plot(
            [lo, hi], [lo, hi], color=PALETTE["bad"], ls=":", lw=1.2, label="predicted = observed"
        )
        fig.colorbar(hb, ax=ax, label="bins (log scale)")
        mse, corr = metrics["mse"], metrics["gwcorr"]
        ax.set_title(
            f"{name}: mse {mse[key]:.3g}{ci_suffix(mse[f'{key}_ci'], '.3g')}\n"
            f"gwcorr {corr[key]:.3f}{ci_suffix(corr[f'{key}_ci'], '.3f')}",
            fontsize=10,
        )
        ax.set_xlabel(f"observed {row['mark']} (mean arcsinh signal per bin)")
        ax.set_ylabel(f"{name} (same scale)")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.legend(loc="upper left", fontsize=8, frameon=False)

    names = list(tm.METRICS)
    y = np.arange(len(names))[::-1]
    predictors = [
        ("model", "model"),
        ("most_similar", f"most similar ({row['most_similar']})"),
        ("zero", "zero"),
    ]
    offsets = {"model": 0.0, "most_similar": -0.2, "zero": 0.2}
    ratios_seen = [1.0]
    xmax = 3.0
    for i, m in zip(y, names, strict=True):
        entry = metrics[m]
        lower = bool(entry["lower_is_better"])
        base = entry["average"]
        if not (math.isfinite(base) and base != 0):
            continue
        for key, _ in predictors:
            v = entry[key]
            if math.isfinite(v):
                ratios_seen.append(v / base)
        side = (-1e9, 1.0) if lower else (1.0, 1e9)
        ax_metrics.fill_betweenx([i - 0.4, i + 0.4], *side, color=PALETTE["good"], alpha=0.08, lw=0)
    xmin = min(0.0, min(ratios_seen) - 0.05)
    for key, label in predictors:
        first = True
        for i, m in zip(y, names, strict=True):
            entry = metrics[m]
            base, v = entry["average"], entry[key]
            if not (math.isfinite(base) and base != 0 and math.isfinite(v)):
                continue
            ratio = v / base
            yy = i + offsets[key]
            colour = PALETTE[_PALETTE_KEYS[key]]
            clipped = min(ratio, xmax)
            marker = ">" if ratio > xmax else ("o" if key == "model" else "s")
            ax_metrics.scatter(
                [clipped],
                [yy],
                color=colour,
                marker=marker,
                s=36 if key == "model" else 22,
                zorder=3,
                label=label if first else None,
            )
            first = False
            if ratio > xmax:
                ax_metrics.annotate(
                    f"{ratio:.1f}x",
                    (clipped, yy),
                    xytext=(-4, 4),
                    textcoords="offset points",
                    ha="right",
                    fontsize=7,
                    color=colour,
                )
            if key == "model":
                low, high = entry["model_ci"]
                if math.isfinite(low) and math.isfinite(high):
                    ax_metrics.plot(
                        [min(low / base, xmax), min(high / base, xmax)],
                        [yy, yy],
                        color=colour,
                        lw=2,
                        zorder=2,
                    )
    ax_metrics.axvline(1.0, color=PALETTE["average activity"], lw=1.2, label="Average (= 1)")
    labels = []
    for m in names:
        entry = metrics[m]
        arrow = "\u2193" if entry["lower_is_better"] else "\u2191"
        if math.isfinite(entry["model"]):
            labels.append(f"{m} {arrow}\n{entry['model']:.3g} vs {entry['average']:.3g}")
        else:
            labels.append(f"{m} {arrow}\n(not computed)")
    ax_metrics.set_yticks(y, labels, fontsize=8)
    ax_metrics.set_ylim(-0.6, len(names) - 0.4)
    ax_metrics.set_xlim(xmin, xmax * 1.05)
    ax_metrics.set_xlabel("value relative to the Average's (shaded: better than the Average)")
    ax_metrics.set_title(
        f"the challenge's nine metrics (\u2193 lower is better, \u2191 higher), model with its "
        f"{level} interval",
        fontsize=10,
    )
    ax_metrics.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=4, fontsize=8, frameon=False
    )

    part = report.partitions[report.partitions["cell_type"] == "pooled"]
    g = part["group"].to_numpy(dtype=float)
    group_panel(
        ax_groups,
        g,
        part["residual_corr"].to_numpy(dtype=float),
        (part["null_low"].to_numpy(dtype=float), part["null_high"].to_numpy(dtype=float)),
        part["significant"].to_numpy(dtype=bool),
        reference=0.0,
        band_label=f"no cell-type-specific signal ({level} of the permutation null)",
    )
    gain = row["within_group_gain"]
    ax_groups.set_title(
        "within deciles of cross-cell-type variance: residual correlation "
        + (
            f"{gain:+.3f}{ci_suffix(row['within_group_gain_ci'], '+.3f')}"
            if math.isfinite(gain)
            else "-"
        ),
        fontsize=10,
    )
    ax_groups.set_xlabel(
        "decile of the mark's variance across the training cell types (low to high)"
    )
    ax_groups.set_ylabel("corr(model - Average, observed - Average)")
    ax_groups.set_ylim(-1.02, 1.02)
    ax_groups.set_xticks(g)
    ax_groups.legend(loc="lower right", fontsize=8, frameon=False)

    mse = metrics["mse"]
    fig.suptitle(
        f"{row['cell_type'] if row['cell_type'] != 'pooled' else report.settings['targets'][0]} "
        f"{row['mark']}: {report.call}\nmse model {mse['model']:.3g}{ci_suffix(mse['model_ci'], '.3g')} vs "
        f"Average {mse['average']:.3g}{ci_suffix(mse['average_ci'], '.3g')}; Average minus model "
        f"{row['mse_gain']:+.3g}{ci_suffix(row['mse_gain_ci'], '+.3g')} ({level} block-bootstrap "
        "intervals)",
        fontsize=11,
    )
    return fig
