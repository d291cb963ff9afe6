"""Figures and a self-contained HTML report from a results table.

The results table has one row per trained model (see :mod:`pitfall.sweep`): ``task``,
``setting``, ``inputs``, ``family``, ``label``, ``n_params``, ``ap`` and the APs of the
baselines on the same test loci (``ap_average_activity``, ``ap_most_similar``,
``ap_random``). Matplotlib is imported lazily (the ``plot`` extra).

Figures, under the published article's numbering (Schreiber et al., Genome Biology 2020,
Additional file 2), preprint numbers in brackets:

- :func:`ap_vs_params`: Figure 1 d-f and g-i, S1 (gradient-boosted trees, x = trees x
  leaves) and S2 (the controls);
- :func:`partitioned_boxes`: S4 [S3], the partitioned evaluation and its tests;
- :func:`baseline_vs_similarity`: S5, the average-activity baseline's AP against the
  similarity of the training cell types to the target, one point per target;
- :func:`signal_embedding`: preprint-only [S1], PCA and UMAP of the epigenomic signal;
- :func:`gaussians`: preprint-only [S2], two overlapping 2-D Gaussians;
- :func:`scatter`: the project's own labelled scatter (single cell types as predictors).

Every function here takes tables and arrays, never the cube: the numbers come from
:mod:`pitfall.paper` and :mod:`pitfall.toy`.
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

from pitfall.atomic import atomic_path, atomic_write_text

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


def log_axis(ax, values: Sequence[float] | pd.Series, axis: str = "x") -> None:
    """A log-scale axis whose tick labels never overlap.

    Matplotlib labels minor ticks (2x10^1, 3x10^1, ...) when the data span less than about
    two decades, and those labels run into each other (the trees figure, 16 to 800
    leaves). Here only major ticks are labelled: powers of ten over three decades or
    more (as 10^k), powers of ten written as plain numbers over two to three, else 1-2-5
    steps written as plain numbers; minor ticks stay unlabelled.

    Parameters
    ----------
    ax
        A matplotlib Axes.
    values
        The positive values drawn on that axis (to choose the ticks).
    axis
        ``"x"`` or ``"y"``.
    """
    from matplotlib import ticker

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    which = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    decades = float(np.log10(v.max() / v.min())) if v.size else 0.0
    # 1-2-5 steps over two decades or more put wide labels ("5,000", "10,000") side by side
    subs = (1.0,) if decades >= 2 else (1.0, 2.0, 5.0)
    which.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    if decades >= 3:
        which.set_major_formatter(ticker.LogFormatterSciNotation(base=10))
    else:
        which.set_major_formatter(ticker.FuncFormatter(_plain_number))
    which.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(float(k) for k in range(2, 10))))
    which.set_minor_formatter(ticker.NullFormatter())


def _legend_entries(axes) -> tuple[list[Any], list[str]]:
    """Legend handles and labels of ``axes``, each label once (its first handle), in order:
    panels that draw the same series share one figure legend."""
    handles: list[Any] = []
    labels: list[str] = []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    return handles, labels


def _plain_number(x: float, _pos: int | None = None) -> str:
    return f"{x:,.0f}" if x >= 1 else f"{x:g}"


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

    Points are models coloured by input type (log-scale x, :func:`log_axis`); horizontal
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
    handles, labels_ = _legend_entries(axes)
    fig.legend(handles, labels_, loc="lower center", ncol=min(len(labels_), 4), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12 if len(labels_) <= 4 else 0.18, 1, 1))
    return fig


#: Order of the partitioned figure's boxes: the two sides of the paper's test first, then
#: the combined models and the controls (each a box of its own, never pooled).
PREDICTOR_ORDER = ("signal", "sequence", "both", "permuted", "random")


def partitioned_boxes(table: pd.DataFrame, tests: pd.DataFrame | None = None, title: str = ""):
    """Figure S4 [S3]: AP per activity group as boxes per input type, and the tests.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows ``group, predictor, ap`` (one per model x group; several models per input
        type make the boxes; :func:`pitfall.paper.partitioned_table`). A predictor with one
        AP per group (a reference, e.g. a random ranking's expected AP) is drawn as a line
        across the group, not a box.
    tests : pandas.DataFrame, optional
        Rows ``comparison, group, p_value`` and optionally ``p_floor``
        (:func:`pitfall.evaluate.mann_whitney_by_group` per comparison). The first
        comparison (the paper's: epigenomic vs sequence) is drawn solid, the controls'
        dashed. Where ``p_floor`` is given (the smallest p-value the exact test can reach
        with the models at hand), the -log10 p values beyond every comparison's reach are
        shaded, so a reader sees when a threshold was unreachable.
    title : str
        Title of the left panel.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes (boxes), or two (boxes, then -log10 p against the group) with ``tests``.
    """
    plt = pyplot()
    n_panels = 2 if tests is not None and len(tests) else 1
    fig, axes = plt.subplots(
        1, n_panels, figsize=(7.5 * n_panels, 4.3), width_ratios=[1.5, 1][:n_panels]
    )
    axes = np.atleast_1d(axes)
    groups = sorted(g for g in table["group"].unique() if g != "all")
    # A predictor with one score per group (a baseline) is a reference mark, not a box.
    per_group = table.groupby(["predictor", "group"])["ap"].count().groupby("predictor").max()
    refs = [p for p in dict.fromkeys(table["predictor"]) if per_group[p] <= 1]
    found = [p for p in dict.fromkeys(table["predictor"]) if p not in refs]
    predictors = [p for p in PREDICTOR_ORDER if p in found] + [
        p for p in found if p not in PREDICTOR_ORDER
    ]
    width = 0.8 / max(len(predictors), 1)
    ax = axes[0]
    for k, ref in enumerate(refs):
        # a line across the group's whole slot, under the boxes: it shows at both ends, and
        # is not mistaken for a box's median
        part = table[(table.predictor == ref) & table.group.isin(groups)]
        at = np.array([groups.index(g) for g in part["group"]], dtype=float)
        ax.hlines(part["ap"], at - 0.47, at + 0.47, color="black" if k == 0 else "0.5",
                  lw=1.8, zorder=1, label=ref)  # fmt: skip
    for i, pred in enumerate(predictors):
        data = [
            table[(table.group == g) & (table.predictor == pred)]["ap"].dropna() for g in groups
        ]
        pos = np.arange(len(groups)) + (i - (len(predictors) - 1) / 2) * width
        color = INPUT_COLORS.get(pred, plt.cm.tab10(i))
        box = ax.boxplot(
            data,
            positions=pos,
            widths=width * 0.85,
            patch_artist=True,
            manage_ticks=False,
            showfliers=False,
            medianprops={"color": "white", "lw": 1.0},
        )
        for patch in box["boxes"]:
            patch.set_facecolor(color)
            patch.set_alpha(0.75)
        n_models = table[table.predictor == pred].groupby("group")["ap"].count().max()
        ax.plot([], [], color=color, lw=6, alpha=0.75,
                label=f"{INPUT_NAMES.get(pred, pred)} ({n_models} models)")  # fmt: skip
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups])
    if len(groups) > 20:  # keep every other label readable
        for k, lab in enumerate(ax.get_xticklabels()):
            lab.set_visible(k % 2 == 0)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_xlabel("training + validation cell types in which the locus is active")
    ax.set_ylabel("average precision (test)")
    ax.set_title(title or "AP within groups of loci of equal activity")
    ax.grid(alpha=0.25, lw=0.5, axis="y")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.16), ncol=3)
    if tests is not None and n_panels == 2:
        ax = axes[1]
        floors, highest = [], -np.log10(0.05)
        for k, (comparison, part) in enumerate(tests.groupby("comparison", sort=False)):
            part = part[part.group != "all"].sort_values("group")
            y = -np.log10(part["p_value"].clip(lower=1e-300))
            ax.plot(part["group"].astype(float), y, marker="o", ms=4, ls="-" if k == 0 else "--",
                    lw=1.6 if k == 0 else 1.1, label=comparison)  # fmt: skip
            highest = max(highest, float(np.nanmax(y, initial=0.0)))
            if "p_floor" in part and part["p_floor"].notna().any():
                floors.append(float(part["p_floor"].max()))
        ax.axhline(-np.log10(0.05), color="0.3", ls=":", lw=1, label="p = 0.05")
        if floors:
            # above the most reachable comparison's floor no test can go: shade it
            top = -np.log10(min(floors))
            highest = max(highest, top)
            ax.axhspan(top, highest * 2 + 1, color="0.85", zorder=0,
                       label="beyond reach of the exact test\nwith these numbers of models")  # fmt: skip
        ax.set_ylim(0, highest * 1.15)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("training + validation cell types in which the locus is active")
        ax.set_ylabel("-log10 p (Mann-Whitney U)")
        ax.set_title("one-sided tests over the models' APs, per group")
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.16))
    fig.tight_layout()
    return fig


def place_labels(
    ax,
    x: Sequence[float],
    y: Sequence[float],
    labels: Sequence[str],
    *,
    obstacles: tuple[Sequence[float], Sequence[float]] | None = None,
    fontsize: float = 7,
) -> list:
    """Annotate points with labels that overlap neither each other nor any point.

    Each label tries positions around its point, nearest first (10 directions at 5, then
    11, 18 and 26 points away, the farther ones with a leader line), and takes the first
    whose box stays inside the axes and clear of every label placed before and of every
    marker in ``obstacles``. A label that finds no free place is left out (returned as
    None), rather than drawn over another. Call it once the figure's layout is final
    (after ``tight_layout``): the boxes are measured in display space.

    Parameters
    ----------
    ax
        The Axes holding the points.
    x, y : sequence of float, length n
        The points to label.
    labels : sequence of str, length n
    obstacles : (xs, ys), optional
        Every point drawn in the Axes (default: the labelled ones).
    fontsize : float

    Returns
    -------
    list, length n
        The :class:`matplotlib.text.Annotation` of each label, or None where none fit.
    """
    from matplotlib.text import Text

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    ox, oy = obstacles if obstacles is not None else (x, y)
    pts = ax.transData.transform(np.column_stack([np.asarray(ox, float), np.asarray(oy, float)]))
    r = 3.5 * fig.dpi / 72  # a marker's radius, in pixels
    marks = [(px - r, py - r, px + r, py + r) for px, py in pts if np.all(np.isfinite((px, py)))]
    frame = ax.get_window_extent(renderer)
    placed: list[tuple[float, float, float, float]] = []
    out = []
    directions = [(1, 0.4), (1, -0.4), (-1, 0.4), (-1, -0.4), (0, 1), (0, -1), (1, 1), (-1, -1),
                  (1, -1), (-1, 1)]  # fmt: skip
    for xi, yi, text in zip(x, y, labels, strict=True):
        chosen = None
        for dist in (5, 11, 18, 26):
            for dx, dy in directions:
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                ann = ax.annotate(
                    text, (xi, yi), xytext=(dx * dist, dy * dist), textcoords="offset points",
                    ha=ha, va=va, fontsize=fontsize,
                    arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5, "shrinkA": 0,
                                "shrinkB": 3} if dist > 5 else None,
                )  # fmt: skip
                # the text's own box: an Annotation's extent also spans its leader line,
                # which reaches the point and would always hit the point's own marker
                ann.update_positions(renderer)
                bb = Text.get_window_extent(ann, renderer)
                box = (bb.x0 - 1, bb.y0 - 1, bb.x1 + 1, bb.y1 + 1)
                inside = (box[0] >= frame.x0 and box[2] <= frame.x1 and box[1] >= frame.y0
                          and box[3] <= frame.y1)  # fmt: skip
                if inside and not any(_overlap(box, b) for b in placed + marks):
                    chosen = ann
                    placed.append(box)
                    break
                ann.remove()
            if chosen is not None:
                break
        out.append(chosen)
    return out


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


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
    """A labelled scatter (e.g. single cell types as predictors, against similarity).

    Labels are placed by :func:`place_labels` (no two overlap; one that cannot be placed
    is left out). Horizontal lines (``hline``: name -> y) are drawn with a legend below
    the axes, clear of the points.

    Returns
    -------
    matplotlib.figure.Figure
        One Axes.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.6))
    ax.scatter(x, y, color="#1b9e77", s=28, zorder=3)
    for name, value in (hline or {}).items():
        ax.axhline(value, color="black", ls="--", lw=1, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.25, lw=0.5)
    ax.margins(x=0.12, y=0.12)
    if hline:
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(0, -0.14), fontsize=8)
    fig.tight_layout()
    if labels is not None:
        place_labels(ax, x, y, labels)
    return fig


def baseline_vs_similarity(
    table: pd.DataFrame,
    *,
    x: str = "mean_similarity",
    xlabel: str = "target's mean correlation with the other cell types",
    title: str = "",
    n_labels: int = 8,
):
    """Figure S5: the average-activity baseline's AP against the target's similarity.

    One point per target cell type (the baseline averages every other one); panel (a)
    its AP, panel (b) its AP above the prevalence, ``(AP - prevalence) / (1 -
    prevalence)``, which removes the part of AP that only reflects how many loci are
    active. Each panel's title gives the Spearman correlation over the targets; a
    least-squares line guides the eye. Points are coloured by cell-type group where the
    table has one; the ``n_labels`` targets with the lowest AP are labelled.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per target (:func:`pitfall.paper.baseline_vs_similarity`): ``cell_type``,
        ``ap``, ``ap_normalised``, the column ``x`` and optionally ``group``.
    x, xlabel : str
        The similarity column and its axis label.
    title : str
        Figure title.
    n_labels : int
        How many of the lowest-AP targets get their id written next to them.

    Returns
    -------
    matplotlib.figure.Figure
        Two Axes (AP, normalised AP), plus the group legend where groups exist.
    """
    from scipy import stats

    plt = pyplot()
    groups = list(dict.fromkeys(table["group"])) if "group" in table else []
    has_groups = len(groups) > 1
    fig, axes = plt.subplots(1, 2, figsize=(12.5 if has_groups else 10, 4.6))
    # ten distinct colours, then the same colours with another marker: tab20's paired
    # light/dark shades are too alike to tell groups apart
    markers = "osD^v"
    styles = {g: (plt.cm.tab10(i % 10), markers[(i // 10) % len(markers)])
              for i, g in enumerate(groups)}  # fmt: skip
    low = set(table.nsmallest(n_labels, "ap")["cell_type"]) if n_labels else set()
    for ax, (col, ylabel) in zip(
        axes,
        (("ap", "AP of the average-activity baseline"),
         ("ap_normalised", "(AP - prevalence) / (1 - prevalence)")),
        strict=True,
    ):  # fmt: skip
        xs, ys = table[x].to_numpy(float), table[col].to_numpy(float)
        ok = np.isfinite(xs) & np.isfinite(ys)
        if has_groups:
            for g in groups:
                sel = (table["group"] == g).to_numpy()
                color, marker = styles[g]
                ax.scatter(xs[sel], ys[sel], s=26, color=color, marker=marker,
                           edgecolor="white", linewidth=0.4, zorder=3, label=str(g))  # fmt: skip
        else:
            ax.scatter(xs, ys, s=26, color="#1b9e77", zorder=3)
        if ok.sum() >= 3:
            rho, p = stats.spearmanr(xs[ok], ys[ok])
            slope, icept = np.polyfit(xs[ok], ys[ok], 1)
            grid = np.linspace(xs[ok].min(), xs[ok].max(), 2)
            ax.plot(grid, icept + slope * grid, color="0.4", lw=0.8, ls="--", zorder=2)
            ax.set_title(f"Spearman rho = {rho:.2f} (p = {p:.2g}), {ok.sum()} targets",
                         fontsize=10)  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.25, lw=0.5)
        ax.margins(x=0.08, y=0.1)
    for ax, tag in zip(axes, "ab", strict=True):
        ax.text(-0.13, 1.02, tag, transform=ax.transAxes, fontweight="bold", fontsize=12)
    if has_groups:
        axes[1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1),
                       title="cell-type group", title_fontsize=8)  # fmt: skip
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if low:
        sel = table["cell_type"].isin(low).to_numpy()
        for ax, col in zip(axes, ("ap", "ap_normalised"), strict=True):
            place_labels(ax, table.loc[sel, x], table.loc[sel, col],
                         table.loc[sel, "cell_type"].astype(str).tolist(),
                         obstacles=(table[x], table[col]))  # fmt: skip
    return fig


def signal_embedding(emb: pd.DataFrame, title: str = ""):
    """Preprint Figure S1: loci on their first two principal components, and by UMAP.

    Parameters
    ----------
    emb : pandas.DataFrame
        One row per locus (:func:`pitfall.paper.signal_embedding`): ``PC1``, ``PC2``,
        ``label`` (0, 1, NaN), optionally ``UMAP1``, ``UMAP2``; ``attrs["explained"]``
        (the two components' shares of the variance) and ``attrs["note"]`` (why UMAP is
        missing, when it is).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        Two Axes (PCA, UMAP), or one (PCA) with the note written under it.
    """
    plt = pyplot()
    panels = [("PC1", "PC2")] + ([("UMAP1", "UMAP2")] if "UMAP1" in emb else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8))
    axes = np.atleast_1d(axes)
    # one random drawing order for both classes: drawn class by class, the last one
    # would hide the first where they overlap
    order = np.random.default_rng(0).permutation(len(emb))
    part = emb.iloc[order]
    colors = np.where(part["label"] == 1, "#d95f02", "#7f7f7f")
    ev = emb.attrs.get("explained", [float("nan")] * 2)
    for ax, (c1, c2) in zip(axes, panels, strict=True):
        known = part["label"].notna().to_numpy()
        ax.scatter(part.loc[known, c1], part.loc[known, c2], s=4, c=colors[known],
                   alpha=0.6, linewidths=0)  # fmt: skip
        if c1 == "PC1":
            ax.set_xlabel(f"PC1 ({ev[0]:.0%} of the variance)")
            ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
            ax.set_title("PCA")
        else:
            ax.set_xlabel("UMAP 1")
            ax.set_ylabel("UMAP 2")
            ax.set_title("UMAP")
    for color, name in (("#7f7f7f", "inactive"), ("#d95f02", "active")):
        axes[0].scatter([], [], s=20, color=color, label=name)
    note = emb.attrs.get("note")
    # the note, when there is one, takes the bottom line and the legend sits above it
    fig.legend(loc="lower center", bbox_to_anchor=(0.5, 0.045 if note else 0.0), ncol=2,
               frameon=False, fontsize=9)  # fmt: skip
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.13 if note else 0.07, 1, 1))
    if note:
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=7, color="0.35",
                 wrap=True)  # fmt: skip
    return fig


def gaussians(sweep: Any, title: str = ""):
    """Preprint Figure S2: two overlapping Gaussians; AP of networks of growing size.

    Parameters
    ----------
    sweep : pitfall.toy.GaussianSweep
        Its ``table`` (``size, n_params, seed, ap, ap_bayes, prevalence``), ``points``
        (``x1, x2, label``), ``grid``, ``probabilities`` (size -> P(class 1) on the grid)
        and ``separation``.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        (a) the training points, the Bayes-optimal boundary and the smallest and largest
        networks' boundaries; (b) test AP against parameters (log x), with the
        Bayes-optimal AP and the prevalence as lines. Legends sit below the axes.
    """
    plt = pyplot()
    table, pts = sweep.table, sweep.points
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 5.2), width_ratios=(1, 1.25))
    for lab, color, name in ((0, "#7570b3", "class 0"), (1, "#d95f02", "class 1")):
        sel = pts["label"] == lab
        ax.scatter(pts.loc[sel, "x1"], pts.loc[sel, "x2"], s=7, alpha=0.55, color=color,
                   linewidths=0, label=name)  # fmt: skip
    g1, g2 = sweep.grid
    # the Bayes boundary: (mu_1 - mu_0) . x = 0, i.e. x2 = -x1 for means on the diagonal
    ax.plot([g1.min(), g1.max()], [-g1.min(), -g1.max()], color="black", lw=1.6,
            label="Bayes-optimal boundary")  # fmt: skip
    styles = {min(sweep.probabilities, default=0): ("#1b9e77", "--"),
              max(sweep.probabilities, default=0): ("#e7298a", ":")}  # fmt: skip
    n_params = table.drop_duplicates("size").set_index("size")["n_params"]
    for size, prob in sorted(sweep.probabilities.items()):
        color, ls = styles[size]
        ax.contour(g1, g2, prob, levels=[0.5], colors=[color], linestyles=[ls], linewidths=1.6)
        ax.plot([], [], color=color, ls=ls, lw=1.6,
                label=f"network, {size} hidden unit{'s' if size > 1 else ''} "
                      f"({n_params[size]:,} parameters)")  # fmt: skip
    ax.set_xlim(g1.min(), g1.max())
    ax.set_ylim(g2.min(), g2.max())
    ax.set_aspect("equal")
    ax.set_xlabel("input 1 (e.g. a mark's signal)")
    ax.set_ylabel("input 2")
    ax.set_title("(a) two overlapping Gaussians, one per class", fontsize=11)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.13), ncol=2)

    nets = table.groupby("n_params", as_index=False)[["ap", "ap_bayes", "prevalence"]].mean()
    # every seed's networks as faint points, their mean as the line
    bx.scatter(table["n_params"], table["ap"], s=14, color="#d95f02", alpha=0.5, linewidths=0)
    bx.plot(nets["n_params"], nets["ap"], marker="o", color="#d95f02",
            label=f"networks, mean over {table['seed'].nunique()} seed(s)")  # fmt: skip
    # dashed and below the networks' line, which lies on it
    bx.axhline(nets["ap_bayes"].mean(), color="black", lw=1.2, ls="--", zorder=1,
               label="Bayes-optimal rule")  # fmt: skip
    bx.axhline(nets["prevalence"].mean(), color="0.6", ls=":", lw=1.2,
               label="random (prevalence)")  # fmt: skip
    log_axis(bx, table["n_params"])
    spread = nets["ap"].max() - nets["ap"].min()
    gap = (nets["ap_bayes"] - nets["ap"]).max()
    bx.set_ylim(min(0.45, nets["prevalence"].min() - 0.05), 1.0)
    bx.set_xlabel("trainable parameters")
    bx.set_ylabel("average precision (new points)")
    bx.set_title("(b) AP of networks of growing size", fontsize=11)
    bx.text(0.5, 0.42, f"spread over sizes: {spread:.3f}\nlargest gap below the Bayes rule: "
            f"{gap:.3f}", transform=bx.transAxes, ha="center", va="center", fontsize=9,
            bbox={"facecolor": "white", "edgecolor": "0.8"})  # fmt: skip
    bx.grid(alpha=0.25, lw=0.5)
    bx.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.13))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save(fig, path: str | os.PathLike) -> Path:
    """Write a figure as PNG (150 dpi) and close it."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            # The temporary's name ends in .part: the format comes from the final name.
            fig.savefig(tmp, dpi=150, format=path.suffix.lstrip(".").lower() or "png")
    finally:
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
    return atomic_write_text(path, "\n".join(parts))


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
    handles, names = _legend_entries([axes[0, 0]])
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
        2, len(settings), figsize=(5.2 * len(settings) + 1.8, 5.4), sharex=True,
        gridspec_kw={"height_ratios": [3, 1]}, squeeze=False,
    )  # fmt: skip
    colors = ["#0072B2", "#D55E00", "#CC79A7", "#009E73", "#E69F00"]
    for k, setting in enumerate(settings):
        ax, bars = axes[0, k], axes[1, k]
        part = t[t["setting"] == setting]
        first = part.drop_duplicates("group").sort_values("group")
        if {"random_low", "random_high"} <= set(first.columns):
            ax.fill_between(first["group"], first["random_low"].astype(float),
                            first["random_high"].astype(float), color="0.8", lw=0,
                            label="random ranking: central 95% of the permutation null")  # fmt: skip
        ax.plot(first["group"], first["ap_random_expected"], color="0.35", lw=1.4,
                label="random ranking: expected AP (the reference within a group)")  # fmt: skip
        for j, (name, rows) in enumerate(part.groupby("predictor", sort=False)):
            color = colors[j % len(colors)]
            ax.plot(rows["group"], rows["ap"], lw=1.0, color=color, alpha=0.7)
            sig = (rows["p_adjusted"] < 0.05).to_numpy() if "p_adjusted" in rows else None
            if sig is None:
                ax.plot(rows["group"], rows["ap"], "o", ms=3.5, color=color, label=name)
            else:
                ax.plot(rows["group"][sig], rows["ap"][sig], "o", ms=4, color=color,
                        label=f"{name} (significant after Holm)")  # fmt: skip
                ax.plot(rows["group"][~sig], rows["ap"][~sig], "o", ms=4, mfc="white",
                        color=color, label=f"{name} (not significant)")  # fmt: skip
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.25, lw=0.5)
        ax.set_title(setting)
        bars.bar(first["group"], first["n_loci"], color="0.6", width=0.8)
        bars.set_xlabel("training cell types in which the locus is active")
    axes[0, 0].set_ylabel("AP within the group")
    axes[1, 0].set_ylabel("loci")
    handles, names = _legend_entries(axes[0])
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 2), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig
