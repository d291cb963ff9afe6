"""Numba kernels: DNA encoding, one-hot, reverse complement, arcsinh window means, bigWig blocks.

Each public kernel sits next to its slow, obviously-correct twin ``naive_<name>``; the twins
are the oracles of the tests and the baselines of the benchmarks, so they must stay simple.

Floor 1: imports nothing from the project.
"""

from __future__ import annotations

import math
import struct

import numba
import numpy as np
import numpy.typing as npt

__all__ = [
    "BASES",
    "CODE_A",
    "CODE_C",
    "CODE_G",
    "CODE_T",
    "CODE_N",
    "encode_dna",
    "naive_encode_dna",
    "one_hot",
    "naive_one_hot",
    "one_hot_dna",
    "naive_one_hot_dna",
    "reverse_complement",
    "naive_reverse_complement",
    "fasta_window_codes",
    "naive_fasta_window_codes",
    "window_arcsinh_means",
    "naive_window_arcsinh_means",
    "add_window_arcsinh_sums",
    "clip_windows",
    "means_from_sums",
    "decode_bigwig_blocks",
    "naive_decode_bigwig_blocks",
]

#: Letter of each code: ``BASES[code]``; every letter outside ACGT (any case) encodes to N.
BASES = "ACGTN"
CODE_A, CODE_C, CODE_G, CODE_T, CODE_N = 0, 1, 2, 3, 4

# 256-entry ASCII -> code table; lowercase maps like uppercase because soft-masked FASTA
# marks repeats in lowercase and the repeat flag is not part of the sequence.
_ASCII_TO_CODE = np.full(256, CODE_N, dtype=np.uint8)
for _code, _letter in enumerate("ACGT"):
    _ASCII_TO_CODE[ord(_letter)] = _code
    _ASCII_TO_CODE[ord(_letter.lower())] = _code
_ASCII_TO_CODE.setflags(write=False)

# Complement of each code; index 4 (N) maps to itself.
_COMPLEMENT = np.array([CODE_T, CODE_G, CODE_C, CODE_A, CODE_N], dtype=np.uint8)


# --------------------------------------------------------------------------- encode_dna


# Below this length bytes.translate (a C loop with no Numba dispatch, ~1 us) beats the
# kernel; above it the kernel is about twice as fast (benchmarks/bench_kernels.py).
_TRANSLATE_MAX_LEN = 1 << 16
_TRANSLATE_TABLE = _ASCII_TO_CODE.tobytes()


@numba.njit(cache=True)
def _encode_kernel(ascii_codes: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    for i in range(ascii_codes.size):
        out[i] = table[ascii_codes[i]]


def encode_dna(seq: str | bytes | np.ndarray) -> np.ndarray:
    """Encode DNA letters as integer codes A=0 C=1 G=2 T=3, anything else 4 (N).

    Parameters
    ----------
    seq : str, bytes or numpy.ndarray
        The sequence. Lowercase (soft-masked) letters encode like uppercase; N, IUPAC
        ambiguity codes, gaps ('-') and any other character encode to 4. A uint8 array is
        read as ASCII bytes and may have any shape.

    Returns
    -------
    numpy.ndarray
        uint8 codes, shape (L,) (or the shape of the input array).
    """
    if isinstance(seq, str):
        # 'replace' keeps one byte per character, so a non-ASCII letter becomes '?' -> N
        # instead of shifting every later position.
        seq = seq.encode("ascii", errors="replace")
    if isinstance(seq, (bytes, bytearray, memoryview)):
        if len(seq) <= _TRANSLATE_MAX_LEN:
            # bytearray: a writable result, like the kernel's (frombuffer of bytes is read-only).
            codes = bytearray(bytes(seq).translate(_TRANSLATE_TABLE))
            return np.frombuffer(codes, dtype=np.uint8)
        ascii_codes = np.frombuffer(seq, dtype=np.uint8)
    else:
        ascii_codes = np.asarray(seq)
        if ascii_codes.dtype != np.uint8:
            raise TypeError(
                f"encode_dna expects str, bytes or a uint8 array of ASCII, got {ascii_codes.dtype}"
            )
    out = np.empty(ascii_codes.shape, dtype=np.uint8)
    _encode_kernel(np.ascontiguousarray(ascii_codes).reshape(-1), _ASCII_TO_CODE, out.reshape(-1))
    return out


def naive_encode_dna(seq: str | bytes | np.ndarray) -> np.ndarray:
    """Slow twin of :func:`encode_dna`: a per-letter dictionary lookup (1-D input only)."""
    if isinstance(seq, np.ndarray):
        seq = seq.tobytes()
    if isinstance(seq, (bytes, bytearray)):
        seq = seq.decode("latin-1")
    table = {"A": 0, "C": 1, "G": 2, "T": 3, "a": 0, "c": 1, "g": 2, "t": 3}
    return np.array([table.get(letter, 4) for letter in seq], dtype=np.uint8)


# --------------------------------------------------------------------------- one_hot


@numba.njit(cache=True)
def _one_hot_kernel(codes: np.ndarray, out: np.ndarray) -> None:
    # Writing all four columns (rather than zero-filling then setting one) touches each
    # output byte exactly once, which is what bounds the speed of this memory-bound loop.
    for i in range(codes.size):
        c = codes[i]
        out[i, 0] = c == 0
        out[i, 1] = c == 1
        out[i, 2] = c == 2
        out[i, 3] = c == 3


def one_hot(
    codes: np.ndarray,
    dtype: npt.DTypeLike = np.float32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """One-hot encode integer base codes.

    Parameters
    ----------
    codes : numpy.ndarray
        Integer codes (A=0 C=1 G=2 T=3), shape (..., L), e.g. (L,) or (n, L). Any other code
        (4 = N, or anything outside 0-3) gives an all-zero row.
    dtype : numpy dtype, optional
        Output dtype, float32 by default.
    out : numpy.ndarray, optional
        C-contiguous buffer of shape (..., L, 4) and dtype ``dtype`` to write into (reused
        across training batches to avoid an allocation per batch).

    Returns
    -------
    numpy.ndarray
        Shape (..., L, 4), dtype ``dtype``; ``out`` itself when given.
    """
    codes = np.asarray(codes)
    # dtype.kind rather than np.issubdtype: this runs per sequence, and every us counts.
    if codes.dtype.kind not in "iu":
        raise TypeError(f"one_hot expects integer codes, got dtype {codes.dtype}")
    shape = (*codes.shape, 4)
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous with shape {shape}, got {out.shape}")
    # reshape copies only when it must (non-contiguous codes); views otherwise.
    _one_hot_kernel(codes.reshape(-1), out.reshape(-1, 4))
    return out


def naive_one_hot(codes: np.ndarray, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Slow twin of :func:`one_hot`: compare every code with 0..3, shape (..., L, 4)."""
    codes = np.asarray(codes)
    return (codes[..., None] == np.arange(4)).astype(dtype)


# --------------------------------------------------------------------------- one_hot_dna


@numba.njit(cache=True)
def _one_hot_dna_kernel(ascii_codes: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    # One table row per ASCII byte, copied whole: each output byte is written once, with no
    # intermediate codes array and no compare per column.
    for i in range(ascii_codes.size):
        row = table[ascii_codes[i]]
        out[i, 0] = row[0]
        out[i, 1] = row[1]
        out[i, 2] = row[2]
        out[i, 3] = row[3]


# (256, 4) one-hot row of each ASCII byte, per output dtype, built on first use.
_ONE_HOT_TABLES: dict[np.dtype, np.ndarray] = {}


def _one_hot_table(dtype: np.dtype) -> np.ndarray:
    table = _ONE_HOT_TABLES.get(dtype)
    if table is None:
        table = np.eye(5, 4, dtype=dtype)[_ASCII_TO_CODE]
        table.setflags(write=False)
        _ONE_HOT_TABLES[dtype] = table
    return table


def one_hot_dna(
    seq: str | bytes | np.ndarray,
    dtype: npt.DTypeLike = np.float32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """One-hot encode DNA text in one pass: letters straight to rows, no integer codes between.

    Same result as ``one_hot(encode_dna(seq), dtype)``: A, C, G, T (either case) set columns
    0-3, and every other character (N, IUPAC codes, gaps, non-ASCII) gives an all-zero row.

    Parameters
    ----------
    seq : str, bytes or numpy.ndarray
        The sequence; a uint8 array is read as ASCII bytes and may have any shape (..., L).
    dtype : numpy dtype, optional
        Output dtype, float32 by default (int8 is tangermeme's).
    out : numpy.ndarray, optional
        C-contiguous buffer of shape (..., L, 4) and dtype ``dtype`` to write into.

    Returns
    -------
    numpy.ndarray
        Shape (L, 4) (or (..., L, 4) for an array), dtype ``dtype``; ``out`` itself when given.
    """
    if isinstance(seq, str):
        # 'replace' keeps one byte per character, so a non-ASCII letter becomes '?' -> N.
        seq = seq.encode("ascii", errors="replace")
    if isinstance(seq, (bytes, bytearray, memoryview)):
        ascii_codes = np.frombuffer(seq, dtype=np.uint8)
    else:
        ascii_codes = np.asarray(seq)
        if ascii_codes.dtype != np.uint8:
            raise TypeError(
                f"one_hot_dna expects str, bytes or a uint8 array of ASCII, got {ascii_codes.dtype}"
            )
    dtype = np.dtype(dtype)
    shape = (*ascii_codes.shape, 4)
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be C-contiguous {dtype} of shape {shape}, got {out.dtype} {out.shape}"
        )
    _one_hot_dna_kernel(ascii_codes.reshape(-1), _one_hot_table(dtype), out.reshape(-1, 4))
    return out


def naive_one_hot_dna(
    seq: str | bytes | np.ndarray, dtype: npt.DTypeLike = np.float32
) -> np.ndarray:
    """Slow twin of :func:`one_hot_dna`: the two naive steps, encode then one-hot (1-D)."""
    return naive_one_hot(naive_encode_dna(seq), dtype=dtype)


# --------------------------------------------------------------------------- reverse_complement


@numba.njit(cache=True)
def _reverse_complement_kernel(codes: np.ndarray, out: np.ndarray) -> None:
    n, length = codes.shape
    for r in range(n):
        for i in range(length):
            c = codes[r, length - 1 - i]
            out[r, i] = 3 - c if 0 <= c <= 3 else 4


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse-complement integer base codes along the last axis.

    Parameters
    ----------
    codes : numpy.ndarray
        Integer codes, shape (..., L). A<->T (0<->3), C<->G (1<->2); N (4, and any code
        outside 0-3) becomes 4.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``codes``, reversed along the last axis.
    """
    codes = np.asarray(codes)
    if not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(f"reverse_complement expects integer codes, got dtype {codes.dtype}")
    if codes.ndim == 0:
        raise ValueError("reverse_complement expects at least one axis (..., L)")
    # Explicit row count: reshape(-1, 0) is ambiguous for empty sequences.
    two_d = np.ascontiguousarray(codes).reshape(math.prod(codes.shape[:-1]), codes.shape[-1])
    out = np.empty_like(two_d)
    _reverse_complement_kernel(two_d, out)
    return out.reshape(codes.shape)


def naive_reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Slow twin of :func:`reverse_complement`: a table lookup on the reversed codes."""
    codes = np.asarray(codes)
    clipped = np.where((codes >= 0) & (codes <= 3), codes, 4)
    return _COMPLEMENT[clipped[..., ::-1]].astype(codes.dtype)


# --------------------------------------------------------------------------- FASTA windows


@numba.njit(cache=True)
def _fasta_window_codes_kernel(
    text: np.ndarray,
    offset: int,
    line_bases: int,
    line_bytes: int,
    size: int,
    starts: np.ndarray,
    minus: np.ndarray,
    table: np.ndarray,
    out: np.ndarray,
) -> None:
    n, length = out.shape
    for i in range(n):
        s = starts[i]
        row = out[i]
        # Bases [a, b) of the record fall in the window; the rest of it reads N.
        a = max(s, 0)
        b = min(s + length, size)
        for j in range(min(a - s, length)):
            row[j] = 4
        for j in range(max(b - s, 0), length):
            row[j] = 4
        if b > a:
            # One division per window, not two per base: walk the lines from the first.
            line = a // line_bases
            col = a - line * line_bases
            pos = offset + line * line_bytes + col
            for j in range(a - s, b - s):
                row[j] = table[text[pos]]
                pos += 1
                col += 1
                if col == line_bases:
                    col = 0
                    pos += line_bytes - line_bases
        if minus[i]:
            lo, hi = 0, length - 1
            while lo <= hi:
                x, y = row[lo], row[hi]
                row[lo] = 3 - y if y < 4 else 4
                row[hi] = 3 - x if x < 4 else 4
                lo += 1
                hi -= 1


def fasta_window_codes(
    text: np.ndarray,
    offset: int,
    line_bases: int,
    line_bytes: int,
    size: int,
    starts: np.ndarray,
    length: int,
    minus: np.ndarray,
) -> np.ndarray:
    """Codes of equal-length windows of one FASTA record, straight from the file's bytes.

    Reads only the bytes the windows cover (``text`` may be a memory map of a whole genome).

    Parameters
    ----------
    text : numpy.ndarray
        uint8, shape (B,): the FASTA file's bytes.
    offset, line_bases, line_bytes, size
        The record's ``.fai`` fields: byte offset of its first base, bases per line, bytes
        per line (newline included, so CRLF files work), length in bases.
    starts : numpy.ndarray
        Shape (n,), 0-based window starts; positions outside ``[0, size)`` read N (4).
    length
        Bases per window, ``L``.
    minus : numpy.ndarray
        Shape (n,) bool: these windows are reverse-complemented (position 0 is then the
        5'-most base on the minus strand).

    Returns
    -------
    numpy.ndarray
        uint8, shape (n, L): A=0 C=1 G=2 T=3, anything else (any case) 4.

    Raises
    ------
    ValueError
        When a window needs a byte past the end of ``text`` (a truncated file).
    """
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    minus = np.ascontiguousarray(minus, dtype=np.bool_)
    if size > 0 and (line_bases < 1 or line_bytes < line_bases):
        raise ValueError(f"bad FASTA line layout: {line_bases} bases in {line_bytes} bytes")
    out = np.empty((starts.size, length), dtype=np.uint8)
    if starts.size and length and size > 0:
        last = min(int(starts.max()) + length, size) - 1
        if last >= 0:
            needed = offset + (last // line_bases) * line_bytes + last % line_bases
            if needed >= text.size:
                raise ValueError(
                    f"base {last} of the record is at byte {needed:,}, past the end of the "
                    f"file ({text.size:,} bytes): the file is truncated"
                )
    _fasta_window_codes_kernel(
        text, offset, line_bases, line_bytes, size, starts, minus, _ASCII_TO_CODE, out
    )
    return out


def naive_fasta_window_codes(
    record: str, starts: np.ndarray, length: int, minus: np.ndarray
) -> np.ndarray:
    """Slow twin of :func:`fasta_window_codes`: slice the record's text, pad with N, encode."""
    rows = []
    for s, m in zip(np.asarray(starts).tolist(), np.asarray(minus).tolist(), strict=True):
        text = "".join(record[p] if 0 <= p < len(record) else "N" for p in range(s, s + length))
        codes = naive_encode_dna(text)
        rows.append(naive_reverse_complement(codes[None, :])[0] if m else codes)
    return np.array(rows, dtype=np.uint8).reshape(len(rows), length)


# --------------------------------------------------------------------------- window means


@numba.njit(cache=True)
def _add_window_arcsinh_sums_kernel(
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    sums: np.ndarray,
    work: np.ndarray,
) -> None:
    n_runs = starts.size
    if n_runs == 0:
        return
    # arcsinh of each run's value (NaN -> 0: no signal).
    asinh_v = work[:n_runs]
    for i in range(n_runs):
        v = np.float64(values[i])
        asinh_v[i] = 0.0 if math.isnan(v) else math.asinh(v)
    # Segment tree of per-run sums arcsinh(v) * length (leaves at n_runs + i). Unlike a
    # difference of two prefix sums, a range query only adds sums of runs inside the range,
    # so a window of small values far along a chromosome loses no precision to cancellation.
    tree = work[n_runs : 3 * n_runs]
    tree[0] = 0.0
    for i in range(n_runs):
        tree[n_runs + i] = asinh_v[i] * (ends[i] - starts[i])
    for node in range(n_runs - 1, 0, -1):
        tree[node] = tree[2 * node] + tree[2 * node + 1]
    first_start, last_end = starts[0], ends[n_runs - 1]

    for w in range(lo.size):
        a, b = lo[w], hi[w]
        # Callers add the runs of one chunk of a chromosome at a time: most windows miss it.
        if b <= a or b <= first_start or a >= last_end:
            continue
        # Runs overlapping [a, b) are first..last-1: the first run ending after a, up to
        # the last run starting before b (runs are sorted and non-overlapping).
        first = np.searchsorted(ends, a, side="right")
        last = np.searchsorted(starts, b, side="left")
        if first >= last:
            continue
        # The two boundary runs may stick out of the window: add only their overlap.
        total = asinh_v[first] * (min(ends[first], b) - max(starts[first], a))
        if last - 1 > first:
            total += asinh_v[last - 1] * (min(ends[last - 1], b) - starts[last - 1])
        # Interior runs lie wholly inside: iterative segment-tree sum over [first+1, last-1).
        left = first + 1 + n_runs
        right = last - 1 + n_runs
        while left < right:
            if left & 1:
                total += tree[left]
                left += 1
            if right & 1:
                right -= 1
                total += tree[right]
            left >>= 1
            right >>= 1
        sums[w] += total


def _check_runs(starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> None:
    if not (starts.ndim == 1 and starts.shape == ends.shape == values.shape):
        raise ValueError(
            f"runs need equal 1-D shapes, got starts {starts.shape}, ends {ends.shape}, "
            f"values {values.shape}"
        )
    # The binary searches silently give wrong sums on unsorted runs, so check (O(R)).
    if np.any(ends <= starts) or np.any(starts[1:] < ends[:-1]):
        raise ValueError("runs must be non-empty, sorted and non-overlapping")


def add_window_arcsinh_sums(
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    sums: np.ndarray,
    work: np.ndarray | None = None,
) -> None:
    """Add sum over bases of arcsinh(signal) in each window to ``sums``, in place.

    The building block of :func:`window_arcsinh_means` for runs that arrive in chunks (a
    bigWig read block by block): the runs of different chunks must not overlap, and then
    adding every chunk gives the same sums as adding all runs at once.

    Parameters
    ----------
    starts, ends : numpy.ndarray
        int64, shape (R,): sorted, non-overlapping, non-empty half-open runs.
    values : numpy.ndarray
        float32 or float64, shape (R,); NaN counts as 0.
    lo, hi : numpy.ndarray
        int64, shape (W,): windows already clipped to the chromosome; ``hi <= lo`` adds 0.
    sums : numpy.ndarray
        float64, shape (W,), updated in place.
    work : numpy.ndarray, optional
        float64, shape (>= 3R,): room for the runs' arcsinh values and their segment tree,
        overwritten (:func:`pitfall.scratch.buffer` gives a reused one); allocated if None.

    Raises
    ------
    ValueError
        On mismatched shapes or runs that are unsorted, overlapping or empty.
    """
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    values = np.ascontiguousarray(values)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    _check_runs(starts, ends, values)
    if sums.dtype != np.float64 or sums.shape != lo.shape:
        raise ValueError(f"sums must be float64 of shape {lo.shape}")
    if work is None:
        work = np.empty(3 * starts.size, dtype=np.float64)
    elif work.dtype != np.float64 or work.ndim != 1 or work.size < 3 * starts.size:
        raise ValueError(f"work must be 1-D float64 with at least {3 * starts.size} items")
    _add_window_arcsinh_sums_kernel(starts, ends, values, lo, hi, sums, work)


def clip_windows(
    win_starts: np.ndarray, win_ends: np.ndarray, chrom_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Windows clipped to [0, chrom_size), as int64 (lo, hi); checks end >= start.

    Returns
    -------
    lo, hi : numpy.ndarray
        int64, shape (W,); ``hi <= lo`` where a window lies wholly outside the chromosome.

    Raises
    ------
    ValueError
        On mismatched shapes or a window whose end is before its start.
    """
    win_starts = np.asarray(win_starts, dtype=np.int64)
    win_ends = np.asarray(win_ends, dtype=np.int64)
    if not (win_starts.ndim == 1 and win_starts.shape == win_ends.shape):
        raise ValueError(
            f"windows need equal 1-D shapes, got {win_starts.shape} and {win_ends.shape}"
        )
    if np.any(win_ends < win_starts):
        raise ValueError("every window needs end >= start")
    return np.clip(win_starts, 0, chrom_size), np.clip(win_ends, 0, chrom_size)


def means_from_sums(sums: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``sums / (hi - lo)`` as float32, NaN where the clipped window is empty (shape (W,))."""
    length = hi - lo
    out = np.full(sums.shape, np.nan, dtype=np.float32)
    inside = length > 0
    out[inside] = sums[inside] / length[inside]
    return out


def window_arcsinh_means(
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    win_starts: np.ndarray,
    win_ends: np.ndarray,
    chrom_size: int,
) -> np.ndarray:
    """Mean of arcsinh(signal) over many windows of one chromosome's bigWig-style runs.

    The transform is applied per base, then averaged (the paper's order). Each window is
    clipped to the chromosome [0, chrom_size); the divisor is the clipped length (the part of
    the window inside the chromosome), so the bases past the ends do not dilute the mean.

    Bases covered by no run count as 0: in p-value tracks missing data means no signal. A run
    whose value is NaN also counts as 0, for the same reason.

    Cost is O(R + W log R): a segment tree of per-run sums, two binary searches and one
    O(log R) range sum per window. Sums add only the window's own runs (no difference of
    large prefix sums), so for same-sign values the relative error stays near float64 eps.

    Parameters
    ----------
    starts, ends : numpy.ndarray
        int64, shape (R,): sorted, non-overlapping half-open runs [start, end).
    values : numpy.ndarray
        float, shape (R,): the signal value of each run.
    win_starts, win_ends : numpy.ndarray
        int64, shape (W,): half-open windows in any order; they may overlap and may extend
        past the chromosome (negative starts, ends > chrom_size).
    chrom_size : int
        Length of the chromosome.

    Returns
    -------
    numpy.ndarray
        float32, shape (W,): the mean per window; NaN where the clipped length is 0 (a window
        entirely outside the chromosome, or empty).

    Raises
    ------
    ValueError
        On mismatched shapes, runs that are unsorted/overlapping/empty, or a window whose end
        is before its start.
    """
    lo, hi = clip_windows(win_starts, win_ends, int(chrom_size))
    sums = np.zeros(lo.size, dtype=np.float64)
    add_window_arcsinh_sums(starts, ends, values, lo, hi, sums)
    return means_from_sums(sums, lo, hi)


def naive_window_arcsinh_means(
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    win_starts: np.ndarray,
    win_ends: np.ndarray,
    chrom_size: int,
) -> np.ndarray:
    """Slow twin of :func:`window_arcsinh_means`: expand runs to a per-base array.

    Memory is O(chrom_size); meant for tests and for checking the fast kernel.
    """
    per_base = np.zeros(chrom_size, dtype=np.float64)
    for s, e, v in zip(starts, ends, values, strict=True):
        per_base[s:e] = v
    per_base = np.nan_to_num(np.arcsinh(per_base), nan=0.0)
    out = np.empty(len(win_starts), dtype=np.float32)
    for w, (s, e) in enumerate(zip(win_starts, win_ends, strict=True)):
        lo, hi = max(s, 0), min(e, chrom_size)
        out[w] = per_base[lo:hi].mean() if hi > lo else np.nan
    return out


# --------------------------------------------------------------------------- bigWig data blocks

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
