"""Read one chromosome's runs of a bigWig as numpy, and arcsinh window means over them.

Two backends read the same runs: pyBigWig (default) and pybigtools, which reads a whole
chromosome about twice as fast (``benchmarks/bench_kernels.py``). Functions accept a path or
a handle already opened with :func:`open_bigwig`, so callers reading many chromosomes of one
file open it once.

Floor 2: imports only ``pitfall.kernels``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyBigWig

from pitfall import kernels

__all__ = [
    "Backend",
    "MissingChromosome",
    "chrom_sizes",
    "open_bigwig",
    "read_runs",
    "window_means",
]

Backend = Literal["pyBigWig", "pybigtools"]
BACKENDS: tuple[str, ...] = ("pyBigWig", "pybigtools")

# Structured row of a run: numpy converts tuples straight into it (faster than np.array on a
# tuple of tuples, which goes through a generic object path).
_RUN_DTYPE = np.dtype([("start", np.int64), ("end", np.int64), ("value", np.float64)])


class MissingChromosome(KeyError):
    """A chromosome is absent from a bigWig (the featurizer writes NaN for it, with a warning)."""

    def __init__(self, path: str, chrom: str) -> None:
        super().__init__(f"chromosome {chrom!r} is not in bigWig {path}")
        self.path = path
        self.chrom = chrom

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, adding quotes.
        return str(self.args[0])


def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://", "ftp://"))


def _unreadable(path: str, err: BaseException) -> ValueError:
    return ValueError(
        f"{path} is not a readable bigWig ({type(err).__name__}: {err}); check that it is a "
        "complete bigWig file (e.g. with bigWigInfo) and download or convert it again"
    )


def _is_read_error(err: BaseException) -> bool:
    """Whether ``err`` is how a backend reports an unreadable file (vs. a bug or Ctrl-C)."""
    # pyBigWig raises bare RuntimeErrors; pybigtools raises BBIReadError, or on corrupt data
    # blocks a Rust panic surfacing as pyo3's PanicException, which derives from
    # BaseException (not Exception) and has no importable name.
    names = {c.__name__ for c in type(err).__mro__}
    return isinstance(err, (RuntimeError, OSError)) or bool(
        names & {"BBIReadError", "PanicException"}
    )


def open_bigwig(path: str | os.PathLike[str], backend: Backend = "pyBigWig") -> Any:
    """Open a bigWig for reading with the chosen backend.

    Parameters
    ----------
    path : str or os.PathLike
        Local path (or URL, passed through to the backend).
    backend : {"pyBigWig", "pybigtools"}
        Reader library.

    Returns
    -------
    pyBigWig.bigWigFile or pybigtools.BBIReader
        An open handle; close it (or use it as a context manager) when done.

    Raises
    ------
    FileNotFoundError
        If a local path does not exist.
    ValueError
        If the file is not a readable bigWig (corrupt, truncated, bigBed, other format), or
        the backend is unknown.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown bigWig backend {backend!r}; choose one of {BACKENDS}")
    path = os.fspath(path)
    if not _is_url(path) and not Path(path).is_file():
        raise FileNotFoundError(
            f"bigWig {path} does not exist; check the path (or download the track first)"
        )
    try:
        if backend == "pyBigWig":
            handle = pyBigWig.open(path)
            is_bigwig = handle.isBigWig()
        else:
            import pybigtools  # optional dependency, only needed for this backend

            handle = pybigtools.open(path)
            is_bigwig = handle.is_bigwig
    except ValueError as err:
        # pybigtools judges local files by name before reading them.
        raise ValueError(
            f"pybigtools cannot open {path} ({err}); rename it to end in .bw or .bigWig, or "
            "use backend='pyBigWig'"
        ) from err
    except BaseException as err:
        if not _is_read_error(err):
            raise
        raise _unreadable(path, err) from err
    if not is_bigwig:
        handle.close()
        raise ValueError(f"{path} is a bigBed, not a bigWig; give the signal track instead")
    return handle


def _backend_of(handle: Any) -> Backend:
    # pyBigWig does not export its handle type; only its handles have ``intervals``.
    return "pyBigWig" if hasattr(handle, "intervals") else "pybigtools"


def _sizes_of(handle: Any) -> dict[str, int]:
    sizes = handle.chroms()
    return {str(c): int(n) for c, n in sizes.items()}


class _Opened:
    """Context manager yielding (handle, label): opens a path, leaves a given handle open."""

    def __init__(self, path_or_handle: Any, backend: Backend) -> None:
        self._given = not isinstance(path_or_handle, (str, os.PathLike))
        if self._given:
            self.handle = path_or_handle
            self.label = f"<{type(path_or_handle).__name__} handle>"
        else:
            self.handle = open_bigwig(path_or_handle, backend)
            self.label = os.fspath(path_or_handle)

    def __enter__(self) -> tuple[Any, str]:
        return self.handle, self.label

    def __exit__(self, *exc: object) -> None:
        if not self._given:
            self.handle.close()


def chrom_sizes(path: str | os.PathLike[str], backend: Backend = "pyBigWig") -> dict[str, int]:
    """Chromosome sizes of a bigWig, ``{name: length}``.

    Raises FileNotFoundError / ValueError as :func:`open_bigwig`.
    """
    with _Opened(path, backend) as (handle, _):
        return _sizes_of(handle)


def _read_runs_open(
    handle: Any, label: str, chrom: str, start: int, end: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sizes = _sizes_of(handle)
    if chrom not in sizes:
        raise MissingChromosome(label, chrom)
    lo = max(int(start), 0)
    hi = sizes[chrom] if end is None else min(int(end), sizes[chrom])
    if hi <= lo:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), np.empty(0, dtype=np.float32)
    backend = _backend_of(handle)
    try:
        if backend == "pyBigWig":
            # None when the chromosome has no data in the range.
            intervals = handle.intervals(chrom, lo, hi) or ()
            runs = np.fromiter(intervals, dtype=_RUN_DTYPE, count=len(intervals))
        else:
            runs = np.fromiter(handle.records(chrom, lo, hi), dtype=_RUN_DTYPE)
    except BaseException as err:
        if not _is_read_error(err):
            raise
        raise _unreadable(label, err) from err
    # pyBigWig returns whole runs overlapping the range, pybigtools clips them: clip both so
    # the backends agree and the runs stay inside [start, end).
    starts = np.maximum(runs["start"], lo)
    ends = np.minimum(runs["end"], hi)
    return starts, ends, runs["value"].astype(np.float32)


def read_runs(
    path_or_handle: str | os.PathLike[str] | Any,
    chrom: str,
    start: int = 0,
    end: int | None = None,
    backend: Backend = "pyBigWig",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs (constant-value intervals) of a bigWig on one chromosome, or a range of it.

    Parameters
    ----------
    path_or_handle : str, os.PathLike or open handle
        bigWig path, or a handle from :func:`open_bigwig` (whose backend is then used).
    chrom : str
        Chromosome name, exactly as in the bigWig.
    start, end : int, optional
        Range [start, end); defaults to the whole chromosome. Clipped to the chromosome.
    backend : {"pyBigWig", "pybigtools"}
        Reader used when a path is given; both return identical runs.

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
        Missing or unreadable file (see :func:`open_bigwig`).
    MissingChromosome
        ``chrom`` is not in the bigWig (a KeyError).
    """
    with _Opened(path_or_handle, backend) as (handle, label):
        return _read_runs_open(handle, label, chrom, start, end)


def window_means(
    path_or_handle: str | os.PathLike[str] | Any,
    chrom: str,
    win_starts: np.ndarray,
    win_ends: np.ndarray,
    backend: Backend = "pyBigWig",
    max_gap: int = 100_000,
) -> np.ndarray:
    """Mean of arcsinh(signal) over windows of one chromosome of a bigWig.

    Reads the runs once, over the spans covered by the windows only, then calls
    :func:`pitfall.kernels.window_arcsinh_means` with the bigWig's chromosome size: windows
    are clipped to the chromosome, the divisor is the clipped length, and bases without data
    (or with NaN values) count as 0.

    Parameters
    ----------
    path_or_handle : str, os.PathLike or open handle
        bigWig path, or a handle from :func:`open_bigwig`.
    chrom : str
        Chromosome name.
    win_starts, win_ends : numpy.ndarray
        int64, shape (W,): half-open windows, any order, may overlap or pass the ends.
    backend : {"pyBigWig", "pybigtools"}
        Reader used when a path is given.
    max_gap : int
        Windows closer than this many bases are read as one span.

    Returns
    -------
    numpy.ndarray
        float32, shape (W,); NaN for windows entirely outside the chromosome.

    Raises
    ------
    FileNotFoundError, ValueError, MissingChromosome
        As :func:`read_runs`.
    """
    win_starts = np.asarray(win_starts, dtype=np.int64)
    win_ends = np.asarray(win_ends, dtype=np.int64)
    with _Opened(path_or_handle, backend) as (handle, label):
        sizes = _sizes_of(handle)
        if chrom not in sizes:
            raise MissingChromosome(label, chrom)
        size = sizes[chrom]
        parts = [
            _read_runs_open(handle, label, chrom, lo, hi)
            for lo, hi in _spans(win_starts, win_ends, size, max_gap)
        ]
    if parts:
        starts, ends, values = (np.concatenate(p) for p in zip(*parts, strict=True))
    else:
        starts = ends = np.empty(0, dtype=np.int64)
        values = np.empty(0, dtype=np.float32)
    return kernels.window_arcsinh_means(starts, ends, values, win_starts, win_ends, size)


def _spans(
    win_starts: np.ndarray, win_ends: np.ndarray, size: int, max_gap: int
) -> list[tuple[int, int]]:
    """Disjoint, sorted spans covering every window (clipped to the chromosome).

    Windows closer than ``max_gap`` share a span (100 kb was fastest on TSS windows of an
    hg19-sized track): reading a gap of no interest costs less
    than one more call into the reader, but reading a whole chromosome for a few thousand
    TSS windows costs several times more than reading only around them.
    """
    lo = np.clip(win_starts, 0, size)
    hi = np.clip(win_ends, 0, size)
    keep = hi > lo
    if not keep.any():
        return []
    order = np.argsort(lo[keep], kind="stable")
    lo, hi = lo[keep][order], hi[keep][order]
    reach = np.maximum.accumulate(hi)
    # A new span starts where a window begins more than max_gap past everything before it.
    new = np.flatnonzero(lo[1:] > reach[:-1] + max_gap) + 1
    first = np.concatenate([[0], new])
    last = np.concatenate([new - 1, [lo.size - 1]])
    return [(int(lo[a]), int(reach[b])) for a, b in zip(first, last, strict=True)]
