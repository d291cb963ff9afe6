"""Predictions as genome tracks: write scores over the cube's loci as bigWig or bedGraph, and
read a track back as one score per locus window.

Writing (:func:`write_track`): each scored locus's score covers its window
``[start, end)``, clipped to the chromosome (TSS windows can start before 0); loci without a
finite score are left out (no data there). A track holds one
value per base, so where windows overlap (TSS windows of nearby genes do) a rule decides:

- ``overlaps="error"`` (default): refuse, naming the first overlapping loci;
- ``"max"``, ``"min"``, ``"mean"``: the bases covered by several windows get the maximum,
  minimum or mean of their scores; the rest of each window keeps its own score.

Windows are cut at every window start and end, and each piece gets the rule's value, so a
locus whose window overlaps no other is written exactly as its score. bigWig stores 32-bit
floats: scores are rounded to float32 (use bedGraph to keep float64). bedGraph writes each
score in the shortest decimal that reads back to the same value of the scores' own dtype
(``0.289806`` for that float32, not its float64 expansion). Chromosome sizes for the bigWig
header come from ``chrom_sizes`` (a mapping or a ``chrom.sizes`` file) or default to the
sizes the cube stores (:func:`pitfall.cube.chrom_sizes`); a cube that stores none needs them
given.

Reading (:func:`window_means`, :func:`read_track`) follows the rules of the signal kernel
(:func:`pitfall.kernels.window_arcsinh_means`) with the transform left to the caller
(``transform=None``: the plain mean, what predictions need; ``np.arcsinh``: the kernel's
mean of arcsinh per base): each window is clipped to the chromosome, the divisor is the
clipped length, bases without data (or with NaN values) count as 0, and a window entirely
outside the chromosome gets NaN. The number of bases with data (the coverage) comes along,
so a caller can tell a window without any prediction from a prediction of 0. The sums are
taken run by run in float64 (no differences of prefix sums), so a window covered by one
run of value ``v`` reads exactly ``v``.

Files are written by :func:`pitfall._atomic.atomic_path`: under a temporary name, renamed
when complete, so a failure (a full disk, an unwritable place) leaves an earlier track as
it was and no partial file behind.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyBigWig
import xarray as xr

from pitfall._atomic import atomic_path
from pitfall.cube import chrom_sizes as stored_sizes
from pitfall.cube import open_cube
from pitfall.loci import chrom_order
from pitfall.sources.annotation import read_chrom_sizes

__all__ = [
    "OVERLAP_RULES",
    "check_track_path",
    "read_runs",
    "read_track",
    "resolve_overlaps",
    "track_format",
    "window_means",
    "write_track",
]

TrackFormat = Literal["bigwig", "bedgraph"]
OverlapRule = Literal["error", "max", "min", "mean"]
OVERLAP_RULES: tuple[str, ...] = ("error", "max", "min", "mean")
BIGWIG_SUFFIXES = (".bw", ".bigwig")
BEDGRAPH_SUFFIXES = (".bedgraph", ".bg", ".bedgraph.gz", ".bg.gz")
ChromSizes = Mapping[str, int] | str | os.PathLike | None


def track_format(path: str | os.PathLike) -> TrackFormat | None:
    """``"bigwig"`` or ``"bedgraph"`` from the file name's suffix, else None."""
    name = Path(path).name.lower()
    if name.endswith(BIGWIG_SUFFIXES):
        return "bigwig"
    if name.endswith(BEDGRAPH_SUFFIXES):
        return "bedgraph"
    return None


def check_track_path(path: str | os.PathLike) -> TrackFormat:
    """The format of a track to write at ``path``; refuses a path that cannot be one.

    Raises
    ------
    ValueError
        A name without a track suffix.
    FileExistsError
        ``path`` is a folder.
    """
    fmt = track_format(path)
    if fmt is None:
        raise ValueError(
            f"{path}: cannot tell the track format; name it .bw / .bigwig (bigWig) or "
            ".bedGraph / .bg (bedGraph)"
        )
    if Path(path).is_dir():
        raise FileExistsError(f"{path} is a folder; name a file to write")
    return fmt


def _sizes(chrom_sizes: ChromSizes) -> dict[str, int] | None:
    if chrom_sizes is None:
        return None
    if isinstance(chrom_sizes, Mapping):
        return {str(c): int(n) for c, n in chrom_sizes.items()}
    return read_chrom_sizes(chrom_sizes)


def _strings(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(object)


# --------------------------------------------------------------------------------------------
# Overlapping windows


def resolve_overlaps(
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    rule: OverlapRule = "error",
    *,
    names: np.ndarray | None = None,
    chrom: str = "",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-overlapping runs carrying the windows' scores on one chromosome.

    Parameters
    ----------
    starts, ends : numpy.ndarray
        int64, shape (n,): half-open windows, any order; empty windows are ignored.
    scores : numpy.ndarray
        float64, shape (n,): finite scores.
    rule : {"error", "max", "min", "mean"}
        What the bases of overlapping windows get (see the module docstring).
    names : numpy.ndarray, optional
        Shape (n,): locus names for the error message.
    chrom : str
        For the error message.

    Returns
    -------
    starts, ends : numpy.ndarray
        int64, shape (r,): sorted, non-overlapping runs covering the union of the windows.
    values : numpy.ndarray
        float64, shape (r,).

    Raises
    ------
    ValueError
        With ``rule="error"`` when two windows share a base; for an unknown rule.
    """
    if rule not in OVERLAP_RULES:
        raise ValueError(f"overlaps must be one of {OVERLAP_RULES}, got {rule!r}")
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    keep = ends > starts
    order = np.flatnonzero(keep)[np.lexsort((ends[keep], starts[keep]))]
    s, e, v = starts[order], ends[order], scores[order]
    if s.size < 2:
        return s, e, v
    reach = np.maximum.accumulate(e)
    clash = np.flatnonzero(s[1:] < reach[:-1]) + 1
    if clash.size == 0:
        return s, e, v
    if rule == "error":
        j = int(clash[0])
        i = int(np.flatnonzero(e[:j] > s[j])[0])
        label = names[order] if names is not None else np.asarray([""] * order.size)

        def show(k: int) -> str:
            who = f"{label[k]} " if label[k] else ""
            return f"{who}{chrom}:{s[k]}-{e[k]}"

        raise ValueError(
            f"{clash.size} locus windows on {chrom or 'a chromosome'} overlap an earlier one "
            f"(e.g. {show(i)} and {show(j)}); a track holds one value per base: choose what "
            "the shared bases get with overlaps='max', 'min' or 'mean' (CLI: --overlaps)"
        )
    # Cut at every window edge; each piece lies inside or outside each window.
    edges = np.unique(np.concatenate([s, e]))
    first = np.searchsorted(edges, s)
    last = np.searchsorted(edges, e)  # pieces first..last-1 lie in the window
    count = last - first
    window = np.repeat(np.arange(s.size), count)
    piece = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    piece += np.repeat(first, count)
    n_pieces = edges.size - 1
    if rule == "mean":
        total = np.bincount(piece, weights=v[window], minlength=n_pieces)
        hits = np.bincount(piece, minlength=n_pieces)
        covered = hits > 0
        values = total[covered] / hits[covered]
    else:
        init = -np.inf if rule == "max" else np.inf
        values = np.full(n_pieces, init)
        (np.maximum if rule == "max" else np.minimum).at(values, piece, v[window])
        covered = np.bincount(piece, minlength=n_pieces) > 0
        values = values[covered]
    return edges[:-1][covered], edges[1:][covered], values


# --------------------------------------------------------------------------------------------
# Writing


def _one_cell_type(scores: xr.DataArray, cell_type: str | None) -> xr.DataArray:
    if "cell_type" in scores.dims:
        cts = [str(c) for c in scores["cell_type"].values]
        if cell_type is None:
            if len(cts) != 1:
                raise ValueError(
                    f"the scores hold {len(cts)} cell types ({', '.join(cts[:5])}...): a track "
                    "holds one; say which with cell_type= (CLI: --cell-type)"
                )
            cell_type = cts[0]
        if str(cell_type) not in cts:
            raise ValueError(f"the scores have no cell type {cell_type!r} (they have {cts})")
        scores = scores.isel(cell_type=cts.index(str(cell_type)))
    if scores.dims != ("locus",):
        raise ValueError(f"scores must have dims (locus,) or (cell_type, locus), got {scores.dims}")
    return scores


def write_track(
    scores: xr.DataArray,
    cube: xr.Dataset | str | os.PathLike,
    path: str | os.PathLike,
    *,
    cell_type: str | None = None,
    overlaps: OverlapRule = "error",
    chrom_sizes: ChromSizes = None,
    name: str | None = None,
) -> Path:
    """Write one cell type's scores over the cube's loci as a bigWig or bedGraph.

    Parameters
    ----------
    scores : xarray.DataArray
        Dims ``(locus,)`` or ``(cell_type, locus)``, with the cube's integer ``locus``
        coordinate: what :meth:`pitfall.predictor.Predictor.predict` returns for any model
        or baseline (or :meth:`pitfall.audit.Predictions.to_dataarray` for a file). NaN
        scores are left out.
    cube
        The cube (its ``chrom``, ``start``, ``end`` place each locus), or its path.
    path
        ``.bw`` / ``.bigwig`` (bigWig) or ``.bedGraph`` / ``.bg`` (optionally ``.gz``).
    cell_type
        Which cell type of a 2-D ``scores`` (needed when it holds several).
    overlaps
        ``"error"``, ``"max"``, ``"min"`` or ``"mean"``: see the module docstring.
    chrom_sizes
        Chromosome sizes (mapping or ``chrom.sizes`` file); default the sizes the cube
        stores (:func:`pitfall.cube.chrom_sizes`).
    name
        The bedGraph's track name (default: the file name's stem).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        For an unknown suffix, scores without the cube's integer ``locus`` coordinate,
        overlapping windows under ``overlaps="error"``, a locus starting past its
        chromosome's size, no finite score, or no chromosome sizes (none given and none
        stored in the cube).
    """
    path = Path(path)
    fmt = check_track_path(path)
    if overlaps not in OVERLAP_RULES:
        raise ValueError(f"overlaps must be one of {OVERLAP_RULES}, got {overlaps!r}")
    ds = cube if isinstance(cube, xr.Dataset) else open_cube(cube)
    one = _one_cell_type(scores, cell_type)
    if "locus" not in one.coords or one["locus"].dtype.kind not in "iu":
        raise ValueError(
            "the scores need the cube's integer 'locus' coordinate (as Predictor.predict "
            "returns them) to place each score on its locus"
        )
    pos = np.asarray(one["locus"].values, dtype=np.int64)
    stored = one.dtype if one.dtype.kind == "f" and one.dtype.itemsize >= 4 else np.float64
    values = np.asarray(one.values, dtype=np.float64)
    n = ds.sizes["locus"]
    if pos.size and (pos.min() < 0 or pos.max() >= n):
        raise ValueError(f"the scores' locus positions must lie in the cube's 0..{n - 1}")
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("no finite score to write")
    pos, values = pos[finite], values[finite]
    all_chrom = _strings(ds["chrom"].values)
    all_end = np.asarray(ds["end"].values, dtype=np.int64)
    chrom, start, end = all_chrom[pos], np.asarray(ds["start"].values)[pos], all_end[pos]
    names = _strings(ds["name"].values)[pos] if "name" in ds.coords else None
    sizes = _sizes(chrom_sizes)
    if sizes is None:
        sizes = stored_sizes(ds)
        if sizes is None:
            raise ValueError(
                "the cube stores no chromosome sizes (its manifest named no FASTA, sizes file "
                "or bigWig, or it predates schema version 4): give the assembly's "
                "chrom_sizes (CLI: --chrom-sizes FILE)"
            )
        what = "the cube's stored chromosome sizes lack"
    else:
        what = "chrom_sizes lacks"
    order = chrom_order(pd.unique(all_chrom))
    missing = [c for c in order if c not in sizes]
    if missing:
        raise ValueError(
            f"{what} the cube's chromosome(s) {missing}; give the assembly's chrom_sizes "
            "(CLI: --chrom-sizes FILE)"
        )
    runs = []
    for c in order:
        m = chrom == c
        if not m.any():
            continue
        outside = start[m] >= sizes[c]
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} loci on {c} start at or past its size {sizes[c]} (e.g. "
                f"at {int(start[m][outside][0])}): give the cube's assembly's chrom_sizes (CLI: "
                "--chrom-sizes)"
            )
        # Windows are clipped to the chromosome, as the featurizer and read_track clip them.
        s, e, v = resolve_overlaps(
            np.maximum(start[m], 0),
            np.minimum(end[m], sizes[c]),
            values[m],
            overlaps,
            names=None if names is None else names[m],
            chrom=c,
        )
        runs.append((c, s, e, v))
    # Written whole under a temporary name, then renamed: a failure leaves ``path`` as it was.
    with atomic_path(path) as tmp:
        if fmt == "bigwig":
            _write_bigwig(tmp, [(c, sizes[c]) for c in order], runs)
        else:
            _write_bedgraph(
                tmp, runs, name or path.name.split(".")[0], path.name.endswith(".gz"), stored
            )
    return path


@contextlib.contextmanager
def _native_scratch() -> Iterator[tuple[str, int | None]]:
    """A path libBigWig can write to that never runs out of disk: a memory file on Linux.

    libBigWig ignores failed writes (it prints that the output "is likely truncated" and
    returns as if it succeeded) and crashes on some of them; in memory it meets no full
    disk, and the copy to the real file goes through Python, which raises. Elsewhere: no
    scratch (None), the caller writes in place.
    """
    if not hasattr(os, "memfd_create") or not Path("/proc/self/fd").is_dir():
        yield "", None
        return
    fd = os.memfd_create("pitfall-track")
    try:
        yield f"/proc/self/fd/{fd}", fd
    finally:
        os.close(fd)


def _fill_bigwig(
    target: str,
    header: list[tuple[str, int]],
    runs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    bw = pyBigWig.open(target, "w")
    if bw is None:
        raise OSError(f"{target}: libBigWig cannot open it for writing")
    try:
        bw.addHeader(header)
        for c, s, e, v in runs:
            bw.addEntries([c] * s.size, s.tolist(), ends=e.tolist(), values=v.tolist())
    finally:
        bw.close()


def _write_bigwig(
    path: Path,
    header: list[tuple[str, int]],
    runs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    with _native_scratch() as (scratch, fd):
        if fd is None:
            _fill_bigwig(str(path), header, runs)
            return
        _fill_bigwig(scratch, header, runs)
        with open(path, "wb") as out:
            os.lseek(fd, 0, os.SEEK_SET)
            while block := os.read(fd, 1 << 20):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())


def _write_bedgraph(
    path: Path,
    runs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    name: str,
    compress: bool,
    dtype: npt.DTypeLike,
) -> None:
    opener = gzip.open if compress else open
    with opener(path, "wt") as fh:
        fh.write(f'track type=bedGraph name="{name}"\n')
        for c, s, e, v in runs:
            # pandas writes the shortest decimal that reads back to the same value of the
            # column's dtype: the scores' own precision, never more digits.
            value = v.astype(dtype)
            frame = pd.DataFrame({"chrom": c, "start": s, "end": e, "value": value})
            frame.to_csv(fh, sep="\t", header=False, index=False)
        fh.flush()
    # A full disk may show only when the data reach it.
    with open(path, "rb") as raw:
        os.fsync(raw.fileno())


# --------------------------------------------------------------------------------------------
# Reading


def _bedgraph_runs(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rows = []
    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rt") as fh:
        for line in fh:
            if line.startswith(("track", "browser", "#")) or not line.strip():
                continue
            rows.append(line.split()[:4])
    if not rows:
        raise ValueError(f"{path}: no bedGraph lines (chrom, start, end, value)")
    try:
        frame = pd.DataFrame(rows, columns=["chrom", "start", "end", "value"]).astype(
            {"start": np.int64, "end": np.int64, "value": np.float64}
        )
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a bedGraph (chrom, start, end, value): {err}") from err
    out = {}
    for c, part in frame.groupby("chrom", sort=False):
        part = part.sort_values(["start", "end"], kind="stable")
        s, e = part["start"].to_numpy(), part["end"].to_numpy()
        if np.any(e <= s) or np.any(s[1:] < e[:-1]):
            raise ValueError(
                f"{path}: intervals on {c} are empty or overlap; a track holds one value per "
                "base (write it without overlaps, e.g. with pitfall export-predictions)"
            )
        out[str(c)] = (s, e, part["value"].to_numpy())
    return out


def read_runs(
    path: str | os.PathLike, chrom: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """A track's runs on one chromosome, and the chromosome's size.

    Parameters
    ----------
    path : str or os.PathLike
        bigWig or bedGraph (by suffix).
    chrom : str
        Chromosome name.

    Returns
    -------
    starts, ends : numpy.ndarray
        int64, shape (r,): sorted, non-overlapping half-open runs (empty when the track has
        no data on ``chrom``).
    values : numpy.ndarray
        float64, shape (r,).
    size : int or None
        The chromosome's size from a bigWig header; None for a bedGraph or an absent
        chromosome.
    """
    return _runs_by_chrom(Path(path), [chrom])[chrom]


def _runs_by_chrom(
    path: Path, chroms: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int | None]]:
    fmt = track_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"track {path} does not exist")
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64), None)
    if fmt == "bedgraph":
        runs = _bedgraph_runs(path)
        return {c: (*runs[c], None) if c in runs else empty for c in chroms}
    if fmt != "bigwig":
        raise ValueError(f"{path}: not a track (.bw / .bigwig, .bedGraph / .bg)")
    try:
        bw = pyBigWig.open(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path} is not a readable bigWig ({err}); write it again") from err
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int | None]] = {}
    try:
        if not bw.isBigWig():
            raise ValueError(f"{path} is a bigBed, not a bigWig of scores")
        sizes = bw.chroms()
        for c in chroms:
            if c not in sizes:
                out[c] = empty
                continue
            found = bw.intervals(c) or ()
            arr = np.asarray(found, dtype=np.float64).reshape(-1, 3)
            out[c] = (
                arr[:, 0].astype(np.int64),
                arr[:, 1].astype(np.int64),
                arr[:, 2],
                int(sizes[c]),
            )
    finally:
        bw.close()
    return out


def _window_sums(
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    win_starts: np.ndarray,
    win_ends: np.ndarray,
    size: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means (float64), covered bases (int64) and clipped lengths (int64) of windows."""
    lo = np.maximum(win_starts, 0)
    hi = win_ends if size is None else np.minimum(win_ends, size)
    hi = np.maximum(hi, lo)
    length = hi - lo
    data = ~np.isnan(values)
    starts, ends, values = starts[data], ends[data], values[data]
    first = np.searchsorted(ends, lo, side="right")  # first run ending after lo
    stop = np.searchsorted(starts, hi, side="left")  # first run starting at or after hi
    count = np.maximum(stop - first, 0)
    window = np.repeat(np.arange(lo.size), count)
    run = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    run += np.repeat(first, count)
    overlap = np.minimum(ends[run], hi[window]) - np.maximum(starts[run], lo[window])
    # Weights overlap / length: a window inside one run reads its value exactly.
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = overlap / length[window]
    # bincount of no weights is int64: make the means float64 always.
    means = np.bincount(window, weights=values[run] * weight, minlength=lo.size).astype(np.float64)
    covered = np.bincount(window, weights=overlap, minlength=lo.size).astype(np.int64)
    means[length == 0] = np.nan
    return means, covered, length


def window_means(
    path: str | os.PathLike,
    chrom: str,
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    return_coverage: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean of a track per window of one chromosome (the rules in the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        bigWig or bedGraph (a bedGraph has no chromosome sizes: windows are clipped at 0
        only).
    chrom : str
        Chromosome name; a chromosome without data gives coverage 0 everywhere.
    starts, ends : numpy.ndarray
        int64, shape (w,): half-open windows, any order; they may overlap or pass the ends.
    transform : callable, optional
        Applied to each base's value before averaging (``np.arcsinh`` gives the signal
        kernel's mean); None: the plain mean.
    return_coverage : bool
        Also return the number of bases with data per window.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        float64, shape (w,): the means (NaN for a window entirely outside the chromosome);
        with ``return_coverage``, also int64, shape (w,): bases with data.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or unreadable track; a window whose end is before its start.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if np.any(ends < starts):
        raise ValueError("every window needs end >= start")
    s, e, v, size = read_runs(path, chrom)
    if transform is not None:
        v = np.asarray(transform(v), dtype=np.float64)
    means, covered, _ = _window_sums(s, e, v, starts, ends, size)
    return (means, covered) if return_coverage else means


def read_track(
    path: str | os.PathLike,
    cube: xr.Dataset,
    *,
    chrom_sizes: ChromSizes = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A track's plain mean over every locus window of the cube.

    Parameters
    ----------
    path : str or os.PathLike
        bigWig or bedGraph of one cell type's scores.
    cube : xarray.Dataset
        The cube (``chrom``, ``start``, ``end`` of each locus).
    chrom_sizes
        Sizes to clip a bedGraph's windows to (a bigWig uses its header); default the sizes
        the cube stores, if any.

    Returns
    -------
    means : numpy.ndarray
        float64, shape (n_locus,): NaN where the window has no data (no prediction).
    covered : numpy.ndarray
        int64, shape (n_locus,): bases of the window with data.
    length : numpy.ndarray
        int64, shape (n_locus,): the window's length inside the chromosome.
    """
    path = Path(path)
    chrom = _strings(cube["chrom"].values)
    start = np.asarray(cube["start"].values, dtype=np.int64)
    end = np.asarray(cube["end"].values, dtype=np.int64)
    sizes = _sizes(chrom_sizes) or stored_sizes(cube) or {}
    n = chrom.size
    means = np.full(n, np.nan)
    covered = np.zeros(n, dtype=np.int64)
    length = end - start
    codes, uniques = pd.factorize(chrom)
    runs = _runs_by_chrom(path, [str(c) for c in uniques])
    for k, c in enumerate(uniques):
        idx = np.flatnonzero(codes == k)
        s, e, v, size = runs[str(c)]
        m, cov, ln = _window_sums(s, e, v, start[idx], end[idx], size or sizes.get(str(c)))
        means[idx], covered[idx], length[idx] = m, cov, ln
    means[covered == 0] = np.nan
    return means, covered, length
