"""Model inputs and targets: what the models add to the loaders' inputs.

The inputs themselves -- one-hot sequence, signal, and the two locus-constant controls
(:func:`permute_codes`, :func:`random_inputs`) -- are made by the loaders
(:mod:`pitfall.loaders.encoding`, re-exported here). This module adds :func:`assemble` (every
pair of a small selection at once), and the residual target: the label minus the locus's
average activity over the training cell types (:func:`average_activity`, :func:`residual`,
:func:`scores_from_residual`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from pitfall import evaluate
from pitfall.loaders.encoding import InputEncoder, flatten, permute_codes, random_inputs

__all__ = [
    "InputEncoder",
    "assemble",
    "average_activity",
    "flatten",
    "permute_codes",
    "random_inputs",
    "residual",
    "scores_from_residual",
]


# --------------------------------------------------------------------------------------------


def assemble(
    cube: xr.Dataset,
    selection: xr.Dataset,
    inputs: str,
    *,
    permuted: bool = False,
    seed: int = 0,
    n_random: int = 100,
) -> tuple[list[np.ndarray], np.ndarray, xr.DataArray]:
    """Every (cell type, locus) pair of a selection, read straight from the cube.

    For small selections, tests and inspection; training streams instead
    (:class:`pitfall.loaders.Loader`).

    Parameters
    ----------
    cube
        The whole cube (``open_cube``).
    selection
        A split role's selection, dims ``(cell_type, locus)``.
    inputs, permuted, seed, n_random
        As :class:`InputEncoder`.

    Returns
    -------
    xs : list of numpy.ndarray
        ``[one-hot (n, L, 4)]``, ``[signal (n, n_marks)]``, both (sequence first) or
        ``[random (n, n_random)]``, rows in (cell type, locus) order, ``n = n_ct * n_loci``.
    y : numpy.ndarray
        Labels, shape ``(n,)`` (NaN kept).
    labels : xarray.DataArray
        The selection's labels, dims ``(cell_type, locus)``, whose ravel is ``y``.
    """
    enc = InputEncoder(inputs, permuted=permuted, seed=seed, n_random=n_random)
    loci = np.asarray(selection["locus"].values, dtype=np.int64)
    n_ct = selection.sizes["cell_type"]
    raw: dict[str, np.ndarray] = {"locus": np.tile(loci, n_ct)}
    if "sequence" in enc.needs:
        codes = np.asarray(cube["sequence"].isel(locus=loci).values)
        raw["codes"] = np.tile(codes, (n_ct, 1))
    if "signal" in enc.needs:
        sig = np.asarray(selection["signal"].transpose("cell_type", "locus", "mark").values)
        raw["signal"] = sig.reshape(-1, sig.shape[-1])
    labels = selection["label"].transpose("cell_type", "locus")
    y = np.asarray(labels.values, dtype=np.float32).ravel()
    xs = [x.copy() for x in enc.encode(enc.prepare(raw))]
    return xs, y, labels


def average_activity(cube: xr.Dataset, cell_types: Sequence[str]) -> np.ndarray:
    """Mean label of every locus of the cube over ``cell_types``, shape ``(n_loci,)``.

    NaN where none of them has a label. Read chunk by chunk (Dask); float32.
    """
    if not cell_types:
        raise ValueError("average activity needs at least one cell type")
    lab = cube["label"].sel(cell_type=list(cell_types))
    return np.asarray(lab.mean("cell_type", skipna=True).values, dtype=np.float32)


def residual(y: np.ndarray, loci: np.ndarray, avg: np.ndarray) -> np.ndarray:
    """Residual target of rows: ``y - avg[loci]`` (:func:`pitfall.evaluate.residual_target`)."""
    return np.asarray(evaluate.residual_target(y, avg[loci]), dtype=np.float32)


def scores_from_residual(pred: np.ndarray, loci: np.ndarray, avg: np.ndarray) -> np.ndarray:
    """Back to the score scale: ``pred + avg[loci]`` (:func:`pitfall.evaluate.score_from_residual`)."""
    return np.asarray(evaluate.score_from_residual(pred, avg[loci]), dtype=np.float32)
