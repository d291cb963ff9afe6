"""Block bootstrap intervals for average precision, over genomic blocks of loci.

Neighbouring loci share chromatin domains, enhancers and mappability, so their labels and
scores are correlated; resampling single loci treats them as independent and gives
intervals too narrow. The block bootstrap (Kunsch 1989; Liu and Singh 1992) resamples whole
genomic blocks instead: the loci are cut into blocks (:func:`genomic_blocks`, 1 Mb by
default), each replicate draws as many blocks as there are, uniformly with replacement, and
every locus of a block drawn ``c`` times counts ``c`` times (:func:`block_weights`). Each
replicate's statistic comes from those multiplicities; the interval is the percentile
interval of the replicates, centred on the estimate (:func:`percentile_interval`). It
assumes the blocks are exchangeable and long enough that the dependence between loci does
not reach across many of them.

:func:`bootstrap_ap` computes, for every replicate at once, the AP with tied scores grouped
(scikit-learn's) and, on request, its expectation when the ties are broken at random
(:mod:`pitfall.random_ranking`), in one pass over the loci sorted by score. The loci
above a positive enter the replicates' counts block by block, weighted, when that positive
is reached, so ``R`` replicates of ``n`` loci cost at most ``O(n R)`` after one sort (far
less when positives are few or tie groups large), and memory is the sorted loci (a label,
a block id and a tie flag each) plus ``(n_blocks, R)`` weights. Segments (e.g. groups of
loci of equal activity) are handled in the same pass, each with its own AP.

:class:`SortedLoci` sorts the labelled loci once per scoring: each becomes one 64-bit word
holding its score's rank and its label, block and segment, and the words are sorted in
place, with no index array (the layout is described where the words are built).

:func:`naive_bootstrap_ap` is the obvious twin of the sort and the pass together, the
oracle of the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numba
import numpy as np
import numpy.typing as npt
import pandas as pd

from pitfall.random_ranking import _tie_group_sum

__all__ = [
    "BLOCK_SIZE",
    "MAX_LEVELS",
    "BootstrapAP",
    "SortedLoci",
    "block_keys",
    "block_weights",
    "chrom_ids",
    "few_levels",
    "bootstrap_ap",
    "score_order",
    "genomic_blocks",
    "key_runs",
    "labelled",
    "naive_bootstrap_ap",
    "naive_precision_recall",
    "number_runs",
    "percentile_interval",
    "renumber",
]

T = TypeVar("T")

#: Default genomic block length (bp).
BLOCK_SIZE = 1_000_000


def block_keys(
    chrom_code: npt.ArrayLike,
    start: npt.ArrayLike | None = None,
    *,
    block_size: int = BLOCK_SIZE,
    block_loci: int = 100,
) -> np.ndarray:
    """Each locus's genomic block as an int64 key, the same for the same block in any call.

    Parameters
    ----------
    chrom_code : array-like of int, shape (n,)
        Each locus's chromosome as a non-negative integer code (below 2**23).
    start : array-like of int, shape (n,), optional
        Each locus's start (bp): the block is ``(chrom, start // block_size)``. Without
        positions, ``chrom_code`` must run in genomic order and each chromosome is cut into
        runs of ``block_loci`` consecutive loci.
    block_size, block_loci : int
        Block length in bp, or in loci without ``start``.

    Returns
    -------
    numpy.ndarray
        int64, shape (n,): ``chrom_code * 2**40 + block index within the chromosome``.
    """
    if block_size < 1 or block_loci < 1:
        raise ValueError("block_size and block_loci must be at least 1")
    code = np.asarray(chrom_code, dtype=np.int64).ravel()
    if start is None:
        first = np.r_[0, np.flatnonzero(code[1:] != code[:-1]) + 1]
        run_start = np.repeat(first, np.diff(np.r_[first, code.size]))
        within = (np.arange(code.size) - run_start) // block_loci
    else:
        within = np.asarray(start, dtype=np.int64).ravel() // block_size
        if within.size != code.size:
            raise ValueError(f"chrom and start differ in length: {code.size} and {within.size}")
    return (code << 40) + within


def chrom_ids(chrom: np.ndarray, ids: dict[str, int] | None = None) -> np.ndarray:
    """Each locus's chromosome as an integer id, numbering names new to ``ids`` in order of
    appearance (pass the same ``ids`` to number several blocks of loci alike).

    Loci run along chromosomes, so only the runs' names are looked up, not every locus's.

    Returns
    -------
    numpy.ndarray
        int32, shape (n,).
    """
    ids = {} if ids is None else ids
    chrom = np.asarray(chrom).ravel()
    if chrom.size == 0:
        return np.zeros(0, np.int32)
    starts = np.r_[0, np.flatnonzero(chrom[1:] != chrom[:-1]) + 1]
    run_ids = [ids.setdefault(str(c), len(ids)) for c in chrom[starts]]
    return np.repeat(np.asarray(run_ids, np.int32), np.diff(np.r_[starts, chrom.size]))


def key_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal consecutive keys: each run's first index and its key.

    Returns
    -------
    start : numpy.ndarray
        int64, shape (r,).
    key : numpy.ndarray
        Shape (r,), the dtype of ``keys``.
    """
    keys = np.asarray(keys).ravel()
    if keys.size == 0:
        return np.zeros(0, np.int64), keys
    start = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]
    return start, keys[start]


def number_runs(
    start: np.ndarray,
    key: np.ndarray,
    n: int,
    *,
    dtype: npt.DTypeLike = np.int32,
    where: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Number ``n`` loci given as runs of block keys (:func:`key_runs`, runs may repeat a key).

    ``where`` (bool, shape (n,)) numbers only the blocks holding a locus where True, as
    :func:`renumber` does: the other loci's ids are in range and mean nothing.

    Returns
    -------
    ids : numpy.ndarray
        ``dtype``, shape (n,): each locus's key's rank among the distinct keys.
    keys : numpy.ndarray
        Shape (n_blocks,): the distinct keys, sorted (``keys[ids]`` are the loci's keys
        where ``where`` holds).
    """
    start = np.asarray(start, np.int64)
    lengths = np.diff(np.r_[start, n])
    if where is None:
        uniq, run_ids = np.unique(key, return_inverse=True)
        return np.repeat(run_ids.astype(dtype), lengths), uniq
    if not start.size:
        return np.zeros(n, dtype), np.zeros(0, np.asarray(key).dtype)
    uniq = np.unique(key[np.logical_or.reduceat(np.asarray(where, bool), start)])
    run_ids = np.minimum(np.searchsorted(uniq, key), max(uniq.size - 1, 0))
    return np.repeat(run_ids.astype(dtype), lengths), uniq


def renumber(
    keys: np.ndarray, where: np.ndarray | None = None, *, dtype: npt.DTypeLike = np.int32
) -> tuple[np.ndarray, int]:
    """Block keys (:func:`block_keys`) as ids 0 .. n_blocks - 1, in key order.

    Keys come in runs (loci sorted along the genome), so only the runs' keys are sorted,
    not every locus's.

    Parameters
    ----------
    keys : numpy.ndarray
        Integers, shape (n,): keys, or ids from an earlier numbering.
    where : numpy.ndarray, optional
        bool, shape (n,): number only the blocks holding a locus where True, as
        ``renumber(keys[where])`` does, but keep every locus (the others' ids are in
        range and mean nothing).
    dtype
        Integer dtype of the ids.

    Returns
    -------
    ids : numpy.ndarray
        ``dtype``, shape (n,).
    n_blocks : int
        At least 1.
    """
    keys = np.asarray(keys).ravel()
    if keys.size == 0:
        return np.zeros(0, dtype), 1
    start, run_key = key_runs(keys)
    ids, uniq = number_runs(start, run_key, keys.size, dtype=dtype, where=where)
    return ids, max(int(uniq.size), 1)


def genomic_blocks(
    chrom: npt.ArrayLike,
    start: npt.ArrayLike | None = None,
    *,
    block_size: int = BLOCK_SIZE,
    block_loci: int = 100,
) -> np.ndarray:
    """The genomic block of each locus, numbered 0 .. n_blocks - 1 along the loci.

    Parameters
    ----------
    chrom : array-like of str, shape (n,)
        Each locus's chromosome.
    start : array-like of int, shape (n,), optional
        Each locus's start (bp): the block is ``(chrom, start // block_size)``. Without
        positions, loci are taken to be in genomic order and each chromosome is cut into
        runs of ``block_loci`` consecutive loci.
    block_size : int
        Block length in bp.
    block_loci : int
        Loci per block when ``start`` is not given.

    Returns
    -------
    numpy.ndarray
        int32, shape (n,).
    """
    keys = block_keys(
        chrom_ids(np.asarray(chrom)), start, block_size=block_size, block_loci=block_loci
    )
    return renumber(keys)[0]


def block_weights(n_blocks: int, n_replicates: int, seed: int) -> np.ndarray:
    """Multiplicities of each block in each replicate: ``n_blocks`` draws with replacement.

    Returns
    -------
    numpy.ndarray
        float64, shape (n_replicates, n_blocks); each row sums to ``n_blocks``.
    """
    if n_blocks < 1 or n_replicates < 1:
        raise ValueError("block_weights needs at least one block and one replicate")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=n_replicates).astype(
        np.float64
    )


@dataclass
class BootstrapAP:
    """Per segment and replicate: AP, its random-tie-breaking expectation, counts.

    Attributes
    ----------
    ap : numpy.ndarray
        float64, shape (S, R): AP with ties grouped (NaN where a replicate holds no positive
        of the segment).
    tied_expectation : numpy.ndarray or None
        float64, shape (S, R): the AP expected when the ties are broken at random (only
        when asked for).
    n, positives : numpy.ndarray
        float64, shape (S, R): loci and positive loci, counted with their multiplicity.
    """

    ap: np.ndarray
    tied_expectation: np.ndarray | None
    n: np.ndarray
    positives: np.ndarray


@numba.njit(cache=True, nogil=True)
def _bootstrap_segments(
    positive: np.ndarray,
    block: np.ndarray,
    tie_end: np.ndarray,
    seg_end: np.ndarray,
    weights_t: np.ndarray,
    with_expectation: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # The loci above a threshold enter the replicates' counts only where a positive needs
    # them: until then a locus is one count of its block (``pending``), and the blocks'
    # counts are added up, weighted, at the next positive. Every count is an integer below
    # 2**53, so the sums are exact in any order.
    n_seg = seg_end.size
    n_blocks, n_rep = weights_t.shape
    ap = np.zeros((n_seg, n_rep))
    expect = np.zeros((n_seg, n_rep))
    total_n = np.zeros((n_seg, n_rep))
    total_k = np.zeros((n_seg, n_rep))
    tp_g = np.zeros(n_rep)
    n_g = np.zeros(n_rep)
    above_k = np.zeros(n_rep)
    above_n = np.zeros(n_rep)
    pending = np.zeros(n_blocks, np.int64)
    touched = np.empty(n_blocks, np.int64)
    group_all = np.zeros(n_blocks, np.int64)
    group_pos = np.zeros(n_blocks, np.int64)
    group_touched = np.empty(n_blocks, np.int64)
    start = 0
    for s in range(n_seg):
        above_k[:] = 0.0
        above_n[:] = 0.0
        stop = seg_end[s]
        n_touched = 0
        i = start
        while i < stop:
            j = i
            while not tie_end[j]:
                j += 1
            has_positive = False
            for q in range(i, j + 1):
                if positive[q]:
                    has_positive = True
                    break
            if not has_positive:
                for q in range(i, j + 1):
                    b = block[q]
                    if pending[b] == 0:
                        touched[n_touched] = b
                        n_touched += 1
                    pending[b] += 1
                i = j + 1
                continue
            for t in range(n_touched):
                b = touched[t]
                c = np.float64(pending[b])
                w = weights_t[b]
                for r in range(n_rep):
                    above_n[r] += c * w[r]
                pending[b] = 0
            n_touched = 0
            if j == i:
                # A positive alone at its score (most, for continuous scores). Its copies
                # in a replicate stand for distinct loci of a new sample, which would not
                # tie: each copy is its own threshold.
                w = weights_t[block[i]]
                for r in range(n_rep):
                    if w[r] > 0.0:
                        term = _tie_group_sum(above_k[r], above_n[r], w[r], w[r])
                        ap[s, r] += term
                        expect[s, r] += term
                        above_k[r] += w[r]
                        above_n[r] += w[r]
                i = j + 1
                continue
            n_group = 0
            for q in range(i, j + 1):
                b = block[q]
                if group_all[b] == 0:
                    group_touched[n_group] = b
                    n_group += 1
                group_all[b] += 1
                if positive[q]:
                    group_pos[b] += 1
            for t in range(n_group):
                b = group_touched[t]
                c_all = np.float64(group_all[b])
                c_pos = np.float64(group_pos[b])
                w = weights_t[b]
                for r in range(n_rep):
                    n_g[r] += c_all * w[r]
                    tp_g[r] += c_pos * w[r]
                group_all[b] = 0
                group_pos[b] = 0
            for r in range(n_rep):
                if tp_g[r] > 0.0:
                    k_new = above_k[r] + tp_g[r]
                    ap[s, r] += tp_g[r] * k_new / (above_n[r] + n_g[r])
                    if with_expectation:
                        expect[s, r] += _tie_group_sum(above_k[r], above_n[r], tp_g[r], n_g[r])
                    above_k[r] = k_new
                above_n[r] += n_g[r]
                tp_g[r] = 0.0
                n_g[r] = 0.0
            i = j + 1
        for t in range(n_touched):
            b = touched[t]
            c = np.float64(pending[b])
            w = weights_t[b]
            for r in range(n_rep):
                above_n[r] += c * w[r]
            pending[b] = 0
        for r in range(n_rep):
            total_n[s, r] = above_n[r]
            total_k[s, r] = above_k[r]
            if above_k[r] > 0.0:
                ap[s, r] /= above_k[r]
                expect[s, r] /= above_k[r]
            else:
                ap[s, r] = np.nan
                expect[s, r] = np.nan
        start = stop
    return ap, expect, total_n, total_k


def labelled(y: np.ndarray) -> np.ndarray:
    """bool, shape of ``y``: where a label is known (0 or 1). Unlabelled loci are NaN (or
    negative), so labels fit a float array or an int8 one with -1 (a byte per locus)."""
    return np.asarray(y) >= 0


def score_order(y: npt.ArrayLike, score: npt.ArrayLike) -> np.ndarray:
    """The labelled loci (:func:`labelled`) in decreasing score order.

    Returns
    -------
    numpy.ndarray
        int64, shape (m,): indices into ``y`` and ``score``; ties in no particular order
        (any order within a tie group gives the same AP).
    """
    y = np.asarray(y).ravel()
    s = np.asarray(score).ravel()
    order = np.argsort(-s)
    known = labelled(y)
    if not known.all():
        order = order[known[order]]
    if np.isnan(s[order]).any():
        raise ValueError("scores must not be NaN where the label is known")
    return order


# --------------------------------------------------------------------------------------------
# Sorting the labelled loci: one 64-bit word per locus, sorted in place
#
# A word holds the locus's tie group in its high 32 bits (ascending from the highest score)
# and, in its low 32 bits, either what the passes read of the locus (its label, block and
# segment code: the payload) or its index. Sorting the words sorts the loci by decreasing
# score with no index array; any order within a tie group gives the same APs, replicates
# and tests, since every pass adds a tie group's loci up before using them.

_LOW = np.uint64(0xFFFFFFFF)
_NAN_SCORE = -1
_NOT_FLOAT32 = -2


@numba.njit(cache=True, nogil=True)
def _count_labelled(y: np.ndarray) -> int:
    m = 0
    for i in range(y.size):
        if y[i] >= 0:  # False for NaN
            m += 1
    return m


@numba.njit(cache=True, nogil=True, inline="always")
def _low_word(
    index: int, positive: bool, block: int, code: int, code_shift: np.uint64, by_index: bool
) -> np.uint64:
    # A word's low 32 bits: the locus's index, or its payload (label, block, segment code;
    # ``code`` -1 without segments). Scalars only: a helper taking the arrays compiles
    # into slow, reference-counting code.
    if by_index:
        return np.uint64(index)
    low = (np.uint64(block) << np.uint64(1)) | np.uint64(positive)
    if code >= 0:
        low |= np.uint64(code) << code_shift
    return low


@numba.njit(cache=True, nogil=True)
def _pack_words(
    y: np.ndarray,
    score: np.ndarray,
    check_float32: bool,
    block: np.ndarray,
    seg: np.ndarray,
    seg_lo: int,
    block_bits: int,
    by_index: bool,
    out: np.ndarray,
) -> int:
    # Words of the labelled loci, in locus order: the tie group is the order-reversing
    # uint32 image of the float32 score (+0.0 for -0.0: they tie). Returns how many, or
    # _NAN_SCORE / _NOT_FLOAT32 (a float64 score float32 cannot hold: ties would merge).
    code_shift = np.uint64(block_bits + 1)
    m = 0
    for i in range(y.size):
        if not y[i] >= 0:  # NaN or negative: unlabelled
            continue
        v = score[i]
        if np.isnan(v):
            return _NAN_SCORE
        f = np.float32(v)
        if check_float32 and np.float64(f) != v:
            return _NOT_FLOAT32
        f = f + np.float32(0.0)
        bits = np.uint64(np.float32(f).view(np.uint32))
        if bits >= np.uint64(0x80000000):
            key = bits  # negative: the larger the magnitude, the later
        else:
            key = np.uint64(0x7FFFFFFF) - bits
        code = seg[i] - seg_lo if seg.size else -1
        out[m] = (key << np.uint64(32)) | _low_word(
            i, y[i] == 1, block[i], code, code_shift, by_index
        )
        m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _words_in_order(
    order: np.ndarray,
    y: np.ndarray,
    score: np.ndarray,
    block: np.ndarray,
    seg: np.ndarray,
    seg_lo: int,
    block_bits: int,
    by_index: bool,
    out: np.ndarray,
) -> None:
    # Words of loci already in decreasing score order: the tie group counts distinct scores.
    code_shift = np.uint64(block_bits + 1)
    group = np.uint64(0)
    for i in range(order.size):
        j = order[i]
        if i and score[j] != score[order[i - 1]]:
            group += np.uint64(1)
        code = seg[j] - seg_lo if seg.size else -1
        out[i] = (group << np.uint64(32)) | _low_word(
            j, y[j] == 1, block[j], code, code_shift, by_index
        )


@numba.njit(cache=True, nogil=True)
def _code_counts(
    words: np.ndarray,
    seg: np.ndarray,
    seg_lo: int,
    code_shift: np.uint64,
    by_index: bool,
    n_codes: int,
) -> np.ndarray:
    # Loci per segment code.
    counts = np.zeros(n_codes, np.int64)
    if not seg.size:
        counts[0] = words.size
        return counts
    for i in range(words.size):
        low = words[i] & _LOW
        if by_index:
            counts[seg[np.int64(low)] - seg_lo] += 1
        else:
            counts[np.int64(low >> code_shift)] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _spread(
    words: np.ndarray,
    y: np.ndarray,
    block: np.ndarray,
    seg: np.ndarray,
    seg_lo: int,
    block_bits: int,
    by_index: bool,
    n_codes: int,
    positive: np.ndarray,
    block_sorted: np.ndarray,
    tie_end: np.ndarray,
) -> np.ndarray:
    # Sorted words to labels, blocks and tie ends ordered by (segment code, word): a stable
    # counting sort by code (none when ``seg`` is empty), so each segment keeps the score
    # order. Returns the loci per code.
    mask = (np.uint64(1) << np.uint64(block_bits)) - np.uint64(1)
    shift = np.uint64(block_bits + 1)
    counts = _code_counts(words, seg, seg_lo, shift, by_index, n_codes)
    at = np.zeros(n_codes, np.int64)
    for c in range(1, n_codes):
        at[c] = at[c - 1] + counts[c - 1]
    # Per code: the last locus placed and its tie group.
    last = np.full((n_codes, 2), -1, np.int64)
    for i in range(words.size):
        w = words[i]
        low = w & _LOW
        if by_index:
            j = np.int64(low)
            pos = y[j] == 1
            b = np.int64(block[j])
            code = np.int64(seg[j] - seg_lo) if seg.size else np.int64(0)
        else:
            pos = (low & np.uint64(1)) == np.uint64(1)
            b = np.int64((low >> np.uint64(1)) & mask)
            code = np.int64(low >> shift) if seg.size else np.int64(0)
        p = at[code]
        at[code] = p + 1
        positive[p] = pos
        block_sorted[p] = b
        group = np.int64(w >> np.uint64(32))
        q = last[code, 0]
        if q >= 0:
            tie_end[q] = group != last[code, 1]
        last[code, 0] = p
        last[code, 1] = group
    for c in range(n_codes):
        if last[c, 0] >= 0:
            tie_end[last[c, 0]] = True
    return counts


@numba.njit(cache=True, nogil=True)
def _fill_tie_ends(tie_end: np.ndarray, out: np.ndarray) -> None:
    start = 0
    for i in range(tie_end.size):
        if tie_end[i]:
            for j in range(start, i + 1):
                out[j] = i + 1
            start = i + 1


def _segment_codes(segments: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """(codes, offset, labels): ``codes - offset`` numbers the labels 0.. in sorted order.

    Small integer labels are their own codes (offset: the smallest), labels absent from
    the loci included; any other labels are factorized.
    """
    if segments.dtype.kind in "iu" and segments.size:
        lo, hi = int(segments.min()), int(segments.max())
        if hi - lo < 2**16:
            labels = np.arange(lo, hi + 1).astype(segments.dtype)
            if segments.dtype == np.uint64:
                # numba computes uint64 minus int64 in floats
                segments = segments.astype(np.int64)
            return segments, lo, labels
    codes, labels = pd.factorize(segments, sort=True)
    if codes.size and codes.min() < 0:
        raise ValueError("segments must not be missing (NaN or None)")
    return codes, 0, np.asarray(labels)


#: Most distinct scores a counting sort handles (:func:`few_levels`); beyond, words are sorted.
MAX_LEVELS = 4096


def few_levels(y: np.ndarray, score: np.ndarray, chunk: int = 1 << 20) -> np.ndarray | None:
    """The distinct scores of the labelled loci, descending, when there are at most
    :data:`MAX_LEVELS` of them (a baseline averaging a few cell types' labels); else None.

    Read a chunk at a time, so a scoring with many values stops at its first chunk.
    """
    found = np.zeros(0, np.float64)
    for a in range(0, y.size, chunk):
        yy, ss = y[a : a + chunk], score[a : a + chunk]
        known = labelled(yy)
        found = np.union1d(found, np.unique(np.asarray(ss[known], np.float64)))
        if found.size > MAX_LEVELS:
            return None
    if np.isnan(found).any():
        return None  # the word sort reports NaN scores
    return found[::-1].copy()


@numba.njit(cache=True, nogil=True)
def _level_of(levels: np.ndarray, v: float) -> int:
    # Index of v in the descending levels (binary search; v is one of them).
    lo, hi = 0, levels.size - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if levels[mid] > v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _place_by_level(
    y: np.ndarray,
    score: np.ndarray,
    block: np.ndarray,
    levels: np.ndarray,
    positive: np.ndarray,
    block_sorted: np.ndarray,
    tie_end: np.ndarray,
) -> int:
    # Counting sort of the labelled loci by level (stable: locus order within a level);
    # the last locus of each level ends its tie group. Returns -1 for a NaN score.
    counts = np.zeros(levels.size, np.int64)
    for i in range(y.size):
        if not y[i] >= 0:  # NaN or negative: unlabelled
            continue
        v = np.float64(score[i])
        if np.isnan(v):
            return -1
        counts[_level_of(levels, v)] += 1
    at = np.zeros(levels.size, np.int64)
    for k in range(1, levels.size):
        at[k] = at[k - 1] + counts[k - 1]
    for k in range(levels.size):
        if counts[k]:
            tie_end[at[k] + counts[k] - 1] = True
    for i in range(y.size):
        if not y[i] >= 0:  # NaN or negative: unlabelled
            continue
        k = _level_of(levels, np.float64(score[i]))
        p = at[k]
        at[k] = p + 1
        positive[p] = y[i] == 1
        block_sorted[p] = block[i]
    return 0


class _Words:
    """The labelled loci's sorted words and how to read them (module comment above)."""

    def __init__(
        self,
        y: np.ndarray,
        score: np.ndarray,
        blocks: np.ndarray,
        segments: np.ndarray | None,
        order: np.ndarray | None,
    ) -> None:
        if y.size >= 2**32:
            raise ValueError(f"{y.size} loci: at most 2**32 - 1 can be sorted")
        if y.dtype.kind not in "fi":
            y = y.astype(np.float64)
        if segments is None:
            seg, self.seg_lo, self.labels = np.zeros(0, np.int64), 0, np.zeros(1, np.int64)
        else:
            seg, self.seg_lo, self.labels = _segment_codes(segments)
        self.y, self.block, self.seg = y, blocks, seg
        n_codes = self.labels.size
        hi = int(blocks.max()) if blocks.size else 0
        self.block_bits = max(hi.bit_length(), 1)
        code_bits = (n_codes - 1).bit_length()
        fits = blocks.size == 0 or int(blocks.min()) >= 0
        self.by_index = not (fits and 1 + self.block_bits + code_bits <= 32)
        layout = (blocks, seg, self.seg_lo, self.block_bits, self.by_index)
        if order is None and score.dtype in (np.float32, np.float64):
            words = np.empty(_count_labelled(y), np.uint64)
            m = _pack_words(y, score, score.dtype == np.float64, *layout, words)
            if m == _NAN_SCORE:
                raise ValueError("scores must not be NaN where the label is known")
            if m >= 0:
                words.sort()
                self.words = words
                return
            del words
        if order is None:
            order = score_order(y, score)
        self.words = np.empty(order.size, np.uint64)
        _words_in_order(np.asarray(order, np.int64), y, score, *layout, self.words)

    def sorted_loci(self, by_segment: bool, *, every_label: bool = False) -> SortedLoci:
        """The loci by decreasing score, or by (segment, decreasing score).

        The segments are the labels of the labelled loci, or with ``every_label`` those of
        every locus given (a label whose loci are all unlabelled makes an empty segment).
        """
        m = self.words.size
        positive, tie_end = np.empty(m, np.bool_), np.empty(m, np.bool_)
        block = np.empty(m, self.block.dtype)
        seg = self.seg if by_segment else self.seg[:0]
        n_codes = self.labels.size if by_segment else 1
        counts = _spread(
            self.words,
            self.y,
            self.block,
            seg,
            self.seg_lo,
            self.block_bits,
            self.by_index,
            n_codes,
            positive,
            block,
            tie_end,
        )
        if not by_segment:
            return SortedLoci(
                positive, block, tie_end, np.array([m], np.int64), np.zeros(1, np.int64)
            )
        keep = counts > 0
        if every_label:
            keep = np.bincount(seg - self.seg_lo, minlength=n_codes) > 0
        return SortedLoci(positive, block, tie_end, np.cumsum(counts)[keep], self.labels[keep])


@dataclass
class SortedLoci:
    """Labelled loci sorted by (segment, decreasing score), ready for any number of passes.

    One sort serves the bootstrap of every replicate (:meth:`bootstrap`) and the
    permutation tests of every segment (:meth:`tie_ends`), so a 14-million-locus audit sorts
    each scoring once.

    Attributes
    ----------
    positive : numpy.ndarray
        bool, shape (m,): labels in sorted order (NaN labels left out).
    block : numpy.ndarray
        Block ids in sorted order (the dtype given).
    tie_end : numpy.ndarray
        bool, shape (m,): the last locus of each tie group (never across segments).
    seg_end : numpy.ndarray
        int64, shape (S,): each segment's end (exclusive) in sorted order.
    segments : numpy.ndarray
        shape (S,): the segment labels, sorted.
    """

    positive: np.ndarray
    block: np.ndarray
    tie_end: np.ndarray
    seg_end: np.ndarray
    segments: np.ndarray

    @staticmethod
    def _inputs(
        y: npt.ArrayLike,
        score: npt.ArrayLike,
        blocks: npt.ArrayLike,
        segments: npt.ArrayLike | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        y = np.asarray(y).ravel()
        s = np.asarray(score).ravel()
        if s.dtype.kind != "f":
            s = s.astype(np.float64)
        b = np.asarray(blocks).ravel()
        if b.dtype.kind not in "iu":
            raise ValueError(f"blocks must be integers, got dtype {b.dtype}")
        seg = None if segments is None else np.asarray(segments).ravel()
        n_seg = 0 if seg is None else seg.size
        if not (y.size == s.size == b.size) or (seg is not None and n_seg != y.size):
            raise ValueError(
                f"labels, scores, blocks and segments differ in length: {y.size}, {s.size}, "
                f"{b.size}, {n_seg if seg is not None else '-'}"
            )
        return y, s, b, seg

    @classmethod
    def from_arrays(
        cls,
        y: npt.ArrayLike,
        score: npt.ArrayLike,
        blocks: npt.ArrayLike,
        segments: npt.ArrayLike | None = None,
        *,
        order: np.ndarray | None = None,
    ) -> SortedLoci:
        """Sort labels 0/1/NaN or int8 0/1/-1 (shape (n,), :func:`labelled`), scores,
        integer blocks and optional segments.

        Every segment label among the loci given is a segment, even one whose loci are all
        unlabelled (then empty). ``order`` (:func:`score_order` of the same labels and
        scores) spares the sort by score.
        """
        y, s, b, seg = cls._inputs(y, score, blocks, segments)
        if seg is None and order is None:
            levels = few_levels(y, s)
            if levels is not None:
                return cls._by_level(y, s, b, levels)
        words = _Words(y, s, b, seg, order)
        return words.sorted_loci(seg is not None, every_label=True)

    @classmethod
    def _by_level(
        cls, y: np.ndarray, score: np.ndarray, blocks: np.ndarray, levels: np.ndarray
    ) -> SortedLoci:
        """The loci by decreasing score through a counting sort over the scores' distinct
        values (``levels``, descending): no sort words, one tie group per level."""
        if y.dtype.kind not in "fi":
            y = y.astype(np.float64)
        m = _count_labelled(y)
        positive, tie_end = np.empty(m, np.bool_), np.zeros(m, np.bool_)
        block = np.empty(m, blocks.dtype)
        if _place_by_level(y, score, blocks, levels, positive, block, tie_end) < 0:
            raise ValueError("scores must not be NaN where the label is known")
        return cls(positive, block, tie_end, np.array([m], np.int64), np.zeros(1, np.int64))

    @classmethod
    def overall_and_by_segment(
        cls,
        y: npt.ArrayLike,
        score: npt.ArrayLike,
        blocks: npt.ArrayLike,
        segments: npt.ArrayLike,
    ) -> tuple[SortedLoci, SortedLoci]:
        """The loci by decreasing score, and by (segment, decreasing score), from one sort.

        The segments are the labels of the labelled loci (shape (n,) like the others).
        """
        return cls.overall_then_by_segment(y, score, blocks, segments, lambda overall: overall)

    @classmethod
    def overall_then_by_segment(
        cls,
        y: npt.ArrayLike,
        score: npt.ArrayLike,
        blocks: npt.ArrayLike,
        segments: npt.ArrayLike,
        on_overall: Callable[[SortedLoci], T],
    ) -> tuple[T, SortedLoci]:
        """:meth:`overall_and_by_segment`, the loci by decreasing score handed to
        ``on_overall`` and dropped before the loci by segment are built, so that the two
        orders are never held at once unless ``on_overall`` keeps the first.

        Returns
        -------
        (what ``on_overall`` returned, the loci by (segment, decreasing score))
        """
        y, s, b, seg = cls._inputs(y, score, blocks, segments)
        words = _Words(y, s, b, seg, None)
        result = on_overall(words.sorted_loci(False))
        return result, words.sorted_loci(True)

    def segment(self, i: int) -> slice:
        """The loci of segment ``i`` in sorted order."""
        return slice(int(self.seg_end[i - 1]) if i else 0, int(self.seg_end[i]))

    def tie_ends(self, i: int) -> np.ndarray:
        """Segment ``i``'s tie ends (1-based within the segment): for each locus, how many of
        the segment's loci score at least as high (what
        :func:`pitfall.random_ranking.permuted_aps` takes).

        Returns
        -------
        numpy.ndarray
            int32 (int64 for a segment of 2**31 loci or more), shape (segment size,).
        """
        flags = self.tie_end[self.segment(i)]
        ends = np.empty(flags.size, np.int32 if flags.size < 2**31 else np.int64)
        _fill_tie_ends(flags, ends)
        return ends

    def bootstrap(self, weights: np.ndarray, *, tied_expectation: bool = False) -> BootstrapAP:
        """Every replicate's AP per segment (:func:`bootstrap_ap`)."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2:
            raise ValueError(f"weights must be (replicates, blocks), got shape {weights.shape}")
        b = self.block
        if b.size and (b.min() < 0 or b.max() >= weights.shape[1]):
            raise ValueError(f"block ids must lie in 0 .. {weights.shape[1] - 1}")
        ap, expect, n, k = _bootstrap_segments(
            self.positive,
            b,
            self.tie_end,
            self.seg_end,
            np.ascontiguousarray(weights.T),
            tied_expectation,
        )
        return BootstrapAP(ap, expect if tied_expectation else None, n, k)

    def precision_recall(self, max_points: int) -> tuple[np.ndarray, np.ndarray]:
        """Recall and precision at every distinct score, high to low, from recall 0 (the
        curve of one segment: the loci by decreasing score alone).

        With more than ``max_points`` thresholds, only the first reaching each of
        ``max_points`` evenly spaced recalls in 0..1 is kept, and the last: what
        :func:`pitfall.audit.figure.pr_curve` computes from the unsorted arrays.

        Returns
        -------
        recall, precision : numpy.ndarray
            float64, shape (points,).
        """
        if self.seg_end.size > 1:
            raise ValueError("a precision-recall curve needs the loci of one segment")
        n_points = int(np.count_nonzero(self.tie_end)) + 1
        grid = np.linspace(0.0, 1.0, max_points) if n_points > max_points else np.empty(0)
        n_pos = int(np.count_nonzero(self.positive))
        recall = np.empty(min(n_points, max_points + 1), np.float64)
        precision = np.empty_like(recall)
        used = _pr_points(self.positive, self.tie_end, max(n_pos, 1), grid, recall, precision)
        return recall[:used], precision[:used]


@numba.njit(cache=True, nogil=True)
def _pr_points(
    positive: np.ndarray,
    tie_end: np.ndarray,
    n_pos: int,
    grid: np.ndarray,
    recall: np.ndarray,
    precision: np.ndarray,
) -> int:
    # Points (recall, precision) at recall 0 and each tie end. With a grid, a point is kept
    # when it is the first to reach the next grid recall, and the last point always: the
    # points numpy's searchsorted(recall, grid) picks from the whole curve.
    recall[0], precision[0] = 0.0, 1.0
    used, g, tp = 1, 1 if grid.size else 0, 0
    last = positive.size - 1
    for i in range(positive.size):
        if positive[i]:
            tp += 1
        if not tie_end[i]:
            continue
        r = tp / n_pos
        if grid.size and i != last:
            if g >= grid.size or r < grid[g]:
                continue
            while g < grid.size and grid[g] <= r:
                g += 1
        recall[used], precision[used] = r, tp / (i + 1)
        used += 1
    return used


def naive_precision_recall(
    y: npt.ArrayLike, score: npt.ArrayLike, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Slow twin of :meth:`SortedLoci.precision_recall` on unsorted labels 0/1/NaN and
    scores (shape (n,)): a stable sort, cumulative counts, then the same thinning."""
    labels, s = np.asarray(y).ravel(), np.asarray(score, np.float64).ravel()
    keep = labelled(labels)
    labels, s = labels[keep], s[keep]
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], np.asarray(labels[order] == 1)
    if not ss.size:
        return np.zeros(1), np.ones(1)
    tp = np.cumsum(yy)
    last = np.append(np.flatnonzero(np.diff(ss) != 0), ss.size - 1)
    tp, called = tp[last], last + 1
    n_pos = max(int(yy.sum()), 1)
    recall, precision = np.r_[0.0, tp / n_pos], np.r_[1.0, tp / called]
    if recall.size > max_points:
        grid = np.linspace(0, 1, max_points)
        keep_at = np.unique(np.r_[np.searchsorted(recall, grid), recall.size - 1])
        keep_at = keep_at[keep_at < recall.size]
        recall, precision = recall[keep_at], precision[keep_at]
    return recall, precision


def bootstrap_ap(
    y: npt.ArrayLike,
    score: npt.ArrayLike,
    blocks: npt.ArrayLike,
    weights: np.ndarray,
    *,
    segments: npt.ArrayLike | None = None,
    tied_expectation: bool = False,
) -> BootstrapAP:
    """AP of ``score`` in every block-bootstrap replicate, per segment, in one pass.

    Parameters
    ----------
    y : array-like, shape (n,)
        Labels 0, 1 or NaN (NaN loci are left out).
    score : array-like, shape (n,)
        Scores (not NaN where the label is known).
    blocks : array-like of int, shape (n,)
        Each locus's block, 0 .. n_blocks - 1 (:func:`genomic_blocks`).
    weights : numpy.ndarray
        float64, shape (R, n_blocks): each block's multiplicity per replicate
        (:func:`block_weights`; a row of ones is the data itself).
    segments : array-like, shape (n,), optional
        A segment label per locus (e.g. its activity group): one AP per segment, in sorted
        order of the labels; default one segment.
    tied_expectation : bool
        Also compute the AP expected when tied scores are broken at random.

    Returns
    -------
    BootstrapAP
        Arrays of shape (S, R).
    """
    sorted_loci = SortedLoci.from_arrays(y, score, blocks, segments)
    return sorted_loci.bootstrap(weights, tied_expectation=tied_expectation)


def naive_bootstrap_ap(
    y: npt.ArrayLike,
    score: npt.ArrayLike,
    blocks: npt.ArrayLike,
    weights: np.ndarray,
) -> np.ndarray:
    """Twin of :func:`bootstrap_ap` (one segment): each replicate's loci written out, every
    locus repeated by its block's multiplicity, and the AP recomputed from scratch (copies
    of a locus alone at its score as separate thresholds, genuine ties grouped).

    Returns
    -------
    numpy.ndarray
        float64, shape (R,).
    """
    y = np.asarray(y)
    s = np.asarray(score, dtype=np.float64)
    b = np.asarray(blocks, dtype=np.int64)
    known = labelled(y)
    y, s, b = y[known], s[known], b[known]
    # A locus alone at its score: its copies are separate thresholds (bootstrap_ap).
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    alone = counts[inverse] == 1
    out = []
    for w in np.asarray(weights):
        reps = w[b].astype(np.int64)
        yy, ss = np.repeat(y, reps), np.repeat(s, reps)
        copy = np.concatenate([np.arange(c) for c in reps]) if reps.size else reps
        copy = np.where(np.repeat(alone, reps), copy, 0)
        if not np.any(yy == 1):
            out.append(np.nan)
            continue
        order = np.lexsort((copy, -ss))
        yy, ss, copy = yy[order] == 1, ss[order], copy[order]
        called = np.arange(1, ss.size + 1)
        tp = np.cumsum(yy)
        # precision at each distinct threshold, credited to the positives at that threshold
        new = (ss[1:] != ss[:-1]) | (copy[1:] != copy[:-1])
        last = np.append(np.flatnonzero(new), ss.size - 1)
        d_tp = np.diff(tp[last], prepend=0)
        out.append(float(np.sum(d_tp * tp[last] / called[last]) / tp[-1]))
    return np.asarray(out)


def percentile_interval(
    replicates: npt.ArrayLike,
    level: float = 0.95,
    axis: int = -1,
    *,
    estimate: npt.ArrayLike | None = None,
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """The percentile interval of bootstrap replicates, NaN replicates left out.

    Parameters
    ----------
    replicates : array-like
        Replicates along ``axis``.
    level : float
        Coverage, e.g. 0.95 for the 2.5 % and 97.5 % quantiles.
    estimate : float or array-like, optional
        The statistic on the data: the interval is then centred on it, shifted by the
        estimate minus the replicates' median. A locus drawn twice into a replicate sits
        next to its copy in any ranking, which distinct loci of a new sample never do; in
        small groups of loci that moves an AP's replicates away from the estimate, and the
        shift keeps their spread without that offset.

    Returns
    -------
    (low, high)
        Floats for 1-D input, else arrays without ``axis``; NaN where no replicate is finite.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    r = np.asarray(replicates, dtype=np.float64)
    alpha = (1 - level) / 2
    with np.errstate(all="ignore"):
        finite = np.isfinite(r).any(axis=axis)
        safe = np.where(np.isfinite(r), r, np.nan)
        if not np.all(finite):
            # nanquantile warns on all-NaN slices; those become NaN below anyway.
            safe = np.where(np.expand_dims(finite, axis), safe, 0.0)
        low, mid, high = np.nanquantile(safe, [alpha, 0.5, 1 - alpha], axis=axis)
    if estimate is not None:
        shift = np.asarray(estimate, dtype=np.float64) - mid
        low, high = low + shift, high + shift
    low = np.where(finite, low, np.nan)
    high = np.where(finite, high, np.nan)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high
