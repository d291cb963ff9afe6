"""Block bootstrap intervals for average precision, over genomic blocks of loci.

Neighbouring loci share chromatin domains, enhancers and mappability, so their labels and
scores are correlated; resampling single loci treats them as independent and gives
intervals too narrow. The block bootstrap (Kunsch 1989; Liu and Singh 1992) resamples whole
genomic blocks instead: the loci are cut into blocks (:func:`genomic_blocks`, 1 Mb by
default), each replicate draws as many blocks as there are, uniformly with replacement, and
every locus of a block drawn ``c`` times counts ``c`` times (:func:`block_weights`). Each
replicate's statistic comes from those multiplicities; the interval is the percentile
interval of the replicates, centred on the estimate (:func:`percentile_interval`). It assumes the blocks are
exchangeable and long enough that the dependence between loci does not reach across many
of them.

:func:`bootstrap_ap` computes, for every replicate at once, the AP with tied scores grouped
(scikit-learn's) and, on request, its expectation when the ties are broken at random
(:mod:`pitfall.random_ranking`), in one pass over the loci sorted by score: per locus one
multiply-add per replicate, so ``R`` replicates of ``n`` loci cost ``O(n R)`` after one sort,
and memory is the sorted loci plus ``(n_blocks, R)`` weights. Segments (e.g. groups of loci
of equal activity) are handled in the same pass, each with its own AP.

Each Numba kernel sits next to its obvious twin (``naive_*``), the oracle of the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
import pandas as pd

from pitfall.random_ranking import _tie_group_sum

__all__ = [
    "BLOCK_SIZE",
    "BootstrapAP",
    "SortedLoci",
    "block_keys",
    "block_weights",
    "chrom_ids",
    "bootstrap_ap",
    "score_order",
    "genomic_blocks",
    "naive_bootstrap_ap",
    "percentile_interval",
    "renumber",
]

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


def renumber(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Block keys (:func:`block_keys`) as ids 0 .. n_blocks - 1, in key order.

    Keys come in runs (loci sorted along the genome), so only the runs' keys are sorted,
    not every locus's.

    Returns
    -------
    ids : numpy.ndarray
        int32, shape (n,).
    n_blocks : int
        At least 1.
    """
    keys = np.asarray(keys).ravel()
    if keys.size == 0:
        return np.zeros(0, np.int32), 1
    starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]
    uniq, run_ids = np.unique(keys[starts], return_inverse=True)
    return np.repeat(run_ids.astype(np.int32), np.diff(np.r_[starts, keys.size])), int(uniq.size)


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
    keys = block_keys(chrom_ids(np.asarray(chrom)), start, block_size=block_size,
                      block_loci=block_loci)  # fmt: skip
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
def _gather(
    order: np.ndarray,
    positive: np.ndarray,
    score: np.ndarray,
    block: np.ndarray,
    seg_end: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, blocks and tie-group ends in sorted order, read in one pass: the bootstrap
    then streams them instead of jumping through memory once per replicate loop."""
    n = order.size
    pos_sorted = np.empty(n, np.bool_)
    block_sorted = np.empty(n, block.dtype)
    tie_end = np.ones(n, np.bool_)
    s = 0
    for i in range(n):
        j = order[i]
        pos_sorted[i] = positive[j]
        block_sorted[i] = block[j]
        while s < seg_end.size and seg_end[s] <= i:
            s += 1
        if i + 1 < seg_end[s]:
            tie_end[i] = score[order[i + 1]] != score[j]
    return pos_sorted, block_sorted, tie_end


@numba.njit(cache=True, nogil=True)
def _bootstrap_segments(
    positive: np.ndarray,
    block: np.ndarray,
    tie_end: np.ndarray,
    seg_end: np.ndarray,
    weights_t: np.ndarray,
    with_expectation: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_seg = seg_end.size
    n_rep = weights_t.shape[1]
    ap = np.zeros((n_seg, n_rep))
    expect = np.zeros((n_seg, n_rep))
    total_n = np.zeros((n_seg, n_rep))
    total_k = np.zeros((n_seg, n_rep))
    tp_g = np.zeros(n_rep)
    n_g = np.zeros(n_rep)
    above_k = np.zeros(n_rep)
    above_n = np.zeros(n_rep)
    start = 0
    for s in range(n_seg):
        above_k[:] = 0.0
        above_n[:] = 0.0
        stop = seg_end[s]
        group_start = start
        has_positive = False
        for i in range(start, stop):
            w = weights_t[block[i]]
            if tie_end[i] and i == group_start:
                # A locus alone at its score (most loci, for continuous scores). Its copies
                # in a replicate stand for distinct loci of a new sample, which would not
                # tie: each copy is its own threshold (a negative only adds to the loci
                # called below it).
                if positive[i]:
                    for r in range(n_rep):
                        if w[r] > 0.0:
                            term = _tie_group_sum(above_k[r], above_n[r], w[r], w[r])
                            ap[s, r] += term
                            expect[s, r] += term
                            above_k[r] += w[r]
                            above_n[r] += w[r]
                else:
                    for r in range(n_rep):
                        above_n[r] += w[r]
                group_start = i + 1
                continue
            if positive[i]:
                has_positive = True
                for r in range(n_rep):
                    tp_g[r] += w[r]
                    n_g[r] += w[r]
            else:
                for r in range(n_rep):
                    n_g[r] += w[r]
            if tie_end[i]:
                if has_positive:
                    for r in range(n_rep):
                        if tp_g[r] > 0.0:
                            k_new = above_k[r] + tp_g[r]
                            ap[s, r] += tp_g[r] * k_new / (above_n[r] + n_g[r])
                            if with_expectation:
                                expect[s, r] += _tie_group_sum(
                                    above_k[r], above_n[r], tp_g[r], n_g[r]
                                )
                            above_k[r] = k_new
                        above_n[r] += n_g[r]
                        tp_g[r] = 0.0
                        n_g[r] = 0.0
                else:
                    for r in range(n_rep):
                        above_n[r] += n_g[r]
                        n_g[r] = 0.0
                group_start = i + 1
                has_positive = False
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


def score_order(y: npt.ArrayLike, score: npt.ArrayLike) -> np.ndarray:
    """The labelled loci (label not NaN) in decreasing score order.

    Returns
    -------
    numpy.ndarray
        int64, shape (m,): indices into ``y`` and ``score``; ties in no particular order
        (any order within a tie group gives the same AP).
    """
    y = np.asarray(y).ravel()
    s = np.asarray(score).ravel()
    order = np.argsort(-s)
    if y.dtype.kind == "f":
        known = ~np.isnan(y)
        if not known.all():
            order = order[known[order]]
    if np.isnan(s[order]).any():
        raise ValueError("scores must not be NaN where the label is known")
    return order


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
        """Sort labels 0/1/NaN (shape (n,)), scores, integer blocks and optional segments.

        ``order`` (:func:`score_order` of the same labels and scores) spares the sort by
        score when several sortings of one scoring are needed.
        """
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
        # Any order within a tie group gives the same AP; then a stable sort by segment,
        # which numpy does by radix for codes of 16 bits or fewer.
        if order is None:
            order = score_order(y, s)
        if seg is None:
            seg_end = np.array([order.size], np.int64)
            values = np.zeros(1, np.int64)
        else:
            codes, values = pd.factorize(seg, sort=True)
            small = np.uint16 if len(values) < 2**16 else np.int64
            seg_sorted = codes[order].astype(small)
            by_seg = np.argsort(seg_sorted, kind="stable")
            order = order[by_seg]
            seg_end = np.searchsorted(seg_sorted[by_seg], np.arange(len(values)), side="right")
            del seg_sorted, by_seg
        seg_end = np.asarray(seg_end, np.int64)
        positive, block, tie_end = _gather(order, y == 1, s, b, seg_end)
        return cls(positive, block, tie_end, seg_end, np.asarray(values))

    def segment(self, i: int) -> slice:
        """The loci of segment ``i`` in sorted order."""
        return slice(int(self.seg_end[i - 1]) if i else 0, int(self.seg_end[i]))

    def tie_ends(self, i: int) -> np.ndarray:
        """Segment ``i``'s tie ends (int64, 1-based within the segment): for each locus, how
        many of the segment's loci score at least as high (what
        :func:`pitfall.random_ranking.permuted_aps` takes)."""
        flags = self.tie_end[self.segment(i)]
        last = np.flatnonzero(flags)
        return np.repeat(last + 1, np.diff(last, prepend=-1)).astype(np.int64)

    def bootstrap(self, weights: np.ndarray, *, tied_expectation: bool = False) -> BootstrapAP:
        """Every replicate's AP per segment (:func:`bootstrap_ap`)."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2:
            raise ValueError(f"weights must be (replicates, blocks), got shape {weights.shape}")
        b = self.block
        if b.size and (b.min() < 0 or b.max() >= weights.shape[1]):
            raise ValueError(f"block ids must lie in 0 .. {weights.shape[1] - 1}")
        ap, expect, n, k = _bootstrap_segments(
            self.positive, b, self.tie_end, self.seg_end, np.ascontiguousarray(weights.T),
            tied_expectation,
        )  # fmt: skip
        return BootstrapAP(ap, expect if tied_expectation else None, n, k)


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
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    b = np.asarray(blocks, dtype=np.int64)
    known = ~np.isnan(y)
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
