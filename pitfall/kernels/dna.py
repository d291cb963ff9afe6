"""Numba kernels over DNA: encoding, one-hot, reverse complement, FASTA windows.

Each public kernel sits next to its slow, obviously-correct twin ``naive_<name>``; the twins
are the oracles of the tests and the baselines of the benchmarks, so they must stay simple.
"""

from __future__ import annotations

import math

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


# Up to this length bytes.translate (a C loop, without the cost of a Numba dispatch) encodes;
# longer sequences go to the kernel (benchmarks/bench_kernels.py compares the two).
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

    Examples
    --------
    >>> from pitfall.kernels import one_hot_dna
    >>> one_hot_dna("ACgN").astype(int)
    array([[1, 0, 0, 0],
           [0, 1, 0, 0],
           [0, 0, 1, 0],
           [0, 0, 0, 0]])
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
