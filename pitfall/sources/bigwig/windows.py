"""Reading a bigWig by path, file object or handle: sizes, data, runs and window means.

Functions accept a path, an already-open binary file object (``read``/``seek``/``tell``, e.g.
a ranged HTTP reader; builtin and pybigtools backends) or a handle opened with
:func:`pitfall.sources.bigwig.backends.open_bigwig`, so callers reading many chromosomes of
one file open it once.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from pitfall import _buffers as buffers
from pitfall import kernels
from pitfall.sources.bigwig.backends import (
    Backend,
    Opened,
    backend_of,
    handle_has_data,
    runs_of,
    sizes_of,
)
from pitfall.sources.bigwig.errors import READ_ERRORS, MissingChromosome, unreadable
from pitfall.storage import StorageError

__all__ = ["chrom_sizes", "covering_spans", "has_data", "read_runs", "window_means"]


def chrom_sizes(
    path_or_handle: str | os.PathLike[str] | Any, backend: Backend | None = None
) -> dict[str, int]:
    """Chromosome sizes of a bigWig, ``{name: length}``.

    Raises FileNotFoundError / ValueError as :func:`~pitfall.sources.bigwig.backends.open_bigwig`.
    """
    with Opened(path_or_handle, backend) as (handle, _):
        return sizes_of(handle)


def has_data(path_or_handle: str | os.PathLike[str] | Any, backend: Backend | None = None) -> bool:
    """Whether a bigWig holds any value (a file may hold a header and chromosomes alone).

    Every reader reads such a file as no data anywhere, which window means take for 0.
    """
    with Opened(path_or_handle, backend) as (handle, _):
        return handle_has_data(handle)


def read_runs(
    path_or_handle: str | os.PathLike[str] | Any,
    chrom: str,
    start: int = 0,
    end: int | None = None,
    backend: Backend | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs (constant-value intervals) of a bigWig on one chromosome, or a range of it.

    Parameters
    ----------
    path_or_handle : str, os.PathLike, binary file object or open handle
        bigWig path, file object, or a handle from :func:`~pitfall.sources.bigwig.backends.open_bigwig` (whose backend is then
        used).
    chrom : str
        Chromosome name, exactly as in the bigWig.
    start, end : int, optional
        Range [start, end); defaults to the whole chromosome. Clipped to the chromosome.
    backend : {"builtin", "pybigtools", "pyBigWig"}, optional
        Reader used when a path or file object is given (see :func:`~pitfall.sources.bigwig.backends.open_bigwig`); all
        return identical runs.

    Returns
    -------
    starts, ends : numpy.ndarray
        int64, shape (R,): sorted, non-overlapping half-open runs, clipped to [start, end).
    values : numpy.ndarray
        float32, shape (R,): one value per run (NaN if the file stores NaN). Bases without
        data are simply not covered by any run.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or unreadable file (see :func:`~pitfall.sources.bigwig.backends.open_bigwig`).
    MissingChromosome
        ``chrom`` is not in the bigWig (a KeyError).
    """
    with Opened(path_or_handle, backend) as (handle, label):
        return runs_of(handle, label, chrom, start, end)


def window_means(
    path_or_handle: str | os.PathLike[str] | Any,
    chrom: str,
    win_starts: np.ndarray,
    win_ends: np.ndarray,
    backend: Backend | None = None,
    max_gap: int = 100_000,
) -> np.ndarray:
    """Mean of arcsinh(signal) over windows of one chromosome of a bigWig.

    Windows are clipped to the chromosome, the divisor is the clipped length, and bases
    without data (or with NaN values) count as 0 (see
    :func:`pitfall.kernels.window_arcsinh_means`). The builtin reader inflates and decodes
    only the data blocks that meet a window, keeps only the runs that meet one, and adds
    them to the window sums batch by batch; the library backends read runs over spans of
    nearby windows and call :func:`pitfall.kernels.window_arcsinh_means` once.

    Parameters
    ----------
    path_or_handle : str, os.PathLike, binary file object or open handle
        bigWig path, file object, or a handle from :func:`~pitfall.sources.bigwig.backends.open_bigwig`.
    chrom : str
        Chromosome name.
    win_starts, win_ends : numpy.ndarray
        int64, shape (W,): half-open windows, any order, may overlap or pass the ends.
    backend : {"builtin", "pybigtools", "pyBigWig"}, optional
        Reader used when a path or file object is given (see :func:`~pitfall.sources.bigwig.backends.open_bigwig`).
    max_gap : int
        Library backends: windows closer than this many bases are read as one span (the
        builtin reader reads blocks, whatever the gaps).

    Returns
    -------
    numpy.ndarray
        float32, shape (W,); NaN for windows entirely outside the chromosome.

    Raises
    ------
    FileNotFoundError, ValueError, MissingChromosome
        As :func:`read_runs`.
    """
    with Opened(path_or_handle, backend) as (handle, label):
        sizes = sizes_of(handle)
        if chrom not in sizes:
            raise MissingChromosome(label, chrom)
        size = sizes[chrom]
        lo, hi = kernels.clip_windows(win_starts, win_ends, size)
        if backend_of(handle) == "builtin":
            sums = np.zeros(lo.size, dtype=np.float64)
            span_starts, span_ends = covering_spans(lo, hi)
            try:
                for starts, ends, values in handle.decoded_runs(chrom, span_starts, span_ends):
                    work = buffers.buffer("window sums", 3 * starts.size, np.float64)
                    kernels.add_window_arcsinh_sums(starts, ends, values, lo, hi, sums, work)
            except StorageError:
                raise
            except (ValueError, *READ_ERRORS) as err:
                raise unreadable(label, err) from err
            return kernels.means_from_sums(sums, lo, hi)
        parts = [runs_of(handle, label, chrom, a, b) for a, b in _spans(lo, hi, size, max_gap)]
    if parts:
        starts, ends, values = (np.concatenate(p) for p in zip(*parts, strict=True))
    else:
        starts = ends = np.empty(0, dtype=np.int64)
        values = np.empty(0, dtype=np.float32)
    return kernels.window_arcsinh_means(starts, ends, values, lo, hi, size)


def covering_spans(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint spans (int64 starts, ends) covering the non-empty windows exactly."""
    return _span_arrays(lo, hi, 0)


def _span_arrays(lo: np.ndarray, hi: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    keep = hi > lo
    order = np.argsort(lo[keep], kind="stable")
    lo, hi = lo[keep][order], hi[keep][order]
    if lo.size == 0:
        return lo, hi
    reach = np.maximum.accumulate(hi)
    # A new span starts where a window begins more than max_gap past everything before it.
    new = np.flatnonzero(lo[1:] > reach[:-1] + max_gap) + 1
    first = np.concatenate([[0], new])
    last = np.concatenate([new - 1, [lo.size - 1]])
    return lo[first], reach[last]


def _spans(
    win_starts: np.ndarray, win_ends: np.ndarray, size: int, max_gap: int
) -> list[tuple[int, int]]:
    """Disjoint, sorted spans covering every window (clipped to the chromosome).

    Windows closer than ``max_gap`` share a span: reading a short gap of no interest costs
    less than one more call into the reader, while reading a whole chromosome for a few
    thousand TSS windows costs more than reading only around them.
    """
    starts, ends = _span_arrays(np.clip(win_starts, 0, size), np.clip(win_ends, 0, size), max_gap)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))
