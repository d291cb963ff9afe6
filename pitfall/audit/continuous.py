"""Audit an imputed track (one mark in one cell type) for the cross-cell-type pitfall.

An imputation model that predicts a mark in a cell type it never saw can score well only
because it learned each bin's *average* signal over the training cell types: in the ENCODE
Imputation Challenge the "Average" baseline ranked second of 24 teams. :func:`audit_track`
puts the imputed track next to the baselines that expose this, on exactly the same bins,
with the challenge's nine metrics, block-bootstrap intervals and corrected tests, and says
in plain words what the numbers mean. Its parts live beside it: the prediction and the
annotation masks on the cube's bins in :mod:`pitfall.audit.track_inputs`, the within-decile
tests in :mod:`pitfall.audit.track_tests`, the figure in :mod:`pitfall.audit.track_figure`.

Inputs
------
The prediction is a bigWig or bedGraph of the predicted *raw* signal, featurized with the
cube's own recipe (:func:`pitfall.audit.track_inputs.featurize_track`), so a bigWig of the
observed track gives the cube's values bin for bin; or a table (columns ``locus`` +
``score``, matched as :mod:`pitfall.audit.reading` matches binary predictions) or a
DataArray over ``locus``, whose values are already on the cube's scale. The truth is
``cube.signal.sel(cell_type=cell_type, mark=mark)``. A bin is *scored* where the observed
value, the prediction and the Average are all defined.

Baselines (on the scored bins)
------------------------------
- **Average**: per bin, the mean of the mark over the *reference* cell types that have it
  (the declared ``train_cell_types``, else every cube cell type but the target): the
  challenge's Average, the paper's average activity;
- **most similar**: the track of the reference cell type (with the mark) whose *other*
  marks correlate best with the target's other marks (Pearson over bins and marks, at most
  :data:`pitfall.audit.metrics.MAX_SIMILARITY_LOCI` evenly spaced bins,
  :class:`pitfall.baselines.MostSimilar`). The target's own track of the mark is never
  read: it is what the model predicts. Left out, with a note, when the target has no
  other observed mark;
- **zero**: 0 everywhere (the correlations are undefined for it).

Metrics
-------
The nine metrics of the challenge (:data:`pitfall.track_metrics.METRICS`, definitions in
:mod:`pitfall.track_metrics`) for the model and every baseline: ``mse``, ``gwcorr``,
``gwspear``, ``mse1obs``, ``mse1imp``, ``mseprom``, ``msegene`` and ``mseenh`` (bins whose
signal window overlaps a promoter, a gene body or an enhancer, from ``genes`` and
``enhancers``: :func:`pitfall.audit.track_inputs.region_masks`), ``msevar`` (squared errors
weighted by the bin's *population* variance of the mark across the reference cell types
that have it, the challenge's ``numpy.std(...) ** 2``; it weights bins where cell types
differ, where memorising the average pays least). A region metric is NaN, with a note, when
its annotation is not given. ``gwcorr`` and ``gwspear`` are higher-is-better, the others
lower-is-better (:data:`pitfall.track_metrics.LOWER_IS_BETTER`).

Intervals
---------
Every metric of the model and of each baseline, and the model minus the Average, has a
block-bootstrap percentile interval (``level``, default 95 %): the scored bins are cut into
genomic blocks of ``block_size`` bp (:func:`pitfall.bootstrap.block_keys`),
``n_bootstrap`` replicates draw as many blocks with replacement (``seed``;
:func:`pitfall.bootstrap.block_weights`), and each replicate's metrics come from summed
per-block statistics (:func:`pitfall.track_metrics.block_statistics`,
:func:`~pitfall.track_metrics.metrics_from_statistics`). The model and its baselines share
each replicate's blocks, so differences are paired. What the bootstrap holds fixed: the
predictions and the baselines themselves (the Average, the chosen most-similar cell type,
the variance weights and the deciles are computed once, on the full data: the bootstrap
resamples bins, not cell types); the annotation masks; and, for ``gwspear``, ``mse1obs``
and ``mse1imp``, the full track's ranks and top-1 % thresholds (a plug-in approximation,
:mod:`pitfall.track_metrics`).

Partitions and tests
--------------------
The scored bins are grouped into deciles of the mark's variance across the reference cell
types; per decile, the *residual correlation* of (prediction - Average) with
(observed - Average) is tested by permutation and adjusted over the deciles (``adjust``:
Holm by default, ``"bh"`` for Benjamini-Hochberg; :mod:`pitfall.audit.track_tests`). A
model that only memorises the average has about 0; one that captures how the target departs
from the average, more. ``within_group_gain`` is the mean of the tested deciles' residual
correlations weighted by their bins, with a block-bootstrap interval; ``within_group_p`` the
permutation test of that weighted sum; ``within_group_p_adjusted`` equals it (one target).
``spearman_avg`` (and ``pearson_avg``) is the correlation of the prediction with the
Average.

Verdict
-------
The calls of binary audits (:mod:`pitfall.audit.report`), decided on the intervals and the
corrected tests (:func:`classify_track`):

- ``beats`` = the Average's mse minus the model's is positive, the lower end of its
  interval is above 0, and the relative improvement ``1 - mse_model / mse_average``
  exceeds ``margin``;
- ``within`` = ``within_group_gain`` (a correlation) exceeds ``margin`` and
  ``within_group_p_adjusted < alpha``;
- beats and within: ``"cell-type-specific"``; within only: ``"within groups only"``; not
  within and ``spearman_avg > memorisation_threshold``: ``"memorising"``; otherwise
  ``"between groups only"`` (beats) or ``"no gain"``.

``leakage`` is the fraction of the scored bins on a training chromosome whose mark is
observed in a reference cell type (``train_cell_types`` / ``train_chroms``, either
defaulting to all); with neither declared the audit assumes the worst, 1.0, and says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from pitfall import bootstrap
from pitfall import track_metrics as tm
from pitfall.audit import _check_names, prepare
from pitfall.audit.metrics import MAX_SIMILARITY_LOCI, Options, correlations
from pitfall.audit.reading import LociBy, _warn
from pitfall.audit.report import AuditReport, _ci, _p, call_of, leakage_sentence
from pitfall.audit.track_inputs import _prediction, feature_window, region_masks
from pitfall.audit.track_tests import N_GROUPS, bootstrap_gain, residual_correlations
from pitfall.baselines import track_similarity
from pitfall.multiple_testing import adjust_pvalues
from pitfall.splits import cube_chroms

__all__ = [
    "BASELINES",
    "DECILE_CAPTION",
    "DECILE_COLUMNS",
    "audit_track",
    "classify_track",
    "footer_text",
    "summary_table",
]

#: The baselines of a continuous audit, by key, with their names in tables and figures.
BASELINES: dict[str, str] = {
    "average": "Average",
    "most_similar": "most similar cell type",
    "zero": "zero",
}
#: Bins kept (evenly spaced) in the report's ``curves``, the figure's density plots.
MAX_CURVE_BINS = 200_000


# --------------------------------------------------------------------------------------------
# The metrics of every predictor, with intervals


def _interval(reps: np.ndarray, level: float) -> list[float]:
    low, high = bootstrap.percentile_interval(reps, level)
    return [float(low), float(high)]


def _metric_table(
    observed: np.ndarray,
    predictors: Mapping[str, np.ndarray | None],
    *,
    regions: Mapping[str, np.ndarray],
    variance: np.ndarray,
    local_blocks: np.ndarray,
    weights: np.ndarray,
    level: float,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, np.ndarray]]]:
    """Every metric of every predictor with its interval, and the model minus the Average.

    Returns
    -------
    metrics : dict
        Metric name -> the schema's object (``model``, ``model_ci``, ``average``,
        ``average_ci``, ``most_similar``, ``most_similar_ci``, ``zero``, ``zero_ci``,
        ``diff_average``, ``diff_average_ci``, ``lower_is_better``).
    replicates : dict
        Predictor -> metric -> replicates, shape (R,).
    """
    n_blocks = weights.shape[1]
    points: dict[str, dict[str, float]] = {}
    reps: dict[str, dict[str, np.ndarray]] = {}
    for key, pred in predictors.items():
        if pred is None:
            continue
        stats = tm.block_statistics(
            observed, pred, local_blocks, n_blocks, regions=regions, variance=variance
        )
        points[key] = {
            m: float(v) for m, v in tm.metrics_from_statistics(stats.sum(axis=0)).items()
        }
        reps[key] = {
            m: np.asarray(v) for m, v in tm.metrics_from_statistics(weights @ stats).items()
        }
    nan2 = [float("nan"), float("nan")]
    out: dict[str, dict[str, Any]] = {}
    for m in tm.METRICS:
        entry: dict[str, Any] = {}
        for key in ("model", *BASELINES):
            if key in points:
                entry[key] = points[key][m]
                entry[f"{key}_ci"] = _interval(reps[key][m], level)
            else:
                entry[key], entry[f"{key}_ci"] = float("nan"), nan2
        entry["diff_average"] = entry["model"] - entry["average"]
        entry["diff_average_ci"] = _interval(reps["model"][m] - reps["average"][m], level)
        entry["lower_is_better"] = m in tm.LOWER_IS_BETTER
        out[m] = entry
    return out, reps


# --------------------------------------------------------------------------------------------
# The audit


@dataclass
class _Target:
    """The target's tracks over every cube locus (float64, shape (n_locus,)) and notes."""

    observed: np.ndarray
    average: np.ndarray
    variance: np.ndarray
    n_observed_refs: np.ndarray
    average_cell_types: list[str]
    most_similar: np.ndarray | None = None
    most_similar_name: str | None = None
    most_similar_r: float = float("nan")
    similarity_on: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _check_target(ds: xr.Dataset, cell_type: str, mark: str) -> None:
    cts = [str(c) for c in ds["cell_type"].values]
    if "signal" not in ds or "mark" not in ds["signal"].dims:
        raise ValueError(
            "the cube holds no signal (cell_type, locus, mark): a continuous audit compares a "
            "predicted track with an observed one"
        )
    marks = [str(m) for m in ds["mark"].values]
    if cell_type not in cts:
        shown = ", ".join(cts[:12]) + (", ..." if len(cts) > 12 else "")
        raise ValueError(
            f"cell type {cell_type!r} is not in the cube (it has {shown}): its {mark} cannot "
            "be audited"
        )
    if mark not in marks:
        raise ValueError(
            f"mark {mark!r} is not in the cube (it has {', '.join(marks)}); cell type "
            f"{cell_type!r} cannot be audited on it"
        )


def _tracks(ds: xr.Dataset, cell_type: str, mark: str, refs: list[str]) -> _Target:
    """Observed track, the Average and the variance over the references, in one pass."""
    sig = ds["signal"]
    ref = sig.sel(cell_type=refs, mark=mark).astype(np.float64)
    present = ref.notnull()
    observed, total, squares, count, has_mark, target_marks = dask.compute(
        sig.sel(cell_type=cell_type, mark=mark),
        ref.fillna(0.0).sum("cell_type"),
        (ref * ref).fillna(0.0).sum("cell_type"),
        present.sum("cell_type"),
        present.any("locus"),
        sig.sel(cell_type=cell_type).notnull().any("locus"),
    )
    observed = np.asarray(observed.values, dtype=np.float64)
    if not np.isfinite(observed).any():
        with_mark = [
            str(c)
            for c, ok in zip(
                ds["cell_type"].values,
                sig.sel(mark=mark).notnull().any("locus").values,
                strict=True,
            )
            if ok
        ]
        raise ValueError(
            f"cell type {cell_type!r} has no observed {mark} track in the cube (all NaN): "
            f"nothing to compare the prediction with (observed in: "
            f"{', '.join(with_mark) or 'none'})"
        )
    average_cts = [c for c, ok in zip(refs, has_mark.values, strict=True) if ok]
    if not average_cts:
        raise ValueError(
            f"no training cell type has the mark {mark} ({', '.join(refs)}): the Average "
            "baseline cannot be computed"
        )
    count = np.asarray(count.values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        average = np.where(count > 0, np.asarray(total.values) / count, np.nan)
        # Population variance, as the challenge's numpy.std(...) ** 2 (E[x^2] - E[x]^2
        # loses nothing that matters on arcsinh-scale values).
        variance = np.maximum(np.asarray(squares.values) / count - average**2, 0.0)
    variance = np.where(count > 0, variance, np.nan)
    notes = []
    lacking = [c for c in refs if c not in average_cts]
    if lacking:
        notes.append(
            f"training cell type(s) {', '.join(lacking)} have no {mark} track: left out of "
            "the Average, the variance and the most-similar candidates"
        )
    if len(average_cts) == 1:
        notes.append(
            f"only one training cell type ({average_cts[0]}) has {mark}: its variance across "
            "cell types is 0 everywhere, so msevar is undefined and the deciles of variance "
            "carry no information"
        )
    other = [
        str(m)
        for m, ok in zip(target_marks["mark"].values, target_marks.values, strict=True)
        if ok and str(m) != mark
    ]
    target = _Target(observed, average, variance, count, average_cts, notes=notes)
    _most_similar(ds, cell_type, mark, other, target)
    return target


def _most_similar(
    ds: xr.Dataset, cell_type: str, mark: str, other: list[str], target: _Target
) -> None:
    """Choose the reference with the mark whose other marks correlate best with the target's."""
    if not other:
        target.notes.append(
            f"{cell_type}: the most-similar baseline is left out: the target has no observed "
            f"mark other than {mark} to compare cell types on (its own {mark} track is what "
            "the model predicts)"
        )
        return
    n = ds.sizes["locus"]
    loci = np.arange(n)
    if n > MAX_SIMILARITY_LOCI:
        loci = np.linspace(0, n - 1, MAX_SIMILARITY_LOCI).astype(np.int64)
    sims = track_similarity(ds, cell_type, target.average_cell_types, other, loci)
    finite = {c: r for c, r in sims.items() if math.isfinite(r)}
    if not finite:
        target.notes.append(
            f"{cell_type}: the most-similar baseline is left out: no training cell type with "
            f"{mark} shares an observed mark with the target ({', '.join(other)}) that "
            "correlates with it"
        )
        return
    best = max(finite, key=lambda c: finite[c])
    values = ds["signal"].sel(cell_type=best, mark=mark).values
    target.most_similar = np.asarray(values, dtype=np.float64)
    target.most_similar_name = best
    target.most_similar_r = float(finite[best])
    target.similarity_on = other


def classify_track(row: Mapping[str, Any], margin: float, threshold: float, alpha: float) -> str:
    """The verdict's call of a continuous summary row (rules in the module docstring)."""
    gain, (low, _) = row["mse_gain"], row["mse_gain_ci"]
    beats = bool(gain > 0 and low > 0 and row["mse_relative_gain"] > margin)
    within = bool(row["within_group_gain"] > margin and row["within_group_p_adjusted"] < alpha)
    return call_of(beats, within, row["spearman_avg"], threshold)


def _verdict(row: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The plain-language verdict of a continuous summary row with its ``call``."""
    call = row["call"]
    mse = row["metrics"]["mse"]
    corr = row["metrics"]["gwcorr"]
    what = f"the imputed {row['mark']} of {row['cell_type']}"
    numbers = (
        f"mse {mse['model']:.4g} {_ci(mse['model_ci'], '.4g')} vs the Average's "
        f"{mse['average']:.4g} {_ci(mse['average_ci'], '.4g')}, improvement "
        f"{row['mse_gain']:+.4g} {_ci(row['mse_gain_ci'], '+.4g')} "
        f"({row['mse_relative_gain']:+.1%}); gwcorr {corr['model']:.3f} "
        f"{_ci(corr['model_ci'])} vs {corr['average']:.3f} {_ci(corr['average_ci'])}"
    )
    if call in ("cell-type-specific", "between groups only"):
        head = f"{what} beats the Average baseline: {numbers}"
    elif row["mse_gain_ci"][1] < 0:
        head = f"{what} falls short of the Average baseline: {numbers}"
    else:
        head = f"{what} does not beat the Average baseline: {numbers}"
    gain, gain_ci = row["within_group_gain"], row["within_group_gain_ci"]
    adjust = "Benjamini-Hochberg" if settings["adjust"] == "bh" else "Holm"
    if math.isnan(gain):
        g = "no decile has a defined residual correlation"
    else:
        g = (
            f"residual correlation {gain:+.3f} {_ci(gain_ci, '+.3f')}, permutation p = "
            f"{_p(row['within_group_p_adjusted'])}; {row['n_groups_significant']} of "
            f"{row['n_groups_tested']} deciles significant after {adjust} correction"
        )
    rho = row["spearman_avg"]
    within = "within deciles of cross-cell-type variance"
    if call == "memorising":
        text = (
            f"{head}; {within} it does not follow the target's departures from the Average "
            f"({g}); its values correlate {rho:.2f} (Spearman) with the Average over the "
            "training cell types: likely memorising the mark's average track"
        )
    elif call == "no gain":
        text = (
            f"{head}; its values correlate {rho:.2f} (Spearman) with the Average and do not "
            f"follow the target's departures from it {within} ({g}): it adds nothing over "
            "the baseline"
        )
    elif call == "cell-type-specific":
        text = (
            f"{head}, and {within} it follows the target's departures from the Average ({g}): "
            "learns cell-type-specific signal"
        )
    elif call == "within groups only":
        text = (
            f"{head}, but {within} it follows the target's departures from the Average ({g}): "
            "it learns cell-type-specific signal the baseline lacks, yet misses the bin-level "
            "signal the baseline has (combining both may help)"
        )
    else:
        text = (
            f"{head}, but does not follow the target's departures from the Average {within} "
            f"({g}): the gain comes from the bins' average level, not from cell-type-specific "
            "signal"
        )
    text += (
        f". The call rests on {settings['level']:.0%} block-bootstrap intervals and the "
        "corrected tests"
    )
    return text + ". " + leakage_sentence(row["leakage"], settings["leakage_declared"])


def audit_track(
    prediction: Any,
    cube: str | os.PathLike | xr.Dataset,
    *,
    cell_type: str,
    mark: str,
    train_cell_types: Sequence[str] | None = None,
    train_chroms: Sequence[str] | None = None,
    loci_by: LociBy = "auto",
    chrom_sizes: Mapping[str, int] | str | os.PathLike | None = None,
    genes: str | os.PathLike | None = None,
    enhancers: str | os.PathLike | None = None,
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
    """Audit an imputed track of one mark in one cell type (module docstring).

    Parameters
    ----------
    prediction
        A bigWig / bedGraph path of the raw predicted signal (featurized with the cube's
        recipe, :func:`pitfall.audit.track_inputs.featurize_track`); a table (DataFrame or
        TSV/CSV/Parquet path: ``locus`` + ``score``, or chrom/start/end + ``score``; a
        cell-type column, if any, is filtered on ``cell_type``) or a DataArray over ``locus``
        (or ``(cell_type, locus)``), or a numpy array over every locus, already on the cube's
        scale.
    cube
        The cube's path or the opened Dataset, with ``signal`` (cell_type, locus, mark).
    cell_type, mark
        The target: the cell type and the mark the prediction imputes.
    train_cell_types
        Cell types the model was trained (and validated) on: the reference of the baselines
        and of the variance. Never the target. Default: every cube cell type but the target.
    train_chroms
        Chromosomes the model was trained on, for the leakage.
    loci_by
        How a table's loci are matched to the cube's (:mod:`pitfall.audit.reading`).
    chrom_sizes
        Chromosome sizes to clip a bedGraph's windows to.
    genes
        GTF or BED6 of genes: ``msegene`` and ``mseprom``.
    enhancers
        BED of enhancers: ``mseenh``.
    figure, json_path, html_path
        Also save the figure (PNG), the JSON and the HTML page there.
    margin
        In [0, 1): the relative mse improvement over the Average to call "beats", and the
        within-decile residual correlation to call "within".
    memorisation_threshold
        In (-1, 1): the Spearman correlation with the Average above which a model without a
        within-decile gain is called memorising.
    level, n_bootstrap, block_size, n_permutations, adjust, alpha, seed
        Intervals and tests (:class:`pitfall.audit.metrics.Options`).

    Returns
    -------
    AuditReport
        ``kind="continuous"``; summary rows (the target, then ``"pooled"``, equal), per-decile
        ``partitions``, the verdict, the figure's data in ``curves``.

    Raises
    ------
    ValueError
        The cell type or mark absent from the cube, the target's track unobserved (all NaN),
        the target among the training cell types, an empty or unknown training list, no
        training cell type with the mark, thresholds out of range, an output path that is a
        folder, a prediction without any scored bin.

    Warns
    -----
    AuditWarning
        Chromosomes absent from a track, predictions at bins without an observed value or
        without an Average (left out), NaN predictions (dropped).

    Examples
    --------
    >>> import numpy as np
    >>> from pitfall.audit import audit_arrays
    >>> rng = np.random.default_rng(0)
    >>> level = rng.gamma(2.0, 1.0, 2000)
    >>> signal = level + rng.normal(0, 0.3, (6, 2000))
    >>> report = audit_arrays(signal, signal[:5].mean(0) + rng.normal(0, 0.01, 2000),
    ...                       target="T", cell_types=["A", "B", "C", "D", "E", "T"],
    ...                       continuous=True, n_bootstrap=200)
    >>> report.call
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
    cell_type, mark = str(cell_type), str(mark)
    _check_target(ds, cell_type, mark)
    cube_cts = [str(c) for c in ds["cell_type"].values]
    train_cell_types = _check_names(train_cell_types, cube_cts, "training cell type")
    if train_chroms is not None:
        train_chroms = _check_names(train_chroms, cube_chroms(ds), "training chromosome")
    if train_cell_types is not None and cell_type in train_cell_types:
        raise ValueError(
            f"the target cell type {cell_type} is among the training cell types: a model "
            "audited across cell types never saw its target, and the Average would include "
            "the target's own track; remove it from train_cell_types (CLI: --train-cell-types)"
        )
    refs = train_cell_types or [c for c in cube_cts if c != cell_type]
    if not refs:
        raise ValueError(f"no reference cell type other than the target {cell_type} to average")
    log: list[str] = []
    pred, read_as = _prediction(
        prediction, ds, cell_type, loci_by=loci_by, chrom_sizes=chrom_sizes, log=log
    )
    target = _tracks(ds, cell_type, mark, refs)
    notes = list(target.notes)
    regions = region_masks(ds, genes=genes, enhancers=enhancers, notes=notes)

    predicted = np.isfinite(pred)
    observed_ok = np.isfinite(target.observed)
    avg_ok = np.isfinite(target.average)
    if (predicted & ~observed_ok).any():
        _warn(
            f"{cell_type} {mark}: {int((predicted & ~observed_ok).sum())} predicted bins have "
            "no observed value in the cube and are left out",
            log,
        )
    if (predicted & observed_ok & ~avg_ok).any():
        _warn(
            f"{cell_type} {mark}: {int((predicted & observed_ok & ~avg_ok).sum())} predicted "
            "bins have no value in any training cell type (no Average) and are left out",
            log,
        )
    scored = np.flatnonzero(predicted & observed_ok & avg_ok)
    if scored.size < N_GROUPS:
        raise ValueError(
            f"{cell_type} {mark}: only {scored.size} bins have a prediction, an observed value "
            f"and an Average; at least {N_GROUPS} are needed"
        )
    obs, model, avg = target.observed[scored], pred[scored], target.average[scored]
    var = target.variance[scored]
    ms = None if target.most_similar is None else target.most_similar[scored]
    if ms is not None and not np.isfinite(ms).all():
        notes.append(
            f"the most similar cell type ({target.most_similar_name}) lacks {mark} at "
            f"{int((~np.isfinite(ms)).sum())} scored bins: its metrics leave them out"
        )
    if np.ptp(model) == 0:
        _warn(
            f"{cell_type} {mark}: all {model.size} predicted values are equal ({model[0]:g}); "
            "the correlations are undefined",
            log,
        )

    ids: dict[str, int] = {}
    chrom = bootstrap.chrom_ids(ds["chrom"].values, ids)
    start = np.asarray(ds["start"].values, dtype=np.int64) if "start" in ds.coords else None
    keys = bootstrap.block_keys(
        chrom, start, block_size=options.block_size, block_loci=options.block_loci
    )
    local, n_blocks = bootstrap.renumber(keys[scored])
    local = local.astype(np.int64)
    weights = bootstrap.block_weights(n_blocks, options.n_bootstrap, options.seed)
    kept_regions = {k: v[scored] for k, v in regions.items()}
    predictors = {"model": model, "average": avg, "most_similar": ms, "zero": np.zeros_like(obs)}
    table, reps = _metric_table(
        obs,
        predictors,
        regions=kept_regions,
        variance=var,
        local_blocks=local,
        weights=weights,
        level=options.level,
    )
    tests = residual_correlations(obs, model, avg, var, options, cell_type)
    gain_reps = bootstrap_gain(obs, model, avg, tests, local, weights)
    pearson, spearman = correlations(model, avg)

    declared = train_cell_types is not None or train_chroms is not None
    if declared:
        on_train = (
            np.ones(scored.size, bool)
            if train_chroms is None
            else np.isin(chrom[scored], [ids.get(c, -1) for c in train_chroms])
        )
        leakage = float(np.mean(on_train & (target.n_observed_refs[scored] > 0)))
    else:
        leakage = 1.0

    mse_gain = table["mse"]["average"] - table["mse"]["model"]
    row: dict[str, Any] = {
        "cell_type": cell_type,
        "mark": mark,
        "n_scored": int(scored.size),
        "metrics": table,
    }
    for m, entry in table.items():
        for key in ("model", "average", "most_similar", "zero"):
            row[f"{m}_{key}"] = entry[key]
        row[f"{m}_model_ci"] = entry["model_ci"]
        row[f"{m}_average_ci"] = entry["average_ci"]
        row[f"{m}_diff"] = entry["diff_average"]
        row[f"{m}_diff_ci"] = entry["diff_average_ci"]
    row.update(
        mse_gain=mse_gain,
        mse_gain_ci=_interval(reps["average"]["mse"] - reps["model"]["mse"], options.level),
        mse_relative_gain=mse_gain / table["mse"]["average"]
        if table["mse"]["average"] > 0
        else float("nan"),
        most_similar=target.most_similar_name,
        most_similar_r=target.most_similar_r,
        pearson_avg=pearson,
        spearman_avg=spearman,
        within_group_gain=tests.gain,
        within_group_gain_ci=_interval(gain_reps, options.level),
        within_group_p=tests.p,
        within_group_p_adjusted=float(adjust_pvalues([tests.p], options.adjust)[0])
        if math.isfinite(tests.p)
        else float("nan"),
        n_groups_tested=tests.n_tested,
        n_groups_significant=int(sum(r["significant"] for r in tests.rows)),
        leakage=leakage,
    )
    row["call"] = classify_track(row, margin, memorisation_threshold, options.alpha)
    pooled = {**row, "cell_type": "pooled"}
    settings: dict[str, Any] = {
        "margin": margin,
        "memorisation_threshold": memorisation_threshold,
        "level": options.level,
        "n_bootstrap": options.n_bootstrap,
        "blocks": f"{options.block_size:,} bp genomic blocks"
        if start is not None
        else f"blocks of {options.block_loci} consecutive loci",
        "block_size": options.block_size,
        "n_blocks": n_blocks,
        "n_permutations": tests.n_permutations,
        "adjust": options.adjust,
        "alpha": options.alpha,
        "seed": options.seed,
        "targets": [cell_type],
        "mark": mark,
        "loci_by": read_as,
        "feature_window": feature_window(ds),
        "reference_cell_types": {cell_type: refs},
        "average_cell_types": target.average_cell_types,
        "train_cell_types": train_cell_types,
        "train_chroms": train_chroms,
        "leakage_declared": declared,
        "similarity_on": target.similarity_on or None,
        "genes": None if genes is None else str(genes),
        "enhancers": None if enhancers is None else str(enhancers),
        "cube_snapshot": ds.attrs.get("snapshot"),
    }
    keep = np.unique(
        np.linspace(0, scored.size - 1, min(scored.size, MAX_CURVE_BINS)).astype(np.int64)
    )
    report = AuditReport(
        summary=pd.DataFrame([row, pooled]),
        partitions=pd.DataFrame(tests.rows + [{**r, "cell_type": "pooled"} for r in tests.rows]),
        verdict=_verdict(row, settings),
        memorising=row["call"] == "memorising",
        beats_baseline=row["call"] in ("cell-type-specific", "between groups only"),
        beats_within_groups=row["call"] in ("cell-type-specific", "within groups only"),
        leakage=leakage,
        leakage_declared=declared,
        kind="continuous",
        warnings=log,
        notes=notes,
        settings=settings,
        curves={
            "observed": obs[keep],
            "model": model[keep],
            "average": avg[keep],
            "most_similar": None if ms is None else ms[keep],
        },
    )
    report.save(figure=figure, json_path=json_path, html_path=html_path)
    return report


# --------------------------------------------------------------------------------------------
# The text report (what AuditReport prints and shows for a continuous audit)

#: Columns of the per-decile table in the text and HTML report.
DECILE_COLUMNS: list[str] = [
    "group",
    "n_loci",
    "variance_low",
    "variance_high",
    "mse_model",
    "mse_average",
    "residual_corr",
    "null_low",
    "null_high",
    "p",
    "p_adjusted",
]
#: The caption of that table.
DECILE_CAPTION = (
    "within deciles of the mark's variance across the training cell types, pooled: residual "
    "correlation corr(model - Average, observed - Average), about 0 for a model that only "
    "memorises the Average (null_low/high: the central interval of its permutation null):"
)


def summary_table(report: AuditReport) -> pd.DataFrame:
    """The nine metrics of the (pooled) target, one row each, as text with intervals.

    Columns: ``metric``, ``better`` (lower / higher), ``model``, ``Average``, ``most similar
    (<cell type>)``, ``zero`` and ``model - Average``, each value with its interval.
    """
    row = report.summary.iloc[-1]
    similar = f"most similar ({row['most_similar']})" if row["most_similar"] else "most similar"
    out = []
    for m in tm.METRICS:
        e = row["metrics"][m]
        cells = {"metric": m, "better": "lower" if e["lower_is_better"] else "higher"}
        for key, name in (
            ("model", "model"),
            ("average", "Average"),
            ("most_similar", similar),
            ("zero", "zero"),
            ("diff_average", "model - Average"),
        ):
            v, ci = e[key], e[f"{key}_ci"]
            fmt = "+.4g" if key == "diff_average" else ".4g"
            cells[name] = "-" if not math.isfinite(v) else f"{v:{fmt}} {_ci(ci, fmt)}"
        out.append(cells)
    return pd.DataFrame(out)


def footer_text(settings: Mapping[str, Any]) -> str:
    """How the intervals and tests of a continuous audit were made (one line)."""
    s = settings
    adjust = "Holm" if s["adjust"] == "holm" else "Benjamini-Hochberg"
    return (
        f"intervals: {s['level']:.0%} block bootstrap ({s['blocks']}, {s['n_bootstrap']} "
        f"replicates, seed {s['seed']}; the baselines, deciles and, for gwspear, mse1obs and "
        f"mse1imp, the full track's ranks and top-1% thresholds held fixed); within deciles: "
        f"permutation tests ({s.get('n_permutations', '-')} permutations per decile), "
        f"{adjust}-adjusted"
    )
