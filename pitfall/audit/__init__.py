"""Audit a model's cross-cell-type predictions for the pitfall (Schreiber et al. 2020).

A model that predicts activity in a cell type it never saw can look good only because it
learned each locus's *average* activity over the training cell types.
:func:`audit_predictions` puts the user's predictions next to the baselines that expose
this, on exactly the same loci and cell types, and says in plain words what the numbers
mean. It is a composition of three modules:

- :mod:`pitfall.audit.reading`: predictions from a table, a DataArray, a store or a bigWig /
  bedGraph track, matched to the cube's loci by name, position or coordinates (never
  guessed: :data:`~pitfall.audit.reading.LOCI_BY`);
- :mod:`pitfall.audit.metrics`: the numbers, from :mod:`pitfall.baselines`,
  :mod:`pitfall.evaluate` and :class:`pitfall.splits.Split`;
- :mod:`pitfall.audit.report`: the verdict and :class:`AuditReport` (text, JSON, HTML,
  figure, CI gates).

What is computed, per target cell type (a cell type of the predictions) and pooled over all
(cell type, locus) pairs:

- ``ap_model``: average precision of the scores against the cube's labels (loci whose label
  is NaN are left out; tied scores form one threshold, as scikit-learn's
  ``average_precision_score``);
- ``ap_average_activity``: the scores of :class:`pitfall.baselines.AverageActivity` over the
  *reference* cell types: the user's ``train_cell_types`` minus the target if given, else
  every cube cell type except the target (only the target is excluded, also when several
  are scored); a locus without any reference label gets the reference cell types'
  prevalence there;
- ``ap_most_similar``: :class:`pitfall.baselines.MostSimilar`, the labels of the reference
  cell type most similar to the target. Similarity is the Pearson correlation of the
  ``signal`` (all marks, flattened; at most 200,000 evenly spaced loci) when the cube has
  signal, otherwise of the *labels* over the loci **not** scored for the target (labels the
  user could have trained on); without such loci the baseline is unavailable (NaN). NaN
  labels of the chosen cell type get its prevalence;
- ``ap_random``: :class:`pitfall.baselines.RandomScores` (a constant: its AP is the
  prevalence);
- ``pearson_avg`` / ``spearman_avg``: correlation of the scores with the average activity;
- the partitioned evaluation (:func:`pitfall.evaluate.partitioned_evaluation`): scored loci
  grouped by ``n_active``, the number of reference cell types in which the locus is active
  (:func:`pitfall.evaluate.partition_by_activity`), and within each group the AP of the model
  and of the average-activity baseline. The test per group is the one-sided Mann-Whitney U
  test ``scipy.stats.mannwhitneyu(model scores at the group's active loci, model scores at
  its inactive loci, alternative="greater")``: does the model rank the group's active loci
  above its inactive ones? The average-activity baseline is constant within a group
  (exactly so when the reference labels have no NaN), so it cannot. ``auroc_model`` =
  U / (n_active_loci * n_inactive_loci) and ``auroc_baseline`` (0.5 when constant);
- ``within_group_gain``: the mean over groups holding both classes, weighted by labelled
  loci, of ``ap_model - ap_average_activity``; ``within_group_p`` the Stouffer combination
  (weights sqrt(n_loci)) of the groups' p-values;
- ``leakage`` (when ``train_cell_types`` or ``train_chroms`` is given, the other defaulting
  to every cube cell type but the target, resp. every chromosome):
  :meth:`pitfall.splits.Split.leakage` over the scored loci, the fraction that lie on a
  training chromosome and carry a label in a training cell type other than the target. 1.0
  is a cross-cell-type evaluation, 0.0 a hybrid one.

The verdict's rules are in :mod:`pitfall.audit.report`. Leakage, when known and above 0, is
added to the verdict as a warning that the evaluation is cross-cell-type (memorisation pays
there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pitfall.audit import metrics
from pitfall.audit.reading import (
    LOCI_BY,
    AuditWarning,
    LociBy,
    Predictions,
    _warn,
    load_predictions,
    read_prediction_table,
)
from pitfall.audit.report import FAIL_ON, AuditReport, classify, verdict_text
from pitfall.cube import open_cube

__all__ = [
    "FAIL_ON",
    "LOCI_BY",
    "AuditReport",
    "AuditWarning",
    "Predictions",
    "audit_predictions",
    "load_predictions",
    "read_prediction_table",
]


def audit_predictions(
    predictions: Any,
    cube: str | os.PathLike | xr.Dataset,
    *,
    train_cell_types: Sequence[str] | None = None,
    train_chroms: Sequence[str] | None = None,
    loci_by: LociBy = "auto",
    cell_type: str | None = None,
    chrom_sizes: Mapping[str, int] | str | os.PathLike | None = None,
    figure: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    margin: float = 0.01,
    memorisation_threshold: float = 0.8,
) -> AuditReport:
    """Audit predictions for the cross-cell-type pitfall.

    Parameters
    ----------
    predictions
        A table (DataFrame or a TSV/CSV/Parquet path), a DataArray with dims
        ``(cell_type, locus)`` (or a NetCDF / Zarr store holding one), a bigWig / bedGraph
        track of one cell type's scores (with ``cell_type``), or a mapping
        ``{cell_type: track}``: see :mod:`pitfall.audit.reading`. Each cell type of the
        predictions is a target.
    cube
        The cube's path or the opened Dataset (:func:`pitfall.open_cube`).
    train_cell_types
        Cell types the model was trained on: the reference of the baselines and of the
        activity groups (minus the target). Default: every cube cell type except the target.
    train_chroms
        Chromosomes the model was trained on; with ``train_cell_types`` gives the leakage.
    loci_by
        How a table's loci are matched to the cube's: ``"auto"`` (default), ``"name"``,
        ``"position"`` or ``"coordinates"``.
    cell_type
        The cell type of a track; for a table, keep only its rows.
    chrom_sizes
        Chromosome sizes to clip a bedGraph's windows to.
    figure, json_path
        Also save :meth:`AuditReport.plot` / :meth:`AuditReport.to_json` there.
    margin, memorisation_threshold
        Verdict thresholds (:mod:`pitfall.audit.report`).

    Returns
    -------
    AuditReport

    Raises
    ------
    ValueError
        Missing or ambiguous locus columns, no matching locus or cell type, duplicated
        (locus, cell type) pairs, a training cell type or chromosome absent from the cube,
        no labelled positive among a target's scored loci.

    Warns
    -----
    AuditWarning
        Unknown loci or cell types (dropped), NaN scores (dropped), scores at loci without a
        label (left out), constant scores (AP = prevalence).
    """
    ds = cube if isinstance(cube, xr.Dataset) else open_cube(cube)
    if "locus" not in ds.coords or ds["locus"].dtype.kind not in "iu":
        ds = ds.assign_coords(locus=np.arange(ds.sizes["locus"]))
    cube_cts = [str(c) for c in ds["cell_type"].values]
    if train_cell_types is not None:
        train_cell_types = [str(c) for c in train_cell_types]
        absent = [c for c in train_cell_types if c not in cube_cts]
        if absent:
            raise ValueError(f"training cell type(s) {absent} are not in the cube")
    if train_chroms is not None:
        train_chroms = [str(c) for c in train_chroms]
        chroms = set(pd.unique(np.asarray(ds["chrom"].values).astype(object)))
        absent = sorted(set(train_chroms) - chroms)
        if absent:
            raise ValueError(f"training chromosome(s) {absent} are not in the cube")
    preds = load_predictions(
        predictions, ds, loci_by=loci_by, cell_type=cell_type, chrom_sizes=chrom_sizes
    )
    log = preds.log

    def warn(msg: str) -> None:
        _warn(msg, log)

    parts: list[metrics.TargetScores] = []
    refs_used: dict[str, list[str]] = {}
    for t in preds.targets:
        refs = [c for c in (train_cell_types or cube_cts) if c != t]
        if not refs:
            raise ValueError(f"no reference cell type other than the target {t} to average over")
        refs_used[t] = refs
        pos, s = preds.scores(t)
        ts = metrics.score_target(
            ds, t, pos, s, refs,
            train_cell_types=train_cell_types, train_chroms=train_chroms, warn=warn,
        )  # fmt: skip
        _check_target(ts, warn)
        parts.append(ts)
    pooled = metrics.pool(parts)
    rows, part_rows = [], []
    for ts in [*parts, pooled]:
        prows = metrics.partition_rows(ts)
        row = metrics.summary_row(ts, prows)
        row["call"] = classify(row, margin, memorisation_threshold)
        rows.append(row)
        part_rows += prows
    pooled_row = rows[-1]
    leak = None if pooled.leaked is None else pooled_row["leakage"]
    keep = ~np.isnan(pooled.y)
    report = AuditReport(
        summary=pd.DataFrame(rows),
        partitions=pd.DataFrame(part_rows),
        verdict=verdict_text(pooled_row, leak),
        memorising=pooled_row["call"] == "memorising",
        beats_baseline=bool(pooled_row["ap_model"] > pooled_row["ap_average_activity"] + margin),
        beats_within_groups=pooled_row["call"] in ("cell-type-specific", "within groups only"),
        leakage=leak,
        warnings=log,
        settings={
            "margin": margin,
            "memorisation_threshold": memorisation_threshold,
            "targets": preds.targets,
            "loci_by": preds.loci_by,
            "reference_cell_types": refs_used,
            "train_cell_types": train_cell_types,
            "train_chroms": train_chroms,
            "similarity_on": "signal" if "signal" in ds else "label (unscored loci)",
            "cube_snapshot": ds.attrs.get("snapshot"),
        },
        curves={
            "y": pooled.y[keep],
            "scores": {
                "model": pooled.model[keep],
                "average activity": pooled.average_activity[keep],
                "most similar cell type": None
                if pooled.most_similar is None
                else pooled.most_similar[keep],
            },
        },
    )
    if json_path is not None:
        report.to_json(json_path)
    if figure is not None:
        report.plot(figure)
    return report


def _check_target(ts: metrics.TargetScores, warn: Any) -> None:
    """Warn about unlabelled loci and constant scores; refuse a target without positives."""
    unlabelled = np.isnan(ts.y)
    if unlabelled.any():
        warn(
            f"{ts.name}: {int(unlabelled.sum())} of {len(ts.y)} scored loci have no label in "
            "the cube and are left out of every metric"
        )
    known = ts.y[~unlabelled]
    if not np.any(known == 1):
        raise ValueError(f"{ts.name}: no scored locus is labelled active; AP is undefined")
    if np.ptp(ts.model) == 0:
        warn(
            f"{ts.name}: all {len(ts.model)} scores are equal ({ts.model[0]:g}); the AP equals "
            f"the prevalence ({np.mean(known == 1):.3f})"
        )
