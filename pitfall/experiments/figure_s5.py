"""Figure S5: the average-activity baseline's AP against the target's similarity to the others.

No training: every cell type in turn is the target of the average of the others' labels,
scored on the test chromosomes; its similarity is its correlation with the others on the
training chromosomes. The more a target resembles the cell types averaged, the better the
baseline does on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from pitfall import baselines, evaluate, splits, tasks
from pitfall._plotting import group_styles, place_labels, pyplot
from pitfall.experiments._result import Result

__all__ = ["baseline_vs_similarity", "make", "plot", "similarity_summary"]


def baseline_vs_similarity(
    ds: xr.Dataset,
    train_chroms: Sequence[str],
    test_chroms: Sequence[str],
    *,
    on: str = "label",
    cell_types: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Figure S5: each target's average-activity AP, and its similarity to the others.

    Every cell type is the target in turn. The baseline scores each locus by the mean
    label of every other cell type (no training), and is scored on the target's labels at
    the loci on ``test_chroms`` (:func:`pitfall.evaluate.average_activity_evaluation`,
    one pass for every target). The target's similarity to each other cell type is the
    Pearson correlation of ``on`` over the loci on ``train_chroms`` only
    (:func:`pitfall.baselines.cell_type_similarity`), so the similarity never sees the loci it is
    compared with.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube: ``label (cell_type, locus)`` and ``on``.
    train_chroms, test_chroms : sequence of str
        Chromosomes whose loci measure similarity, and where the baseline is scored (as a
        hybrid split's: e.g. chr3-22 and chr1).
    on : str
        The variable compared: ``"label"``, ``"value"`` (compared as ``log1p``, as
        :class:`pitfall.baselines.MostSimilar` does) or ``"signal"`` (all marks).
    cell_types : sequence of str, optional
        The cell types (targets, and each other's training set); default every one.

    Returns
    -------
    pandas.DataFrame
        One row per target, in cube order: ``cell_type``, ``name`` and ``group`` (the
        cube's ``cell_type_name`` and ``cell_type_group``, or ""), ``ap``, ``prevalence``
        (the target's share of active test loci), ``ap_normalised`` (``(ap -
        prevalence) / (1 - prevalence)``: how much of the way from random to perfect),
        ``mean_similarity`` and ``max_similarity`` (over the other cell types),
        ``most_similar``. ``attrs``: ``on``, ``n_train_loci``, ``n_test_loci``.
    """
    cts = [str(c) for c in ds["cell_type"].values] if cell_types is None else list(cell_types)
    if len(cts) < 3:
        raise ValueError(f"need at least 3 cell types (a target and 2 to average), got {cts}")
    test_pos = splits.locus_positions(ds, list(test_chroms))
    train_pos = splits.locus_positions(ds, list(train_chroms))
    if not len(test_pos) or not len(train_pos):
        raise ValueError(
            f"no loci on the test chromosomes {list(test_chroms)} or on the training ones "
            f"{list(train_chroms)} (the cube's: {splits.cube_chroms(ds)})"
        )
    if on not in ds:
        raise ValueError(f"the cube has no {on!r} variable to compare cell types on")
    labels = splits.take_loci(ds[["label"]], test_pos)["label"].sel(cell_type=cts)
    ev = evaluate.average_activity_evaluation(labels)
    whole = ev.table()
    whole = whole[whole["group"] == "all"].set_index("cell_type")
    x = splits.take_loci(ds[[on]], train_pos)[on].sel(cell_type=cts)
    if on == "value":
        x = xr.apply_ufunc(np.log1p, x.clip(min=0), dask="allowed")
    corr = baselines.cell_type_similarity(x)
    off = corr.to_numpy(copy=True)
    np.fill_diagonal(off, np.nan)
    names = _coord(ds, "cell_type_name", cts)
    groups = _coord(ds, "cell_type_group", cts)
    rows = []
    for i, ct in enumerate(cts):
        sims = off[i]
        ap, prev = float(ev.ap[ct]), float(whole.loc[ct, "prevalence"])
        best = int(np.nanargmax(sims)) if np.isfinite(sims).any() else -1
        rows.append(
            {
                "cell_type": ct,
                "name": names[i],
                "group": groups[i],
                "ap": ap,
                "prevalence": prev,
                "ap_normalised": (ap - prev) / (1 - prev) if prev < 1 else float("nan"),
                "mean_similarity": float(np.nanmean(sims)) if best >= 0 else float("nan"),
                "max_similarity": float(sims[best]) if best >= 0 else float("nan"),
                "most_similar": cts[best] if best >= 0 else "",
            }
        )
    out = pd.DataFrame(rows)
    out.attrs.update(
        {"on": on, "n_train_loci": int(len(train_pos)), "n_test_loci": int(len(test_pos))}
    )
    return out


def _coord(ds: xr.Dataset, name: str, cts: Sequence[str]) -> list[str]:
    if name not in ds.coords:
        return [""] * len(cts)
    values = ds[name].sel(cell_type=list(cts)).values
    return [str(v) for v in values]


def similarity_summary(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Spearman correlations over the targets of :func:`baseline_vs_similarity`'s table.

    Returns
    -------
    dict
        ``{"<similarity> vs <ap column>": {"rho", "p", "n"}}`` for ``mean_similarity`` and
        ``max_similarity`` against ``ap`` and ``ap_normalised``, and ``prevalence vs ap``
        (the confounder: AP rises with the share of active loci).
    """
    out = {}
    pairs = [
        (s, a) for s in ("mean_similarity", "max_similarity") for a in ("ap", "ap_normalised")
    ] + [("prevalence", "ap")]
    for sim, col in pairs:
        ok = table[sim].notna() & table[col].notna()
        if ok.sum() < 3:
            out[f"{sim} vs {col}"] = {"rho": float("nan"), "p": float("nan"), "n": int(ok.sum())}
            continue
        rho, p = stats.spearmanr(table.loc[ok, sim], table.loc[ok, col])
        out[f"{sim} vs {col}"] = {"rho": float(rho), "p": float(p), "n": int(ok.sum())}
    return out


def plot(
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
        One row per target (:func:`baseline_vs_similarity`): ``cell_type``,
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
    styles = group_styles([str(g) for g in groups])
    low = set(table.nsmallest(n_labels, "ap")["cell_type"]) if n_labels else set()
    for ax, (col, ylabel) in zip(
        axes,
        (
            ("ap", "AP of the average-activity baseline"),
            ("ap_normalised", "(AP - prevalence) / (1 - prevalence)"),
        ),
        strict=True,
    ):
        xs, ys = table[x].to_numpy(float), table[col].to_numpy(float)
        ok = np.isfinite(xs) & np.isfinite(ys)
        if has_groups:
            for g in groups:
                sel = (table["group"] == g).to_numpy()
                color, marker = styles[str(g)]
                ax.scatter(
                    xs[sel],
                    ys[sel],
                    s=26,
                    color=color,
                    marker=marker,
                    edgecolor="white",
                    linewidth=0.4,
                    zorder=3,
                    label=str(g),
                )
        else:
            ax.scatter(xs, ys, s=26, color="#1b9e77", zorder=3)
        if ok.sum() >= 3:
            rho, p = stats.spearmanr(xs[ok], ys[ok])
            slope, icept = np.polyfit(xs[ok], ys[ok], 1)
            grid = np.linspace(xs[ok].min(), xs[ok].max(), 2)
            ax.plot(grid, icept + slope * grid, color="0.4", lw=0.8, ls="--", zorder=2)
            ax.set_title(f"Spearman rho = {rho:.2f} (p = {p:.2g}), {ok.sum()} targets", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.25, lw=0.5)
        ax.margins(x=0.08, y=0.1)
    for ax, tag in zip(axes, "ab", strict=True):
        ax.text(-0.13, 1.02, tag, transform=ax.transAxes, fontweight="bold", fontsize=12)
    if has_groups:
        axes[1].legend(
            frameon=False,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.02, 1),
            title="cell-type group",
            title_fontsize=8,
        )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if low:
        sel = table["cell_type"].isin(low).to_numpy()
        for ax, col in zip(axes, ("ap", "ap_normalised"), strict=True):
            place_labels(
                ax,
                table.loc[sel, x],
                table.loc[sel, col],
                table.loc[sel, "cell_type"].astype(str).tolist(),
                obstacles=(table[x], table[col]),
            )
    return fig


_WHAT = {"label": "labels", "value": "log RPKM", "signal": "signal"}


def make(
    ds: xr.Dataset,
    *,
    task: str = "expression",
    train_chroms: Sequence[str] | None = None,
    test_chroms: Sequence[str] | None = None,
    on: str = "label",
) -> Result:
    """Figure S5 on a cube: every cell type the target of the average of the others.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (``label (cell_type, locus)``).
    task : str
        Whose hybrid split decides the training and test chromosomes (they do not depend
        on the target), unless ``train_chroms`` and ``test_chroms`` are given.
    train_chroms, test_chroms : sequence of str, optional
        The chromosomes the similarity is computed on and those the baseline is scored on.
    on : {"label", "value", "signal"}
        What the similarity correlates.

    Returns
    -------
    Result
        ``tables["targets"]``: :func:`baseline_vs_similarity`; ``findings``:
        :func:`similarity_summary`.
    """
    if train_chroms is None or test_chroms is None:
        spec = tasks.get_task(task)
        ids = [str(c) for c in ds.cell_type.values]
        target = next(iter(tasks.resolve_cell_types(ds, [spec.target])), ids[0])
        split = spec.split(ds, "hybrid", target)
        train_chroms, test_chroms = split.train_chroms, split.test_chroms
    table = baseline_vs_similarity(ds, train_chroms, test_chroms, on=on)
    summary = similarity_summary(table)
    raw, norm = summary["mean_similarity vs ap"], summary["mean_similarity vs ap_normalised"]
    relation = (
        "the more a target resembles the others, the better the baseline does on it"
        if any(r["p"] < 0.05 and r["rho"] > 0 for r in (raw, norm))
        else "no clear positive relation on this compendium"
    )
    title = (
        f"Figure S5: the average-activity baseline against similarity, {len(table)} targets "
        f"(tested on {', '.join(test_chroms)})"
    )
    fig = plot(
        table,
        xlabel="target's mean correlation with the other cell types\n"
        f"({_WHAT.get(on, on)}, the {len(train_chroms)} training chromosomes' loci)",
        title=title,
    )
    return Result(
        name="figure_s5_baseline_vs_similarity" + ("" if on == "label" else f"_{on}"),
        title=title,
        figure=fig,
        findings=summary,
        sentences=[
            f"Every cell type in turn is the target of the average of the others; its "
            f"similarity is the mean correlation of its {_WHAT.get(on, on)} with theirs on the "
            f"training chromosomes. Spearman rho = {raw['rho']:.2f} (p = {raw['p']:.2g}) "
            f"with the AP, {norm['rho']:.2f} (p = {norm['p']:.2g}) with the AP above the "
            f"prevalence, {norm['n']} targets: {relation}."
        ],
        tables={"targets": table},
        caption=[
            "Each cell type in turn is the target; the baseline averages the others' labels "
            "(no training). Similarity: the correlation of the target's labels with each "
            "other cell type's, on the loci off the test chromosomes."
        ],
    )
