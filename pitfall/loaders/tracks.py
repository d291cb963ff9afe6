"""Mini-batches of an imputation split's training values, streamed from the cube.

An imputation model's training examples (:meth:`pitfall.models.impute.ImputationModel.examples`)
are read a block of loci at a time: each block's signal for every cell type and mark in one
read (the cube's chunks along ``locus``), its examples built, shuffled with those of the
next few blocks, and cut into batches, while a thread reads the next block. An epoch visits
the blocks in a seeded random order and yields every training example exactly once, so
memory holds a few blocks, never the whole signal.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from pitfall.imputation import ImputationSplit
from pitfall.loaders.core import Batch

__all__ = ["TrackBatches"]


class TrackBatches:
    """Seeded mini-batches ``(inputs by name, targets)`` of a model's training examples.

    Parameters
    ----------
    model : pitfall.models.impute.ImputationModel
        The model the batches train: its ``examples`` decide them, its cube (lazy) is
        read.
    split : ImputationSplit
        What training may read (never the target track).
    batch_size : int
        Examples per batch (the last of an epoch may hold fewer).
    seed : int
        Seeds each epoch's block order and shuffle (epoch ``i`` uses ``(seed, i)``).
    block_loci : int, optional
        Loci per read (default: the cube's chunk along ``locus``, else 65,536).
    shuffle_blocks : int
        Blocks whose examples are shuffled together before they are cut into batches.
    """

    def __init__(
        self,
        model: Any,
        split: ImputationSplit,
        *,
        batch_size: int = 256,
        seed: int = 0,
        block_loci: int | None = None,
        shuffle_blocks: int = 4,
    ) -> None:
        if batch_size < 1 or shuffle_blocks < 1:
            raise ValueError(
                f"batch_size and shuffle_blocks must be at least 1, got {batch_size} and "
                f"{shuffle_blocks}"
            )
        self.model = model
        self.split = split
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle_blocks = int(shuffle_blocks)
        cube = model.cube
        if block_loci is None:
            chunks = cube["signal"].encoding.get("chunks") or cube["signal"].encoding.get(
                "preferred_chunks", {}
            )
            if isinstance(chunks, dict):
                block_loci = chunks.get("locus")
            elif chunks:
                block_loci = chunks[list(cube["signal"].dims).index("locus")]
        self.block_loci = int(block_loci or 65_536)
        n = cube.sizes["locus"]
        self.starts = np.arange(0, n, self.block_loci, dtype=np.int64)
        self._n_examples: int | None = None

    def _read(self, start: int, stop: int | None = None) -> Batch:
        """The examples of the loci ``start .. stop - 1`` (default: the block at ``start``)."""
        if stop is None:
            stop = min(start + self.block_loci, self.model.cube.sizes["locus"])
        sig = np.asarray(
            self.model.cube["signal"].isel(locus=slice(int(start), int(stop))).values, np.float32
        )
        return self.model.examples(self.split, sig, np.arange(start, stop))

    def n_examples(self) -> int:
        """Training examples per epoch (a pass over the blocks, then remembered)."""
        if self._n_examples is None:
            self._n_examples = sum(int(self._read(a)[1].size) for a in self.starts)
        return self._n_examples

    def __len__(self) -> int:
        """Batches per epoch (what Keras's ``fit`` takes as ``steps_per_epoch``)."""
        return -(-self.n_examples() // self.batch_size)

    def buffers(self, i: int) -> Iterator[Batch]:
        """Epoch ``i`` as shuffled runs of whole batches: each holds a multiple of
        ``batch_size`` examples (the last of the epoch the rest), and cutting them in order
        gives :meth:`epoch`'s batches."""
        rng = np.random.default_rng((self.seed, i))
        order = self.starts[rng.permutation(self.starts.size)]
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            ahead: Future[Batch] | None = pool.submit(self._read, order[0]) if order.size else None
            x_parts: list[dict[str, np.ndarray]] = []
            y_parts: list[np.ndarray] = []
            for k in range(order.size):
                assert ahead is not None
                x, y = ahead.result()
                ahead = pool.submit(self._read, order[k + 1]) if k + 1 < order.size else None
                x_parts.append(x)
                y_parts.append(y)
                last = k + 1 == order.size
                if len(y_parts) < self.shuffle_blocks and not last:
                    continue
                xs = {key: np.concatenate([p[key] for p in x_parts]) for key in x_parts[0]}
                ys = np.concatenate(y_parts)
                perm = rng.permutation(ys.size)
                xs = {key: v[perm] for key, v in xs.items()}
                ys = ys[perm]
                full = ys.size if last else ys.size - ys.size % self.batch_size
                if full:
                    yield {key: v[:full] for key, v in xs.items()}, ys[:full]
                # what did not fill a batch waits for the next blocks
                x_parts = [{key: v[full:] for key, v in xs.items()}] if full < ys.size else []
                y_parts = [ys[full:]] if full < ys.size else []
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def epoch(self, i: int) -> Iterator[Batch]:
        """The batches of epoch ``i``: every training example once, in a seeded order."""
        for xs, ys in self.buffers(i):
            for a in range(0, ys.size, self.batch_size):
                yield (
                    {key: v[a : a + self.batch_size] for key, v in xs.items()},
                    ys[a : a + self.batch_size],
                )

    def to_tf(self, epochs: int) -> Any:
        """Epochs ``0 .. epochs - 1`` as a ``tf.data.Dataset`` of :meth:`epoch`'s batches, in
        the same order: Python hands over a run of batches at a time and TensorFlow cuts
        it, so a batch costs no Python call. Imports TensorFlow."""
        from pitfall._logs import quiet_tensorflow

        quiet_tensorflow()
        import tensorflow as tf

        # shapes and dtypes from the examples of one locus (possibly none: still typed)
        first_x, _ = self._read(0, 1)
        spec_x = {
            key: tf.TensorSpec((None, *v.shape[1:]), tf.as_dtype(v.dtype))
            for key, v in first_x.items()
        }
        spec = (spec_x, tf.TensorSpec((None,), tf.float32))

        def runs() -> Iterator[Batch]:
            for i in range(epochs):
                yield from self.buffers(i)

        ds = tf.data.Dataset.from_generator(runs, output_signature=spec)
        ds = ds.flat_map(
            lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(self.batch_size)
        )
        return ds.prefetch(tf.data.AUTOTUNE)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)
