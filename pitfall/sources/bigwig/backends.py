"""The three readers behind one interface: opening a bigWig, and its sizes, data and runs.

``"builtin"`` is :class:`pitfall.sources.bigwig.format.BigWigReader`; ``"pybigtools"`` and
``"pyBigWig"`` are the two libraries, for comparison and as fallbacks (pyBigWig also reads
URLs). A handle of any of them goes through the same functions here, which also turn each
library's way of failing on a damaged file into one ValueError naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pitfall.sources import remote
from pitfall.sources.bigwig.errors import (
    MissingChromosome,
    is_read_error,
    label_of,
    unreadable,
)
from pitfall.sources.bigwig.format import BigWigReader

__all__ = [
    "BACKENDS",
    "Backend",
    "Opened",
    "backend_of",
    "handle_has_data",
    "open_bigwig",
    "resolve_backend",
    "runs_of",
    "sizes_of",
]

Backend = Literal["builtin", "pybigtools", "pyBigWig"]
BACKENDS: tuple[str, ...] = ("builtin", "pybigtools", "pyBigWig")

# Structured row of a run: numpy converts tuples straight into it, where np.array on a tuple
# of tuples goes through a generic object path.
_RUN_DTYPE = np.dtype([("start", np.int64), ("end", np.int64), ("value", np.float64)])


def is_file_object(obj: object) -> bool:
    """Whether ``obj`` reads like a binary file (``read``, ``seek`` and ``tell``)."""
    return all(hasattr(obj, name) for name in ("read", "seek", "tell"))


def _open_pybigtools(source: Any, label: str) -> Any:
    import pybigtools  # optional dependency, only needed for this backend

    if isinstance(source, str) and not remote.is_url(source):
        # The same (case-sensitive) suffixes as pybigtools' own check.
        if Path(source).suffix not in (".bw", ".bigWig", ".bigwig"):
            # pybigtools judges local paths by their suffix before reading them, but reads
            # any file object: hand it one, and close it with the reader.
            fh = open(source, "rb")  # noqa: SIM115 - owned by the reader below
            try:
                return _FileClosingReader(pybigtools.open(fh), fh)
            except BaseException:
                fh.close()
                raise
    if is_file_object(source):
        # pybigtools reads the signature where the object stands, not at offset 0.
        source.seek(0)
    return pybigtools.open(source)


class _FileClosingReader:
    """A pybigtools reader over a file object it owns: closing it closes the file too."""

    def __init__(self, reader: Any, fh: Any) -> None:
        self._reader = reader
        self._fh = fh

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def close(self) -> None:
        self._reader.close()
        self._fh.close()

    def __enter__(self) -> _FileClosingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_backend(source: Any, backend: Backend | None) -> Backend:
    """The backend to open ``source`` with: ``backend``, or "builtin" for None."""
    if backend is None:
        return "builtin"
    if backend not in BACKENDS:
        raise ValueError(f"unknown bigWig backend {backend!r}; choose one of {BACKENDS}")
    return backend


def open_bigwig(
    source: str | os.PathLike[str] | Any,
    backend: Backend | None = None,
    use_libdeflate: bool = True,
) -> Any:
    """Open a bigWig for reading with the chosen backend.

    Parameters
    ----------
    source : str, os.PathLike or binary file object
        Local path, URL (``https://``, ``s3://``, ``gs://``, ``az://``: the builtin reader
        fetches the header, the index and the blocks the windows touch by range requests,
        :class:`pitfall.sources.remote.RangedFile`) or an open binary file object with
        ``read``/``seek``/``tell`` (builtin and pybigtools only; it is left open on close).
    backend : {"builtin", "pybigtools", "pyBigWig"}, optional
        Reader; None (the default) is "builtin".
    use_libdeflate : bool
        Builtin reader only: False inflates with zlib even where libdeflate is present.

    Returns
    -------
    BigWigReader, pybigtools.BBIReader or pyBigWig.bigWigFile
        An open handle; close it (or use it as a context manager) when done.

    Raises
    ------
    FileNotFoundError
        If a local path does not exist.
    ValueError
        If the file is not a readable bigWig (corrupt, truncated, bigBed, other format), the
        backend cannot read this kind of source, or the backend is unknown.
    """
    backend = resolve_backend(source, backend)
    if isinstance(source, (str, os.PathLike)):
        source = label = os.fspath(source)
        if not remote.is_url(source) and not Path(source).is_file():
            raise FileNotFoundError(
                f"bigWig {source} does not exist; check the path (or download the track first)"
            )

    elif is_file_object(source):
        label = label_of(source)
        if backend == "pyBigWig":
            raise ValueError(
                f"pyBigWig reads only paths and URLs, not the file object {label}; use "
                "backend='builtin' or 'pybigtools'"
            )
    else:
        raise TypeError(
            f"open_bigwig takes a path, URL or binary file object, got {type(source).__name__}"
        )
    try:
        if backend == "builtin":
            return BigWigReader(source, use_libdeflate=use_libdeflate)
        if backend == "pyBigWig":
            import pyBigWig

            handle = pyBigWig.open(source)
            is_bigwig = handle.isBigWig()
        else:
            handle = _open_pybigtools(source, label)
            is_bigwig = handle.is_bigwig
    except FileNotFoundError:
        raise  # a URL the server does not have: its own message names it
    except ValueError as err:
        if "bigBed" in str(err) or "not a readable bigWig" in str(err):
            raise
        raise unreadable(label, err) from err
    except BaseException as err:
        if not is_read_error(err):
            raise
        raise unreadable(label, err) from err
    if not is_bigwig:
        handle.close()
        raise ValueError(f"{label} is a bigBed, not a bigWig; give the signal track instead")
    return handle


def backend_of(handle: Any) -> Backend:
    """Which backend opened ``handle``."""
    if isinstance(handle, BigWigReader):
        return "builtin"
    # pyBigWig does not export its handle type; only its handles have ``intervals``.
    return "pyBigWig" if hasattr(handle, "intervals") else "pybigtools"


def is_handle(obj: object) -> bool:
    """Whether ``obj`` is an open handle of one of the backends."""
    return isinstance(obj, BigWigReader) or hasattr(obj, "intervals") or hasattr(obj, "records")


def sizes_of(handle: Any) -> dict[str, int]:
    """Chromosome sizes of an open handle, ``{name: length}``."""
    sizes = handle.chroms()
    return {str(c): int(n) for c, n in sizes.items()}


class Opened:
    """Context manager yielding (handle, label): opens a path or file object, leaves a handle."""

    def __init__(self, source: Any, backend: Backend | None) -> None:
        self._given = not isinstance(source, (str, os.PathLike)) and is_handle(source)
        if self._given:
            self.handle = source
            self.label = getattr(source, "name", None) or f"<{type(source).__name__} handle>"
        else:
            self.handle = open_bigwig(source, backend)
            self.label = (
                os.fspath(source) if isinstance(source, (str, os.PathLike)) else label_of(source)
            )

    def __enter__(self) -> tuple[Any, str]:
        return self.handle, self.label

    def __exit__(self, *exc: object) -> None:
        if not self._given:
            self.handle.close()


def _clip_runs(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # pyBigWig and the builtin reader return whole runs overlapping the range, pybigtools
    # clips them: clip all so the backends agree and the runs stay inside [lo, hi).
    return np.maximum(starts, lo), np.minimum(ends, hi), values.astype(np.float32, copy=False)


def _pybigtools_has_no_data(handle: Any) -> bool:
    # pybigtools fails with "Invalid magic" on a file without any data (its index offset
    # is 0), where the other readers return no runs.
    return handle.info()["summary"]["basesCovered"] == 0


def handle_has_data(handle: Any) -> bool:
    """Whether the bigWig of an open handle holds any value."""
    backend = backend_of(handle)
    if backend == "builtin":
        return bool(handle.has_data)
    if backend == "pyBigWig":
        return int(handle.header()["nBasesCovered"]) > 0
    return not _pybigtools_has_no_data(handle)


def runs_of(
    handle: Any, label: str, chrom: str, start: int, end: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of ``chrom`` in ``[start, end)`` from an open handle of any backend.

    ``label`` names the file in errors. Returns int64 starts and ends and float32 values,
    shape (R,), clipped to the range, as :func:`pitfall.sources.bigwig.windows.read_runs`.
    """
    sizes = sizes_of(handle)
    if chrom not in sizes:
        raise MissingChromosome(label, chrom)
    lo = max(int(start), 0)
    hi = sizes[chrom] if end is None else min(int(end), sizes[chrom])
    if hi <= lo:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), np.empty(0, dtype=np.float32)
    backend = backend_of(handle)
    try:
        if backend == "builtin":
            span = np.array([lo], dtype=np.int64), np.array([hi], dtype=np.int64)
            parts = list(handle.decoded_runs(chrom, *span))
            if parts:
                starts, ends, values = (np.concatenate(p) for p in zip(*parts, strict=True))
            else:
                starts = ends = np.empty(0, dtype=np.int64)
                values = np.empty(0, dtype=np.float32)
            return _clip_runs(starts, ends, values, lo, hi)
        if backend == "pyBigWig":
            # None when the chromosome has no data in the range.
            intervals = handle.intervals(chrom, lo, hi) or ()
            runs = np.fromiter(intervals, dtype=_RUN_DTYPE, count=len(intervals))
        else:
            try:
                runs = np.fromiter(handle.records(chrom, lo, hi), dtype=_RUN_DTYPE)
            except Exception:
                if not _pybigtools_has_no_data(handle):
                    raise
                runs = np.empty(0, dtype=_RUN_DTYPE)
    except BaseException as err:
        if not (is_read_error(err) or (backend == "builtin" and isinstance(err, ValueError))):
            raise
        raise unreadable(label, err) from err
    return _clip_runs(runs["start"], runs["end"], runs["value"], lo, hi)
