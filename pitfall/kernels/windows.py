"""Numba kernel of arcsinh window means over bigWig-style runs, and its naive twin.

The mean of arcsinh(signal) over each window, the transform applied per base: the paper's
feature of a mark at a locus. :func:`add_window_arcsinh_sums` adds the runs of one chunk of
a chromosome at a time, so a reader can feed it block by block.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "window_arcsinh_means",
    "naive_window_arcsinh_means",
    "add_window_arcsinh_sums",
    "clip_windows",
    "means_from_sums",
]


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
        overwritten (:func:`pitfall._buffers.buffer` gives a reused one); allocated if None.

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
