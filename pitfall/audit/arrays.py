"""The audit from plain arrays: labels (or a signal) and scores, no cube written.

:func:`audit_arrays` wraps the arrays as the in-memory Dataset a cube opens as (variables
over ``(cell_type, locus)``, ``chrom`` and ``start`` along ``locus``) and runs the same
code as the cube path, so both give the same report on the same data. Importing it loads
neither TensorFlow, torch, XGBoost nor Dask's ``distributed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

if TYPE_CHECKING:
    from pitfall.audit.report import AuditReport

__all__ = ["as_cube", "audit_arrays"]


def _matrix(
    truth: Any, cell_types: Sequence[str] | None
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """(values (cell_type, locus) float32, cell type names, locus names or None)."""
    names = None
    if isinstance(truth, xr.DataArray):
        if set(truth.dims) != {"cell_type", "locus"}:
            raise ValueError(f"truth must have dims (cell_type, locus), got {truth.dims}")
        truth = truth.transpose("cell_type", "locus")
        cts = [str(c) for c in truth["cell_type"].values] if "cell_type" in truth.coords else None
        if "locus" in truth.coords and truth["locus"].dtype.kind not in "iu":
            names = np.asarray(truth["locus"].values).astype(object)
        values = np.asarray(truth.values)
    elif isinstance(truth, pd.DataFrame):
        cts = [str(c) for c in truth.index]
        names = np.asarray(truth.columns).astype(object)
        values = truth.to_numpy()
    else:
        cts = None
        values = np.asarray(truth)
    if values.ndim != 2:
        raise ValueError(f"truth must be 2-D (cell_type, locus), got shape {values.shape}")
    if cell_types is not None:
        cts = [str(c) for c in cell_types]
    if cts is None:
        raise ValueError("give cell_types= for a numpy truth matrix (one name per row)")
    if len(cts) != values.shape[0]:
        raise ValueError(f"{len(cts)} cell type names for {values.shape[0]} rows of truth")
    if len(set(cts)) != len(cts):
        raise ValueError(f"cell type names repeat: {sorted({c for c in cts if cts.count(c) > 1})}")
    return values.astype(np.float32), cts, names


def _scores(scores: Any, n: int, target: str | None) -> dict[str, np.ndarray]:
    """Scores as ``{target: (n,) float64}``."""
    if isinstance(scores, Mapping):
        out = {str(k): np.asarray(v, dtype=np.float64).ravel() for k, v in scores.items()}
    elif isinstance(scores, pd.DataFrame):
        out = {str(k): row.to_numpy(dtype=np.float64) for k, row in scores.iterrows()}
    elif isinstance(scores, xr.DataArray) and scores.ndim == 2:
        scores = scores.transpose("cell_type", ...)
        out = {
            str(c): np.asarray(scores.sel(cell_type=c).values, dtype=np.float64)
            for c in scores["cell_type"].values
        }
    else:
        values = np.asarray(scores, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(
                "scores must be one target's (locus,) array with target=, a mapping "
                "{target: array}, a DataFrame (targets x loci) or a (cell_type, locus) DataArray"
            )
        if target is None:
            raise ValueError("give target= (the cell type the scores predict) for 1-D scores")
        out = {str(target): values}
    for t, v in out.items():
        if v.size != n:
            raise ValueError(f"scores of {t} hold {v.size} values for {n} loci")
    return out


def as_cube(
    truth: Any,
    *,
    variable: str = "label",
    cell_types: Sequence[str] | None = None,
    chroms: Sequence[str] | np.ndarray | None = None,
    starts: Sequence[int] | np.ndarray | None = None,
    mark: str | None = None,
) -> xr.Dataset:
    """An in-memory Dataset shaped like an opened cube, around a (cell_type, locus) matrix.

    Parameters
    ----------
    truth : numpy array, pandas DataFrame (cell types x loci) or DataArray (cell_type, locus)
        Labels (1, 0, NaN) or a continuous signal, the training cell types included.
    variable : str
        ``"label"``, or ``"signal"`` for a continuous track (then over one ``mark``).
    cell_types : sequence of str, optional
        Row names (required for a numpy matrix).
    chroms, starts : array-like, shape (locus,), optional
        Each locus's chromosome and start (bp): genomic blocks for the bootstrap, and the
        chromosomes for the leakage. Without them all loci are on one chromosome ``"all"``
        and blocks are runs of consecutive loci.
    mark : str, optional
        The mark's name when ``variable="signal"``.

    Returns
    -------
    xarray.Dataset
        ``variable`` over ``(cell_type, locus)`` (``signal``: ``(cell_type, locus, mark)``),
        coordinates ``cell_type``, ``locus`` (0 .. n-1), ``chrom``, ``start`` and ``end``
        when given, ``name`` when the truth named its loci.
    """
    values, cts, names = _matrix(truth, cell_types)
    n = values.shape[1]
    chrom = np.full(n, "all", dtype=object) if chroms is None else np.asarray(chroms, object)
    if chrom.shape != (n,):
        raise ValueError(f"chroms must hold one chromosome per locus ({n}), got {chrom.shape}")
    coords: dict[str, Any] = {"cell_type": cts, "locus": np.arange(n), "chrom": ("locus", chrom)}
    if starts is not None:
        start = np.asarray(starts, dtype=np.int64)
        if start.shape != (n,):
            raise ValueError(f"starts must hold one start per locus ({n}), got {start.shape}")
        coords["start"] = ("locus", start)
        coords["end"] = ("locus", start + 1)
    if names is not None:
        coords["name"] = ("locus", names)
    data: dict[str, tuple[tuple[str, ...], np.ndarray]]
    if variable == "signal":
        coords["mark"] = [mark or "signal"]
        data = {"signal": (("cell_type", "locus", "mark"), values[:, :, None])}
    elif variable == "label":
        bad = ~np.isin(values, (0.0, 1.0)) & ~np.isnan(values)
        if bad.any():
            raise ValueError(
                f"labels must be 1, 0 or NaN; found {np.unique(values[bad])[:5].tolist()} (a "
                "continuous truth is audited with continuous=True)"
            )
        data = {"label": (("cell_type", "locus"), values)}
    else:
        raise ValueError(f"variable must be 'label' or 'signal', got {variable!r}")
    return xr.Dataset(data, coords=coords)


def audit_arrays(
    truth: Any,
    scores: Any,
    *,
    target: str | None = None,
    cell_types: Sequence[str] | None = None,
    chroms: Sequence[str] | np.ndarray | None = None,
    starts: Sequence[int] | np.ndarray | None = None,
    continuous: bool | None = None,
    **options: Any,
) -> AuditReport:
    """Audit scores against labels (or a continuous signal) given as plain arrays.

    Parameters
    ----------
    truth : numpy array, pandas DataFrame (cell types x loci) or DataArray (cell_type, locus)
        Every cell type's labels (1, 0, NaN) or signal over the same loci: the targets' (what
        the scores are judged against) and the training cell types' (what the baselines
        average).
    scores : array-like
        One target's scores, shape (locus,) with ``target=``; a mapping ``{target: scores}``;
        a DataFrame (targets x loci) or a DataArray (cell_type, locus).
    target : str, optional
        The target of 1-D scores.
    cell_types : sequence of str, optional
        Names of the truth's rows (required for a numpy matrix).
    chroms, starts : array-like, shape (locus,), optional
        Chromosome and start of each locus (:func:`as_cube`).
    continuous : bool, optional
        Audit a continuous track (imputation, :mod:`pitfall.audit.continuous`) rather than
        binary labels; default: continuous when the truth holds values other than 0, 1, NaN.
    **options
        Everything :func:`pitfall.audit.audit_predictions` (binary) or
        :func:`pitfall.audit.continuous.audit_track` (continuous) takes: ``train_cell_types``,
        ``train_chroms``, ``level``, ``n_bootstrap``, ``block_size``, ``seed``, ...

    Returns
    -------
    AuditReport
        The same report as the cube path on the same data.

    Examples
    --------
    >>> import numpy as np
    >>> from pitfall.audit import audit_arrays
    >>> rng = np.random.default_rng(0)
    >>> labels = (rng.random((6, 300)) < 0.4).astype(float)
    >>> report = audit_arrays(labels, labels[:5].mean(0) + rng.normal(0, 0.01, 300),
    ...                       target="T", cell_types=["A", "B", "C", "D", "E", "T"],
    ...                       n_bootstrap=200)
    >>> report.call
    'memorising'
    """
    values, _, _ = _matrix(truth, cell_types)
    if continuous is None:
        finite = values[np.isfinite(values)]
        continuous = bool(finite.size and not np.isin(finite, (0.0, 1.0)).all())
    by_target = _scores(scores, values.shape[1], target)
    if continuous:
        from pitfall.audit.continuous import audit_track

        cube = as_cube(
            truth, variable="signal", cell_types=cell_types, chroms=chroms, starts=starts
        )
        if len(by_target) != 1:
            raise ValueError("a continuous audit takes one target track at a time")
        ((t, s),) = by_target.items()
        track = xr.DataArray(s, dims="locus", coords={"locus": np.arange(s.size)})
        return audit_track(track, cube, cell_type=t, mark=str(cube["mark"].values[0]), **options)
    from pitfall.audit import audit_predictions

    cube = as_cube(truth, cell_types=cell_types, chroms=chroms, starts=starts)
    targets = list(by_target)
    da = xr.DataArray(
        np.stack([by_target[t] for t in targets]),
        dims=("cell_type", "locus"),
        coords={"cell_type": targets, "locus": np.arange(values.shape[1])},
    )
    return audit_predictions(da, cube, **options)
