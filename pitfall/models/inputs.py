"""Model inputs of a small selection, every (cell type, locus) pair at once.

The inputs themselves -- one-hot sequence, signal, and the two locus-constant controls
(:func:`permute_codes`, :func:`random_inputs`) -- are made by the loaders
(:mod:`pitfall.loaders.encoding`, re-exported here). This module adds :func:`assemble`, which
reads every pair of a small selection straight from the cube, for tests and inspection. The
locus's average activity (an input or the base of the residual target) is
:mod:`pitfall.average_activity`, served per pair by :class:`pitfall.loaders.LocusAverage`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pitfall.loaders.encoding import InputEncoder, flatten, permute_codes, random_inputs

__all__ = ["InputEncoder", "assemble", "flatten", "permute_codes", "random_inputs"]


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
