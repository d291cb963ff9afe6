"""This package's own reader of the bigWig format: header, chromosome tree, R-tree, blocks.

It reads only the data blocks that the windows touch (found through the file's R-tree
index), fetches nearby blocks with one read, inflates them with libdeflate when the system
has it (zlib otherwise) and decodes a batch of them in one Numba call
(:func:`pitfall.sources.bigwig.blocks.decode_bigwig_blocks`).
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
from typing import Any

import numpy as np

from pitfall import _buffers as buffers
from pitfall.sources import remote
from pitfall.sources.bigwig.blocks import decode_bigwig_blocks
from pitfall.sources.bigwig.errors import label_of, unreadable

__all__ = ["BigWigReader", "Inflater"]

_BIGWIG_MAGIC = 0x888FFC26
_BIGBED_MAGIC = 0x8789F2EB
_CHROM_TREE_MAGIC = 0x78CA8C91
_RTREE_MAGIC = 0x2468ACE0
# Blocks are inflated this many uncompressed bytes at a time, which bounds memory on whole
# chromosomes of dense tracks.
_BATCH_BYTES = 32 << 20
# Blocks closer than this in the file are fetched with one read: cheaper than a second
# request, above all for remote file objects.
_COALESCE_BYTES = 256 << 10


@functools.cache
def _libdeflate() -> Any:
    """libdeflate through ctypes, or None (zlib inflates then).

    pybigtools inflates with libdeflate too; ``benchmarks/bench_kernels.py`` times both.
    """
    # The soname first: find_library runs ldconfig in a subprocess.
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


class Inflater:
    """Inflates zlib blocks into a buffer; one per batch, as libdeflate's state is not shared.

    Parameters
    ----------
    use_libdeflate : bool
        Inflate with libdeflate when the system has it; False (or no libdeflate) uses zlib.
    """

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
        """Free libdeflate's state."""
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
        if isinstance(source, str) and remote.is_url(source):
            self.name = source
            self._fh: Any = remote.RangedFile(source)
            self._owns = True
        elif isinstance(source, (str, os.PathLike)):
            self.name = os.fspath(source)
            self._fh = open(self.name, "rb")  # noqa: SIM115 - closed by close()
            self._owns = self._mappable = True
        else:
            self.name = label_of(source)
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
            raise unreadable(self.name, err) from err
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
            # Mapping spares a copy of every block out of the page cache; file objects may
            # not have a file descriptor.
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
            raise unreadable(self.name, "no bigWig signature at its start")
        e = self.byteorder
        fields = struct.unpack_from(e + "IHHQQQHHQQIQ", head)
        self.version, chrom_tree, index = fields[1], fields[3], fields[5]
        summary, self.uncompress_buf_size = fields[9], fields[10]
        # Writers also put the signature at the very end: a cheap check for truncation.
        self._fh.seek(0, io.SEEK_END)
        self.file_size = self._fh.tell()
        (tail,) = struct.unpack(e + "I", self._read_at(self.file_size - 4, 4))
        if tail != _BIGWIG_MAGIC:
            raise unreadable(self.name, "no bigWig signature at its end (truncated?)")
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
            raise unreadable(self.name, "bad data index signature")
        self._rtree_root = index + 48

    def _read_chrom_tree(self, offset: int) -> None:
        e = self.byteorder
        magic, _, key_size, val_size, _ = struct.unpack(e + "IIIIQ", self._read_at(offset, 24))
        if magic != _CHROM_TREE_MAGIC or val_size != 8:
            raise unreadable(self.name, "bad chromosome tree signature")
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
        data = buffers.buffer("bigwig blocks", offsets.size * cap)
        starts = np.arange(offsets.size, dtype=np.int64) * cap
        ends = starts.copy()
        # Blocks that follow each other (or nearly) in the file are fetched in one read.
        gaps = offsets[1:] - (offsets[:-1] + sizes[:-1])
        apart = (gaps < 0) | (gaps > _COALESCE_BYTES)
        cuts = np.concatenate([[0], np.flatnonzero(apart) + 1, [offsets.size]])
        inflater = Inflater(self.use_libdeflate) if self.uncompress_buf_size > 0 else None
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
        return decode_bigwig_blocks(
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
