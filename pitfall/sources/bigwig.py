"""Read one chromosome's runs of a bigWig as numpy, and arcsinh window means over them.

Three backends read the same runs:

* ``"builtin"`` (the default): this module's own reader of the bigWig format. It reads only
  the data blocks that the windows touch (found through the file's R-tree index), inflates
  them with libdeflate when the system has it (zlib otherwise) and decodes all of them in one
  Numba call; ``benchmarks/bench_featurize.py`` measures it against pybigtools'
  ``average_over_bed``.
* ``"pybigtools"`` and ``"pyBigWig"``: the two libraries, for comparison and as fallbacks
  (pyBigWig also reads URLs).

Functions accept a path, an already-open binary file object (``read``/``seek``/``tell``, e.g.
a ranged HTTP reader; builtin and pybigtools backends) or a handle opened with
:func:`open_bigwig`, so callers reading many chromosomes of one file open it once.

Floor 2: imports ``pitfall.kernels``, ``pitfall.scratch``, ``pitfall.location`` (its
``StorageError``: a URL whose server failed is not a damaged file) and ``pitfall.sources.remote``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pitfall import kernels, scratch
from pitfall.location import StorageError
from pitfall.sources import remote

__all__ = [
    "BACKENDS",
    "Backend",
    "BigWigReader",
    "MissingChromosome",
    "chrom_sizes",
    "has_data",
    "open_bigwig",
    "read_runs",
    "window_means",
]

Backend = Literal["builtin", "pybigtools", "pyBigWig"]
BACKENDS: tuple[str, ...] = ("builtin", "pybigtools", "pyBigWig")

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
    return remote.is_url(path)


def _is_file_object(obj: object) -> bool:
    return all(hasattr(obj, name) for name in ("read", "seek", "tell"))


def _label_of(fileobj: object) -> str:
    name = getattr(fileobj, "name", None)
    return os.fspath(name) if isinstance(name, (str, os.PathLike)) else repr(fileobj)


def _unreadable(path: str, err: BaseException | str) -> ValueError:
    why = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return ValueError(
        f"{path} is not a readable bigWig ({why}); check that it is a complete bigWig file "
        "(e.g. with bigWigInfo) and download or convert it again"
    )


def _is_read_error(err: BaseException) -> bool:
    """Whether ``err`` is how a backend reports an unreadable file (vs. a bug or Ctrl-C)."""
    # pyBigWig raises bare RuntimeErrors; pybigtools raises BBIReadError, or on corrupt data
    # blocks a Rust panic surfacing as pyo3's PanicException, which derives from
    # BaseException (not Exception) and has no importable name. A URL whose server went
    # away (a StorageError) is the network's failure, not the file's.
    if isinstance(err, StorageError):
        return False
    names = {c.__name__ for c in type(err).__mro__}
    return isinstance(err, (RuntimeError, OSError, EOFError, struct.error, zlib.error)) or bool(
        names & {"BBIReadError", "PanicException"}
    )


# --------------------------------------------------------------------------- builtin reader

_BIGWIG_MAGIC = 0x888FFC26
_BIGBED_MAGIC = 0x8789F2EB
_CHROM_TREE_MAGIC = 0x78CA8C91
_RTREE_MAGIC = 0x2468ACE0
# Blocks are inflated this many uncompressed bytes at a time, which bounds memory on whole
# chromosomes of dense tracks; larger batches were no faster.
_BATCH_BYTES = 32 << 20
# Blocks closer than this in the file are fetched with one read: cheaper than a second
# request, above all for remote file objects.
_COALESCE_BYTES = 256 << 10


@functools.cache
def _libdeflate() -> Any:
    """libdeflate through ctypes, or None; inflates bigWig blocks about twice as fast as zlib.

    pybigtools inflates with libdeflate too, so with zlib the builtin reader would spend
    more time inflating alone than ``average_over_bed`` spends on everything.
    """
    # The soname first: find_library runs ldconfig in a subprocess, slow for a first call.
    for find in (lambda: "libdeflate.so.0", lambda: ctypes.util.find_library("deflate")):
        name = find()
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
            lib.libdeflate_alloc_decompressor.argtypes = []
            lib.libdeflate_free_decompressor.restype = None
            lib.libdeflate_free_decompressor.argtypes = [ctypes.c_void_p]
            lib.libdeflate_zlib_decompress.restype = ctypes.c_int
            lib.libdeflate_zlib_decompress.argtypes = [
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.POINTER(ctypes.c_size_t),
            ]
            return lib
        except (OSError, AttributeError):
            continue
    return None


class _Inflater:
    """Inflates zlib blocks into a buffer; one per batch, as libdeflate's state is not shared."""

    def __init__(self, use_libdeflate: bool = True) -> None:
        self._lib = _libdeflate() if use_libdeflate else None
        self._state = self._lib.libdeflate_alloc_decompressor() if self._lib else None
        self._n = ctypes.c_size_t()

    def into(self, src: np.ndarray, a: int, b: int, out: np.ndarray, at: int, cap: int) -> int:
        """Inflate ``src[a:b]`` into ``out[at:at + cap]``; the inflated length."""
        if self._state and self._lib is not None:
            code = self._lib.libdeflate_zlib_decompress(
                self._state,
                src.ctypes.data + a,
                b - a,
                out.ctypes.data + at,
                cap,
                ctypes.byref(self._n),
            )
            if code == 0:
                return self._n.value
            # Bad data or a block over the header's bound: zlib says which, below.
        # ``.data``: the same bytes as a memoryview (numpy types ndarray as a buffer only
        # for Python >= 3.12).
        raw = zlib.decompress(src[a:b].data, bufsize=cap)
        if len(raw) > cap:
            raise ValueError(f"a data block inflates to {len(raw)} bytes, over the header's {cap}")
        out[at : at + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        return len(raw)

    def close(self) -> None:
        if self._state and self._lib is not None:
            self._lib.libdeflate_free_decompressor(self._state)
            self._state = None


class BigWigReader:
    """An open bigWig read by this module itself: header, chromosome tree and R-tree index.

    Parameters
    ----------
    source : str, os.PathLike or binary file object
        Local path, URL (read by range requests through
        :class:`pitfall.sources.remote.RangedFile`), or an open file object with ``read``,
        ``seek`` and ``tell`` (left open on :meth:`close`).
    use_libdeflate : bool
        Inflate with libdeflate when the system has it (the default); False forces zlib.

    Raises
    ------
    ValueError
        If the data is not a readable bigWig (bad magic, truncated, a bigBed).

    Notes
    -----
    Not thread-safe (one file position, one node cache): open one reader per thread.
    """

    def __init__(self, source: Any, use_libdeflate: bool = True) -> None:
        self._mappable = False
        if isinstance(source, str) and _is_url(source):
            self.name = source
            self._fh: Any = remote.RangedFile(source)
            self._owns = True
        elif isinstance(source, (str, os.PathLike)):
            self.name = os.fspath(source)
            self._fh = open(self.name, "rb")  # noqa: SIM115 - closed by close()
            self._owns = self._mappable = True
        else:
            self.name = _label_of(source)
            self._fh = source
            self._owns = False
        self.use_libdeflate = use_libdeflate
        self._map: mmap.mmap | None = None
        self._nodes: dict[int, tuple[bool, np.ndarray]] = {}
        try:
            self._read_header()
        except (EOFError, struct.error, ValueError) as err:
            self.close()
            if isinstance(err, ValueError):
                raise
            raise _unreadable(self.name, err) from err
        except BaseException:
            self.close()
            raise

    # -- reading

    def _read_at(self, offset: int, n: int) -> bytes:
        self._fh.seek(offset)
        parts = []
        left = n
        # Raw and network file objects may return fewer bytes than asked for.
        while left > 0:
            chunk = self._fh.read(left)
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(data) < n:
            raise EOFError(f"wanted {n} bytes at offset {offset}, the file ends after {len(data)}")
        return data

    def _bytes_at(self, offset: int, n: int) -> np.ndarray:
        """``n`` bytes at ``offset`` as a uint8 array: a view of the mapped file when local."""
        if self._map is None and self._mappable:
            # Mapping spares a copy of every block out of the page cache (a tenth of the
            # time of a whole chromosome); file objects may not have a file descriptor.
            self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        if self._map is None:
            return np.frombuffer(self._read_at(offset, n), dtype=np.uint8)
        if offset + n > len(self._map):
            raise EOFError(f"wanted {n} bytes at offset {offset}, the file has {len(self._map)}")
        return np.frombuffer(self._map, dtype=np.uint8, count=n, offset=offset)

    def _read_header(self) -> None:
        head = self._read_at(0, 64)
        (magic,) = struct.unpack_from("<I", head)
        if magic == _BIGWIG_MAGIC:
            self.byteorder = "<"
        elif struct.unpack_from(">I", head)[0] == _BIGWIG_MAGIC:
            self.byteorder = ">"
        elif _BIGBED_MAGIC in (magic, struct.unpack_from(">I", head)[0]):
            raise ValueError(
                f"{self.name} is a bigBed, not a bigWig; give the signal track instead"
            )
        else:
            raise _unreadable(self.name, "no bigWig signature at its start")
        e = self.byteorder
        fields = struct.unpack_from(e + "IHHQQQHHQQIQ", head)
        self.version, chrom_tree, index = fields[1], fields[3], fields[5]
        summary, self.uncompress_buf_size = fields[9], fields[10]
        # Writers also put the signature at the very end: a cheap check for truncation.
        self._fh.seek(0, io.SEEK_END)
        self.file_size = self._fh.tell()
        (tail,) = struct.unpack(e + "I", self._read_at(self.file_size - 4, 4))
        if tail != _BIGWIG_MAGIC:
            raise _unreadable(self.name, "no bigWig signature at its end (truncated?)")
        self._read_chrom_tree(chrom_tree)
        # The total summary (version 2 on) counts the bases with data: 0 in a file holding
        # a header alone, which every reader would read as no data anywhere.
        covered = struct.unpack(e + "Q", self._read_at(summary, 8))[0] if summary else None
        self.has_data = index != 0 and covered != 0
        if index == 0:
            # Writers leave the index offset 0 in a file without any data.
            self._rtree_root = 0
            return
        rtree = self._read_at(index, 48)
        magic, self._rtree_block_size = struct.unpack_from(e + "II", rtree)
        if magic != _RTREE_MAGIC:
            raise _unreadable(self.name, "bad data index signature")
        self._rtree_root = index + 48

    def _read_chrom_tree(self, offset: int) -> None:
        e = self.byteorder
        magic, _, key_size, val_size, _ = struct.unpack(e + "IIIIQ", self._read_at(offset, 24))
        if magic != _CHROM_TREE_MAGIC or val_size != 8:
            raise _unreadable(self.name, "bad chromosome tree signature")
        leaf = np.dtype([("key", f"S{key_size}"), ("id", e + "u4"), ("size", e + "u4")])
        inner = np.dtype([("key", f"S{key_size}"), ("child", e + "u8")])
        self.chrom_ids: dict[str, int] = {}
        self._chrom_sizes: dict[str, int] = {}
        todo = [offset + 32]
        while todo:
            node = todo.pop()
            is_leaf, _, count = struct.unpack(e + "BBH", self._read_at(node, 4))
            dtype = leaf if is_leaf else inner
            items = np.frombuffer(self._read_at(node + 4, count * dtype.itemsize), dtype=dtype)
            if is_leaf:
                for key, cid, size in items.tolist():
                    name = key.decode("utf-8", errors="replace")
                    self.chrom_ids[name] = int(cid)
                    self._chrom_sizes[name] = int(size)
            else:
                todo.extend(int(c) for c in items["child"])

    def chroms(self) -> dict[str, int]:
        """Chromosome sizes, ``{name: length}``."""
        return dict(self._chrom_sizes)

    def _node(self, offset: int) -> tuple[bool, np.ndarray]:
        if offset not in self._nodes:
            e = self.byteorder
            is_leaf, _, count = struct.unpack(e + "BBH", self._read_at(offset, 4))
            fields = [("sc", e + "u4"), ("sb", e + "u4"), ("ec", e + "u4"), ("eb", e + "u4")]
            fields += [("offset", e + "u8")] + ([("size", e + "u8")] if is_leaf else [])
            dtype = np.dtype(fields)
            raw = self._read_at(offset + 4, count * dtype.itemsize)
            self._nodes[offset] = (bool(is_leaf), np.frombuffer(raw, dtype=dtype))
        return self._nodes[offset]

    def blocks(
        self, chrom_id: int, span_starts: np.ndarray, span_ends: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Data blocks meeting any span of a chromosome: file offsets and sizes (int64, (B,)),
        in genomic order.

        Walks the R-tree level by level, visiting only nodes whose range meets a span.
        """
        # (chrom, base) pairs as one int64 key, so ranges across chromosomes compare right.
        q_lo = (np.int64(chrom_id) << 32) | np.asarray(span_starts, dtype=np.int64)
        q_hi = (np.int64(chrom_id) << 32) | np.asarray(span_ends, dtype=np.int64)
        leaves = []
        todo = [self._rtree_root] if self._rtree_root else []
        while todo and q_lo.size:
            children = []
            for offset in todo:
                is_leaf, items = self._node(offset)
                lo = (items["sc"].astype(np.int64) << 32) | items["sb"]
                hi = (items["ec"].astype(np.int64) << 32) | items["eb"]
                # The first span ending after an item starts is the only one that can meet it.
                k = np.searchsorted(q_hi, lo, side="right")
                hit = (k < q_lo.size) & (q_lo[np.minimum(k, q_lo.size - 1)] < hi)
                if is_leaf:
                    leaves.append(items[hit])
                else:
                    children.extend(items["offset"][hit].tolist())
            todo = children
        if not leaves:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        found = np.concatenate(leaves)
        # Genomic order, so runs come out sorted: writers also store blocks in that order,
        # but nothing in the format says they must.
        key = (found["sc"].astype(np.int64) << 32) | found["sb"]
        order = np.argsort(key, kind="stable")
        return found["offset"][order].astype(np.int64), found["size"][order].astype(np.int64)

    def decoded_runs(
        self, chrom: str, span_starts: np.ndarray, span_ends: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Runs of ``chrom`` meeting the spans, batch by batch of blocks (see ``_BATCH_BYTES``).

        Runs of different batches never overlap; within a batch they are sorted.
        """
        cid = self.chrom_ids[chrom]
        offsets, sizes = self.blocks(cid, span_starts, span_ends)
        compressed = self.uncompress_buf_size > 0
        # Room for one block, rounded up to whole words so each block starts word-aligned.
        cap = int(self.uncompress_buf_size if compressed else max(sizes, default=0))
        cap = (cap + 3) // 4 * 4
        per_batch = max(1, _BATCH_BYTES // max(cap, 1))
        for first in range(0, offsets.size, per_batch):
            yield self._decode_batch(
                offsets[first : first + per_batch],
                sizes[first : first + per_batch],
                cap,
                cid,
                span_starts,
                span_ends,
            )

    def _decode_batch(
        self,
        offsets: np.ndarray,
        sizes: np.ndarray,
        cap: int,
        cid: int,
        span_starts: np.ndarray,
        span_ends: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        data = scratch.buffer("bigwig blocks", offsets.size * cap)
        starts = np.arange(offsets.size, dtype=np.int64) * cap
        ends = starts.copy()
        # Blocks that follow each other (or nearly) in the file are fetched in one read.
        gaps = offsets[1:] - (offsets[:-1] + sizes[:-1])
        apart = (gaps < 0) | (gaps > _COALESCE_BYTES)
        cuts = np.concatenate([[0], np.flatnonzero(apart) + 1, [offsets.size]])
        inflater = _Inflater(self.use_libdeflate) if self.uncompress_buf_size > 0 else None
        try:
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                base = int(offsets[a])
                src = self._bytes_at(base, int(offsets[b - 1] + sizes[b - 1]) - base)
                for i in range(a, b):
                    lo = int(offsets[i]) - base
                    hi = lo + int(sizes[i])
                    at = int(starts[i])
                    if inflater is None:
                        data[at : at + hi - lo] = src[lo:hi]
                        ends[i] = at + hi - lo
                    else:
                        ends[i] = at + inflater.into(src, lo, hi, data, at, cap)
        finally:
            if inflater is not None:
                inflater.close()
        return kernels.decode_bigwig_blocks(
            data, starts, ends, cid, span_starts, span_ends, self.byteorder == ">"
        )

    def close(self) -> None:
        """Close the file if this reader opened it (a given file object stays open)."""
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # an array still views it (e.g. held by a traceback); GC unmaps it later
            self._map = None
        if self._owns and not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> BigWigReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- opening


def _open_pybigtools(source: Any, label: str) -> Any:
    import pybigtools  # optional dependency, only needed for this backend

    if isinstance(source, str) and not _is_url(source):
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
    if _is_file_object(source):
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


def _resolve_backend(source: Any, backend: Backend | None) -> Backend:
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
    backend = _resolve_backend(source, backend)
    if isinstance(source, (str, os.PathLike)):
        source = label = os.fspath(source)
        if not _is_url(source) and not Path(source).is_file():
            raise FileNotFoundError(
                f"bigWig {source} does not exist; check the path (or download the track first)"
            )

    elif _is_file_object(source):
        label = _label_of(source)
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
        raise _unreadable(label, err) from err
    except BaseException as err:
        if not _is_read_error(err):
            raise
        raise _unreadable(label, err) from err
    if not is_bigwig:
        handle.close()
        raise ValueError(f"{label} is a bigBed, not a bigWig; give the signal track instead")
    return handle


def _backend_of(handle: Any) -> Backend:
    if isinstance(handle, BigWigReader):
        return "builtin"
    # pyBigWig does not export its handle type; only its handles have ``intervals``.
    return "pyBigWig" if hasattr(handle, "intervals") else "pybigtools"


def _is_handle(obj: object) -> bool:
    return isinstance(obj, BigWigReader) or hasattr(obj, "intervals") or hasattr(obj, "records")


def _sizes_of(handle: Any) -> dict[str, int]:
    sizes = handle.chroms()
    return {str(c): int(n) for c, n in sizes.items()}


class _Opened:
    """Context manager yielding (handle, label): opens a path or file object, leaves a handle."""

    def __init__(self, source: Any, backend: Backend | None) -> None:
        self._given = not isinstance(source, (str, os.PathLike)) and _is_handle(source)
        if self._given:
            self.handle = source
            self.label = getattr(source, "name", None) or f"<{type(source).__name__} handle>"
        else:
            self.handle = open_bigwig(source, backend)
            self.label = (
                os.fspath(source) if isinstance(source, (str, os.PathLike)) else _label_of(source)
            )

    def __enter__(self) -> tuple[Any, str]:
        return self.handle, self.label

    def __exit__(self, *exc: object) -> None:
        if not self._given:
            self.handle.close()


def chrom_sizes(
    path_or_handle: str | os.PathLike[str] | Any, backend: Backend | None = None
) -> dict[str, int]:
    """Chromosome sizes of a bigWig, ``{name: length}``.

    Raises FileNotFoundError / ValueError as :func:`open_bigwig`.
    """
    with _Opened(path_or_handle, backend) as (handle, _):
        return _sizes_of(handle)


def has_data(path_or_handle: str | os.PathLike[str] | Any, backend: Backend | None = None) -> bool:
    """Whether a bigWig holds any value (a file may hold a header and chromosomes alone).

    Every reader reads such a file as no data anywhere, which window means take for 0.
    """
    with _Opened(path_or_handle, backend) as (handle, _):
        backend = _backend_of(handle)
        if backend == "builtin":
            return bool(handle.has_data)
        if backend == "pyBigWig":
            return int(handle.header()["nBasesCovered"]) > 0
        return not _pybigtools_has_no_data(handle)


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
        if not (_is_read_error(err) or (backend == "builtin" and isinstance(err, ValueError))):
            raise
        raise _unreadable(label, err) from err
    return _clip_runs(runs["start"], runs["end"], runs["value"], lo, hi)


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
        bigWig path, file object, or a handle from :func:`open_bigwig` (whose backend is then
        used).
    chrom : str
        Chromosome name, exactly as in the bigWig.
    start, end : int, optional
        Range [start, end); defaults to the whole chromosome. Clipped to the chromosome.
    backend : {"builtin", "pybigtools", "pyBigWig"}, optional
        Reader used when a path or file object is given (see :func:`open_bigwig`); all
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
        bigWig path, file object, or a handle from :func:`open_bigwig`.
    chrom : str
        Chromosome name.
    win_starts, win_ends : numpy.ndarray
        int64, shape (W,): half-open windows, any order, may overlap or pass the ends.
    backend : {"builtin", "pybigtools", "pyBigWig"}, optional
        Reader used when a path or file object is given (see :func:`open_bigwig`).
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
    with _Opened(path_or_handle, backend) as (handle, label):
        sizes = _sizes_of(handle)
        if chrom not in sizes:
            raise MissingChromosome(label, chrom)
        size = sizes[chrom]
        lo, hi = kernels.clip_windows(win_starts, win_ends, size)
        if _backend_of(handle) == "builtin":
            sums = np.zeros(lo.size, dtype=np.float64)
            span_starts, span_ends = _union(lo, hi)
            try:
                for starts, ends, values in handle.decoded_runs(chrom, span_starts, span_ends):
                    work = scratch.buffer("window sums", 3 * starts.size, np.float64)
                    kernels.add_window_arcsinh_sums(starts, ends, values, lo, hi, sums, work)
            except StorageError:
                raise
            except (ValueError, *_READ_ERRORS) as err:
                raise _unreadable(label, err) from err
            return kernels.means_from_sums(sums, lo, hi)
        parts = [
            _read_runs_open(handle, label, chrom, a, b) for a, b in _spans(lo, hi, size, max_gap)
        ]
    if parts:
        starts, ends, values = (np.concatenate(p) for p in zip(*parts, strict=True))
    else:
        starts = ends = np.empty(0, dtype=np.int64)
        values = np.empty(0, dtype=np.float32)
    return kernels.window_arcsinh_means(starts, ends, values, lo, hi, size)


_READ_ERRORS = (OSError, EOFError, struct.error, zlib.error)


def _union(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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

    Windows closer than ``max_gap`` share a span (100 kb was fastest on TSS windows of an
    hg19-sized track with the library backends): reading a gap of no interest costs less
    than one more call into the reader, but reading a whole chromosome for a few thousand
    TSS windows costs several times more than reading only around them.
    """
    starts, ends = _span_arrays(np.clip(win_starts, 0, size), np.clip(win_ends, 0, size), max_gap)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))
