"""Decoding bigWig data blocks: one Numba pass over many blocks, and its naive twin.

A data block of the UCSC bbi format holds one section: a 24-byte header and its items in one
of three layouts. :func:`decode_bigwig_blocks` decodes a batch of inflated blocks at once;
:func:`naive_decode_bigwig_blocks`, a ``struct`` loop, is its oracle in the tests.
"""

from __future__ import annotations

import struct

import numba
import numpy as np

__all__ = [
    "SECTION_BEDGRAPH",
    "SECTION_FIXEDSTEP",
    "SECTION_VARSTEP",
    "decode_bigwig_blocks",
    "naive_decode_bigwig_blocks",
]

#: Section types of a bigWig data block (UCSC bbi format): items of (start, end, value),
#: (start, value) with a fixed span, and values at a fixed step and span.
SECTION_BEDGRAPH, SECTION_VARSTEP, SECTION_FIXEDSTEP = 1, 2, 3
# Error codes of the decode kernel (Numba cannot raise with a formatted message).
_DECODE_OK, _DECODE_BAD_TYPE, _DECODE_SHORT = 0, 1, 2


@numba.njit(cache=True)
def _section_type_count(word: np.uint32, big_endian: bool) -> tuple[np.int64, np.int64]:
    # Bytes 20-23 of a section header are type (u8), reserved (u8), itemCount (u16); read
    # as one native-order word, where each byte lands depends on the file's byte order.
    w = np.int64(word)
    if big_endian:
        return w >> 24, w & 0xFFFF
    return w & 0xFF, w >> 16


@numba.njit(cache=True)
def _section_item(
    words: np.ndarray,
    floats: np.ndarray,
    first_word: int | np.int64,
    kind: int | np.int64,
    i: int | np.int64,
    section_start: int | np.int64,
    step: int | np.int64,
    span: int | np.int64,
) -> tuple[int | np.int64, int | np.int64, np.float32]:
    if kind == 1:
        p = first_word + 3 * i
        return np.int64(words[p]), np.int64(words[p + 1]), floats[p + 2]
    if kind == 2:
        p = first_word + 2 * i
        s: int | np.int64 = np.int64(words[p])
        return s, s + span, floats[p + 1]
    s = section_start + i * step
    return s, s + span, floats[first_word + i]


@numba.njit(cache=True)
def _decode_bigwig_blocks_kernel(
    words: np.ndarray,
    floats: np.ndarray,
    block_starts: np.ndarray,
    block_ends: np.ndarray,
    chrom_id: int,
    span_starts: np.ndarray,
    span_ends: np.ndarray,
    big_endian: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    n_blocks = block_starts.size
    n_spans = span_starts.size
    # First pass: headers only, for an upper bound on the runs (and to validate counts).
    bound = np.int64(0)
    for b in range(n_blocks):
        p, q = block_starts[b], block_ends[b]
        if q - p < 6:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32), 2, b
        kind, count = _section_type_count(words[p + 5], big_endian)
        if kind < 1 or kind > 3:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32), 1, b
        if p + 6 + count * (4 - kind) > q:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32), 2, b
        bound += count
    starts = np.empty(bound, np.int64)
    ends = np.empty(bound, np.int64)
    values = np.empty(bound, np.float32)
    k = 0
    for b in range(n_blocks):
        p = block_starts[b]
        if words[p] != chrom_id:
            continue
        section_start = np.int64(words[p + 1])
        step = np.int64(words[p + 3])
        span = np.int64(words[p + 4])
        kind, count = _section_type_count(words[p + 5], big_endian)
        # Sparse windows use a few items of each block: rather than test every item, find
        # each span's first item by binary search (items are sorted by start and by end),
        # then take items until one starts past the span. Blocks need not come in genomic
        # order, so the first span is found by binary search too.
        i: int | np.int64 = 0
        j = np.searchsorted(span_ends, section_start, side="right")
        while j < n_spans and i < count:
            # First item ending after the span starts.
            lo, hi = i, count
            while lo < hi:
                mid = (lo + hi) // 2
                _, e, _ = _section_item(words, floats, p + 6, kind, mid, section_start, step, span)
                if e <= span_starts[j]:
                    lo = mid + 1
                else:
                    hi = mid
            i = lo
            while i < count:
                s, e, v = _section_item(words, floats, p + 6, kind, i, section_start, step, span)
                if s >= span_ends[j]:
                    break
                if e > s:
                    starts[k] = s
                    ends[k] = e
                    values[k] = v
                    k += 1
                i += 1
            j += 1
            # The item that stopped this span may meet the next ones, so it is not skipped;
            # spans it passes entirely are.
            if i < count:
                s, _, _ = _section_item(words, floats, p + 6, kind, i, section_start, step, span)
                while j < n_spans and span_ends[j] <= s:
                    j += 1
    return starts[:k], ends[:k], values[:k], 0, -1


def decode_bigwig_blocks(
    data: np.ndarray,
    block_starts: np.ndarray,
    block_ends: np.ndarray,
    chrom_id: int,
    span_starts: np.ndarray,
    span_ends: np.ndarray,
    big_endian: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of one chromosome from uncompressed bigWig data blocks, kept where they meet spans.

    Every block holds one section: a 24-byte header (chromId, chromStart, chromEnd, itemStep,
    itemSpan as uint32, type and a reserved byte, itemCount as uint16) and then its items,
    in one of three layouts (:data:`SECTION_BEDGRAPH`, :data:`SECTION_VARSTEP`,
    :data:`SECTION_FIXEDSTEP`). Decoding is one pass over all blocks in one native call.

    Parameters
    ----------
    data : numpy.ndarray
        uint8, shape (N,): the uncompressed blocks side by side (gaps allowed).
    block_starts, block_ends : numpy.ndarray
        int64, shape (B,): byte range of each block in ``data``; starts must be multiples of 4
        (items are 4-byte words, read in place through a word view).
    chrom_id : int
        Chromosome id (from the file's chromosome tree); other blocks are skipped.
    span_starts, span_ends : numpy.ndarray
        int64, shape (S,): sorted, disjoint half-open spans; runs meeting none are dropped.
    big_endian : bool
        Byte order of the file.

    Returns
    -------
    starts, ends : numpy.ndarray
        int64, shape (R,): the runs in file order, not clipped to the spans.
    values : numpy.ndarray
        float32, shape (R,).

    Raises
    ------
    ValueError
        A block shorter than its header says, or of an unknown section type (corrupt file).
    """
    data = np.ascontiguousarray(data, dtype=np.uint8)
    block_starts = np.ascontiguousarray(block_starts, dtype=np.int64)
    block_ends = np.ascontiguousarray(block_ends, dtype=np.int64)
    if np.any(block_starts % 4) or np.any(block_ends > data.size) or np.any(block_starts < 0):
        raise ValueError("blocks must start at multiples of 4 inside data")
    if data.size % 4:
        data = np.concatenate([data, np.zeros(4 - data.size % 4, np.uint8)])
    words = data.view(np.uint32)
    if big_endian:
        words = words.byteswap()
    floats = words.view(np.float32)
    starts, ends, values, err, block = _decode_bigwig_blocks_kernel(
        words,
        floats,
        block_starts // 4,
        block_ends // 4,
        int(chrom_id),
        np.ascontiguousarray(span_starts, dtype=np.int64),
        np.ascontiguousarray(span_ends, dtype=np.int64),
        bool(big_endian),
    )
    if err == _DECODE_BAD_TYPE:
        raise ValueError(f"data block {block} has an unknown section type")
    if err == _DECODE_SHORT:
        raise ValueError(f"data block {block} is shorter than its item count says")
    return starts, ends, values


def naive_decode_bigwig_blocks(
    data: np.ndarray | bytes,
    block_starts: np.ndarray,
    block_ends: np.ndarray,
    chrom_id: int,
    span_starts: np.ndarray,
    span_ends: np.ndarray,
    big_endian: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slow twin of :func:`decode_bigwig_blocks`: ``struct`` per item, spans checked one by one."""
    raw = bytes(data)
    order = ">" if big_endian else "<"
    runs = []
    for p, q in zip(block_starts, block_ends, strict=True):
        chrom, first, _, step, span, kind, _, count = struct.unpack_from(order + "5I2BH", raw, p)
        layout = {1: "2If", 2: "If", 3: "f"}.get(kind)
        if layout is None:
            raise ValueError("unknown section type")
        width = struct.calcsize(order + layout)
        if p + 24 + count * width > q:
            raise ValueError("block shorter than its item count")
        if chrom != chrom_id:
            continue
        for i in range(count):
            item = struct.unpack_from(order + layout, raw, p + 24 + i * width)
            if kind == 1:
                s, e, v = item
            elif kind == 2:
                s, e, v = item[0], item[0] + span, item[1]
            else:
                s, e, v = first + i * step, first + i * step + span, item[0]
            meets = any(a < e and s < b for a, b in zip(span_starts, span_ends, strict=True))
            if e > s and meets:
                runs.append((s, e, v))
    return (
        np.array([r[0] for r in runs], dtype=np.int64),
        np.array([r[1] for r in runs], dtype=np.int64),
        np.array([r[2] for r in runs], dtype=np.float32),
    )
