"""The ENCODE Imputation Challenge's metrics for a continuous track, exact and block-bootstrappable.

A *track* is one mark in one cell type: one value per bin (here the mean of arcsinh(signal)
over each locus window). ``y_true`` is the observed track, ``y_pred`` the imputed one (or a
baseline). The metrics are those of the challenge's scoring code (Schreiber et al. 2020,
``score_metrics.py`` of github.com/ENCODE-DCC/imputation_challenge), over the ``N`` bins
kept (see *Missing bins*), with squared errors ``e_i = (y_true_i - y_pred_i) ** 2``:

``mse``
    ``mean(e)``.
``gwcorr``
    Pearson correlation of ``y_true`` and ``y_pred`` (the challenge: ``numpy.corrcoef``),
    clipped to [-1, 1] like ``numpy.corrcoef``.
``gwspear``
    Spearman correlation (the challenge: ``scipy.stats.spearmanr``): Pearson correlation of
    the two tracks' ranks, tied values sharing their average rank.
``mse1obs``
    ``mean(e)`` over the bins with ``y_true >= t_obs``, where ``n = int(N * 0.01)`` and
    ``t_obs = sort(y_true)[-n]``, the n-th largest observed value: every bin tied with the
    threshold is in, so the set can hold more than ``n`` bins. With ``N < 100``, ``n`` is 0
    and the challenge's ``sort(y_true)[-0]`` is the *smallest* value, so every bin is in and
    ``mse1obs == mse``; kept as the challenge computes it.
``mse1imp``
    The same over the bins with ``y_pred >= t_imp``, the threshold taken from ``y_pred``.
``mseprom``, ``msegene``, ``mseenh``
    ``mean(e)`` over the bins inside promoters, gene bodies, enhancers: the caller gives one
    boolean mask per kind (``regions["prom"]``, ``["gene"]``, ``["enh"]``); masks may
    overlap. The challenge sums over annotation intervals, so a bin inside two genes counts
    twice there; here a bin counts once (a mask cannot say more).
``msevar``
    ``sum(v * e) / sum(v)``: the squared errors weighted by ``v``, the per-bin variance of
    the mark across other cell types, the weights normalised to sum to 1 (the challenge:
    ``((y_true - y_pred) ** 2).dot(var) / var.sum()``, ``var`` being ``numpy.std(...) ** 2``
    over the cell types, the population variance; the caller computes ``v``).

Missing bins: a bin whose ``y_true`` or ``y_pred`` is NaN is left out of every metric (and
out of ``N``, the ranks and the top-1% thresholds); a bin whose variance is NaN is also left
out of ``msevar``. Undefined metrics are NaN, never an exception: no bin kept, an empty
mask, zero total weight, a constant track for a correlation (or fewer than 2 bins).
Infinite values are not missing; they propagate like any value.

Two paths compute the same numbers:

- :func:`track_metrics_naive`, the in-memory numpy/scipy oracle of the definitions;
- :func:`track_metrics`, built on **per-block sufficient statistics**
  (:func:`block_statistics`, columns :data:`STATISTICS`): per genomic block, sums from
  which :func:`metrics_from_statistics` gets every metric. The track is read in chunks by
  Numba kernels; float32 and float64 tracks are read as they are (each value widened to
  float64 inside the kernel, every sum a float64). The only whole-track work is ranking each
  track once (:func:`global_ranks`), which also gives the thresholds
  (:func:`top_thresholds`): one array of 64-bit words per kept bin (the order-preserving
  bits of the float32-rounded value, the bin index) sorted in place by value, a walk that
  resolves float64 values equal in float32 and writes each tie group's rank into its words,
  a second sort that puts them back in bin order, and one int32 rank array per track: about
  16 bytes per bin at the peak besides the inputs (at most 2**31 - 1 bins). Agreement with
  the oracle: about 1e-9 relative, the difference being float64 summation order (the tests
  check ``rtol=1e-9``, and for the correlations ``atol=1e-9`` plus what ``numpy.corrcoef``
  itself loses on a nearly constant track, about ``eps * max|y| / ptp(y)``).

Precision of the correlations: the Pearson sums are of ``y - c``, ``c`` the track's first
kept value, so an offset such as 1e4 + noise cancels before squaring; the Spearman sums are
of the centred doubled ranks ``2 * rank - (N + 1)``, integers. A track whose variance from
the sums is at most ``1e-12`` of its sum of squares about ``c`` counts as constant (NaN):
that is about the rounding error of the sums, and since ``c`` is one of the track's values a
track that is not constant has a ratio of at least ``1 / N``. A bootstrap replicate keeps
the full track's ``c``, which need not be among its bins: a replicate whose spread is that
small against its distance from ``c`` also reads as constant.

Block bootstrap: a replicate draws blocks with replacement; with ``W`` the ``(R, n_blocks)``
block multiplicities, ``metrics_from_statistics(W @ S)`` gives each replicate's metrics
from ``S = block_statistics(...)``. For ``mse``, the region metrics, ``msevar`` and
``gwcorr`` this is exactly the metric of the resampled bins (each block repeated by its
multiplicity). For ``gwspear``, ``mse1obs`` and ``mse1imp`` it is a plug-in approximation:
the ranks and the two top-1% thresholds are those of the full track, held fixed, not
recomputed in each replicate (a replicate's Spearman is the Pearson correlation of the
resampled bins' full-track ranks; its top set is the resampled copies of the full track's
top bins, so its size varies between replicates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numba
import numpy as np
import numpy.typing as npt
from scipy import stats as sps

__all__ = [
    "METRICS",
    "LOWER_IS_BETTER",
    "REGION_KINDS",
    "STATISTICS",
    "TOP_FRACTION",
    "track_metrics_naive",
    "track_metrics",
    "correlations",
    "block_statistics",
    "naive_block_statistics",
    "metrics_from_statistics",
    "global_ranks",
    "naive_global_ranks",
    "top_thresholds",
]

#: The metrics, in the challenge's order of its final ranking.
METRICS: tuple[str, ...] = (
    "mse",
    "gwcorr",
    "gwspear",
    "mse1obs",
    "mse1imp",
    "mseprom",
    "msegene",
    "mseenh",
    "msevar",
)
#: Metrics where lower is better (the errors); for the two correlations higher is better.
LOWER_IS_BETTER: frozenset[str] = frozenset(METRICS) - {"gwcorr", "gwspear"}
#: Keys of ``regions`` and the metric each feeds.
REGION_KINDS: dict[str, str] = {"prom": "mseprom", "gene": "msegene", "enh": "mseenh"}
#: Fraction of the kept bins in the top sets of ``mse1obs`` and ``mse1imp``.
TOP_FRACTION = 0.01

#: Columns of :func:`block_statistics`, all float64 sums over a block's kept bins:
#: ``n`` bins, ``sse`` squared errors; ``sx, sy, sxx, syy, sxy`` of the shifted values
#: ``x = y_true - c_true``, ``y = y_pred - c_pred``; ``rx ... rxy`` the same of the centred
#: doubled ranks; ``n_top_obs, sse_top_obs`` (``y_true >= t_obs``), ``n_top_imp,
#: sse_top_imp`` (``y_pred >= t_imp``); count and squared errors in each region; ``w_var``
#: the variance and ``wsse_var`` the variance-weighted squared errors (bins with a variance).
STATISTICS: tuple[str, ...] = (
    "n",
    "sse",
    "sx",
    "sy",
    "sxx",
    "syy",
    "sxy",
    "rx",
    "ry",
    "rxx",
    "ryy",
    "rxy",
    "n_top_obs",
    "sse_top_obs",
    "n_top_imp",
    "sse_top_imp",
    "n_prom",
    "sse_prom",
    "n_gene",
    "sse_gene",
    "n_enh",
    "sse_enh",
    "w_var",
    "wsse_var",
)
_COL = {name: i for i, name in enumerate(STATISTICS)}
_N_STATS = len(STATISTICS)

# Without blocks, bins are summed in groups of this many: each float64 sum then runs over a
# bounded number of terms before the groups are added, which keeps rounding small.
_IMPLICIT_BLOCK_LEN = 1 << 16
# Variance below this fraction of the sum of squares about the shift is rounding: constant.
_CONSTANT_RTOL = 1e-12
_INDEX_MASK = np.uint64(0xFFFFFFFF)


# --------------------------------------------------------------------------- input checks


def _track(y: np.ndarray, name: str) -> np.ndarray:
    """A 1-D float32 or float64 view of ``y``; other dtypes are converted to float64."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


def _tracks(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yt = _track(y_true, "y_true")
    yp = _track(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {yt.shape} vs {yp.shape}")
    return yt, yp


def _regions(regions: Mapping[str, np.ndarray] | None, n: int) -> dict[str, np.ndarray]:
    """The region masks as 1-D bool arrays of length ``n``; unknown keys are an error."""
    if regions is None:
        return {}
    unknown = set(regions) - set(REGION_KINDS)
    if unknown:
        raise ValueError(f"unknown region kinds {sorted(unknown)}; known: {list(REGION_KINDS)}")
    out = {}
    for kind, mask in regions.items():
        arr = np.asarray(mask)
        if arr.shape != (n,):
            raise ValueError(f"regions[{kind!r}] has shape {arr.shape}, expected ({n},)")
        out[kind] = arr if arr.dtype == np.bool_ else arr.astype(bool)
    return out


def _variance(variance: np.ndarray | None, n: int) -> np.ndarray | None:
    if variance is None:
        return None
    arr = _track(variance, "variance")
    if arr.shape != (n,):
        raise ValueError(f"variance has shape {arr.shape}, expected ({n},)")
    return arr


def _top_count(n_kept: int) -> int:
    """``n`` of the top-1% sets, as the challenge computes it (float product, truncated)."""
    return int(n_kept * TOP_FRACTION)


def _top_position(n_kept: int) -> int:
    """Position in the ascending sort of the threshold: ``sorted[-n]``, and ``sorted[0]``
    when ``n`` is 0 (Python's ``[-0]``)."""
    n_top = _top_count(n_kept)
    return n_kept - n_top if n_top > 0 else 0


def _chunks(n: int, chunk_size: int) -> range:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return range(0, n, chunk_size)


# --------------------------------------------------------------------------- the oracle


def _mean_or_nan(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def track_metrics_naive(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    regions: Mapping[str, np.ndarray] | None = None,
    variance: np.ndarray | None = None,
) -> dict[str, float]:
    """The challenge's metrics, computed in memory the obvious way (the oracle).

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray, shape (n,)
        Observed and predicted track, any real dtype (copied to float64). NaN marks a
        missing bin, left out of every metric.
    regions : mapping of str to numpy.ndarray of bool, shape (n,), optional
        Masks ``"prom"``, ``"gene"``, ``"enh"``; a missing key makes its metric NaN.
    variance : numpy.ndarray, shape (n,), optional
        Per-bin variance of the mark across other cell types (``msevar``'s weights); NaN
        leaves the bin out of ``msevar``. Missing: ``msevar`` is NaN.

    Returns
    -------
    dict of str to float
        One value per name in :data:`METRICS`, NaN where undefined.
    """
    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yt.ndim != 1 or yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred must be 1-D of one shape: {yt.shape}, {yp.shape}")
    masks = _regions(regions, yt.size)
    keep = ~(np.isnan(yt) | np.isnan(yp))
    t, p = yt[keep], yp[keep]
    n = t.size
    se = (t - p) ** 2
    out = {name: math.nan for name in METRICS}
    out["mse"] = _mean_or_nan(se)

    varying = n >= 2 and np.ptp(t) > 0 and np.ptp(p) > 0
    if varying:
        out["gwcorr"] = float(np.corrcoef(t, p)[0, 1])
        out["gwspear"] = float(sps.spearmanr(t, p).statistic)

    if n:
        n_top = _top_count(n)
        t_obs = np.sort(t)[-n_top]  # n_top == 0 -> [-0] == [0], as in the challenge
        t_imp = np.sort(p)[-n_top]
        out["mse1obs"] = _mean_or_nan(se[t >= t_obs])
        out["mse1imp"] = _mean_or_nan(se[p >= t_imp])

    for kind, mask in masks.items():
        out[REGION_KINDS[kind]] = _mean_or_nan(se[mask[keep]])

    if variance is not None:
        v = np.asarray(variance, dtype=np.float64)[keep]
        has_v = ~np.isnan(v)
        total = v[has_v].sum()
        if total != 0:
            out["msevar"] = float(se[has_v] @ v[has_v] / total)
    return out


# --------------------------------------------------------------------------- ranks


@numba.njit(cache=True, nogil=True)
def _count_kept_kernel(yt: np.ndarray, yp: np.ndarray) -> tuple[int, int]:
    # Number of kept bins in the chunk and the first one's position (-1 if none).
    count = 0
    first = -1
    for i in range(yt.size):
        if not (np.isnan(yt[i]) or np.isnan(yp[i])):
            if first < 0:
                first = i
            count += 1
    return count, first


@numba.njit(cache=True, nogil=True, inline="always")
def _float32_key(v: float) -> np.uint64:
    # The order-preserving uint32 image of float32(v), as a uint64 to shift into a word.
    f = np.float32(v) + np.float32(0.0)  # -0.0 + 0.0 is +0.0: one key, so they tie
    b = np.uint64(np.float32(f).view(np.uint32))
    if b >= np.uint64(0x80000000):
        return np.uint64(0xFFFFFFFF) - b  # negative: larger magnitude sorts first
    return b + np.uint64(0x80000000)


@numba.njit(cache=True, nogil=True)
def _pack_keys_kernel(
    y: np.ndarray, other: np.ndarray, start: int, out: np.ndarray, pos: int
) -> int:
    # For each kept bin: (float32 key of y) << 32 | bin index. Sorting these 64-bit words
    # sorts by value (float32-rounded) with no index array.
    for i in range(y.size):
        if np.isnan(y[i]) or np.isnan(other[i]):
            continue
        out[pos] = (_float32_key(y[i]) << np.uint64(32)) | np.uint64(start + i)
        pos += 1
    return pos


@numba.njit(cache=True, nogil=True)
def _assign_ranks(packed: np.ndarray, lo: int, hi: int) -> None:
    # Sorted positions lo..hi-1 tie: 1-based ranks lo+1..hi, twice their average lo+hi+1.
    # Each word becomes (bin index << 32) | (lo + hi), so that sorting the words again puts
    # the ranks in bin order: writing them then is sequential, not a scatter over the track.
    doubled = np.uint64(lo + hi)
    for j in range(lo, hi):
        packed[j] = ((packed[j] & _INDEX_MASK) << np.uint64(32)) | doubled


@numba.njit(cache=True, nogil=True)
def _rank_walk_kernel(packed: np.ndarray, y: np.ndarray, top_pos: int, exact: bool) -> float:
    # ``packed`` sorted ascending. A run of one float32 key holds one value when the keys
    # are exact (a float32 track); a float64 track may hold several there, sorted exactly
    # here. Reading ``y`` is a cache miss per bin, so only runs that need it do. Returns the
    # value at sorted position ``top_pos``.
    n = packed.size
    threshold = np.nan
    a = 0
    while a < n:
        key = packed[a] >> np.uint64(32)
        b = a + 1
        while b < n and (packed[b] >> np.uint64(32)) == key:
            b += 1
        if exact or b - a == 1:
            if a <= top_pos < b:
                threshold = np.float64(y[packed[top_pos] & _INDEX_MASK])
            _assign_ranks(packed, a, b)
            a = b
            continue
        values = np.empty(b - a, np.float64)
        for j in range(a, b):
            values[j - a] = y[packed[j] & _INDEX_MASK]
        order = np.argsort(values, kind="mergesort")
        run = packed[a:b].copy()
        for j in range(b - a):
            packed[a + j] = run[order[j]]
        g = a
        while g < b:
            value = values[order[g - a]]
            h = g + 1
            while h < b and values[order[h - a]] == value:
                h += 1
            if g <= top_pos < h:
                threshold = value
            _assign_ranks(packed, g, h)
            g = h
        a = b
    return threshold


@numba.njit(cache=True, nogil=True)
def _write_ranks_kernel(packed: np.ndarray, ranks: np.ndarray) -> None:
    # ``packed`` in bin order: store the centred doubled rank 2 * rank - (n + 1).
    n = packed.size
    for j in range(n):
        word = packed[j]
        ranks[word >> np.uint64(32)] = np.int64(word & _INDEX_MASK) - n


def _count_kept(yt: np.ndarray, yp: np.ndarray, chunk_size: int) -> tuple[int, int]:
    """Kept bins of the track and the index of the first (-1 if none)."""
    total, first = 0, -1
    for start in _chunks(yt.size, chunk_size):
        count, at = _count_kept_kernel(
            np.ascontiguousarray(yt[start : start + chunk_size]),
            np.ascontiguousarray(yp[start : start + chunk_size]),
        )
        if first < 0 and at >= 0:
            first = start + at
        total += count
    return total, first


def _check_rankable(n: int) -> None:
    if n >= 2**31:
        # A sort word holds a bin index and a doubled rank in 32 bits each.
        raise ValueError(f"tracks of {n} bins: at most 2**31 - 1 bins can be ranked")


def _rank_words(
    y: np.ndarray, other: np.ndarray, packed: np.ndarray, top_pos: int, chunk_size: int
) -> float:
    """Fill ``packed`` (one word per bin kept in both tracks) with ``y``'s words, sort them
    and walk the ties: each word becomes ``(bin index << 32) | (lo + hi)``, in rank order.
    Returns ``y``'s value at sorted position ``top_pos`` (NaN for -1)."""
    pos = 0
    for start in _chunks(y.size, chunk_size):
        pos = _pack_keys_kernel(
            np.ascontiguousarray(y[start : start + chunk_size]),
            np.ascontiguousarray(other[start : start + chunk_size]),
            start,
            packed,
            pos,
        )
    packed.sort()
    return float(_rank_walk_kernel(packed, y, top_pos, y.dtype == np.float32))


def _ranks_and_thresholds(
    yt: np.ndarray, yp: np.ndarray, chunk_size: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Both tracks' centred doubled ranks and top-1% thresholds, one sort per track."""
    n = yt.size
    _check_rankable(n)
    n_kept, _ = _count_kept(yt, yp, chunk_size)
    top_pos = _top_position(n_kept)
    packed = np.empty(n_kept, dtype=np.uint64)  # reused for both tracks
    results: list[np.ndarray] = []
    thresholds: list[float] = []
    for y, other in ((yt, yp), (yp, yt)):
        thresholds.append(_rank_words(y, other, packed, top_pos, chunk_size))
        packed.sort()  # by bin index
        ranks: np.ndarray = np.zeros(n, dtype=np.int32)
        _write_ranks_kernel(packed, ranks)
        results.append(ranks)
    return results[0], results[1], thresholds[0], thresholds[1]


def global_ranks(
    y_true: np.ndarray, y_pred: np.ndarray, *, chunk_size: int = 1_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """Each track's ranks over the kept bins, as centred doubled average ranks.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray, shape (n,)
        Observed and predicted track, float32 or float64 (other dtypes become float64).
    chunk_size : int
        Bins per call of the kernels that read the tracks.

    Returns
    -------
    rank_true, rank_pred : numpy.ndarray, shape (n,), int32
        ``2 * rank - (N + 1)`` where ``rank`` is the 1-based average rank (ties share the
        mean of their ranks, as ``scipy.stats.rankdata``) among the ``N`` kept bins; an
        affine image of the ranks, so any correlation of them is the Spearman correlation.
        0 at a left-out bin (NaN in either track).
    """
    yt, yp = _tracks(y_true, y_pred)
    rank_true, rank_pred, _, _ = _ranks_and_thresholds(yt, yp, chunk_size)
    return rank_true, rank_pred


def naive_global_ranks(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slow twin of :func:`global_ranks`: ``scipy.stats.rankdata`` of the kept bins."""
    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    keep = ~(np.isnan(yt) | np.isnan(yp))
    n_kept = int(keep.sum())
    out = []
    for y in (yt, yp):
        ranks = np.zeros(y.size, dtype=np.int64)
        ranks[keep] = np.rint(2 * sps.rankdata(y[keep]) - (n_kept + 1)).astype(np.int64)
        out.append(ranks)
    return out[0], out[1]


@numba.njit(cache=True, nogil=True)
def _gather_kept_kernel(y: np.ndarray, other: np.ndarray, out: np.ndarray, pos: int) -> int:
    for i in range(y.size):
        if not (np.isnan(y[i]) or np.isnan(other[i])):
            out[pos] = y[i]
            pos += 1
    return pos


def top_thresholds(
    y_true: np.ndarray, y_pred: np.ndarray, *, chunk_size: int = 1_000_000
) -> tuple[float, float]:
    """The thresholds of ``mse1obs`` and ``mse1imp``: the ``n``-th largest kept value.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray, shape (n,)
        Observed and predicted track, float32 or float64 (other dtypes become float64).
    chunk_size : int
        Bins per call of the kernel that gathers the kept values.

    Returns
    -------
    t_obs, t_imp : float
        ``sort(kept y_true)[-n]`` and ``sort(kept y_pred)[-n]`` with ``n = int(N * 0.01)``
        (the smallest value when ``n`` is 0, as the challenge's ``[-0]``); NaN when no bin
        is kept. A bin is in a top set when its value is ``>=`` the threshold.
    """
    yt, yp = _tracks(y_true, y_pred)
    n_kept, _ = _count_kept(yt, yp, chunk_size)
    if n_kept == 0:
        return math.nan, math.nan
    top_pos = _top_position(n_kept)
    out: list[float] = []
    for y, other in ((yt, yp), (yp, yt)):
        values = np.empty(n_kept, dtype=y.dtype)
        pos = 0
        for start in _chunks(y.size, chunk_size):
            pos = _gather_kept_kernel(
                np.ascontiguousarray(y[start : start + chunk_size]),
                np.ascontiguousarray(other[start : start + chunk_size]),
                values,
                pos,
            )
        values.partition(top_pos)
        out.append(float(values[top_pos]))
    return out[0], out[1]


# --------------------------------------------------------------------------- statistics


@numba.njit(cache=True, nogil=True)
def _block_statistics_kernel(
    yt: np.ndarray,
    yp: np.ndarray,
    blocks: np.ndarray,
    start: int,
    block_len: int,
    prom: np.ndarray,
    gene: np.ndarray,
    enh: np.ndarray,
    variance: np.ndarray,
    rank_t: np.ndarray,
    rank_p: np.ndarray,
    t_obs: float,
    t_imp: float,
    shift_t: float,
    shift_p: float,
    out: np.ndarray,
) -> int:
    # Adds the chunk's bins to ``out`` (n_blocks, n_stats); an empty optional array means
    # absent. Returns the chunk position of a block id out of range, or -1.
    n_blocks = out.shape[0]
    has_blocks = blocks.size > 0
    has_prom = prom.size > 0
    has_gene = gene.size > 0
    has_enh = enh.size > 0
    has_var = variance.size > 0
    for i in range(yt.size):
        b = blocks[i] if has_blocks else (start + i) // block_len
        if b < 0 or b >= n_blocks:
            return i
        x = np.float64(yt[i])
        y = np.float64(yp[i])
        if np.isnan(x) or np.isnan(y):
            continue
        e = (x - y) * (x - y)
        o = out[b]
        o[0] += 1.0
        o[1] += e
        dx = x - shift_t
        dy = y - shift_p
        o[2] += dx
        o[3] += dy
        o[4] += dx * dx
        o[5] += dy * dy
        o[6] += dx * dy
        rx = np.float64(rank_t[i])
        ry = np.float64(rank_p[i])
        o[7] += rx
        o[8] += ry
        o[9] += rx * rx
        o[10] += ry * ry
        o[11] += rx * ry
        if x >= t_obs:
            o[12] += 1.0
            o[13] += e
        if y >= t_imp:
            o[14] += 1.0
            o[15] += e
        if has_prom and prom[i]:
            o[16] += 1.0
            o[17] += e
        if has_gene and gene[i]:
            o[18] += 1.0
            o[19] += e
        if has_enh and enh[i]:
            o[20] += 1.0
            o[21] += e
        if has_var:
            v = np.float64(variance[i])
            if not np.isnan(v):
                o[22] += v
                o[23] += v * e
    return -1


def _shifts(yt: np.ndarray, yp: np.ndarray, first: int) -> tuple[float, float]:
    if first < 0:
        return 0.0, 0.0
    return float(yt[first]), float(yp[first])


def _empty(dtype: npt.DTypeLike) -> np.ndarray:
    return np.empty(0, dtype=dtype)


def block_statistics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    blocks: np.ndarray | None,
    n_blocks: int,
    *,
    regions: Mapping[str, np.ndarray] | None = None,
    variance: np.ndarray | None = None,
    thresholds: tuple[float, float] | None = None,
    ranks: tuple[np.ndarray, np.ndarray] | None = None,
    chunk_size: int = 1_000_000,
) -> np.ndarray:
    """Per-block sufficient statistics of every metric (columns :data:`STATISTICS`).

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray, shape (n,)
        Observed and predicted track, float32 or float64, read as they are (other dtypes
        become float64). NaN in either leaves the bin out.
    blocks : numpy.ndarray of int, shape (n,), or None
        Genomic block of each bin, ``0 <= blocks < n_blocks``; a block's bins need not be
        contiguous. None: consecutive groups of 65,536 bins (then ``n_blocks`` must be at
        least ``ceil(n / 65536)``).
    n_blocks : int
        Number of blocks (rows of the result).
    regions : mapping of str to numpy.ndarray of bool, shape (n,), optional
        Masks ``"prom"``, ``"gene"``, ``"enh"``; a missing one leaves its columns 0.
    variance : numpy.ndarray, shape (n,), optional
        Weights of ``msevar`` (float32 or float64); NaN leaves the bin out of them.
    thresholds : (float, float), optional
        ``(t_obs, t_imp)`` from :func:`top_thresholds`; computed when missing.
    ranks : (numpy.ndarray, numpy.ndarray), optional
        ``(rank_true, rank_pred)`` from :func:`global_ranks`; computed when missing (with
        the thresholds, one sort per track).
    chunk_size : int
        Bins per kernel call: the optional inputs are sliced per chunk, never copied whole.

    Returns
    -------
    numpy.ndarray, shape (n_blocks, len(STATISTICS)), float64
        Sums over each block's kept bins. ``stats.sum(axis=0)`` gives the track's metrics
        through :func:`metrics_from_statistics`, and ``W @ stats`` bootstrap replicates.
    """
    yt, yp = _tracks(y_true, y_pred)
    n = yt.size
    masks = _regions(regions, n)
    var = _variance(variance, n)
    if blocks is not None:
        blocks = np.asarray(blocks)
        if blocks.shape != (n,) or not np.issubdtype(blocks.dtype, np.integer):
            raise ValueError(f"blocks must be integers of shape ({n},), got {blocks.shape}")
    elif n_blocks * _IMPLICIT_BLOCK_LEN < n:
        raise ValueError(f"without blocks, n_blocks must be >= {-(-n // _IMPLICIT_BLOCK_LEN)}")
    if ranks is None:
        rank_t, rank_p, t_obs, t_imp = _ranks_and_thresholds(yt, yp, chunk_size)
        if thresholds is not None:
            t_obs, t_imp = thresholds
    else:
        rank_t, rank_p = (np.asarray(r) for r in ranks)
        if rank_t.shape != (n,) or rank_p.shape != (n,):
            raise ValueError(f"ranks must be two arrays of shape ({n},)")
        t_obs, t_imp = (
            thresholds if thresholds is not None else top_thresholds(yt, yp, chunk_size=chunk_size)
        )
    _, first = _count_kept(yt, yp, chunk_size)
    shift_t, shift_p = _shifts(yt, yp, first)

    out = np.zeros((n_blocks, _N_STATS), dtype=np.float64)
    no_bool, no_int = _empty(np.bool_), _empty(np.int64)
    no_var = _empty(var.dtype if var is not None else np.float64)
    for start in _chunks(n, chunk_size):
        sl = slice(start, start + chunk_size)

        def part(arr: np.ndarray | None, absent: np.ndarray, sl: slice = sl) -> np.ndarray:
            return absent if arr is None else np.ascontiguousarray(arr[sl])

        bad = _block_statistics_kernel(
            part(yt, no_var),
            part(yp, no_var),
            part(blocks, no_int),
            start,
            _IMPLICIT_BLOCK_LEN,
            part(masks.get("prom"), no_bool),
            part(masks.get("gene"), no_bool),
            part(masks.get("enh"), no_bool),
            part(var, no_var),
            part(rank_t, no_int),
            part(rank_p, no_int),
            float(t_obs),
            float(t_imp),
            shift_t,
            shift_p,
            out,
        )
        if bad >= 0:
            where = start + bad
            got = blocks[where] if blocks is not None else where // _IMPLICIT_BLOCK_LEN
            raise ValueError(f"bin {where} is in block {got}, outside 0..{n_blocks - 1}")
    return out


def naive_block_statistics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    blocks: np.ndarray,
    n_blocks: int,
    *,
    regions: Mapping[str, np.ndarray] | None = None,
    variance: np.ndarray | None = None,
) -> np.ndarray:
    """Slow twin of :func:`block_statistics`: float64 copies, scipy ranks, ``np.bincount``."""
    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    keep = ~(np.isnan(yt) | np.isnan(yp))
    b = np.asarray(blocks)[keep]
    t, p = yt[keep], yp[keep]
    rank_t, rank_p = (r[keep].astype(np.float64) for r in naive_global_ranks(yt, yp))
    if t.size:
        n_top = _top_count(t.size)
        t_obs, t_imp = np.sort(t)[-n_top], np.sort(p)[-n_top]
        c_t, c_p = t[0], p[0]
    else:
        t_obs = t_imp = math.nan
        c_t = c_p = 0.0
    e = (t - p) ** 2
    x, y = t - c_t, p - c_p
    masks = {kind: np.asarray(m, dtype=bool)[keep] for kind, m in (regions or {}).items()}
    zero = np.zeros(t.size, dtype=bool)
    top_o, top_i = t >= t_obs, p >= t_imp
    v = np.zeros(t.size) if variance is None else np.asarray(variance, dtype=np.float64)[keep]
    v = np.where(np.isnan(v), 0.0, v)
    columns = {
        "n": np.ones(t.size),
        "sse": e,
        "sx": x,
        "sy": y,
        "sxx": x * x,
        "syy": y * y,
        "sxy": x * y,
        "rx": rank_t,
        "ry": rank_p,
        "rxx": rank_t * rank_t,
        "ryy": rank_p * rank_p,
        "rxy": rank_t * rank_p,
        "n_top_obs": top_o * 1.0,
        "sse_top_obs": top_o * e,
        "n_top_imp": top_i * 1.0,
        "sse_top_imp": top_i * e,
        "w_var": v,
        "wsse_var": v * e,
    }
    for kind in REGION_KINDS:
        m = masks.get(kind, zero)
        columns[f"n_{kind}"] = m * 1.0
        columns[f"sse_{kind}"] = m * e
    out = np.zeros((n_blocks, _N_STATS))
    for name, values in columns.items():
        out[:, _COL[name]] = np.bincount(b, weights=values, minlength=n_blocks)
    return out


# --------------------------------------------------------------------------- metrics


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / den, np.nan)


def _correlation(
    n: np.ndarray, sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray
) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        cov = sxy - sx * sy / n
        varying = (n >= 2) & (vx > _CONSTANT_RTOL * sxx) & (vy > _CONSTANT_RTOL * syy)
        r = cov / np.sqrt(np.where(varying, vx * vy, 1.0))
    return np.where(varying, np.clip(r, -1.0, 1.0), np.nan)


def metrics_from_statistics(stats: np.ndarray) -> dict[str, np.ndarray | float]:
    """Every metric from summed block statistics, vectorised over replicates.

    Parameters
    ----------
    stats : numpy.ndarray, shape (len(STATISTICS),) or (R, len(STATISTICS))
        Sums of :func:`block_statistics` rows: ``S.sum(axis=0)`` for the track, or
        ``W @ S`` for ``R`` bootstrap replicates with block multiplicities ``W`` of shape
        ``(R, n_blocks)`` (see the module notes on what the replicates hold fixed).

    Returns
    -------
    dict of str to float or numpy.ndarray
        One entry per name in :data:`METRICS`: a float for 1-D ``stats``, else a float64
        array of shape (R,); NaN where undefined.
    """
    s = np.asarray(stats, dtype=np.float64)
    if s.ndim not in (1, 2) or s.shape[-1] != _N_STATS:
        raise ValueError(f"stats must have shape ({_N_STATS},) or (R, {_N_STATS}), got {s.shape}")
    col = {name: s[..., i] for i, name in enumerate(STATISTICS)}
    n = col["n"]
    out: dict[str, np.ndarray] = {
        "mse": _ratio(col["sse"], n),
        "gwcorr": _correlation(n, col["sx"], col["sy"], col["sxx"], col["syy"], col["sxy"]),
        "gwspear": _correlation(n, col["rx"], col["ry"], col["rxx"], col["ryy"], col["rxy"]),
        "mse1obs": _ratio(col["sse_top_obs"], col["n_top_obs"]),
        "mse1imp": _ratio(col["sse_top_imp"], col["n_top_imp"]),
        "msevar": _ratio(col["wsse_var"], col["w_var"]),
    }
    for kind, metric in REGION_KINDS.items():
        out[metric] = _ratio(col[f"sse_{kind}"], col[f"n_{kind}"])
    if s.ndim == 1:
        return {name: float(out[name]) for name in METRICS}
    return {name: out[name] for name in METRICS}


# --------------------------------------------------------------------------- correlations


@numba.njit(cache=True, nogil=True)
def _moments_kernel(
    yt: np.ndarray,
    yp: np.ndarray,
    start: int,
    block_len: int,
    shift_t: float,
    shift_p: float,
    out: np.ndarray,
) -> None:
    # Columns n, sx, sy, sxx, syy, sxy of :data:`STATISTICS` per implicit block, summed in
    # the order :func:`_block_statistics_kernel` sums them (so gwcorr is the same number).
    for i in range(yt.size):
        x = np.float64(yt[i])
        y = np.float64(yp[i])
        if np.isnan(x) or np.isnan(y):
            continue
        o = out[(start + i) // block_len]
        dx = x - shift_t
        dy = y - shift_p
        o[0] += 1.0
        o[1] += dx
        o[2] += dy
        o[3] += dx * dx
        o[4] += dy * dy
        o[5] += dx * dy


@numba.njit(cache=True, nogil=True)
def _rank_moments(packed: np.ndarray) -> tuple[float, float]:
    # Words (index << 32) | (lo + hi) after the rank walk: the sum and the sum of squares of
    # the centred doubled ranks lo + hi - N.
    n = packed.size
    total, squares = 0.0, 0.0
    for j in range(n):
        r = np.float64(np.int64(packed[j] & _INDEX_MASK) - n)
        total += r
        squares += r * r
    return total, squares


@numba.njit(cache=True, nogil=True)
def _carry_ranks_kernel(packed: np.ndarray, y: np.ndarray) -> None:
    # Words in bin order, (index << 32) | (lo + hi) of the first track: each becomes
    # (float32 key of the second track at that bin) << 32 | (lo + hi), so that sorting them
    # orders the second track while every word keeps the first track's rank.
    for j in range(packed.size):
        word = packed[j]
        key = _float32_key(y[word >> np.uint64(32)])
        packed[j] = (key << np.uint64(32)) | (word & _INDEX_MASK)


@numba.njit(cache=True, nogil=True)
def _paired_rank_moments(packed: np.ndarray) -> tuple[float, float, float]:
    # Words sorted by the second track's key (exact: its values are float32): each run of one
    # key is a tie group sharing the centred doubled rank a + b - N. Returns the sum and sum
    # of squares of those ranks and the sum of their products with the first track's.
    n = packed.size
    sy, syy, sxy = 0.0, 0.0, 0.0
    a = 0
    while a < n:
        key = packed[a] >> np.uint64(32)
        b = a + 1
        run_x = np.int64(packed[a] & _INDEX_MASK) - n
        while b < n and (packed[b] >> np.uint64(32)) == key:
            run_x += np.int64(packed[b] & _INDEX_MASK) - n
            b += 1
        r = np.float64(a + b - n)
        sy += (b - a) * r
        syy += (b - a) * r * r
        sxy += r * np.float64(run_x)
        a = b
    return sy, syy, sxy


def _float32_exact(y: np.ndarray, chunk_size: int) -> bool:
    """Whether every value of ``y`` is a float32 (so its float32 key orders it exactly)."""
    if y.dtype == np.float32:
        return True
    for start in _chunks(y.size, chunk_size):
        part = y[start : start + chunk_size]
        with np.errstate(invalid="ignore", over="ignore"):
            same = part.astype(np.float32).astype(np.float64) == part
        if not np.all(same | np.isnan(part)):
            return False
    return True


def correlations(
    y_true: np.ndarray, y_pred: np.ndarray, *, chunk_size: int = 1_000_000
) -> tuple[float, float]:
    """``gwcorr`` and ``gwspear`` alone, in a fraction of :func:`track_metrics`'s memory.

    The ranks of both tracks are never held at once: one track is ranked in 64-bit sort
    words (its rank then in each word's low half), the words put back in bin order, the
    other track's float32 keys written into their high halves, and the words sorted again,
    so each tie group of the second track meets the first track's ranks it pairs with. That
    needs one track to hold float32 values (any dtype); with neither, both tracks' ranks
    are computed as :func:`track_metrics` does.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray, shape (n,)
        Two tracks, float32 or float64; NaN in either leaves the bin out.
    chunk_size : int
        Bins per kernel call.

    Returns
    -------
    (gwcorr, gwspear) : (float, float)
        Pearson and Spearman correlations over the kept bins, :func:`track_metrics`'s
        values (Spearman's to rounding: its sums run in another order); NaN with fewer than
        2 kept bins or a constant track.
    """
    yt, yp = _tracks(y_true, y_pred)
    n = yt.size
    n_kept, first = _count_kept(yt, yp, chunk_size)
    shift_t, shift_p = _shifts(yt, yp, first)
    moments = np.zeros((max(1, -(-n // _IMPLICIT_BLOCK_LEN)), 6), np.float64)
    for start in _chunks(n, chunk_size):
        _moments_kernel(
            np.ascontiguousarray(yt[start : start + chunk_size]),
            np.ascontiguousarray(yp[start : start + chunk_size]),
            start,
            _IMPLICIT_BLOCK_LEN,
            shift_t,
            shift_p,
            moments,
        )
    m = moments.sum(axis=0)
    count = np.asarray(m[0])
    pearson = float(_correlation(count, m[1], m[2], m[3], m[4], m[5]))
    if _float32_exact(yp, chunk_size):
        first_track, second = yt, yp
    elif _float32_exact(yt, chunk_size):
        first_track, second = yp, yt
    else:
        stats = block_statistics(yt, yp, None, moments.shape[0], chunk_size=chunk_size)
        return pearson, float(metrics_from_statistics(stats.sum(axis=0))["gwspear"])
    _check_rankable(n)
    packed = np.empty(n_kept, dtype=np.uint64)
    _rank_words(first_track, second, packed, -1, chunk_size)
    sx, sxx = _rank_moments(packed)
    packed.sort()  # by bin index
    _carry_ranks_kernel(packed, second)
    packed.sort()
    sy, syy, sxy = _paired_rank_moments(packed)
    del packed
    sums = np.asarray([sx, sy, sxx, syy, sxy], np.float64)
    spearman = float(_correlation(count, *sums))
    return pearson, spearman


def track_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    blocks: np.ndarray | None = None,
    regions: Mapping[str, np.ndarray] | None = None,
    variance: np.ndarray | None = None,
    chunk_size: int = 1_000_000,
) -> dict[str, float]:
    """The challenge's metrics through the block statistics (equal to the oracle).

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray, shape (n,)
        Observed and predicted track, float32 or float64 (read as they are); NaN marks a
        missing bin.
    blocks : numpy.ndarray of int, shape (n,), optional
        Genomic block of each bin (``0..max``); only the grouping of the float64 sums
        depends on it, not the values.
    regions : mapping of str to numpy.ndarray of bool, shape (n,), optional
        Masks ``"prom"``, ``"gene"``, ``"enh"``; a missing key makes its metric NaN.
    variance : numpy.ndarray, shape (n,), optional
        Weights of ``msevar``; missing: ``msevar`` is NaN.
    chunk_size : int
        Bins per kernel call.

    Returns
    -------
    dict of str to float
        One value per name in :data:`METRICS`, equal to :func:`track_metrics_naive` to
        about 1e-9 relative.
    """
    yt, _ = _tracks(y_true, y_pred)
    if blocks is None:
        n_blocks = max(1, -(-yt.size // _IMPLICIT_BLOCK_LEN))
    else:
        blocks = np.asarray(blocks)
        n_blocks = int(blocks.max()) + 1 if blocks.size else 1
    stats = block_statistics(
        y_true,
        y_pred,
        blocks,
        n_blocks,
        regions=regions,
        variance=variance,
        chunk_size=chunk_size,
    )
    result = metrics_from_statistics(stats.sum(axis=0))
    return {name: float(value) for name, value in result.items()}
