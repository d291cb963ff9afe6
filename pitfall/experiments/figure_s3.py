"""Figure S3: the average-activity baseline against ENCODE-DREAM challenge entries.

The paper scores the top participants of the ENCODE-DREAM challenge (CTCF in iPSC) on two
sets of loci: those bound in at least one training cell type (loci whose binding a model
could have memorised) and the rest. On the first set the average activity (the mean label
of each locus over the training cell types) beats two of the four top teams.

What :func:`make` implements:

- *seen in training*: loci bound (label 1) in at least one training cell type;
  *not seen*: loci unbound (0) in every training cell type with a known label. A locus
  with no known label in any training cell type, or an unknown (NaN: ambiguous,
  blacklisted, held out) label in the target, is in neither set;
- every predictor (each participant and the baseline) is scored on the same loci: those
  every submission scores; loci some submission lacks are left out, with a warning in
  ``findings["dropped_unscored"]``;
- average precision as scikit-learn computes it (ties form one threshold): on the *not
  seen* set the baseline scores 0 everywhere, so its AP there is the set's prevalence,
  which is also the expected AP of a random ranking (the dashed line).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pitfall._plotting import OKABE_ITO, pyplot
from pitfall.audit.reading import load_predictions
from pitfall.evaluate import average_precision, random_ap
from pitfall.experiments._result import Result

__all__ = ["BASELINE", "GROUPS", "make", "plot", "training_activity"]

#: The baseline's name in the tables and the figure.
BASELINE = "average activity"
#: The two sets of loci, in the figure's order.
GROUPS = ("seen in training", "not seen in training")

CAPTION = (
    "Each participant's average precision on the target cell type, on loci bound in at "
    "least one training cell type (left: a model can have memorised their binding) and on "
    "the rest (right), beside the average-activity baseline (the mean label of each locus "
    "over the training cell types, grey). Dashed: the expected AP of a random ranking."
)


def training_activity(
    labels: xr.DataArray, training: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The baseline and the seen-in-training mask, one training cell type at a time.

    Parameters
    ----------
    labels
        Dims ``(cell_type, locus)``: 1 bound, 0 unbound, NaN unknown (a cube's ``label``).
    training
        The training cell types.

    Returns
    -------
    mean : numpy.ndarray
        Shape (n_loci,), float64: mean known label over the training cell types (NaN where
        none is known).
    seen : numpy.ndarray
        Shape (n_loci,), bool: bound in at least one training cell type.
    """
    n = labels.sizes["locus"]
    total = np.zeros(n)
    known = np.zeros(n, dtype=np.int32)
    seen = np.zeros(n, dtype=bool)
    for ct in training:
        y = np.asarray(labels.sel(cell_type=ct).values, dtype=np.float32)
        ok = ~np.isnan(y)
        total[ok] += y[ok]
        known += ok
        seen |= y == 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(known > 0, total / known, np.nan)
    return mean, seen


def make(
    cube: xr.Dataset,
    target: str,
    submissions: Mapping[str, str | os.PathLike | pd.DataFrame],
    training: Sequence[str] | None = None,
) -> Result:
    """Figure S3 from a labels cube and participants' predictions for its target cell type.

    Parameters
    ----------
    cube
        A cube (or any Dataset) with ``label`` (dims ``cell_type, locus``) and the loci's
        ``chrom``, ``start``, ``end``: e.g. the ENCODE-DREAM convention cube of
        :func:`pitfall.datasets.ctcf.dream_manifest`.
    target
        The cell type the submissions predict (its labels are the truth).
    submissions
        Participant name -> predictions for ``target``: an ENCODE-DREAM submission file
        (``chr start stop probability``, gzipped), or anything
        :func:`pitfall.audit.reading.load_predictions` reads.
    training
        The training cell types (default: every other cell type of the cube).

    Returns
    -------
    Result
        ``tables["ap"]``: one row per (predictor, group) with ``ap``, ``random_ap``,
        ``n_loci``, ``n_bound``; ``findings``: per group the participants the baseline beats
        (``beaten``) and every AP.

    Raises
    ------
    ValueError
        No submission, the target among the training cell types or not in the cube.
    """
    cts = [str(c) for c in cube["cell_type"].values]
    if not submissions:
        raise ValueError("Figure S3 needs at least one participant's submission")
    if target not in cts:
        raise ValueError(f"target cell type {target!r} is not in the cube (it has {cts})")
    training = [c for c in cts if c != target] if training is None else list(training)
    if target in training:
        raise ValueError(f"the target {target!r} is among the training cell types")
    absent = [c for c in training if c not in cts]
    if absent:
        raise ValueError(f"training cell types {absent} are not in the cube (it has {cts})")

    mean, seen = training_activity(cube["label"], training)
    truth = np.asarray(cube["label"].sel(cell_type=target).values, dtype=np.float32)
    eligible = ~np.isnan(truth) & ~np.isnan(mean)
    n = len(truth)
    scores: dict[str, np.ndarray] = {}
    log: list[str] = []
    for name, source in submissions.items():
        pred = load_predictions(source, cube, cell_type=target)
        pos, values = pred.scores(target)
        full = np.full(n, np.nan)
        full[pos] = values
        scores[name] = full
        log += pred.log
    scored = np.logical_and.reduce([~np.isnan(s) for s in scores.values()])
    dropped = int((eligible & ~scored).sum())
    keep = eligible & scored
    rows = []
    masks = {GROUPS[0]: keep & seen, GROUPS[1]: keep & ~seen}
    for group, mask in masks.items():
        y = truth[mask]
        ref = random_ap(y) if y.size else float("nan")
        for name, s in [*scores.items(), (BASELINE, mean)]:
            ap = average_precision(y, s[mask]) if y.size and y.any() else float("nan")
            rows.append(
                {
                    "predictor": name,
                    "group": group,
                    "ap": ap,
                    "random_ap": ref,
                    "n_loci": int(mask.sum()),
                    "n_bound": int(y.sum()),
                }
            )
    table = pd.DataFrame(rows)
    findings: dict[str, Any] = {"target": target, "training": training, "dropped_unscored": dropped}
    sentences = []
    for group in GROUPS:
        sub = table[table["group"] == group].set_index("predictor")["ap"]
        base = float(sub[BASELINE])
        beaten = [p for p in scores if sub[p] < base]
        findings[group] = {"ap": {k: float(v) for k, v in sub.items()}, "beaten": beaten}
        sentences.append(
            f"On loci {group} ({int(masks[group].sum()):,}), the average activity (AP "
            f"{base:.3f}) beats {len(beaten)} of {len(scores)} participants"
            + (f" ({', '.join(beaten)})." if beaten else ".")
        )
    if dropped:
        sentences.append(
            f"{dropped:,} labelled loci lack a score in some submission and are left out."
        )
    findings["warnings"] = log
    title = f"Figure S3: average activity vs challenge participants ({target})"
    return Result(
        name="figure_s3_encode_dream",
        title=title,
        figure=plot(table, title=title),
        findings=findings,
        sentences=sentences,
        tables={"ap": table},
        caption=[CAPTION],
    )


def plot(table: pd.DataFrame, title: str = "") -> Any:
    """Two panels (seen in training, not seen) of AP bars, one per predictor.

    Parameters
    ----------
    table
        ``tables["ap"]`` of :func:`make`.
    """
    plt = pyplot()
    predictors = list(dict.fromkeys(table["predictor"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    participants = [p for p in predictors if p != BASELINE]
    colors = {p: OKABE_ITO[i % len(OKABE_ITO)] for i, p in enumerate(participants)}
    colors[BASELINE] = "0.45"
    for ax, group in zip(axes, GROUPS, strict=True):
        sub = table[table["group"] == group].set_index("predictor").reindex(predictors)
        x = np.arange(len(predictors))
        bars = ax.bar(
            x, sub["ap"].fillna(0), color=[colors[p] for p in predictors], edgecolor="black"
        )
        for bar, p in zip(bars, predictors, strict=True):
            if p == BASELINE:
                bar.set_hatch("//")
        ref = sub["random_ap"].iloc[0]
        if np.isfinite(ref):
            ax.axhline(ref, color="black", linestyle="--", linewidth=1, label="random")
        for xi, v in zip(x, sub["ap"], strict=True):
            if np.isfinite(v):
                ax.text(xi, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
        n = int(sub["n_loci"].iloc[0])
        ax.set_title(f"{group}\n{n:,} loci, {int(sub['n_bound'].iloc[0]):,} bound")
        ax.set_xticks(x, predictors, rotation=30, ha="right")
        ax.set_ylim(0, 1.08)
    axes[0].set_ylabel("average precision")
    axes[0].legend(loc="upper right", frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
