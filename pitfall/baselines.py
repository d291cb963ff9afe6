"""Baselines that expose the pitfall, with the models' interface.

``fit(train, valid)`` learns from the training (and validation) selections of a split and
``predict(test)`` returns a :class:`xarray.DataArray` of scores with dims
``(cell_type, locus)`` over the test selection. Each baseline holds the whole cube, because
what it exploits is exactly what a memorising model can learn: the labels that the training
cell types carry at the test loci. Every baseline reads the cube chunk by chunk.

- :class:`AverageActivity`: the mean label of each test locus over the training cell types.
- :class:`MostSimilar`: the labels of the training cell type whose inputs correlate best
  with the target's over the training loci.
- :class:`RandomScores`: a constant score; its average precision is the prevalence.

For imputation (a continuous target track, :class:`pitfall.imputation.ImputationSplit`),
:data:`TRACK_BASELINES`: :class:`TrackAverage` (the challenge's Average), :class:`TrackMostSimilar`
and :class:`TrackZero`, built on :func:`track_average` and :func:`track_similarity`, which
the continuous audit (:mod:`pitfall.audit.continuous`) uses too.

Beside them: :func:`cell_type_similarity`, the Pearson correlation of cell types that
:class:`MostSimilar` chooses by, and :func:`single_cell_type_aps`, each other cell type's
labels used alone as a predictor of the target's.

The rule every baseline keeps (and ``tests/test_baselines.py`` checks by poisoning the
target's labels): **a baseline never reads a label (or value) of a test cell type that a
model in the same setting could not see.** Across cell types and in the hybrid setting a
model sees no label of the target at all; across chromosomes it sees the target's labels on
the training chromosomes only. Baselines read the training cell types' labels and the
target's inputs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import xarray as xr

from pitfall import average_activity, evaluate
from pitfall.imputation import ImputationSplit
from pitfall.predictor import Predictor
from pitfall.registry import Registry
from pitfall.splits import Split, take_loci

__all__ = [
    "BASELINES",
    "TARGETS",
    "AverageActivity",
    "Baseline",
    "MostSimilar",
    "RandomScores",
    "TRACK_BASELINES",
    "TrackAverage",
    "TrackMostSimilar",
    "TrackZero",
    "baseline_aps",
    "baseline_table",
    "cell_type_similarity",
    "figure_styles",
    "register_baseline",
    "score_predictions",
    "register_track_baseline",
    "single_cell_type_aps",
    "track_average",
    "track_similarity",
]

#: The variables a model predicts: no baseline reads them for a test cell type.
TARGETS = ("label", "value")


def _at_test(
    cube: xr.Dataset, var: str, cell_types: Sequence[str], test: xr.Dataset
) -> xr.DataArray:
    """``cube[var]`` for ``cell_types`` at the test selection's loci (lazy)."""
    sel = cube[[var]].sel(cell_type=list(cell_types))
    return take_loci(sel, test["locus"].values)[var]


def _broadcast(scores: xr.DataArray, test: xr.Dataset, name: str) -> xr.DataArray:
    """One score per locus, repeated for each test cell type: dims ``(cell_type, locus)``."""
    # ``scores`` already carries the test loci's coordinate: no new index of millions.
    out = scores.expand_dims(cell_type=test["cell_type"].values).transpose("cell_type", "locus")
    return out.rename(name)


class AverageActivity:
    """Mean label of each test locus over the training cell types.

    The locus's average activity (:func:`pitfall.average_activity.locus_mean`), lazy.

    Parameters
    ----------
    cube
        The whole cube (``open_cube``), with its integer ``locus`` coordinate.
    use_valid
        Also average over the validation cell types (default): their labels are seen by the
        model during training too (early stopping), and the paper's baseline averages every
        non-target cell type.
    cell_types
        Average over these cell types whatever the split; e.g. every other cell type of the
        cube for a cross-chromosome split, whose training holds the target alone.
    """

    name = "average activity"

    def __init__(
        self,
        cube: xr.Dataset,
        *,
        use_valid: bool = True,
        cell_types: Sequence[str] | None = None,
    ) -> None:
        self.cube = cube
        self.use_valid = use_valid
        self.cell_types = None if cell_types is None else [str(c) for c in cell_types]

    def fit(self, train: xr.Dataset, valid: xr.Dataset | None = None) -> AverageActivity:
        """Record the cell types whose labels are averaged."""
        if self.cell_types is not None:
            self.cell_types_ = list(self.cell_types)
            return self
        cts = [str(c) for c in train["cell_type"].values]
        if self.use_valid and valid is not None:
            cts += [str(c) for c in valid["cell_type"].values if str(c) not in cts]
        self.cell_types_ = cts
        return self

    def predict(self, test: xr.Dataset) -> xr.DataArray:
        """Scores in [0, 1], dims ``(cell_type, locus)``; NaN where no training label exists."""
        others = [c for c in self.cell_types_ if c not in set(map(str, test["cell_type"].values))]
        if not others:
            raise ValueError(
                "no training cell type other than the test ones to average over (a "
                "cross-chromosome split?); pass cell_types= to AverageActivity"
            )
        mean = average_activity.locus_mean(_at_test(self.cube, "label", others, test))
        return _broadcast(mean, test, "average_activity")


def cell_type_similarity(
    x: xr.DataArray, *, dim: str = "cell_type", block: int | None = None
) -> pd.DataFrame:
    """Pearson correlation of every pair of cell types, chunk by chunk over the loci.

    Each pair is correlated over the loci (and any other dims, e.g. marks) where both are
    defined (pairwise-complete, as :meth:`pandas.DataFrame.corr`), from sums accumulated
    block by block, so a cube of millions of loci never sits in memory at once.

    Parameters
    ----------
    x : xarray.DataArray, dims (dim, locus, ...)
        Labels, values or signal of every cell type.
    dim : str
        The cell-type dim.
    block : int, optional
        Loci read at a time (default: about 8 million values per block).

    Returns
    -------
    pandas.DataFrame, shape (n, n)
        Indexed and columned by cell type; 1 on the diagonal; NaN for a pair with fewer
        than two shared values or a constant one.
    """
    others = [d for d in x.dims if d not in (dim, "locus")]
    x = x.transpose(dim, "locus", *others)
    n, n_loci = x.sizes[dim], x.sizes["locus"]
    width = int(np.prod([x.sizes[d] for d in others])) if others else 1
    block = block or max(1, 8_000_000 // max(n * width, 1))
    count, s, ss, cross = (np.zeros((n, n)) for _ in range(4))
    shift = None
    for a in range(0, n_loci, block):
        v = np.asarray(x.isel(locus=slice(a, a + block)).values, dtype=np.float64).reshape(n, -1)
        w = np.isfinite(v)
        if shift is None:
            # centring by a first estimate of each mean keeps the sums of squares small
            # (correlation does not change under a shift)
            n_known = w.sum(axis=1)
            total = np.where(w, v, 0.0).sum(axis=1)
            shift = (total / np.maximum(n_known, 1))[:, None]
        v0 = np.where(w, v - shift, 0.0)
        wf = w.astype(np.float64)
        count += wf @ wf.T
        s += v0 @ wf.T  # s[i, j]: sum of i's values where i and j are both defined
        ss += (v0 * v0) @ wf.T
        cross += v0 @ v0.T
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = count * cross - s * s.T
        var = count * ss - s * s
        r = cov / np.sqrt(var * var.T)
    r[(count < 2) | (var <= 0) | (var.T <= 0)] = np.nan
    r = np.clip(r, -1.0, 1.0)
    names = [str(c) for c in x[dim].values]
    return pd.DataFrame(r, index=pd.Index(names, name=dim), columns=names)


class MostSimilar:
    """Labels of the training cell type whose inputs correlate best with the target's.

    The comparison uses inputs only (the target's signal over the training loci): the
    target's labels and values are what a model in the same setting has to predict and never
    sees (across cell types and in the hybrid setting, no label of the target is in the
    training data), so a baseline may not read them either.

    Parameters
    ----------
    cube
        The whole cube.
    on
        The input compared, a variable with a ``cell_type`` dim other than the targets
        (default ``"signal"``: all marks, flattened).

    Attributes
    ----------
    chosen_ : dict
        Per test cell type: ``(chosen cell type, Pearson correlation)``.
    """

    name = "most similar cell type"

    def __init__(self, cube: xr.Dataset, *, on: str | None = None) -> None:
        on = on or "signal"
        if on in TARGETS:
            raise ValueError(
                f"MostSimilar cannot compare cell types on {on!r}: the target's {on}s are what "
                "the model must predict and never sees; compare on inputs (signal)"
            )
        if on not in cube:
            raise ValueError(
                f"the cube has no {on!r} variable to compare cell types on (a cube without "
                "signal has no honest most-similar baseline)"
            )
        self.cube = cube
        self.on = on

    def fit(self, train: xr.Dataset, valid: xr.Dataset | None = None) -> MostSimilar:
        """Record the candidate cell types and the training loci."""
        self.candidates_ = [str(c) for c in train["cell_type"].values]
        self.train_loci_ = train["locus"].values
        return self

    def similarity(self, target: str) -> dict[str, float]:
        """Pearson correlation of each candidate's input with the target's over training loci.

        :func:`cell_type_similarity` of the target and the candidates: each pair over the
        loci (and marks) where both are defined; ``value`` is compared as ``log1p``.
        """
        x = take_loci(self.cube[[self.on]], self.train_loci_)[self.on]
        if self.on == "value":
            # numpy's stubs type ufuncs as returning ndarray; a DataArray stays a DataArray.
            x = cast(xr.DataArray, np.log1p(x.clip(min=0)))
        cts = [c for c in self.candidates_ if c != target]
        r = cell_type_similarity(x.sel(cell_type=[target, *cts])).loc[str(target)]
        return {str(c): float(r[str(c)]) for c in cts}

    def predict(self, test: xr.Dataset) -> xr.DataArray:
        """The chosen cell type's labels, dims ``(cell_type, locus)``."""
        self.chosen_ = {}
        parts = []
        for target in map(str, test["cell_type"].values):
            sims = self.similarity(target)
            best = max(sims, key=lambda c: -np.inf if np.isnan(sims[c]) else sims[c])
            self.chosen_[target] = (best, sims[best])
            one = test.sel(cell_type=[target])
            parts.append(
                _broadcast(
                    _at_test(self.cube, "label", [best], one).squeeze("cell_type", drop=True),
                    one,
                    "most_similar",
                )
            )
        return xr.concat(parts, dim="cell_type")


class RandomScores:
    """A constant score: every threshold calls all loci, so its AP is the prevalence."""

    name = "random"

    def __init__(self, cube: xr.Dataset | None = None) -> None:
        self.cube = cube

    def fit(self, train: xr.Dataset, valid: xr.Dataset | None = None) -> RandomScores:
        """Nothing to learn."""
        return self

    def predict(self, test: xr.Dataset) -> xr.DataArray:
        """Constant 0.5 scores, dims ``(cell_type, locus)``."""
        return xr.full_like(test["label"], 0.5).rename("random")


# --------------------------------------------------------------------------------------------
# The registry: what the sweep scores next to every model, and the report draws


@dataclass(frozen=True)
class Baseline:
    """One baseline of the registry.

    Attributes
    ----------
    name
        Key; results tables hold its AP in the column ``ap_<name>``.
    label
        Name in tables and figure legends.
    make
        ``make(cube, split, **options) -> Predictor | None``: the baseline for a split of
        the cube, unfitted, or None where it does not apply (e.g. no signal to compare).
    color, linestyle
        How figures draw its AP (a horizontal line).
    description
        One line for docs and reports.
    """

    name: str
    label: str
    make: Callable[..., Predictor | None]
    color: str = "0.3"
    linestyle: str = "-"
    description: str = ""

    @property
    def column(self) -> str:
        return f"ap_{self.name}"


#: Every baseline, by name (:func:`register_baseline` adds one).
BASELINES: Registry[Baseline] = Registry("baseline")


def register_baseline(baseline: Baseline) -> Baseline:
    """Add a baseline to :data:`BASELINES`; return it.

    Raises
    ------
    pitfall.registry.RegistryError
        Its name is taken.
    """
    return BASELINES.register(baseline)


def figure_styles(names: Sequence[str] | None = None) -> dict[str, tuple[str, str, str]]:
    """``{column: (label, color, linestyle)}`` of baselines, for the figures (:mod:`pitfall.experiments`)."""
    chosen = [BASELINES[n] for n in (names or BASELINES)]
    return {b.column: (b.label, b.color, b.linestyle) for b in chosen}


def _others(cube: xr.Dataset, split: Split) -> list[str]:
    return [str(c) for c in cube["cell_type"].values if str(c) not in split.test_cell_types]


def _average_activity(cube: xr.Dataset, split: Split, **_: Any) -> AverageActivity:
    # Every cell type but the test ones, in every setting: across chromosomes training holds
    # the target alone, and the paper draws the same baseline line in each panel.
    return AverageActivity(cube, cell_types=_others(cube, split))


def _most_similar(
    cube: xr.Dataset, split: Split, *, on: str | None = None, **_: Any
) -> MostSimilar | None:
    if split.setting == "cross-chromosome" or (on or "signal") not in cube:
        return None
    return MostSimilar(cube, on=on)


register_baseline(
    Baseline(
        "average_activity",
        "average activity",
        _average_activity,
        color="black",
        linestyle="-",
        description="the mean label of each test locus over the other cell types",
    )
)
register_baseline(
    Baseline(
        "most_similar",
        "most similar cell type",
        _most_similar,
        color="0.45",
        linestyle="--",
        description="the labels of the training cell type whose inputs correlate best",
    )
)
register_baseline(
    Baseline(
        "random",
        "random",
        lambda cube, split, **_: RandomScores(cube),
        color="0.65",
        linestyle=":",
        description="a constant score: its AP is the prevalence of the test labels",
    )
)


# --------------------------------------------------------------------------------------------
# Imputation: baselines of a continuous target track


def track_average(
    cube: xr.Dataset, mark: str, cell_types: Sequence[str], loci: np.ndarray | None = None
) -> np.ndarray:
    """The Average: the mean of ``mark`` over ``cell_types`` at each locus, float64 ``(n,)``.

    :func:`pitfall.average_activity.locus_mean` of the signal: cell types without the mark
    at a locus (NaN) are left out; NaN where none has it. ``loci``: positions along
    ``locus`` (default every locus).
    """
    sig = cube["signal"].sel(cell_type=list(cell_types), mark=mark)
    if loci is not None:
        sig = sig.isel(locus=np.asarray(loci))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN loci: NaN, as documented
        mean = average_activity.locus_mean(sig.astype(np.float64))
    return np.asarray(mean.values, dtype=np.float64)


def track_similarity(
    cube: xr.Dataset,
    cell_type: str,
    candidates: Sequence[str],
    marks: Sequence[str],
    loci: np.ndarray,
) -> dict[str, float]:
    """Pearson correlation of each candidate's ``marks`` with ``cell_type``'s, over ``loci``.

    :meth:`MostSimilar.similarity` on the signal of ``marks`` only (never the target mark,
    which is what an imputation model predicts), pairwise-complete over loci and marks; NaN
    for a candidate sharing no defined value with the target or a constant one.

    Returns
    -------
    dict
        Candidate -> correlation.
    """
    sub = cube[["signal"]].sel(mark=list(marks))
    model = MostSimilar(sub, on="signal").fit(
        take_loci(sub.sel(cell_type=list(candidates)), np.asarray(loci))
    )
    with warnings.catch_warnings():
        # A constant or absent candidate has no correlation: NaN, never chosen.
        warnings.simplefilter("ignore", RuntimeWarning)
        return model.similarity(cell_type)


def _track(cube: xr.Dataset, split: ImputationSplit, values: np.ndarray, name: str) -> xr.DataArray:
    loci = split.test_loci(cube)
    return xr.DataArray(
        np.asarray(values, np.float32)[None, :],
        dims=("cell_type", "locus"),
        coords={"cell_type": [split.cell_type], "locus": cube["locus"].values[loci]},
        name=name,
    )


class TrackAverage:
    """The Average of an imputation split: the target mark's mean at each test locus over
    the other cell types that have it observed (:func:`track_average`).

    Parameters
    ----------
    cube
        The whole cube, with ``signal`` (cell_type, locus, mark).
    split
        The target track and its test loci.

    Attributes
    ----------
    cell_types_ : list of str
        The cell types averaged.
    """

    name = "Average"

    def __init__(self, cube: xr.Dataset, split: ImputationSplit) -> None:
        self.cube = cube
        self.split = split

    def fit(self, train: Any = None, valid: Any = None) -> TrackAverage:
        """Record the cell types averaged (the split's references)."""
        self.cell_types_ = self.split.reference_cell_types(self.cube)
        return self

    def predict(self, test: Any = None) -> xr.DataArray:
        """The Average at the test loci, float32, dims ``(cell_type, locus)`` (one cell type)."""
        loci = self.split.test_loci(self.cube)
        avg = track_average(self.cube, self.split.mark, self.cell_types_, loci)
        return _track(self.cube, self.split, avg, "track_average")


class TrackMostSimilar:
    """The target mark of the reference cell type whose other marks correlate best with the
    target cell type's (:func:`track_similarity` over the split's training loci, on the
    target's other observed marks; the target track is never read).

    Attributes
    ----------
    chosen_ : tuple
        ``(cell type, correlation)``, or None where no candidate correlates (no other
        observed mark of the target); :meth:`predict` then raises.
    similarity_on_ : list of str
        The marks compared.
    """

    name = "most similar cell type"

    def __init__(self, cube: xr.Dataset, split: ImputationSplit) -> None:
        self.cube = cube
        self.split = split

    def fit(self, train: Any = None, valid: Any = None) -> TrackMostSimilar:
        """Choose the reference cell type."""
        refs = self.split.reference_cell_types(self.cube)
        self.similarity_on_ = self.split.input_marks(self.cube)
        self.chosen_: tuple[str, float] | None = None
        if self.similarity_on_ and refs:
            sims = track_similarity(
                self.cube,
                self.split.cell_type,
                refs,
                self.similarity_on_,
                self.split.train_loci(self.cube),
            )
            finite = {c: r for c, r in sims.items() if math.isfinite(r)}
            if finite:
                best = max(finite, key=lambda c: finite[c])
                self.chosen_ = (best, finite[best])
        return self

    def predict(self, test: Any = None) -> xr.DataArray:
        """The chosen cell type's target mark at the test loci, dims ``(cell_type, locus)``."""
        if self.chosen_ is None:
            raise ValueError(
                f"{self.split.name}: no reference cell type with {self.split.mark} correlates "
                f"with {self.split.cell_type} on its other marks ({self.similarity_on_ or 'none'})"
            )
        loci = self.split.test_loci(self.cube)
        values = self.cube["signal"].sel(cell_type=self.chosen_[0], mark=self.split.mark)
        return _track(self.cube, self.split, values.isel(locus=loci).values, "track_most_similar")


class TrackZero:
    """Zero at every test locus (the challenge's floor; correlations are undefined)."""

    name = "zero"

    def __init__(self, cube: xr.Dataset, split: ImputationSplit) -> None:
        self.cube = cube
        self.split = split

    def fit(self, train: Any = None, valid: Any = None) -> TrackZero:
        """Nothing to learn."""
        return self

    def predict(self, test: Any = None) -> xr.DataArray:
        """Zeros, dims ``(cell_type, locus)``."""
        n = self.split.test_loci(self.cube).size
        return _track(self.cube, self.split, np.zeros(n), "zero")


#: The baselines of imputation splits, by name (``make(cube, split)`` takes an
#: :class:`~pitfall.imputation.ImputationSplit`); apart from :data:`BASELINES`, whose
#: members every binary results table carries a column of.
TRACK_BASELINES: Registry[Baseline] = Registry("track baseline")


def register_track_baseline(baseline: Baseline) -> Baseline:
    """Add a baseline of imputation splits to :data:`TRACK_BASELINES`; return it."""
    return TRACK_BASELINES.register(baseline)


register_track_baseline(
    Baseline(
        "track_average",
        "Average",
        TrackAverage,
        color="black",
        description="the target mark's mean at each locus over the other cell types with it",
    )
)
register_track_baseline(
    Baseline(
        "track_most_similar",
        "most similar cell type",
        TrackMostSimilar,
        color="0.45",
        linestyle="--",
        description="the target mark of the cell type whose other marks correlate best",
    )
)
register_track_baseline(
    Baseline(
        "zero",
        "zero",
        TrackZero,
        color="0.65",
        linestyle=":",
        description="zero everywhere",
    )
)


def baseline_aps(
    cube: xr.Dataset, split: Split, names: Sequence[str] | None = None, **options: Any
) -> dict[str, float]:
    """AP of each baseline on the split's test selection: ``{"ap_<name>": AP}``.

    The AP is the test cell type's (pooled over test cell types when there are several);
    NaN where a baseline does not apply to this cube or split.
    """
    train, valid, test = split.train(cube), split.valid(cube), split.test(cube)
    key = split.test_cell_types[0] if len(split.test_cell_types) == 1 else "pooled"
    out = {}
    for name in names or BASELINES:
        b = BASELINES[name]
        model = b.make(cube, split, **options)
        out[b.column] = (
            float("nan")
            if model is None
            else score_predictions(test, model.fit(train, valid).predict(test))[key]
        )
    return out


def score_predictions(test: xr.Dataset, scores: xr.DataArray) -> dict[str, float]:
    """Average precision of ``scores`` on the test selection: per test cell type and pooled.

    Loci whose label is NaN are left out (:func:`pitfall.evaluate.average_precision`); so
    are loci a baseline cannot score (NaN score: no training cell type has a label there),
    and their number is returned under ``"n_unscored"``. Every value comes from one pass
    over the chunks (:func:`pitfall.evaluate.average_precision_by_cell_type`).

    Parameters
    ----------
    test : xarray.Dataset
        The split's test selection, with ``label`` (cell_type, locus).
    scores : xarray.DataArray (cell_type, locus)
        Predictions on the same cell types and loci.

    Returns
    -------
    dict
        Test cell type -> AP; ``"pooled"`` -> AP over every (cell type, locus) pair (with
        more than one test cell type); ``"n_unscored"`` -> int.

    Raises
    ------
    ValueError
        When a test cell type has no positive scored locus (its AP is undefined).
    """
    label = test["label"].transpose("cell_type", "locus")
    table = evaluate.average_precision_by_cell_type(
        label, scores.transpose("cell_type", "locus"), pooled=label.sizes["cell_type"] > 1
    )
    undefined = table.index[table["n_positive"] == 0].tolist()
    if undefined:
        raise ValueError(
            f"average precision is undefined: no positive label for {undefined} (once NaN "
            "labels and unscored loci are left out)"
        )
    out: dict[str, float] = {str(ct): float(ap) for ct, ap in table["ap"].items()}
    out["n_unscored"] = int(table["n_unscored"].drop("pooled", errors="ignore").sum())
    return out


def baseline_table(
    cube: xr.Dataset,
    split: Split,
    *,
    single_cell_types: Sequence[str] = (),
    similar_on: str | None = None,
) -> pd.DataFrame:
    """AP of every baseline on a split's test selection, one row per (predictor, cell type).

    Parameters
    ----------
    cube
        The whole cube.
    split
        Which cell types and loci train, validate and test.
    single_cell_types
        Cell types whose labels alone are also scored as predictors (e.g. ``"E047"``).
    similar_on
        Input compared by :class:`MostSimilar` (default: signal when present, else skipped).

    Returns
    -------
    pandas.DataFrame
        Columns ``predictor, cell_type, ap, prevalence, detail``.
    """
    train, valid, test = split.train(cube), split.valid(cube), split.test(cube)
    rows = []

    def add(name: str, scores: xr.DataArray, detail: dict[str, str] | None = None) -> None:
        for ct, ap in score_predictions(test, scores).items():
            if ct == "n_unscored":
                continue
            rows.append(
                {"predictor": name, "cell_type": ct, "ap": ap, "detail": (detail or {}).get(ct, "")}
            )

    for b in BASELINES.values():
        model = b.make(cube, split, on=similar_on)
        if model is None:
            continue
        model.fit(train, valid)
        scores = model.predict(test)
        chosen = getattr(model, "chosen_", {})
        add(b.label, scores, {t: f"{c} (r = {r:.3f})" for t, (c, r) in chosen.items()})
    for single in single_cell_types:
        add(f"{single} alone", AverageActivity(cube, cell_types=[single]).fit(train).predict(test))
    return pd.DataFrame(rows)


def single_cell_type_aps(
    labels: xr.DataArray,
    target: Hashable,
    similarity: pd.Series | Mapping[Hashable, float],
    *,
    dim: str = "cell_type",
) -> pd.DataFrame:
    """AP of each other cell type's labels used alone to predict the target's labels.

    Single cell types as predictors: how far the best of them falls below the average of
    all of them (:class:`AverageActivity`), against their similarity to the target.

    Parameters
    ----------
    labels : xarray.DataArray (cell_type, locus)
        Binary labels (0, 1, NaN) of every cell type, the target included.
    target : hashable
        The target cell type (a value of the ``dim`` coordinate).
    similarity : pandas.Series or mapping, cell type -> float
        Similarity of each cell type to the target (e.g. correlation of inputs).
        Cell types missing from it get NaN.
    dim : str
        The cell-type dim.

    Returns
    -------
    pandas.DataFrame
        One row per non-target cell type, in the order of ``labels``: ``cell_type``,
        ``similarity`` and ``ap``. Loci where the target's or the predictor's label is
        NaN are left out of that predictor's AP; a predictor with no shared positive
        gets NaN.
    """
    if not isinstance(labels, xr.DataArray):
        raise TypeError("labels must be an xarray.DataArray with a cell-type dim")
    sim = dict(similarity.items()) if isinstance(similarity, pd.Series) else dict(similarity)
    cell_types = list(labels[dim].values)
    if target not in cell_types:
        raise ValueError(f"target {target!r} is not a {dim} of the labels")
    y = labels.sel({dim: target}).values.astype(np.float64).ravel()
    rows = []
    for ct in cell_types:
        if ct == target:
            continue
        s = labels.sel({dim: ct}).values.astype(np.float64).ravel()
        known = ~np.isnan(s)
        rows.append(
            {
                "cell_type": ct,
                "similarity": float(sim.get(ct, np.nan)),
                "ap": evaluate.ap_or_nan(y[known], s[known]),
            }
        )
    return pd.DataFrame(rows, columns=["cell_type", "similarity", "ap"])
