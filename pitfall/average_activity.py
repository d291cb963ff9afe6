"""The locus's average activity: the mean label of a locus over a set of cell types.

This is the quantity the paper's pitfall turns on (Schreiber et al. 2020): a model that
predicts across cell types can score well by memorising it, so it is the baseline every
model is compared with, and both of the paper's remedies start from it (as one more input,
or as the base of the residual target ``label - average``). Every part of pitfall computes
it here:

- :class:`pitfall.baselines.AverageActivity` scores each test locus by :func:`locus_mean`
  over the training cell types (lazy, chunk by chunk);
- :class:`pitfall.loaders.LocusAverage` serves it per (cell type, locus) pair to models,
  from :func:`label_sums`, leaving each pair's own label out (:func:`leave_own_out`) and
  filling loci that no other cell type labels with the set's :func:`prevalence`;
- :func:`pitfall.evaluate.average_activity_evaluation` evaluates the baseline for every
  line held out in turn from counts: ``p`` positive among ``k`` labelled other lines,
  the score :func:`mean` ``(p, k)``;
- the audit (:mod:`pitfall.audit.metrics`) fills the loci no reference labels with
  :func:`prevalence`.

Labels are binary (0, 1) with NaN for unknown; NaN labels are skipped, so a locus's
average is over the cell types that label it, and NaN where none does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["label_sums", "leave_own_out", "locus_mean", "mean", "prevalence"]


def locus_mean(labels: xr.DataArray, dim: str = "cell_type") -> xr.DataArray:
    """Mean label of each locus over the cell types of ``labels`` (lazy for dask data).

    Parameters
    ----------
    labels : xarray.DataArray, dims (dim, locus, ...)
        Binary labels (0, 1, NaN) of the cell types averaged.
    dim : str
        The cell-type dim.

    Returns
    -------
    xarray.DataArray, dims (locus, ...)
        The mean of the known labels, in [0, 1]; NaN where no cell type has a label. The
        dtype is the labels' floating dtype.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from pitfall.average_activity import locus_mean
    >>> labels = xr.DataArray([[1, 0, np.nan], [1, 1, np.nan]], dims=("cell_type", "locus"))
    >>> locus_mean(labels).values
    array([1. , 0.5, nan])
    """
    return labels.mean(dim, skipna=True)


def label_sums(labels: xr.DataArray, dim: str = "cell_type") -> tuple[np.ndarray, np.ndarray]:
    """Sum and number of the known labels of each locus, in one pass over the chunks.

    Parameters
    ----------
    labels : xarray.DataArray, dims (dim, locus)
        Binary labels (0, 1, NaN) of the cell types averaged.
    dim : str
        The cell-type dim.

    Returns
    -------
    sums : numpy.ndarray, shape (n_loci,)
        Sum of the known labels (the number of cell types where the locus is active).
    counts : numpy.ndarray, shape (n_loci,), int
        Number of cell types with a label there.
    """
    import dask

    sums, counts = dask.compute(labels.sum(dim, skipna=True), labels.count(dim))
    return np.asarray(sums.values), np.asarray(counts.values)


def mean(sums: Any, counts: Any, fill: float = float("nan")) -> np.ndarray:
    """The average activity from :func:`label_sums`: ``sums / counts``, ``fill`` without a label.

    Parameters
    ----------
    sums, counts : array-like, same shape
        Sum and number of known labels per locus (or per (locus, held-out cell type)).
    fill : float
        The value where ``counts`` is 0 (default NaN: no score).

    Returns
    -------
    numpy.ndarray, float64, the shape of ``sums``
    """
    sums, counts = np.asarray(sums), np.asarray(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), fill)


def leave_own_out(sums: Any, counts: Any, own: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`label_sums` without each pair's own label: the average over the *other* cell types.

    Parameters
    ----------
    sums, counts : numpy.ndarray, shape (n,)
        Sums and counts of known labels at the pairs' loci, over a set of cell types.
    own : numpy.ndarray, shape (n,)
        Each pair's own label where its cell type is in the set, NaN where it is not (or
        its label is unknown): nothing to take out.

    Returns
    -------
    sums, counts : numpy.ndarray, shape (n,)
        The sums and counts over the set's cell types other than the pair's own.
    """
    own = np.asarray(own, dtype=np.float64)
    known = ~np.isnan(own)
    return sums - np.where(known, own, 0.0), counts - known


def prevalence(n_positive: float, n_known: float) -> float:
    """Share of positives among known labels: what stands in where a locus has no average.

    Parameters
    ----------
    n_positive, n_known : number
        Positive and known labels (e.g. over every locus and cell type of a set).

    Returns
    -------
    float
        ``n_positive / n_known``; 0.5 when nothing is known.
    """
    return float(n_positive / n_known) if n_known else 0.5
