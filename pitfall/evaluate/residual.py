"""The paper's residual target: a label minus the locus's average activity, and back.

Training on the residual is one of the paper's two remedies: the model earns nothing
for the part of a label that the locus's average activity
(:mod:`pitfall.average_activity`) already predicts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from pitfall.evaluate._core import ArrayLike

__all__ = ["residual_target", "score_from_residual"]


def residual_target(labels: ArrayLike, average_activity: ArrayLike) -> ArrayLike:
    """The paper's residual target: label minus the locus's average activity.

    Parameters
    ----------
    labels : xarray.DataArray (cell_type, locus) or (locus,), or numpy array
        Binary labels (NaN stays NaN).
    average_activity : xarray.DataArray (locus,) or numpy array (locus,)
        Mean label of each locus over the training cell types.

    Returns
    -------
    same kind as ``labels``
        ``labels - average_activity``, in [-1, 1]. DataArrays broadcast by dim name
        (over ``cell_type``) and align exactly on ``locus``; numpy arrays broadcast on
        the trailing axis.
    """
    return _combine(labels, average_activity, np.subtract)


def score_from_residual(residual: ArrayLike, average_activity: ArrayLike) -> ArrayLike:
    """Inverse of :func:`residual_target`: residual prediction plus average activity.

    Parameters
    ----------
    residual : xarray.DataArray or numpy array, (..., locus)
        Predicted residuals.
    average_activity : xarray.DataArray or numpy array, (locus,)
        The same average activity the residual target was built from.

    Returns
    -------
    same kind as ``residual``
        Scores on the label scale, ``residual + average_activity``.
    """
    return _combine(residual, average_activity, np.add)


def _combine(x: ArrayLike, avg: ArrayLike, op: Any) -> ArrayLike:
    """``op(x, avg)``, DataArrays joined exactly on their coordinates."""
    if isinstance(x, xr.DataArray) or isinstance(avg, xr.DataArray):
        with xr.set_options(arithmetic_join="exact"):
            try:
                return op(x, avg)
            except ValueError as err:
                raise ValueError(f"labels and average activity do not align: {err}") from err
    return op(np.asarray(x), np.asarray(avg))
