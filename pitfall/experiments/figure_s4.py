"""Figure S4 (preprint S3): the partitioned evaluation, AP within groups of equal activity.

The test loci are grouped by the number of training + validation cell types in which they
are active; within a group the average activity is one value, so only what a model learned
of the target's own regulation still ranks its loci. In each group the epigenomic models'
APs are compared with the sequence models' (one-sided Mann-Whitney U over the models' APs,
the paper's test), the controls separately, and a random ranking's expected AP is drawn as
the fair reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pitfall import evaluate, random_ranking, splits, sweep, tasks
from pitfall._plotting import INPUT_COLORS, INPUT_NAMES, OKABE_ITO, pyplot
from pitfall.experiments._result import Result

__all__ = [
    "PARTITIONED_TESTS",
    "RANDOM_RANKING",
    "make",
    "partitioned_summary",
    "partitioned_table",
    "plot",
]


#: The partitioned figure's reference within a group: a random ranking's expected AP.
RANDOM_RANKING = "random ranking (expected AP)"


#: The partitioned figure's tests: ``(name, side A, side B)`` over the models' per-group
#: APs. The paper's is the first; each control is compared with the epigenomic models on
#: its own, so a control never counts as a sequence model.
PARTITIONED_TESTS = (
    ("epigenomic > sequence", "signal", "sequence"),
    ("epigenomic > permuted sequence (control)", "signal", "permuted"),
    ("epigenomic > locus-constant random (control)", "signal", "random"),
)


def partitioned_table(
    ds: xr.Dataset, split: splits.Split, results: pd.DataFrame, results_dir: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure S4 (preprint S3): AP per activity group for every model, and the tests.

    The split's test loci are grouped by the number of training + validation cell types
    in which they are active (:func:`pitfall.evaluate.partition_by_activity`); every
    model's saved predictions for the target are scored within each group, next to the AP
    a random ranking of the group's loci earns on average (the average-activity baseline
    ties within a group, so that is its fair reference there). In each group the epigenomic-only models' APs are compared
    with the sequence-only models' APs by a one-sided Mann-Whitney U test (epigenomic
    greater), the paper's test (:func:`pitfall.evaluate.mann_whitney_by_group`): at equal
    average activity, only the target's own signal still ranks its loci. The controls
    (permuted sequence, locus-constant random inputs) are tested against the epigenomic
    models separately, never pooled with the sequence models.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (``label (cell_type, locus)``).
    split : pitfall.splits.Split
        The setting evaluated (the paper's: cross-cell-type), one test cell type.
    results : pandas.DataFrame
        Rows of the models of that split (``id``, ``inputs``, ``label``), predictions saved.
    results_dir : str
        The sweep's results folder (:func:`pitfall.sweep.read_predictions`).

    Returns
    -------
    table : pandas.DataFrame
        One row per (model, group): ``group`` (int), ``predictor`` (the model's inputs,
        or :data:`RANDOM_RANKING`), ``model`` (its label; "" for the reference), ``ap``
        (NaN where the group has no positive locus).
    tests : pandas.DataFrame
        One row per (comparison, group), comparisons in :data:`PARTITIONED_TESTS` order
        (those with both sides present): ``comparison``, ``group``, ``n_a``, ``n_b``,
        ``U``, ``p_value``, ``p_floor``.
    """
    test = split.test(ds)
    known = [*split.train_cell_types, *split.valid_cell_types]
    lab_known = ds["label"].sel(cell_type=known).sel(locus=test["locus"].values)
    groups = np.asarray(evaluate.partition_by_activity(lab_known))
    y = test["label"].sel(cell_type=split.test_cell_types[0]).values
    rows = []
    for _, r in results.iterrows():
        scores = sweep.read_predictions(results_dir, r["id"]).sel(
            cell_type=split.test_cell_types[0]
        )
        aps = evaluate.ap_by_group(y, scores.values, groups)
        for g, ap in aps.items():
            rows.append({"group": int(g), "predictor": r["inputs"], "model": r["label"], "ap": ap})
    # Within a group the average activity ties, and its AP (ties grouped) is the group's
    # prevalence, below what any random order of the loci earns: the reference drawn is a
    # random ranking's expected AP.
    known_y = ~np.isnan(y)
    for g in np.unique(groups[known_y]):
        m = known_y & (groups == g)
        n, k = int(m.sum()), int(np.sum(y[m] == 1))
        ap = float(random_ranking.expected_ap(n, k)) if k else float("nan")
        rows.append({"group": int(g), "predictor": RANDOM_RANKING, "model": "", "ap": ap})
    table = pd.DataFrame(rows, columns=["group", "predictor", "model", "ap"])
    tests = []
    present = set(table["predictor"])
    for name, a, b in PARTITIONED_TESTS:
        if a in present and b in present:
            res = evaluate.mann_whitney_by_group(table, a, b, "greater")
            tests.append(res.assign(comparison=name))
    columns = ["comparison", "group", "n_a", "n_b", "U", "p_value", "p_floor"]
    if not tests:
        return table, pd.DataFrame(columns=columns)
    return table, pd.concat(tests, ignore_index=True)[columns]


def partitioned_summary(tests: pd.DataFrame, alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Per comparison of :func:`partitioned_table`: groups tested, below ``alpha``, reachable.

    Returns
    -------
    dict
        ``{comparison: {"groups", "significant", "reachable", "at_floor", "p_floor", "n_a",
        "n_b"}}``: groups with a p-value, those with ``p < alpha``, those where the exact
        test could reach ``alpha`` at all with the models at hand (``p_floor < alpha``),
        those at the floor (every model of side A above every model of side B: the
        strongest result the test can give), the largest floor and the model counts per
        side.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, part in tests.groupby("comparison", sort=False):
        done = part[part["p_value"].notna()]
        out[str(name)] = {
            "groups": int(len(done)),
            "significant": int((done["p_value"] < alpha).sum()),
            "reachable": int((done["p_floor"] < alpha).sum()),
            # a relative margin: scipy's exact p and 1 / C(n, k) differ in the last bits
            "at_floor": int((done["p_value"] <= done["p_floor"] * (1 + 1e-9)).sum()),
            "p_floor": float(done["p_floor"].max()) if len(done) else float("nan"),
            "n_a": int(done["n_a"].max()) if len(done) else 0,
            "n_b": int(done["n_b"].max()) if len(done) else 0,
        }
    return out


#: Order of the partitioned figure's boxes: the two sides of the paper's test first, then
#: the combined models and the controls (each a box of its own, never pooled).
PREDICTOR_ORDER = ("signal", "sequence", "both", "permuted", "random")


def plot(table: pd.DataFrame, tests: pd.DataFrame | None = None, title: str = ""):
    """Figure S4 [S3]: AP per activity group as boxes per input type, and the tests.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows ``group, predictor, ap`` (one per model x group; several models per input
        type make the boxes; :func:`partitioned_table`). A predictor with one
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
        ax.hlines(
            part["ap"],
            at - 0.47,
            at + 0.47,
            color="black" if k == 0 else "0.5",
            lw=1.8,
            zorder=1,
            label=ref,
        )
    for i, pred in enumerate(predictors):
        data = [
            table[(table.group == g) & (table.predictor == pred)]["ap"].dropna() for g in groups
        ]
        pos = np.arange(len(groups)) + (i - (len(predictors) - 1) / 2) * width
        color = INPUT_COLORS.get(pred, OKABE_ITO[i % len(OKABE_ITO)])
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
        ax.plot(
            [],
            [],
            color=color,
            lw=6,
            alpha=0.75,
            label=f"{INPUT_NAMES.get(pred, pred)} ({n_models} models)",
        )
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
            ax.plot(
                part["group"].astype(float),
                y,
                marker="o",
                ms=4,
                ls="-" if k == 0 else "--",
                lw=1.6 if k == 0 else 1.1,
                label=comparison,
            )
            highest = max(highest, float(np.nanmax(y, initial=0.0)))
            if "p_floor" in part and part["p_floor"].notna().any():
                floors.append(float(part["p_floor"].max()))
        ax.axhline(-np.log10(0.05), color="0.3", ls=":", lw=1, label="p = 0.05")
        if floors:
            # above the most reachable comparison's floor no test can go: shade it
            top = -np.log10(min(floors))
            highest = max(highest, top)
            ax.axhspan(
                top,
                highest * 2 + 1,
                color="0.85",
                zorder=0,
                label="beyond reach of the exact test\nwith these numbers of models",
            )
        ax.set_ylim(0, highest * 1.15)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("training + validation cell types in which the locus is active")
        ax.set_ylabel("-log10 p (Mann-Whitney U)")
        ax.set_title("one-sided tests over the models' APs, per group")
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.16))
    fig.tight_layout()
    return fig


CAPTION = (
    "Boxes: the APs of each input type's models within each group; black bars: a random "
    "ranking's expected AP there (the average-activity baseline ties within a group, so it "
    "scores only the prevalence; a random order of the group's loci earns this on average, "
    "the fair reference). The controls have their own boxes and their own tests against the "
    "epigenomic models (dashed), never pooled with the sequence models. Shaded: p-values the "
    "exact test cannot reach with these numbers of models."
)


def verdict(summary: dict[str, Any]) -> list[str]:
    """The paper's claim, as the main test of :func:`partitioned_summary` decides it."""
    main = summary.get(PARTITIONED_TESTS[0][0])
    if not main:
        return []
    if main["significant"] * 2 >= main["groups"]:
        said = (
            "once the average activity is held fixed, only the cell type's own signal still "
            "ranks its loci."
        )
    elif main["reachable"] == 0:
        said = (
            f"with so few models no group can pass 0.05 here, whatever the APs, but in "
            f"{main['at_floor']} groups every epigenomic model beats every sequence model, "
            "the strongest result the test can give; a larger grid (not --quick) can decide."
        )
    else:
        said = "the test does not support the paper's claim on this run."
    return [
        f"Within groups of loci active in the same number of training + validation cell "
        f"types, the {main['n_a']} epigenomic models' APs exceed the {main['n_b']} sequence "
        f"models' (one-sided Mann-Whitney U over the models' APs) with p < 0.05 in "
        f"{main['significant']} of {main['groups']} groups; the smallest p the exact test can "
        f"give with these numbers of models is {main['p_floor']:.3g}: {said}"
    ]


def make(
    ds: xr.Dataset,
    results: pd.DataFrame,
    results_dir: str,
    *,
    task: str = "expression",
    target: str = "E003",
) -> Result:
    """Figure S4 from a sweep whose cross-cell-type models saved their predictions.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube the sweep trained on.
    results : pandas.DataFrame
        The sweep's results table; its ``task`` neural networks of the cross-cell-type
        setting that trained are used.
    results_dir : str
        The sweep's folder (their saved predictions).
    task, target : str
        The task whose split rule groups the loci, and the target cell type.

    Returns
    -------
    Result
        ``tables``: ``"groups"`` (:func:`partitioned_table`'s AP per model and group) and
        ``"tests"``; ``findings``: :func:`partitioned_summary`; ``sentences``:
        :func:`verdict`.
    """
    split = tasks.get_task(task).split(ds, "cross-cell-type", target)
    rows = results[
        (results["task"] == task)
        & (results["status"] == "ok")
        & (results["family"] != "xgboost")
        & (results["setting"] == "cross-cell-type")
    ]
    part, tests = partitioned_table(ds, split, rows, str(results_dir))
    summary = partitioned_summary(tests)
    title = f"Figure S4 (preprint S3): cross-cell-type ({target}), loci grouped by activity"
    return Result(
        name="figure_s4_partitioned",
        title=title,
        figure=plot(part, tests, title=title),
        findings=summary,
        sentences=verdict(summary),
        tables={"tests": tests, "groups": part},
        caption=[CAPTION],
    )
