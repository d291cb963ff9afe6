"""Figures and a self-contained HTML report from a results table.

The results table has one row per trained model (see :mod:`pitfall.sweep`): ``task``,
``setting``, ``inputs``, ``family``, ``label``, ``n_params``, ``ap`` and the APs of the
baselines on the same test loci (``ap_average_activity``, ``ap_most_similar``,
``ap_random``). Matplotlib is imported lazily (the ``plot`` extra).
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SETTINGS = ("cross-chromosome", "cross-cell-type", "hybrid")
INPUT_COLORS = {
    "sequence": "#1b9e77",
    "signal": "#d95f02",
    "both": "#7570b3",
    "random": "#e7298a",
    "permuted": "#66a61e",
}
INPUT_NAMES = {
    "sequence": "sequence",
    "signal": "epigenomic",
    "both": "sequence + epigenomic",
    "random": "locus-constant random (control)",
    "permuted": "permuted sequence (control)",
}


def pyplot():
    """matplotlib's pyplot on the Agg backend (files, no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ap_vs_params(
    results: pd.DataFrame,
    *,
    task: str | None = None,
    settings: Sequence[str] = SETTINGS,
    title: str | None = None,
    xlabel: str = "trainable parameters",
    baselines: Mapping[str, tuple[str, str, str]] | None = None,
):
    """Figure 1 d-f / g-i: AP against trainable parameters, one panel per setting.

    Points are models coloured by input type (log-scale x); horizontal lines are the
    baselines' APs on the same test loci (the median over the panel's rows).

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
        ax.set_xscale("log")
        ax.set_title(setting)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.25, which="both", lw=0.5)
    axes[0].set_ylabel("average precision (test)")
    handles, labels_ = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels_:
                handles.append(h)
                labels_.append(lab)
    fig.legend(handles, labels_, loc="lower center", ncol=min(len(labels_), 4), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12 if len(labels_) <= 4 else 0.18, 1, 1))
    return fig


def partitioned_boxes(table: pd.DataFrame, tests: pd.DataFrame | None = None, title: str = ""):
    """Figure S3: AP per activity group as boxes per predictor, and -log10 p of the tests.

    Parameters
    ----------
    table
        Rows ``group, predictor, ap`` (one per model x group; several models per predictor
        make the boxes).
    tests
        Optional rows ``group, comparison, p_value`` (one-sided Mann-Whitney U).
    """
    plt = pyplot()
    n_panels = 2 if tests is not None and len(tests) else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(6.5 * n_panels, 3.8))
    axes = np.atleast_1d(axes)
    groups = sorted(g for g in table["group"].unique() if g != "all")
    # A predictor with one score per group (a baseline) is a reference mark, not a box.
    per_group = table.groupby(["predictor", "group"])["ap"].count().groupby("predictor").max()
    refs = [p for p in dict.fromkeys(table["predictor"]) if per_group[p] <= 1]
    predictors = [p for p in dict.fromkeys(table["predictor"]) if p not in refs]
    width = 0.8 / max(len(predictors), 1)
    ax = axes[0]
    for ref in refs:
        part = table[(table.predictor == ref) & table.group.isin(groups)]
        ax.scatter([groups.index(g) for g in part["group"]], part["ap"], marker="_", s=300,
                   color="black", zorder=3, label=ref)  # fmt: skip
    for i, pred in enumerate(predictors):
        data = [
            table[(table.group == g) & (table.predictor == pred)]["ap"].dropna() for g in groups
        ]
        pos = np.arange(len(groups)) + (i - (len(predictors) - 1) / 2) * width
        box = ax.boxplot(
            data,
            positions=pos,
            widths=width * 0.9,
            patch_artist=True,
            manage_ticks=False,
            showfliers=False,
        )
        color = INPUT_COLORS.get(pred, plt.cm.tab10(i))
        for patch in box["boxes"]:
            patch.set_facecolor(color)
            patch.set_alpha(0.7)
        ax.plot([], [], color=color, lw=6, alpha=0.7, label=INPUT_NAMES.get(pred, pred))
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups])
    ax.set_xlabel("training + validation cell types in which the locus is active")
    ax.set_ylabel("average precision")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title or "AP within groups of loci of equal activity")
    if tests is not None and n_panels == 2:
        ax = axes[1]
        for comparison, part in tests.groupby("comparison", sort=False):
            part = part[part.group != "all"].sort_values("group")
            ax.plot(
                part["group"].astype(float),
                -np.log10(part["p_value"].clip(lower=1e-300)),
                marker="o",
                label=comparison,
            )
        ax.axhline(-np.log10(0.05), color="0.5", ls=":", label="p = 0.05")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("training + validation cell types in which the locus is active")
        ax.set_ylabel("-log10 p (one-sided Mann-Whitney U)")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def scatter(
    x: Sequence[float],
    y: Sequence[float],
    *,
    labels: Sequence[str] | None = None,
    xlabel: str,
    ylabel: str,
    title: str = "",
    hline: Mapping[str, float] | None = None,
):
    """A labelled scatter (e.g. baseline strength against cell-type similarity)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    ax.scatter(x, y, color="#1b9e77", s=28)
    for i, lab in enumerate(labels or []):
        ax.annotate(lab, (x[i], y[i]), fontsize=7, xytext=(3, 2), textcoords="offset points")
    for name, value in (hline or {}).items():
        ax.axhline(value, color="black", ls="--", lw=1, label=name)
    if hline:
        ax.legend(frameon=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.25, lw=0.5)
    fig.tight_layout()
    return fig


def pca_scatter(pcs: pd.DataFrame, title: str):
    """Figure S1: loci on their first two principal components, coloured by activity.

    ``pcs`` has columns ``PC1``, ``PC2``, ``label`` and ``attrs["explained"]``.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.2))
    for lab, color, name in ((0, "#bbbbbb", "inactive"), (1, "#d95f02", "active")):
        sel = pcs["label"] == lab
        ax.scatter(pcs.loc[sel, "PC1"], pcs.loc[sel, "PC2"], s=4, color=color, label=name)
    ev = pcs.attrs.get("explained", [float("nan")] * 2)
    ax.set_xlabel(f"PC1 ({ev[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
    ax.set_title(title)
    ax.legend(frameon=False, markerscale=4)
    fig.tight_layout()
    return fig


def toy_curves(table: pd.DataFrame, title: str = "Figure S2: two overlapping Gaussians"):
    """Figure S2: AP against network size in both settings, with the baselines as lines.

    ``table`` is :func:`pitfall.toy.size_sweep`'s output.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    nets = table[table["size"] > 0].groupby(["setting", "n_params"], as_index=False)["ap"].mean()
    for setting, color in (("cross-cell-type", "#1b9e77"), ("hybrid", "#d95f02")):
        part = nets[nets["setting"] == setting]
        ax.plot(part["n_params"], part["ap"], marker="o", color=color, label=setting)
    base = table[table["size"] == 0].groupby("setting")["ap"].mean()
    ax.axhline(base["average activity"], color="black", lw=1, label="average activity")
    ax.axhline(base["random"], color="0.6", ls=":", lw=1, label="random (prevalence)")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("average precision")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def save(fig, path: str | os.PathLike) -> Path:
    """Write a figure as PNG (150 dpi) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    pyplot().close(fig)
    return path


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def html_report(
    path: str | os.PathLike,
    *,
    title: str,
    sections: Sequence[Mapping[str, Any]],
    footer: Mapping[str, Any] | None = None,
) -> Path:
    """Write one self-contained HTML file: text, embedded PNG figures and tables.

    Parameters
    ----------
    path
        The HTML file to write.
    title
        Page title.
    sections
        Each a mapping with ``heading``, optional ``text`` (paragraphs, plain text),
        ``figures`` (PNG paths, embedded) and ``tables`` (DataFrames).
    footer
        Key-value facts shown at the end (cube snapshots, package versions, run time).
    """
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222;line-height:1.45}img{max-width:100%;border:1px solid #eee}"
        "table{border-collapse:collapse;font-size:0.85em;margin:0.6em 0}"
        "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}"
        "th{background:#f4f4f4}.finding{background:#f6f9f4;border-left:4px solid #1b9e77;"
        "padding:0.5em 1em;margin:0.8em 0}code{background:#f4f4f4;padding:0 3px}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec['heading'])}</h2>")
        for para in sec.get("findings", []):
            parts.append(f"<p class='finding'>{html.escape(para)}</p>")
        for para in sec.get("text", []):
            parts.append(f"<p>{html.escape(para)}</p>")
        for fig in sec.get("figures", []):
            parts.append(f"<p><img src='{_png_data_uri(Path(fig))}' alt='{Path(fig).stem}'></p>")
        for table in sec.get("tables", []):
            parts.append(table.to_html(index=False, float_format=lambda x: f"{x:.3f}", border=0))
    if footer:
        parts.append("<h2>Provenance</h2><table>")
        for key, value in footer.items():
            parts.append(
                f"<tr><th>{html.escape(str(key))}</th>"
                f"<td style='text-align:left'>{html.escape(str(value))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
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
    settings = [s for s in SETTINGS if s in set(summary["setting"])]
    cells = list(dict.fromkeys(zip(summary["target"], summary["test_chroms"], strict=True)))
    sizes = summary.drop_duplicates("label").sort_values("n_params")["label"].tolist()
    shades = plt.cm.RdPu(np.linspace(0.45, 0.95, max(len(sizes), 2)))[: len(sizes)]
    fig, axes = plt.subplots(
        1, len(settings), figsize=(max(4.5, 0.5 * len(cells) + 1.5) * len(settings), 4.6),
        sharey=True, squeeze=False,
    )  # fmt: skip
    width = 0.7
    for ax, setting in zip(axes[0], settings, strict=True):
        part = summary[summary["setting"] == setting]
        for x, (target, fold) in enumerate(cells):
            cell = part[(part["target"] == target) & (part["test_chroms"] == fold)]
            if not len(cell):
                continue
            first = cell.iloc[0]
            ax.hlines(first["ap_average_activity"], x - width / 2, x + width / 2, color="black",
                      lw=1.6, label="average-activity baseline", zorder=2)  # fmt: skip
            ax.hlines(first["prevalence"], x - width / 2, x + width / 2, color="0.55", lw=1.4,
                      ls=(0, (2, 1)), label="prevalence (random ranking)", zorder=2)  # fmt: skip
            for k, label in enumerate(sizes):
                row = cell[cell["label"] == label]
                if not len(row):
                    continue
                r = row.iloc[0]
                dx = (k - (len(sizes) - 1) / 2) * (width / max(len(sizes), 1))
                ax.vlines(x + dx, r["ap_min"], r["ap_max"], color=shades[k], lw=2.2, zorder=3)
                ax.scatter([x + dx], [r["ap_mean"]], s=22, color=shades[k], zorder=4,
                           edgecolor="white", linewidth=0.4, label=label)  # fmt: skip
        ax.set_xticks(range(len(cells)), [f"{t}\n{f}" for t, f in cells], fontsize=7)
        ax.set_xlim(-0.6, len(cells) - 0.4)
        ax.set_title(setting)
        ax.grid(alpha=0.25, axis="y", lw=0.5)
    axes[0, 0].set_ylabel("average precision (test; bar: seeds' range)")
    handles, names = [], []
    for h, lab in zip(*axes[0, 0].get_legend_handles_labels(), strict=True):
        if lab not in names:
            handles.append(h)
            names.append(lab)
    fig.legend(handles, names, loc="lower center", ncol=2, frameon=False, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05 + 0.035 * ((len(names) + 1) // 2), 1, 1))
    return fig


def partitioned_lines(table: pd.DataFrame, title: str = ""):
    """AP within each activity group, one line per predictor, over the group sizes.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`pitfall.evaluate.partitioned_evaluation`'s rows: ``group`` (an int, or
        ``"all"``, left out here), ``predictor``, ``n_loci``, ``prevalence``, ``ap``;
        with a ``setting`` column, one column of panels per setting.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Top: AP per group for each predictor, and the prevalence; bottom: loci per group.
    """
    plt = pyplot()
    t = table[table["group"] != "all"].copy()
    t["group"] = t["group"].astype(int)
    if "setting" not in t:
        t["setting"] = ""
    settings = list(dict.fromkeys(t["setting"]))
    fig, axes = plt.subplots(
        2, len(settings), figsize=(5.2 * len(settings) + 1.8, 5.4), sharex=True,
        gridspec_kw={"height_ratios": [3, 1]}, squeeze=False,
    )  # fmt: skip
    colors = ["black", "#e7298a", "#7570b3", "#1b9e77", "#d95f02"]
    for k, setting in enumerate(settings):
        ax, bars = axes[0, k], axes[1, k]
        part = t[t["setting"] == setting]
        for j, (name, rows) in enumerate(part.groupby("predictor", sort=False)):
            ax.plot(rows["group"], rows["ap"], marker="o", ms=3, lw=1.2,
                    color=colors[j % len(colors)], label=name)  # fmt: skip
        first = part.drop_duplicates("group").sort_values("group")
        ax.plot(first["group"], first["prevalence"], color="0.55", ls=(0, (2, 1)), lw=1.2,
                label="prevalence (random ranking)")  # fmt: skip
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.25, lw=0.5)
        ax.set_title(setting)
        bars.bar(first["group"], first["n_loci"], color="0.6", width=0.8)
        bars.set_xlabel("training cell types in which the locus is active")
    axes[0, 0].set_ylabel("AP within the group")
    axes[1, 0].set_ylabel("loci")
    handles, names = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in names:
                handles.append(h)
                names.append(lab)
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 3), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
