"""The audit's figure: what a reviewer looks at before reading the tables.

Binary targets, two panels over the pooled (cell type, locus) pairs: the precision-recall
curves of the model and the baselines, each AP with its interval in the legend; and the
model's AP within each group of equally active loci against the AP a random ranking of the
group earns (its expectation, and the central interval of the permutation null as a band),
groups significant after correction filled. The title names the target cell types and the
verdict. Colours are Okabe and Ito's colour-blind-safe palette (:data:`PALETTE`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from pitfall.audit.report import PALETTE

if TYPE_CHECKING:
    from pitfall.audit.report import AuditReport

__all__ = ["audit_figure", "ci_suffix", "group_panel"]


def ci_suffix(ci: Any, fmt: str = ".3f") -> str:
    """`` [low, high]`` to follow a number in a figure; nothing when undefined."""
    low, high = ci
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f" [{low:{fmt}}, {high:{fmt}}]"


def group_panel(
    ax: Any,
    groups: np.ndarray,
    values: np.ndarray,
    null: tuple[np.ndarray, np.ndarray],
    significant: np.ndarray,
    *,
    reference: np.ndarray | float,
    band_label: str,
    reference_label: str | None = None,
) -> None:
    """The model per group (filled where significant after correction) over the central
    interval of its permutation null (a band) and the reference it is tested against."""
    ax.fill_between(
        groups, null[0], null[1], color=PALETTE["random"], alpha=0.3, lw=0, label=band_label
    )
    if np.ndim(reference) == 0:
        ax.axhline(float(reference), color=PALETTE["random"], lw=1.2, label=reference_label)
    else:
        ax.plot(groups, reference, color=PALETTE["random"], lw=1.5, label=reference_label)
    ax.plot(groups, values, color=PALETTE["model"], lw=1, alpha=0.6)
    ax.scatter(
        groups[significant],
        values[significant],
        color=PALETTE["model"],
        s=28,
        zorder=3,
        label="model (significant after correction)",
    )
    ax.scatter(
        groups[~significant],
        values[~significant],
        facecolor="white",
        edgecolor=PALETTE["model"],
        s=28,
        zorder=3,
        label="model (not significant)",
    )


def audit_figure(report: AuditReport):
    """The figure of a report (module docstring); a matplotlib Figure."""
    if report.kind == "continuous":
        from pitfall.audit.track_figure import continuous_figure

        return continuous_figure(report)
    from pitfall._plotting import pyplot

    plt = pyplot()
    pooled = report.summary.iloc[-1]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    labels = {
        "model": ("model", "ap_model", None),
        "average activity": (
            "average activity",
            "ap_average_activity_random_ties",
            "ap_average_activity",
        ),
        "most similar cell type": (
            f"most similar ({pooled.get('most_similar') or 'per target'})",
            "ap_most_similar_random_ties",
            "ap_most_similar",
        ),
    }
    for name, (r, p) in report.curves["pr"].items():
        shown, col, tied = labels[name]
        ap = pooled[col]
        text = f"{shown}: AP {ap:.3f}{ci_suffix(pooled[col + '_ci'])}"
        if tied is not None and abs(pooled[tied] - ap) >= 5e-4:
            text += f"\n  (ties grouped {pooled[tied]:.3f})"
        ax1.step(
            r,
            p,
            where="post",
            color=PALETTE[name],
            lw=2.0 if name == "model" else 1.4,
            ls="-" if name == "model" else "--",
            label=text,
        )
    prevalence = float(pooled["prevalence"])
    ax1.axhline(
        prevalence,
        color=PALETTE["random"],
        ls=":",
        lw=1.2,
        label=f"random ranking: precision {prevalence:.3f}, expected AP {pooled['ap_random']:.3f}",
    )
    ax1.set_xlabel("recall")
    ax1.set_ylabel("precision")
    ax1.set_xlim(0, 1)
    ax1.set_ylim(0, 1.02)
    ax1.set_title("precision-recall, pooled")
    ax1.legend(loc="lower left", fontsize=7.5, frameon=False)

    part = report.partitions[report.partitions["cell_type"] == "pooled"]
    part = part[np.isfinite(part["ap_random_expected"].to_numpy(dtype=float))]
    group_panel(
        ax2,
        part["group"].to_numpy(dtype=float),
        part["ap_model"].to_numpy(dtype=float),
        (part["random_low"].to_numpy(dtype=float), part["random_high"].to_numpy(dtype=float)),
        part["significant"].to_numpy(dtype=bool),
        reference=part["ap_random_expected"].to_numpy(dtype=float),
        band_label=f"random ranking ({report.settings['level']:.0%} of the permutation null)",
        reference_label="random ranking: expected AP",
    )
    gain = pooled["within_group_gain"]
    ax2.set_title(
        f"within groups of equally active loci: gain {gain:+.3f}"
        f"{ci_suffix(pooled['within_group_gain_ci'], '+.3f')}"
        if math.isfinite(gain)
        else "within groups of equally active loci"
    )
    ax2.set_xlabel("reference cell types in which the locus is active")
    ax2.set_ylabel("average precision within the group")
    ax2.set_ylim(0, 1.02)
    ax2.xaxis.get_major_locator().set_params(integer=True)
    ax2.legend(fontsize=7.5, frameon=False, loc="best")
    targets = [str(c) for c in report.summary["cell_type"].iloc[:-1]]
    who = ", ".join(targets[:6]) + (f" and {len(targets) - 6} more" if len(targets) > 6 else "")
    diff = pooled["ap_diff"]
    fig.suptitle(
        f"{who}: {report.call}\nmodel AP {pooled['ap_model']:.3f}{ci_suffix(pooled['ap_model_ci'])} "
        f"vs average activity {pooled['ap_average_activity_random_ties']:.3f}"
        f"{ci_suffix(pooled['ap_average_activity_random_ties_ci'])}; difference {diff:+.3f}"
        f"{ci_suffix(pooled['ap_diff_ci'], '+.3f')} ({report.settings['level']:.0%} block-bootstrap "
        "intervals)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
