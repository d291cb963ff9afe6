"""Which (cell type, locus) pairs an epoch holds, and reading their inputs chunk by chunk.

The paper trains on balanced mini-batches of 32 (cell type, locus) pairs, half positive and
half negative, 400 to an epoch, and validates on one balanced batch of 3,200. Nothing here
loads a selection whole:

1. **Count once.** :class:`BalancedSampler` reads each label chunk of the role once and keeps
   only the number of positives and negatives per (cell type, locus chunk) block:
   ``O(cell types x chunks)`` memory.
2. **Draw an epoch at once.** The epoch's positives are split over the blocks by a
   multinomial draw weighted by their counts, then drawn uniformly inside each block (with
   replacement): exactly uniform over the role's positives, and likewise for negatives.
   Drawing is cheap (no signal or sequence is read), so every shard of an epoch draws the
   whole epoch and keeps its own batches: shards agree without talking.
3. **Read each needed chunk once.** :func:`gather` groups the rows by zarr chunk; each chunk
   of ``label``, ``signal`` (one per cell type) and ``sequence`` (shared by all cell types) is
   read once (:class:`~pitfall.loaders.readers.ChunkReader`, LRU cache across epochs) and
   the rows gathered.
4. **Encode on the fly.** An epoch keeps sequence as uint8 codes ``(n, L)``; each batch is
   one-hot encoded when it is served (float32 one-hot takes 16 bytes per base, the codes
   one).

:class:`AllPairs` is the unbalanced counterpart: every labelled pair of the selection once
per epoch, in a seeded permutation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from pitfall.loaders.encoding import InputEncoder
from pitfall.loaders.readers import ChunkReader

__all__ = [
    "AllPairs",
    "BalancedBatches",
    "BalancedSampler",
    "Epoch",
    "EpochSource",
    "gather",
    "iter_selection",
    "list_pairs",
]


def gather(
    reader: ChunkReader, cts: np.ndarray, loci: np.ndarray, needs: Sequence[str]
) -> dict[str, np.ndarray]:
    """Raw inputs of pairs, each needed chunk read once.

    Parameters
    ----------
    reader
        Where chunks come from.
    cts, loci
        Cube positions of each pair's cell type and locus, shape ``(n,)``.
    needs
        Subset of ``("signal", "sequence")``.

    Returns
    -------
    dict
        ``locus`` (n,), ``cell_type`` (n,), and ``signal`` (n, n_marks) float32 and/or
        ``codes`` (n, L) uint8.
    """
    cts = np.asarray(cts, dtype=np.int64)
    loci = np.asarray(loci, dtype=np.int64)
    out: dict[str, np.ndarray] = {"locus": loci, "cell_type": cts}
    n = loci.size
    for var in needs:
        c = reader.chunk(var)
        k = loci // c
        # Group rows by chunk (and cell type for per-cell-type variables) with one sort.
        group = k if var == "sequence" else k * (cts.max(initial=0) + 1) + cts
        order = np.argsort(group, kind="stable")
        starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
        ends = np.r_[starts[1:], n]
        dest = None
        for s, e in zip(starts, ends, strict=True):
            rows = order[s:e]
            kk = int(k[rows[0]])
            chunk = (
                reader.read(var, kk) if var == "sequence" else reader.read(var, kk, cts[rows[0]])
            )
            part = chunk[loci[rows] - kk * c]
            if dest is None:
                dest = np.empty((n, *part.shape[1:]), dtype=part.dtype)
            dest[rows] = part
        if dest is None:  # no rows: still the right trailing shape
            width = reader.cube.sizes["position" if var == "sequence" else "mark"]
            dest = np.empty((0, width), dtype=np.uint8 if var == "sequence" else np.float32)
        out["codes" if var == "sequence" else "signal"] = dest
    return out


class BalancedSampler:
    """Uniform draws of positive and of negative (cell type, locus) pairs of a selection.

    Parameters
    ----------
    reader
        Where label chunks come from.
    cts
        Cube positions of the selection's cell types, shape ``(n_ct,)``.
    loci
        Cube positions of the selection's loci, shape ``(n_loci,)``.

    Attributes
    ----------
    n_pos, n_neg : numpy.ndarray
        Positives and negatives per (cell type, chunk) block, shape ``(n_ct, n_chunks)``.
    """

    def __init__(self, reader: ChunkReader, cts: np.ndarray, loci: np.ndarray) -> None:
        self.reader = reader
        self.cts = np.asarray(cts, dtype=np.int64)
        self.loci = np.unique(np.asarray(loci, dtype=np.int64))
        c = reader.chunk("label")
        self.chunk_size = c
        k = self.loci // c
        self.chunk_ids, self.bounds = np.unique(k, return_index=True)
        self.bounds = np.r_[self.bounds, self.loci.size]
        shape = (self.cts.size, self.chunk_ids.size)
        self.n_pos = np.zeros(shape, dtype=np.int64)
        self.n_neg = np.zeros(shape, dtype=np.int64)
        for j in range(self.cts.size):
            for b in range(self.chunk_ids.size):
                lab = self.block_labels(j, b)
                self.n_pos[j, b] = int((lab == 1).sum())
                self.n_neg[j, b] = int((lab == 0).sum())

    def block_labels(self, j: int, b: int) -> np.ndarray:
        """Labels of block ``(j, b)``: cell type ``cts[j]``, the selection's loci in chunk
        ``chunk_ids[b]``; shape ``(n_loci_in_block,)``."""
        k = int(self.chunk_ids[b])
        loc = self.loci[self.bounds[b] : self.bounds[b + 1]]
        return self.reader.read("label", k, self.cts[j])[loc - k * self.chunk_size]

    @property
    def counts(self) -> tuple[int, int]:
        """Total positives and negatives of the selection."""
        return int(self.n_pos.sum()), int(self.n_neg.sum())

    def draw(self, n_pos: int, n_neg: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw pairs uniformly with replacement: ``n_pos`` positives, then ``n_neg`` negatives.

        Returns
        -------
        dict
            ``cell_type`` and ``locus`` (cube positions) and ``y`` (1 then 0), shape
            ``(n_pos + n_neg,)``; within each class, rows are grouped by block.
        """
        pos, neg = self.counts
        if (n_pos and not pos) or (n_neg and not neg):
            raise ValueError(
                f"cannot draw balanced batches: the selection has {pos} positive and {neg} "
                "negative labelled pairs"
            )
        parts_ct, parts_loc, parts_y = [], [], []
        for value, n, counts in ((1.0, n_pos, self.n_pos), (0.0, n_neg, self.n_neg)):
            if n == 0:
                continue
            per_block = rng.multinomial(n, counts.ravel() / counts.sum()).reshape(counts.shape)
            for j, b in zip(*np.nonzero(per_block), strict=True):
                lab = self.block_labels(j, b)
                loc = self.loci[self.bounds[b] : self.bounds[b + 1]]
                candidates = loc[lab == value]
                pick = candidates[rng.integers(0, candidates.size, per_block[j, b])]
                parts_loc.append(pick)
                parts_ct.append(np.full(pick.size, self.cts[j]))
                parts_y.append(np.full(pick.size, value, dtype=np.float32))
        return {
            "cell_type": np.concatenate(parts_ct).astype(np.int64),
            "locus": np.concatenate(parts_loc).astype(np.int64),
            "y": np.concatenate(parts_y),
        }


# --------------------------------------------------------------------------------------------


@dataclass
class Epoch:
    """Prepared rows of an epoch (or of a shard's batches of it), batch after batch.

    Batch ``b`` is rows ``[b * batch_size, min((b + 1) * batch_size, n))``: every batch is
    full except, in an unbalanced epoch, the last.

    Attributes
    ----------
    data
        ``y``, ``locus``, ``cell_type`` (n,) and the prepared inputs (``codes``, ``signal``,
        ``random``) of :meth:`InputEncoder.prepare`.
    batch_size, n_batches
        Layout of the rows.
    """

    data: dict[str, np.ndarray]
    batch_size: int
    n_batches: int

    def rows(self, b: int) -> slice:
        """Rows of batch ``b``."""
        return slice(b * self.batch_size, min((b + 1) * self.batch_size, self.data["y"].size))


class EpochSource:
    """Seeded epochs of a selection: which pairs, in which order (:meth:`order`), read and
    prepared batch by batch (:meth:`epoch`). Subclasses say which pairs.

    Parameters
    ----------
    reader
        :class:`ChunkReader` (streaming) or :class:`MemoryReader` (in memory).
    cts, loci
        Cube positions of the selection's cell types and loci (:func:`selection_index`).
    encoder
        Which inputs to read and how to prepare them.
    batch_size
        Pairs per mini-batch.
    seed
        Epoch ``i`` is drawn from ``(seed, i)``: the same whatever the reader, threading or
        sharding.
    prefetch
        :meth:`epochs` draws and gathers the next epoch in a background thread.
    """

    def __init__(
        self,
        reader: ChunkReader,
        cts: np.ndarray,
        loci: np.ndarray,
        encoder: InputEncoder,
        *,
        batch_size: int = 32,
        seed: int = 0,
        prefetch: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.reader = reader
        self.encoder = encoder
        self.sampler = BalancedSampler(reader, cts, loci)
        self.batch_size = batch_size
        self.seed = seed
        self.prefetch = prefetch

    @property
    def n_batches(self) -> int:
        """Mini-batches per epoch."""
        raise NotImplementedError

    def order(self, i: int) -> dict[str, np.ndarray]:
        """Epoch ``i``'s pairs in batch order: ``cell_type``, ``locus`` (cube positions) and
        ``y``, shape ``(n,)``; batch ``b`` is rows ``[b * batch_size, (b + 1) * batch_size)``."""
        raise NotImplementedError

    def epoch(self, i: int, batches: Sequence[int] | np.ndarray | None = None) -> Epoch:
        """Epoch ``i`` read and prepared; only ``batches`` (indices, in that order) if given."""
        drawn = self.order(i)
        n = drawn["y"].size
        if batches is None:
            n_batches = self.n_batches
        else:
            batches = np.asarray(batches, dtype=np.int64)
            n_batches = batches.size
            starts = batches * self.batch_size
            rows = [np.arange(s, min(s + self.batch_size, n)) for s in starts]
            take = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
            drawn = {k: v[take] for k, v in drawn.items()}
        raw = gather(self.reader, drawn["cell_type"], drawn["locus"], self.encoder.needs)
        raw["y"] = drawn["y"]
        return Epoch(self.encoder.prepare(raw), self.batch_size, n_batches)

    def epochs(self, n: int, start: int = 0) -> Iterator[Epoch]:
        """Epochs ``start .. start + n - 1``, the next one prefetched while one is used."""
        if not self.prefetch:
            for i in range(start, start + n):
                yield self.epoch(i)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pitfall-prefetch") as pool:
            future = pool.submit(self.epoch, start)
            try:
                for i in range(start, start + n):
                    current = future.result()
                    if i + 1 < start + n:
                        future = pool.submit(self.epoch, i + 1)
                    yield current
            finally:
                future.cancel()

    def batches(self, epoch: Epoch) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        """``(inputs, y)`` per batch; inputs share reused buffers, consume before the next."""
        for b in range(epoch.n_batches):
            rows = epoch.rows(b)
            yield self.encoder.encode(epoch.data, rows), epoch.data["y"][rows]


class BalancedBatches(EpochSource):
    """Seeded, balanced mini-batches of a selection, streamed from a reader.

    Epoch ``i`` holds ``batches_per_epoch`` batches, each exactly half positive: drawn from
    ``(seed, 1, i)`` with replacement, uniformly over the selection's positives and over its
    negatives (:class:`BalancedSampler`).

    Parameters
    ----------
    batch_size
        Pairs per mini-batch, even: half positive, half negative.
    batches_per_epoch
        Mini-batches per epoch.
    reader, cts, loci, encoder, seed, prefetch
        As :class:`EpochSource`.
    """

    def __init__(
        self,
        reader: ChunkReader,
        cts: np.ndarray,
        loci: np.ndarray,
        encoder: InputEncoder,
        *,
        batch_size: int = 32,
        batches_per_epoch: int = 400,
        seed: int = 0,
        prefetch: bool = True,
    ) -> None:
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size must be even and >= 2, got {batch_size}")
        super().__init__(
            reader, cts, loci, encoder, batch_size=batch_size, seed=seed, prefetch=prefetch
        )
        self.batches_per_epoch = batches_per_epoch

    @property
    def n_batches(self) -> int:
        return self.batches_per_epoch

    def balanced(self, n: int, key: int | Sequence[int]) -> dict[str, np.ndarray]:
        """``n`` prepared rows, the first ``n // 2`` positive, drawn from ``(seed, key)``."""
        rng = np.random.default_rng([self.seed, *np.atleast_1d(key).tolist()])
        drawn = self.sampler.draw(n // 2, n - n // 2, rng)
        raw = gather(self.reader, drawn["cell_type"], drawn["locus"], self.encoder.needs)
        raw["y"] = drawn["y"]
        return self.encoder.prepare(raw)

    def order(self, i: int) -> dict[str, np.ndarray]:
        half, nb = self.batch_size // 2, self.batches_per_epoch
        rng = np.random.default_rng([self.seed, 1, i])
        drawn = self.sampler.draw(half * nb, half * nb, rng)
        # The draw groups rows by chunk; shuffle each class, then lay out batch b as
        # positives [b*half, (b+1)*half) followed by negatives of the same range.
        pos = rng.permutation(half * nb)
        neg = half * nb + rng.permutation(half * nb)
        order = np.concatenate([pos.reshape(nb, half), neg.reshape(nb, half)], axis=1).ravel()
        return {k: v[order] for k, v in drawn.items()}


def list_pairs(sampler: BalancedSampler, *, labelled_only: bool = True) -> dict[str, np.ndarray]:
    """The selection's (cell type, locus) pairs, cell type by cell type (the selection's
    order), loci ascending; only the labelled ones unless told otherwise.

    Returns
    -------
    dict
        ``cell_type``, ``locus`` (cube positions, int64) and ``y`` (labels, float32; NaN for
        unlabelled pairs when kept), shape ``(n_pairs,)``.
    """
    s = sampler
    parts_ct, parts_loc, parts_y = [], [], []
    # Cell type major, then blocks in locus order: the loci ascend within a cell type.
    for j in range(s.cts.size):
        for b in range(s.chunk_ids.size):
            lab = s.block_labels(j, b)
            keep = ~np.isnan(lab) if labelled_only else np.ones(lab.size, dtype=bool)
            parts_loc.append(s.loci[s.bounds[b] : s.bounds[b + 1]][keep])
            parts_ct.append(np.full(int(keep.sum()), s.cts[j], dtype=np.int64))
            parts_y.append(lab[keep].astype(np.float32))
    cat = np.concatenate
    return {
        "cell_type": cat(parts_ct) if parts_ct else np.zeros(0, np.int64),
        "locus": cat(parts_loc).astype(np.int64) if parts_loc else np.zeros(0, np.int64),
        "y": cat(parts_y) if parts_y else np.zeros(0, np.float32),
    }


class AllPairs(EpochSource):
    """Every labelled pair of a selection once per epoch, in batches (the unbalanced loader).

    Pairs are listed cell type by cell type (the selection's order), loci ascending, skipping
    unlabelled (NaN) pairs; epoch ``i`` takes them in the permutation drawn from
    ``(seed, 4, i)`` (or in that order with ``shuffle=False``). The last batch holds the
    remainder.

    Parameters
    ----------
    shuffle
        Permute the pairs every epoch.
    reader, cts, loci, encoder, batch_size, seed, prefetch
        As :class:`EpochSource`.

    Notes
    -----
    The pair list is kept in memory (16 bytes a labelled pair).
    """

    def __init__(
        self,
        reader: ChunkReader,
        cts: np.ndarray,
        loci: np.ndarray,
        encoder: InputEncoder,
        *,
        batch_size: int = 32,
        seed: int = 0,
        shuffle: bool = True,
        prefetch: bool = True,
    ) -> None:
        super().__init__(
            reader, cts, loci, encoder, batch_size=batch_size, seed=seed, prefetch=prefetch
        )
        self.shuffle = shuffle
        self.pairs = list_pairs(self.sampler)

    @property
    def n_batches(self) -> int:
        return -(-self.pairs["y"].size // self.batch_size)

    def order(self, i: int) -> dict[str, np.ndarray]:
        if not self.shuffle:
            return dict(self.pairs)
        perm = np.random.default_rng([self.seed, 4, i]).permutation(self.pairs["y"].size)
        return {k: v[perm] for k, v in self.pairs.items()}


def iter_selection(
    reader: ChunkReader,
    cts: np.ndarray,
    loci: np.ndarray,
    encoder: InputEncoder,
    *,
    max_rows: int = 4096,
) -> Iterator[tuple[int | None, slice, dict[str, np.ndarray]]]:
    """Every pair of a selection, streamed a locus chunk at a time, for prediction.

    Yields
    ------
    j : int or None
        Index into ``cts`` of the rows' cell type, or None when the inputs do not depend on
        the cell type (``encoder.per_locus``): the rows then stand for every cell type.
    span : slice
        Indices into ``loci`` of the rows.
    prepared : dict
        :meth:`InputEncoder.prepare` output for the rows (at most ``max_rows``).
    """
    loci = np.asarray(loci, dtype=np.int64)
    targets: list[int | None] = [None] if encoder.per_locus else list(range(len(cts)))
    c = min((reader.chunk(v) for v in encoder.needs), default=max_rows)
    step = max(1, min(c, max_rows))
    start = 0
    while start < loci.size:
        # Stop at a chunk edge so one step never reads two chunks of a variable.
        stop = min(start + step, loci.size)
        edge = (loci[start] // c + 1) * c
        stop = min(stop, int(np.searchsorted(loci, edge)))
        stop = max(stop, start + 1)
        span = slice(start, stop)
        for j in targets:
            ct = np.full(stop - start, cts[0] if j is None else cts[j], dtype=np.int64)
            yield j, span, encoder.prepare(gather(reader, ct, loci[span], encoder.needs))
        start = stop
