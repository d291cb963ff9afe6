"""Shared plotting: matplotlib on a file backend, log axes, labelled scatters, saving.

Each figure's own drawing lives with its experiment (:mod:`pitfall.experiments`); this
module holds what several figures share. Matplotlib is imported lazily (the ``plot`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pitfall._atomic import atomic_path

__all__ = [
    "INPUT_COLORS",
    "INPUT_NAMES",
    "OKABE_ITO",
    "group_styles",
    "legend_entries",
    "log_axis",
    "place_labels",
    "pyplot",
    "save",
    "scatter",
]


#: Okabe and Ito's colour-blind-safe palette, less black (kept for baselines and text).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
_MARKERS = "osD^vPX*<>"


def group_styles(groups: list[str]) -> dict[str, tuple[str, str]]:
    """A (colour, marker) per group, every pair distinct, colours from :data:`OKABE_ITO`.

    Colour and marker both change from one group to the next, with periods 7 and 10, so
    that no two of the first 70 groups share a pair and neighbours in a legend never look
    alike; a reader who cannot tell two colours apart still has the markers.

    Examples
    --------
    >>> styles = group_styles(["ES", "blood", "brain"])
    >>> styles["ES"], styles["blood"]
    (('#E69F00', 'o'), ('#56B4E9', 's'))
    """
    return {
        g: (OKABE_ITO[i % len(OKABE_ITO)], _MARKERS[i % len(_MARKERS)])
        for i, g in enumerate(groups)
    }


#: A colour per model input, from :data:`OKABE_ITO` (colour-blind safe).
INPUT_COLORS = {
    "sequence": "#009E73",
    "signal": "#D55E00",
    "both": "#0072B2",
    "random": "#CC79A7",
    "permuted": "#E69F00",
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


def _plain_number(x: float, _pos: int | None = None) -> str:
    return f"{x:,.0f}" if x >= 1 else f"{x:g}"


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
    directions = [
        (1, 0.4),
        (1, -0.4),
        (-1, 0.4),
        (-1, -0.4),
        (0, 1),
        (0, -1),
        (1, 1),
        (-1, -1),
        (1, -1),
        (-1, 1),
    ]
    for xi, yi, text in zip(x, y, labels, strict=True):
        chosen = None
        for dist in (5, 11, 18, 26):
            for dx, dy in directions:
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                ann = ax.annotate(
                    text,
                    (xi, yi),
                    xytext=(dx * dist, dy * dist),
                    textcoords="offset points",
                    ha=ha,
                    va=va,
                    fontsize=fontsize,
                    arrowprops={
                        "arrowstyle": "-",
                        "color": "0.5",
                        "lw": 0.5,
                        "shrinkA": 0,
                        "shrinkB": 3,
                    }
                    if dist > 5
                    else None,
                )
                # the text's own box: an Annotation's extent also spans its leader line,
                # which reaches the point and would always hit the point's own marker
                ann.update_positions(renderer)
                bb = Text.get_window_extent(ann, renderer)
                box = (bb.x0 - 1, bb.y0 - 1, bb.x1 + 1, bb.y1 + 1)
                inside = (
                    box[0] >= frame.x0
                    and box[2] <= frame.x1
                    and box[1] >= frame.y0
                    and box[3] <= frame.y1
                )
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


def legend_entries(axes) -> tuple[list[Any], list[str]]:
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
