"""Predictions of loader examples back to the cube's (cell type, locus) grid.

Whatever served the examples -- a :class:`~pitfall.loaders.core.Loader` with ``ids=True``
(numpy, ``to_torch``), a :class:`~pitfall.loaders.pairs.PairDataset` through a
``DataLoader`` (shuffled, in workers, a ``DistributedSampler``'s share) -- its ids and a
model's scores make one DataArray::

    scores, ids = [], []
    for x, y, meta in batches:
        scores.append(net(x["sequence"]).detach())
        ids.append(meta)
    preds = to_dataarray(cube, ids, scores)      # (cell_type, locus)

The DataArray is what every :class:`pitfall.predictor.Predictor` returns (integer ``locus``
= cube positions), so the audit reads it as it is: ``pitfall.audit.audit_predictions(preds,
cube, ...)``, its table ``pitfall.audit.load_predictions(preds, cube).table``, or, saved with
``preds.to_netcdf("preds.nc")``, ``pitfall audit preds.nc CUBE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from pitfall.cube import locus_names
from pitfall.loaders.readers import cell_type_index

__all__ = ["to_dataarray"]


def _numpy(values: Any) -> np.ndarray:
    """An array of a numpy array, list, or framework tensor (torch: detached, on the CPU)."""
    if hasattr(values, "detach"):  # torch
        values = values.detach().cpu().numpy()
    elif hasattr(values, "numpy") and not isinstance(values, np.ndarray):  # TensorFlow, JAX
        values = values.numpy()
    return np.asarray(values)


def _parts(ids: Any, scores: Any) -> tuple[list[Mapping[str, Any]], list[Any]]:
    """Ids and scores as lists of batches (one batch when given a mapping)."""
    if isinstance(ids, Mapping):
        return [ids], [scores]
    id_parts = list(ids)
    score_parts = list(scores) if not isinstance(scores, np.ndarray) else [scores]
    if len(score_parts) != len(id_parts):
        raise ValueError(
            f"{len(id_parts)} batches of ids but {len(score_parts)} batches of scores: give "
            "one scores array per ids mapping"
        )
    return id_parts, score_parts


def _cell_type_positions(cube: xr.Dataset, ids: Mapping[str, Any]) -> np.ndarray:
    if "cell_type_index" in ids:
        return _numpy(ids["cell_type_index"]).astype(np.int64).reshape(-1)
    if "cell_type" in ids:
        values = _numpy(ids["cell_type"]).reshape(-1)
        if values.dtype.kind in "iu":
            return values.astype(np.int64)
        return cell_type_index(cube, values)
    raise ValueError(
        f"ids need 'cell_type_index' (cube positions) or 'cell_type' (names), got keys "
        f"{sorted(ids)}"
    )


def to_dataarray(
    cube: xr.Dataset,
    ids: Mapping[str, Any] | Iterable[Mapping[str, Any]],
    scores: Any,
    *,
    name: str = "score",
) -> xr.DataArray:
    """Scores of examples, in any order, as a DataArray over (cell type, locus).

    Parameters
    ----------
    cube
        The whole cube the examples came from (``open_cube``).
    ids
        One mapping, or one per batch: ``locus`` (cube positions, ``(b,)``) and
        ``cell_type_index`` (cube positions) or ``cell_type`` (names), as numpy arrays,
        lists or tensors: a loader's ``ids`` or a :class:`PairDataset`'s ``meta``.
    scores
        One array (with one mapping) or one per batch, ``(b,)`` or ``(b, 1)``: numpy,
        lists, or tensors (torch tensors are detached and moved to the CPU).
    name
        Of the DataArray.

    Returns
    -------
    xarray.DataArray
        Dims ``(cell_type, locus)``: the cell types and loci predicted, in cube order;
        coordinates ``cell_type`` (names), ``locus`` (int64 cube positions), and ``name``,
        ``chrom``, ``start``, ``end`` along ``locus``. A pair predicted more than once (a
        balanced loader draws with replacement) holds the mean of its scores; a pair never
        predicted is NaN. float32 when every score is, else float64.

    Raises
    ------
    ValueError
        Ids and scores of different lengths, ids without a locus or cell type, positions
        outside the cube, no predictions.
    """
    id_parts, score_parts = _parts(ids, scores)
    cts, loci, values = [], [], []
    for b, (part, sc) in enumerate(zip(id_parts, score_parts, strict=True)):
        if "locus" not in part:
            raise ValueError(f"ids of batch {b} lack 'locus' (cube positions): {sorted(part)}")
        loc = _numpy(part["locus"]).astype(np.int64).reshape(-1)
        ct = _cell_type_positions(cube, part)
        s = _numpy(sc)
        s = s.reshape(s.shape[0], -1)[:, 0] if s.ndim == 2 and s.shape[1] == 1 else s.reshape(-1)
        if not loc.size == ct.size == s.size:
            raise ValueError(
                f"batch {b}: {loc.size} loci, {ct.size} cell types and {s.size} scores; one "
                "score per example"
            )
        cts.append(ct)
        loci.append(loc)
        values.append(s)
    if not cts or not sum(c.size for c in cts):
        raise ValueError("no predictions to collect")
    ct_all, loc_all = np.concatenate(cts), np.concatenate(loci)
    dtype = np.float32 if all(v.dtype == np.float32 for v in values) else np.float64
    score_all = np.concatenate(values).astype(np.float64)
    n_ct, n_loci = cube.sizes["cell_type"], cube.sizes["locus"]
    if ct_all.min() < 0 or ct_all.max() >= n_ct:
        raise ValueError(f"cell type positions outside the cube's 0..{n_ct - 1}")
    if loc_all.min() < 0 or loc_all.max() >= n_loci:
        raise ValueError(f"locus positions outside the cube's 0..{n_loci - 1}")
    ct_used, ct_row = np.unique(ct_all, return_inverse=True)
    loc_used, loc_col = np.unique(loc_all, return_inverse=True)
    cell = ct_row * loc_used.size + loc_col
    size = ct_used.size * loc_used.size
    sums = np.bincount(cell, weights=score_all, minlength=size)
    counts = np.bincount(cell, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    sub = cube.isel(locus=loc_used)
    coords = {
        "cell_type": np.asarray([str(c) for c in cube["cell_type"].values[ct_used]], dtype=str),
        "locus": loc_used,
        "name": ("locus", np.asarray([str(v) for v in locus_names(sub)], dtype=str)),
        "chrom": (
            "locus",
            np.asarray([str(v) for v in np.asarray(sub["chrom"].values)], dtype=str),
        ),
        "start": ("locus", np.asarray(sub["start"].values, dtype=np.int64)),
        "end": ("locus", np.asarray(sub["end"].values, dtype=np.int64)),
    }
    return xr.DataArray(
        grid.reshape(ct_used.size, loc_used.size).astype(dtype),
        dims=("cell_type", "locus"),
        coords=coords,
        name=name,
    )
