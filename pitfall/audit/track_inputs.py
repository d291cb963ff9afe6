"""The inputs of a continuous audit, placed on the cube's bins.

A predicted track is read and featurized with the cube's own recipe
(:func:`featurize_track`: the mean over each locus window, or over the cube's feature window
centred on it, of arcsinh(value), transformed per base then averaged, bases without data
counting as 0; the very code that built the cube's ``signal``), so a bigWig of the observed
track gives the cube's values bin for bin. A table (columns ``locus`` + ``score``, matched
as :mod:`pitfall.audit.reading` matches binary predictions), a DataArray over ``locus`` or a
numpy array over every locus is taken as already on the cube's scale.

The region metrics of :mod:`pitfall.track_metrics` need masks over the cube's bins
(:func:`region_masks`): a bin is in a region when its signal window overlaps it
(:func:`overlap_mask`): ``mseprom`` the :data:`PROMOTER_UPSTREAM` bp (2 kbp) upstream of a
TSS, strand-aware, and ``msegene`` a gene body, both from ``genes`` (a GTF or BED6);
``mseenh`` an enhancer, from ``enhancers`` (a BED).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pitfall import kernels, tracks
from pitfall import track_metrics as tm
from pitfall.audit.reading import LociBy, _warn, load_predictions
from pitfall.featurize.plan import centred_windows
from pitfall.loci import LocusTable, strings
from pitfall.schema import root_attr
from pitfall.sources import bigwig
from pitfall.sources.annotation import read_bed_regions, read_chrom_sizes, read_genes, tss_windows

__all__ = ["PROMOTER_UPSTREAM", "feature_window", "featurize_track", "overlap_mask", "region_masks"]

#: Promoter windows: this many bp upstream of each TSS (strand-aware), as the challenge.
PROMOTER_UPSTREAM = 2000


# --------------------------------------------------------------------------------------------
# The prediction, featurized as the cube's signal


def feature_window(ds: xr.Dataset) -> int | None:
    """The cube's feature window (bp centred on each locus), None for the loci themselves."""
    feat = root_attr(ds.attrs, "featurization")
    if not isinstance(feat, Mapping):
        return None
    window = feat.get("feature_window")
    return int(window) if window else None


def _locus_table(ds: xr.Dataset) -> LocusTable:
    """The cube's loci as a :class:`pitfall.loci.LocusTable` (a locus without an end is 1 bp)."""
    if "chrom" not in ds.coords or "start" not in ds.coords:
        raise ValueError(
            "the cube has no locus coordinates (chrom, start): a track or an annotation "
            "cannot be placed on its bins"
        )
    start = np.asarray(ds["start"].values, dtype=np.int64)
    end = np.asarray(ds["end"].values, dtype=np.int64) if "end" in ds.coords else start + 1
    # The windows the cube's signal was read over, where they reach past a chromosome end.
    windows = "window_start" in ds.coords and "window_end" in ds.coords
    return LocusTable(
        strings(ds["chrom"].values),
        start,
        end,
        None,
        None,
        window_start=np.asarray(ds["window_start"].values, dtype=np.int64) if windows else None,
        window_end=np.asarray(ds["window_end"].values, dtype=np.int64) if windows else None,
    )


def _signal_windows(ds: xr.Dataset) -> tuple[LocusTable, np.ndarray, np.ndarray]:
    """The loci and the windows their signal is averaged over (int64 (n,) starts, ends)."""
    table = _locus_table(ds)
    lo, hi = centred_windows(table, feature_window(ds))
    return table, np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)


def featurize_track(
    path: str | os.PathLike,
    cube: xr.Dataset,
    *,
    chrom_sizes: Mapping[str, int] | str | os.PathLike | None = None,
    log: list[str] | None = None,
) -> np.ndarray:
    """A raw track featurized exactly as the cube's ``signal``: one value per cube locus.

    The recipe of :mod:`pitfall.featurize`: the window of each locus (or the cube's
    ``feature_window`` centred on it, from the cube's ``featurization`` attribute), clipped to
    the chromosome; the mean over its bases of arcsinh(value), bases without data counting
    as 0. A bigWig is read by :func:`pitfall.sources.bigwig.window_means` (the call that
    built the cube), a bedGraph by :func:`pitfall.kernels.window_arcsinh_means` over its
    runs, clipped to ``chrom_sizes`` when given (a bedGraph has no header; without sizes a
    window is clipped at 0 only).

    Parameters
    ----------
    path : str or os.PathLike
        bigWig (``.bw``, ``.bigwig``) or bedGraph (``.bedGraph``, ``.bg``, optionally
        ``.gz``) of the raw predicted signal.
    cube : xarray.Dataset
        The cube (``chrom``, ``start``, ``end`` along ``locus``).
    chrom_sizes : mapping or path, optional
        Chromosome sizes for a bedGraph (a mapping or a ``chrom.sizes`` file).
    log : list of str, optional
        Receives the warnings (also raised as :class:`pitfall.audit.AuditWarning`).

    Returns
    -------
    numpy.ndarray
        float32, shape (n_locus,): the featurized prediction; NaN on chromosomes the track
        does not hold (warned).

    Raises
    ------
    FileNotFoundError
        The track does not exist.
    ValueError
        Not a track, no data at all, or no data on any chromosome of the cube.
    """
    path = Path(path)
    log = [] if log is None else log
    fmt = tracks.track_format(path)
    if fmt is None:
        raise ValueError(f"{path}: not a track (.bw / .bigwig, .bedGraph / .bg)")
    if not path.is_file():
        raise FileNotFoundError(f"track {path} does not exist")
    table, lo, hi = _signal_windows(cube)
    runs = table.chrom_runs()
    out = np.full(len(table), np.nan, dtype=np.float32)
    missing: list[str] = []
    if fmt == "bigwig":
        with bigwig.open_bigwig(str(path)) as handle:
            if not bigwig.has_data(handle):
                raise ValueError(f"{path} holds no value anywhere: nothing to audit")
            for chrom, a, b in runs:
                try:
                    out[a:b] = bigwig.window_means(handle, chrom, lo[a:b], hi[a:b])
                except bigwig.MissingChromosome:
                    missing.append(chrom)
    else:
        sizes = _chrom_sizes(chrom_sizes)
        # One parse of the file for every chromosome (read_runs would parse it once each).
        by_chrom = tracks._runs_by_chrom(path, sorted({c for c, _, _ in runs}))
        for chrom, a, b in runs:
            s, e, v, _ = by_chrom[chrom]
            if s.size == 0:
                missing.append(chrom)
                continue
            size = sizes.get(chrom, max(int(hi[a:b].max()), int(e[-1])))
            out[a:b] = kernels.window_arcsinh_means(s, e, v, lo[a:b], hi[a:b], size)
    if missing and len(set(missing)) == len({c for c, _, _ in runs}):
        raise ValueError(
            f"{path} has no data on any chromosome of the cube ({', '.join(sorted(set(missing))[:5])}"
            "): check that it holds predictions on the cube's assembly and chromosome names"
        )
    if missing:
        n = sum(b - a for c, a, b in runs if c in set(missing))
        _warn(
            f"{path} has no data on {', '.join(sorted(set(missing)))}: their {n} bins are not "
            "scored",
            log,
        )
    return out


def _chrom_sizes(chrom_sizes: Mapping[str, int] | str | os.PathLike | None) -> dict[str, int]:
    if chrom_sizes is None:
        return {}
    if isinstance(chrom_sizes, Mapping):
        return {str(k): int(v) for k, v in chrom_sizes.items()}
    return read_chrom_sizes(chrom_sizes)


def _prediction(
    prediction: Any,
    ds: xr.Dataset,
    cell_type: str,
    *,
    loci_by: LociBy,
    chrom_sizes: Mapping[str, int] | str | os.PathLike | None,
    log: list[str],
) -> tuple[np.ndarray, str]:
    """The prediction over every cube locus (float64 (n,), NaN where not predicted), and how
    it was read."""
    n = ds.sizes["locus"]
    if isinstance(prediction, (str, os.PathLike)) and tracks.track_format(prediction):
        values = featurize_track(prediction, ds, chrom_sizes=chrom_sizes, log=log)
        window = feature_window(ds)
        how = "track featurized as the cube's signal (mean of arcsinh over " + (
            f"{window} bp centred on each locus)" if window else "each locus window)"
        )
        return values.astype(np.float64), how
    if isinstance(prediction, np.ndarray) and prediction.ndim == 1:
        if prediction.size != n:
            raise ValueError(f"a prediction array holds {prediction.size} values for {n} loci")
        prediction = xr.DataArray(prediction, dims="locus", coords={"locus": np.arange(n)})
    if isinstance(prediction, xr.DataArray) and prediction.dims == ("locus",):
        prediction = prediction.expand_dims(cell_type=[cell_type])
    preds = load_predictions(prediction, ds, loci_by=loci_by, cell_type=cell_type)
    for msg in preds.log:
        if msg not in log:
            log.append(msg)
    if cell_type not in preds.targets:
        raise ValueError(
            f"the predictions hold no value for cell type {cell_type!r} (they have "
            f"{', '.join(preds.targets)})"
        )
    pos, s = preds.scores(cell_type)
    values = np.full(n, np.nan)
    values[pos] = s
    return values, f"table matched by {preds.loci_by}"


# --------------------------------------------------------------------------------------------
# Annotation regions


def overlap_mask(
    chrom: np.ndarray, lo: np.ndarray, hi: np.ndarray, regions: pd.DataFrame
) -> np.ndarray:
    """Which bins overlap at least one region (by at least one base).

    Parameters
    ----------
    chrom : numpy.ndarray of str, shape (n,)
    lo, hi : numpy.ndarray of int64, shape (n,)
        Half-open bin windows.
    regions : pandas.DataFrame
        Columns ``chrom``, ``start``, ``end`` (0-based half-open; empty ones ignored).

    Returns
    -------
    numpy.ndarray
        bool, shape (n,).
    """
    mask = np.zeros(lo.size, dtype=bool)
    codes, uniques = pd.factorize(pd.Index(np.asarray(chrom).astype(object)))
    grouped = {
        str(c): part
        for c, part in regions[regions["end"] > regions["start"]].groupby("chrom", sort=False)
    }
    for k, c in enumerate(uniques):
        part = grouped.get(str(c))
        if part is None:
            continue
        # Merge into disjoint sorted intervals: the last one starting before a bin's end
        # is then the only one that can overlap it.
        order = np.argsort(part["start"].to_numpy(np.int64), kind="stable")
        s = part["start"].to_numpy(np.int64)[order]
        e = np.maximum.accumulate(part["end"].to_numpy(np.int64)[order])
        new = np.r_[True, s[1:] > e[:-1]]
        last = np.r_[np.flatnonzero(new)[1:] - 1, s.size - 1]
        s, e = s[new], e[last]
        idx = np.flatnonzero(codes == k)
        j = np.searchsorted(s, hi[idx], side="left") - 1
        ok = j >= 0
        mask[idx[ok]] = e[j[ok]] > lo[idx[ok]]
    return mask


def region_masks(
    ds: xr.Dataset,
    *,
    genes: str | os.PathLike | None = None,
    enhancers: str | os.PathLike | None = None,
    notes: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """The region masks of :func:`pitfall.track_metrics.block_statistics` over the cube's bins.

    A bin is in a region when its signal window (the locus, or the cube's feature window
    centred on it) overlaps one by at least a base: ``"gene"`` gene bodies and ``"prom"``
    the :data:`PROMOTER_UPSTREAM` bp upstream of each TSS (strand-aware,
    :func:`pitfall.sources.annotation.tss_windows`), both from ``genes`` (GTF or BED6);
    ``"enh"`` the intervals of ``enhancers`` (BED).

    Returns
    -------
    dict of str to numpy.ndarray
        bool, shape (n_locus,), one per annotation given; ``notes`` receives a sentence for
        each annotation missing or overlapping no bin.
    """
    notes = [] if notes is None else notes
    out: dict[str, np.ndarray] = {}
    if genes is None and enhancers is None:
        notes.append(
            "mseprom, msegene and mseenh are not computed: give genes= (GTF or BED6; CLI "
            "--genes) and enhancers= (BED; CLI --enhancers)"
        )
        return out
    table, lo, hi = _signal_windows(ds)
    chrom = np.asarray(table.chrom).astype(object)
    if genes is not None:
        g = read_genes(genes)
        prom = tss_windows(g, upstream=PROMOTER_UPSTREAM, downstream=0)
        out["gene"] = overlap_mask(chrom, lo, hi, g)
        out["prom"] = overlap_mask(chrom, lo, hi, prom)
    else:
        notes.append("mseprom and msegene are not computed: give genes= (GTF or BED6; --genes)")
    if enhancers is not None:
        out["enh"] = overlap_mask(chrom, lo, hi, read_bed_regions(enhancers))
    else:
        notes.append("mseenh is not computed: give enhancers= (a BED; CLI --enhancers)")
    for kind, mask in out.items():
        if not mask.any():
            source = enhancers if kind == "enh" else genes
            notes.append(
                f"{tm.REGION_KINDS[kind]} is undefined: no bin of the cube overlaps the "
                f"{'enhancers' if kind == 'enh' else 'genes'} of {source} (check the "
                "chromosome names and the assembly)"
            )
    return out
