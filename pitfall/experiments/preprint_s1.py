"""Preprint Figure S1: PCA (and UMAP) of a cell type's epigenomic signal, coloured by activity.

Each locus is its vector of marks, standardised; active and inactive loci fall on either
side of a simple boundary, which is why epigenomic models gain little from size (preprint
Figure S2). UMAP needs the optional ``umap`` extra; without it the figure shows PCA alone
and says so.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import xarray as xr

from pitfall._plotting import pyplot
from pitfall.experiments._result import Result

__all__ = ["make", "plot", "signal_embedding"]


def signal_embedding(
    ds: xr.Dataset,
    cell_type: str,
    *,
    umap: bool = True,
    max_points: int = 5000,
    seed: int = 0,
) -> pd.DataFrame:
    """Preprint Figure S1: the loci of one cell type by PCA and UMAP of their signal.

    Each locus is the vector of its signal (every mark, and any other dim, flattened);
    missing values take their column's mean and every column is standardised, so no mark
    dominates by its scale. PCA uses every locus; UMAP (``umap-learn``, the optional
    ``umap`` extra) a random sample of ``max_points`` loci, as do the returned rows.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube, with ``signal (cell_type, locus, mark)`` and ``label``.
    cell_type : str
        Whose signal and labels.
    umap : bool
        Also embed by UMAP when ``umap-learn`` is installed (its first run in a process
        spends a while compiling). Without it, or with ``umap=False``, the table
        has no UMAP columns and ``attrs["note"]`` says why (the figure then shows PCA
        alone, with the note).
    max_points : int
        Loci returned (and embedded by UMAP), sampled at random without replacement.
    seed : int
        Seed of the sample and of UMAP (which then runs single-threaded, reproducibly).

    Returns
    -------
    pandas.DataFrame
        One row per sampled locus: ``locus`` (position along the cube), ``PC1``, ``PC2``,
        ``UMAP1`` and ``UMAP2`` (when embedded), ``label``. ``attrs``: ``explained`` (the
        two components' shares of the variance), ``n_loci``, ``features`` and ``note``
        (empty when UMAP ran).
    """
    if "signal" not in ds:
        raise ValueError("the cube has no signal to embed (a labels-only cube?)")
    sig = ds["signal"].sel(cell_type=cell_type)
    sig = sig.transpose("locus", *[d for d in sig.dims if d != "locus"])
    x = np.asarray(sig.values, dtype=np.float64).reshape(sig.sizes["locus"], -1)
    known = np.isfinite(x)
    means = np.where(known, x, 0.0).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
    x = np.where(known, x, means)
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    pcs = u[:, :2] * s[:2]
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(z), size=min(max_points, len(z)), replace=False))
    out = pd.DataFrame({"locus": take, "PC1": pcs[take, 0], "PC2": pcs[take, 1]})
    note = ""
    if umap:
        try:
            import umap as umap_learn  # optional: the "umap" extra
        except ImportError:
            note = (
                "UMAP not shown: umap-learn is not installed (pip install -e '.[umap]'); PCA only."
            )
        else:
            import warnings  # here: the module's header belongs to the grids' editors

            with warnings.catch_warnings():
                # a fixed random_state makes UMAP single-threaded, and it says so
                warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
                emb = umap_learn.UMAP(
                    n_neighbors=15, min_dist=0.1, random_state=seed
                ).fit_transform(z[take])
            out["UMAP1"], out["UMAP2"] = emb[:, 0], emb[:, 1]
    else:
        note = "UMAP not computed here (umap=False); PCA only."
    out["label"] = ds["label"].sel(cell_type=cell_type).values[take]
    total = float((s**2).sum())
    out.attrs.update(
        {
            "explained": (s[:2] ** 2 / total).tolist() if total > 0 else [float("nan")] * 2,
            "n_loci": int(len(z)),
            "features": int(z.shape[1]),
            "note": note,
        }
    )
    return out


def plot(emb: pd.DataFrame, title: str = ""):
    """Preprint Figure S1: loci on their first two principal components, and by UMAP.

    Parameters
    ----------
    emb : pandas.DataFrame
        One row per locus (:func:`signal_embedding`): ``PC1``, ``PC2``,
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
        ax.scatter(
            part.loc[known, c1], part.loc[known, c2], s=4, c=colors[known], alpha=0.6, linewidths=0
        )
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
    fig.legend(
        loc="lower center",
        bbox_to_anchor=(0.5, 0.045 if note else 0.0),
        ncol=2,
        frameon=False,
        fontsize=9,
    )
    if title:
        # one panel is narrow: the title wraps to the figure's width rather than run past it
        width = int(fig.get_figwidth() * 11)
        fig.suptitle(textwrap.fill(title, width=max(width, 30)))
    fig.tight_layout(rect=(0, 0.13 if note else 0.07, 1, 1))
    if note:
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=7, color="0.35", wrap=True)
    return fig


def make(ds: xr.Dataset, target: str, *, umap: bool = True) -> Result:
    """Preprint Figure S1 for one cell type of a cube with signal.

    Returns
    -------
    Result
        ``tables["embedding"]``: :func:`signal_embedding`; ``findings``: the two
        components' shares of the variance, the loci and features embedded.
    """
    emb = signal_embedding(ds, target, umap=umap)
    marks = ", ".join(map(str, ds["mark"].values)) if "mark" in ds.coords else "signal"
    title = f"Preprint Figure S1: epigenomic signal of {target} ({marks})"
    ev = emb.attrs["explained"]
    sentences = [
        f"{emb.attrs['n_loci']:,} loci x {emb.attrs['features']} features; PC1 "
        f"{ev[0]:.1%}, PC2 {ev[1]:.1%} of the variance; {len(emb):,} loci drawn."
    ]
    if emb.attrs["note"]:
        sentences.append(emb.attrs["note"])
    return Result(
        name="preprint_figure_s1_pca_umap",
        title=title,
        figure=plot(emb, title),
        findings={
            "explained": [float(v) for v in ev],
            "n_loci": int(emb.attrs["n_loci"]),
            "features": int(emb.attrs["features"]),
        },
        sentences=sentences,
        tables={"embedding": emb},
        caption=[
            "Each point a locus, its marks standardised; active and inactive loci lie on "
            "either side of a simple boundary."
        ],
    )
