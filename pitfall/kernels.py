"""Numba kernels: DNA encoding, one-hot, reverse complement, arcsinh window means.

Each public kernel sits next to its slow, obviously-correct twin ``naive_<name>``; the twins
are the oracles of the tests and the baselines of the benchmarks, so they must stay simple.

Floor 1: imports nothing from the project.
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
    "reverse_complement",
    "naive_reverse_complement",
    "window_arcsinh_means",
    "naive_window_arcsinh_means",
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


# --------------------------------------------------------------------------- window means


@numba.njit(cache=True)
def _window_arcsinh_means_kernel(
    starts: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    win_starts: np.ndarray,
    win_ends: np.ndarray,
    chrom_size: int,
    out: np.ndarray,
) -> None:
    n_runs = starts.size
    # arcsinh of each run's value (NaN -> 0: no signal).
    asinh_v = np.empty(n_runs, dtype=np.float64)
    for i in range(n_runs):
        v = np.float64(values[i])
        asinh_v[i] = 0.0 if math.isnan(v) else math.asinh(v)
    # Segment tree of per-run sums arcsinh(v) * length (leaves at n_runs + i). Unlike a
    # difference of two prefix sums, a range query only adds sums of runs inside the range,
    # so a window of small values far along a chromosome loses no precision to cancellation.
    tree = np.zeros(2 * n_runs, dtype=np.float64)
    for i in range(n_runs):
        tree[n_runs + i] = asinh_v[i] * (ends[i] - starts[i])
    for node in range(n_runs - 1, 0, -1):
        tree[node] = tree[2 * node] + tree[2 * node + 1]

    for w in range(win_starts.size):
        lo = max(win_starts[w], 0)
        hi = min(win_ends[w], chrom_size)
        if hi <= lo:
            out[w] = np.nan
            continue
        # Runs overlapping [lo, hi) are first..last-1: the first run ending after lo, up to
        # the last run starting before hi (runs are sorted and non-overlapping).
        first = np.searchsorted(ends, lo, side="right")
        last = np.searchsorted(starts, hi, side="left")
        total = 0.0
        if first < last:
            # The two boundary runs may stick out of the window: add only their overlap.
            total += asinh_v[first] * (min(ends[first], hi) - max(starts[first], lo))
            if last - 1 > first:
                total += asinh_v[last - 1] * (min(ends[last - 1], hi) - starts[last - 1])
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
        out[w] = total / (hi - lo)


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
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    values = np.ascontiguousarray(values)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    win_starts = np.ascontiguousarray(win_starts, dtype=np.int64)
    win_ends = np.ascontiguousarray(win_ends, dtype=np.int64)
    if not (starts.ndim == 1 and starts.shape == ends.shape == values.shape):
        raise ValueError(
            f"runs need equal 1-D shapes, got starts {starts.shape}, ends {ends.shape}, "
            f"values {values.shape}"
        )
    if not (win_starts.ndim == 1 and win_starts.shape == win_ends.shape):
        raise ValueError(
            f"windows need equal 1-D shapes, got {win_starts.shape} and {win_ends.shape}"
        )
    # The binary searches silently give wrong sums on unsorted runs, so check (O(R)).
    if np.any(ends <= starts) or np.any(starts[1:] < ends[:-1]):
        raise ValueError("runs must be non-empty, sorted and non-overlapping")
    if np.any(win_ends < win_starts):
        raise ValueError("every window needs end >= start")
    out = np.empty(win_starts.size, dtype=np.float32)
    _window_arcsinh_means_kernel(starts, ends, values, win_starts, win_ends, int(chrom_size), out)
    return out


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
