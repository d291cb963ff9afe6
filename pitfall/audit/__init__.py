"""Audit a model's cross-cell-type predictions for the pitfall (Schreiber et al. 2020).

A model that predicts activity in a cell type it never saw can look good only because it
learned each locus's *average* activity over the training cell types.
:func:`audit_predictions` puts the user's predictions next to the baselines that expose
this, on exactly the same loci and cell types, with intervals and corrected tests, and says
in plain words what the numbers mean; :func:`audit_arrays` does the same from plain arrays,
without a cube. It is a composition of:

- :mod:`pitfall.audit.reading`: predictions from a table, a DataArray, a store or a bigWig /
  bedGraph track, matched to the cube's loci by name, position or coordinates (never
  guessed: :data:`~pitfall.audit.reading.LOCI_BY`);
- :mod:`pitfall.audit.metrics`: the numbers of binary labels, from :mod:`pitfall.baselines`,
  :mod:`pitfall.evaluate`, :mod:`pitfall.random_ranking`, :mod:`pitfall.bootstrap` and
  :mod:`pitfall.multiple_testing`;
- :mod:`pitfall.audit.report` and :mod:`pitfall.audit.figure`: the verdict and
  :class:`AuditReport` (text, JSON following :func:`json_schema`, HTML, figure, CI gates).

What is computed for binary labels, per target cell type (a cell type of the predictions)
and pooled over all (cell type, locus) pairs; every AP, difference and gain comes with a
block-bootstrap interval (``level``, default 95 %: loci resampled in genomic blocks of
``block_size`` bp, ``n_bootstrap`` replicates, ``seed``; :mod:`pitfall.bootstrap`):

- ``ap_model``: average precision of the scores against the cube's labels (loci whose label
  is NaN are left out; tied scores form one threshold, as scikit-learn's
  ``average_precision_score``);
- ``ap_average_activity``: the scores of :class:`pitfall.baselines.AverageActivity` over the
  *reference* cell types (the declared training cell types, else every cube cell type but
  the target), ties grouped (the paper's and scikit-learn's number); a locus without any
  reference label gets the reference prevalence. The baseline takes few distinct values
  when it averages few cell types, and a grouped tie scores less than the same loci in a
  random order, so ``ap_average_activity_random_ties`` is its AP expected when its ties are
  broken at random (:func:`pitfall.random_ranking.expected_ap_tied`), and the model is
  compared with that: ``ap_diff`` = ``ap_model`` minus it;
- ``ap_most_similar`` (and ``_random_ties``, ``ap_diff_most_similar``): the labels of the
  reference cell type whose signal correlates best with the target's
  (:class:`pitfall.baselines.MostSimilar`, on at most 200,000 evenly spaced loci). A cube
  without signal has nothing that a model of the target could see to compare on, so the
  baseline is left out with a note;
- ``ap_random``: the expected AP of a random ranking of the scored loci (not the prevalence,
  which it exceeds in small sets);
- ``pearson_avg`` / ``spearman_avg``: correlation of the scores with the average activity;
- within groups: the scored loci are grouped by ``n_active``, the number of reference cell
  types in which the locus is active (:func:`pitfall.evaluate.partition_by_activity`).
  Inside a group the average activity is constant, so the reference is a random ranking
  of the group: the model's AP against its exact expectation
  (:func:`pitfall.random_ranking.expected_ap`), with a one-sided permutation p-value
  (labels placed at random within the group; :func:`pitfall.random_ranking.permutation_aps`)
  adjusted over the groups (Holm by default, ``adjust="bh"`` for Benjamini-Hochberg).
  ``within_group_gain`` is the mean over groups holding both classes, weighted by their
  labelled loci, of the model's AP minus that expectation; ``within_group_p`` is the
  permutation test of that weighted sum (the same placements summed over groups: no
  assumption on how the groups' p-values combine), ``within_group_p_adjusted`` that p
  adjusted over the targets. The permutations assume the loci of a group exchangeable
  under the null; the bootstrap interval of the gain is the one that respects genomic
  correlation;
- ``leakage``: the fraction of the scored loci that lie on a training chromosome and carry
  a label in a training cell type other than the target (:meth:`pitfall.splits.Split.leakage`),
  from ``train_cell_types`` and ``train_chroms`` (the other defaulting to every cube cell
  type but the target, resp. every chromosome). With neither, the audit assumes the worst
  (1.0: every scored locus seen in training) and says so. 1.0 is a cross-cell-type
  evaluation, 0.0 a hybrid one.

The verdict's rules are in :mod:`pitfall.audit.report`; continuous targets (an imputed
track of one mark) are audited by :mod:`pitfall.audit.continuous`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pitfall.audit import metrics
from pitfall.audit.arrays import audit_arrays
from pitfall.audit.metrics import Options
from pitfall.audit.reading import (
    LOCI_BY,
    AuditWarning,
    LociBy,
    Predictions,
    _warn,
    load_predictions,
    read_prediction_table,
)
from pitfall.audit.report import (
    FAIL_ON,
    AuditReport,
    classify,
    json_schema,
    verdict_text,
)
from pitfall.cube import open_cube
from pitfall.splits import cube_chroms

__all__ = [
    "FAIL_ON",
    "LOCI_BY",
    "AuditReport",
    "AuditWarning",
    "Options",
    "Predictions",
    "audit_arrays",
    "audit_predictions",
    "json_schema",
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
    html_path: str | os.PathLike | None = None,
    margin: float = 0.01,
    memorisation_threshold: float = 0.8,
    level: float = 0.95,
    n_bootstrap: int = 1000,
    block_size: int = 1_000_000,
    n_permutations: int | None = None,
    adjust: str = "holm",
    alpha: float = 0.05,
    seed: int = 0,
) -> AuditReport:
    """Audit predictions of binary labels for the cross-cell-type pitfall.

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
        Cell types the model was trained (and validated) on: the reference of the baselines
        and of the activity groups. Never a target. Default: for each target, every cube
        cell type but that target.
    train_chroms
        Chromosomes the model was trained on; with ``train_cell_types`` gives the leakage
        (neither: the worst, 1.0, is assumed and said).
    loci_by
        How a table's loci are matched to the cube's: ``"auto"`` (default), ``"name"``,
        ``"position"`` or ``"coordinates"``.
    cell_type
        The cell type of a track; for a table, keep only its rows.
    chrom_sizes
        Chromosome sizes to clip a bedGraph's windows to.
    figure, json_path, html_path
        Also save :meth:`AuditReport.plot`, :meth:`AuditReport.to_json`,
        :meth:`AuditReport.to_html` there.
    margin, memorisation_threshold
        Verdict thresholds (:mod:`pitfall.audit.report`): ``margin`` in [0, 1),
        ``memorisation_threshold`` in (-1, 1).
    level, n_bootstrap, block_size, n_permutations, adjust, alpha, seed
        Intervals and tests (:class:`pitfall.audit.metrics.Options`).

    Returns
    -------
    AuditReport

    Raises
    ------
    ValueError
        Missing or ambiguous locus columns, no matching locus or cell type, duplicated
        (locus, cell type) pairs, a training cell type or chromosome absent from the cube,
        a target among the training cell types, an empty training list, thresholds out of
        range, no labelled positive among a target's scored loci.

    Warns
    -----
    AuditWarning
        Unknown loci or cell types (dropped), NaN scores (dropped), scores at loci without a
        label (left out), constant scores (AP = prevalence).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from pitfall.audit import audit_predictions
    >>> rng = np.random.default_rng(0)
    >>> labels = (rng.random((5, 400)) < 0.3).astype("float32")
    >>> cube = xr.Dataset(
    ...     {"label": (("cell_type", "locus"), labels)},
    ...     coords={"cell_type": ["A", "B", "C", "D", "T"], "locus": np.arange(400),
    ...             "chrom": ("locus", ["chr1"] * 200 + ["chr2"] * 200),
    ...             "start": ("locus", np.arange(400) * 10_000)},
    ... )
    >>> scores = xr.DataArray(labels[:4].mean(0)[None], dims=("cell_type", "locus"),
    ...                       coords={"cell_type": ["T"], "locus": np.arange(400)})
    >>> report = audit_predictions(scores, cube, train_cell_types=["A", "B", "C", "D"],
    ...                            n_bootstrap=200)
    >>> report.call  # the scores are the training cell types' average activity itself
    'memorising'
    """
    options = Options(
        level=level,
        n_bootstrap=n_bootstrap,
        block_size=block_size,
        n_permutations=n_permutations,
        adjust=adjust,
        alpha=alpha,
        seed=seed,
    )
    ds = prepare(
        cube,
        options,
        margin,
        memorisation_threshold,
        figure=figure,
        json_path=json_path,
        html_path=html_path,
    )
    cube_cts = [str(c) for c in ds["cell_type"].values]
    train_cell_types = _check_names(train_cell_types, cube_cts, "training cell type")
    if train_chroms is not None:
        train_chroms = _check_names(train_chroms, cube_chroms(ds), "training chromosome")
    preds = load_predictions(
        predictions, ds, loci_by=loci_by, cell_type=cell_type, chrom_sizes=chrom_sizes
    )
    if train_cell_types is not None:
        among = [t for t in preds.targets if t in train_cell_types]
        if among:
            raise ValueError(
                f"target cell type(s) {among} are among the training cell types: a model "
                "audited across cell types never saw its target, and the baselines would "
                "average the target's own labels; remove them from train_cell_types "
                "(CLI: --train-cell-types)"
            )
    log = preds.log
    declared = train_cell_types is not None or train_chroms is not None
    refs = {t: train_cell_types or [c for c in cube_cts if c != t] for t in preds.targets}
    for t, r in refs.items():
        if not r:
            raise ValueError(f"no reference cell type other than the target {t} to average over")
    parts: list[metrics.TargetScores] = []
    targets, matched_by = preds.targets, preds.loci_by
    for t in targets:
        pos, s = preds.scores(t)
        ts = metrics.score_target(
            ds, t, pos, s, refs[t], train_chroms=train_chroms, options=options
        )
        if not declared:
            ts.leaked = float(pos.size)
        _check_target(ts, lambda msg: _warn(msg, log))
        parts.append(ts)
        del pos, s
    # the matched table (or arrays) is not needed past here: at 14 M loci it is large
    del preds
    rows, groups, curves = metrics.score_all(parts, options)
    notes = [n for ts in parts for n in ts.notes]
    settings = {
        "margin": margin,
        "memorisation_threshold": memorisation_threshold,
        "level": options.level,
        "n_bootstrap": options.n_bootstrap,
        "blocks": f"{options.block_size:,} bp genomic blocks"
        if "start" in ds.coords
        else f"blocks of {options.block_loci} consecutive loci",
        "block_size": options.block_size,
        "n_permutations": options.permutations_for(max(r["n_groups_tested"] for r in rows)),
        "adjust": options.adjust,
        "alpha": options.alpha,
        "seed": options.seed,
        "targets": targets,
        "loci_by": matched_by,
        "reference_cell_types": refs,
        "train_cell_types": train_cell_types,
        "train_chroms": train_chroms,
        "leakage_declared": declared,
        "similarity_on": "signal" if "signal" in ds else None,
        "cube_snapshot": ds.attrs.get("snapshot"),
    }
    report = _finish_binary(
        rows, groups, curves, settings, log, notes, margin, memorisation_threshold
    )
    report.save(figure=figure, json_path=json_path, html_path=html_path)
    return report


def _finish_binary(
    rows: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    curves: metrics.Curves,
    settings: dict[str, Any],
    log: list[str],
    notes: list[str],
    margin: float,
    threshold: float,
) -> AuditReport:
    """The report of a binary audit: calls, verdict, flags and the curves of the figure."""
    for row in rows:
        row["call"] = classify(row, margin, threshold, settings["alpha"])
    pooled_row = rows[-1]
    return AuditReport(
        summary=pd.DataFrame(rows),
        partitions=pd.DataFrame(groups),
        verdict=verdict_text(pooled_row, settings),
        memorising=pooled_row["call"] == "memorising",
        beats_baseline=pooled_row["call"] in ("cell-type-specific", "between groups only"),
        beats_within_groups=pooled_row["call"] in ("cell-type-specific", "within groups only"),
        leakage=float(pooled_row["leakage"]),
        leakage_declared=bool(settings["leakage_declared"]),
        kind="binary",
        warnings=log,
        notes=notes,
        settings=settings,
        curves={"pr": {metrics.BASELINE_LABELS.get(k, k): c for k, c in curves.items()}},
    )


def prepare(
    cube: str | os.PathLike | xr.Dataset,
    options: Options,
    margin: float,
    memorisation_threshold: float,
    **outputs: str | os.PathLike | None,
) -> xr.Dataset:
    """Every argument checked before any work, then the cube opened with its integer
    ``locus`` coordinate (what each audit path starts with)."""
    options.check()
    check_thresholds(margin, memorisation_threshold)
    check_outputs(**outputs)
    ds = cube if isinstance(cube, xr.Dataset) else open_cube(cube)
    if "locus" not in ds.coords or ds["locus"].dtype.kind not in "iu":
        ds = ds.assign_coords(locus=np.arange(ds.sizes["locus"]))
    return ds


def check_thresholds(margin: float, memorisation_threshold: float) -> None:
    """Refuse verdict thresholds under which a gate could never fire (or always would)."""
    if not (isinstance(margin, float | int) and math.isfinite(margin) and 0 <= margin < 1):
        raise ValueError(f"margin must be a number in [0, 1) (AP units), got {margin!r}")
    t = memorisation_threshold
    if not (isinstance(t, float | int) and math.isfinite(t) and -1 < t < 1):
        raise ValueError(
            f"memorisation_threshold must lie in (-1, 1) (a Spearman correlation), got {t!r}"
        )


def check_outputs(**paths: str | os.PathLike | None) -> None:
    """Refuse, before any work, a report path that names a folder (argument: path)."""
    flags = {"figure": "--figure", "json_path": "--json", "html_path": "--html"}
    for arg, path in paths.items():
        if path is not None and Path(path).is_dir():
            raise ValueError(
                f"{path} is a folder: name a file to write the report to ({arg}=, CLI "
                f"{flags.get(arg, arg)})"
            )


def _check_names(
    names: Sequence[str] | None, present: Sequence[str], what: str
) -> list[str] | None:
    """Names as strings, duplicates dropped, each present; an empty list is refused."""
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    out = list(dict.fromkeys(str(c).strip() for c in names if str(c).strip()))
    if not out:
        raise ValueError(
            f"the list of {what}s is empty: give at least one, or leave it out to let the "
            "audit assume the worst"
        )
    absent = [c for c in out if c not in set(present)]
    if absent:
        shown = ", ".join(list(present)[:12]) + (", ..." if len(present) > 12 else "")
        raise ValueError(f"{what}(s) {absent} are not in the cube (it has {shown})")
    return out


def _check_target(ts: metrics.TargetScores, warn: Any) -> None:
    """Warn about unlabelled loci and constant scores; refuse a target without positives."""
    unlabelled = ts.y < 0
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
