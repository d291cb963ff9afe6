"""Framework-neutral loaders: seeded numpy mini-batches of a split of a cube.

::

    from pitfall import open_cube, splits
    from pitfall.loaders import Loader

    cube = open_cube("out/demo/store/expression")
    split = splits.preset(cube, "cross-cell-type", "E003")
    train = Loader(cube, split.train(cube), inputs="both", seed=0)  # balanced, 400 x 32
    for x, y in train:                 # one epoch; x["sequence"] (32, L, 4), x["signal"] (32, 5)
        ...
    ds = train.to_tf(epochs=None)      # tf.data.Dataset, prefetching
    py = train.to_keras()              # keras.utils.PyDataset
    th = train.to_torch()              # torch.utils.data.IterableDataset, sequence (32, 4, L)

    data = PairDataset(cube, split.train(cube), inputs="both")  # sequence (4, L)
    x, y, meta = data[0]               # one example: map-style, for DataLoader / samplers
    preds = to_dataarray(cube, ids, scores)   # any order -> (cell_type, locus) DataArray

A loader reads the cube a zarr chunk at a time (:mod:`pitfall.loaders.readers`), draws each
epoch from the seed alone (:mod:`pitfall.loaders.sampling`), prepares the next epoch in a
background thread, and one-hot encodes each batch when it is served
(:mod:`pitfall.loaders.encoding`). ``shard=(k, n)`` splits every epoch into disjoint parts
for data-parallel workers. ``layout`` puts the sequence's channels last (``"NLC"``, Keras
and TensorFlow's default) or first (``"NCL"``, the torch adapter's); ``reverse_complement``
and ``max_shift`` augment it; ``ids=True`` adds each batch's cube positions.

:class:`~pitfall.loaders.pairs.PairDataset` is the map-style counterpart (index -> one
example with its metadata), and :func:`~pitfall.loaders.predictions.to_dataarray` turns
the scores of either, in any order, into the DataArray the audit reads. In a torch
``DataLoader`` worker, a whole batch (``to_torch()``'s, or ``PairDataset``'s for a list of
indices) leaves as one record of a slot of shared memory (:mod:`pitfall.loaders.slots`)
rather than one file descriptor per tensor.

Importing this package imports neither TensorFlow, Keras nor PyTorch: the adapters
(:mod:`~pitfall.loaders.to_tf`, :mod:`~pitfall.loaders.to_keras`,
:mod:`~pitfall.loaders.to_torch`) import theirs when used.
"""

from __future__ import annotations

from typing import Any

from pitfall.loaders.average import LocusAverage
from pitfall.loaders.core import Batch, IdBatch, Loader
from pitfall.loaders.encoding import (
    LAYOUTS,
    Augment,
    InputEncoder,
    augment_codes,
    flatten,
    one_hot_layout,
    permute_codes,
    random_inputs,
)
from pitfall.loaders.pairs import META, PairDataset
from pitfall.loaders.predictions import to_dataarray
from pitfall.loaders.readers import (
    DEFAULT_CACHE_BYTES,
    ChunkReader,
    MemoryReader,
    cell_type_index,
    open_store,
    selection_index,
)
from pitfall.loaders.sampling import (
    AllPairs,
    BalancedBatches,
    BalancedSampler,
    Epoch,
    EpochSource,
    gather,
    iter_selection,
    list_pairs,
)
from pitfall.loaders.tracks import TrackBatches

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "LAYOUTS",
    "META",
    "AllPairs",
    "Augment",
    "BalancedBatches",
    "BalancedSampler",
    "Batch",
    "ChunkReader",
    "Epoch",
    "EpochSource",
    "IdBatch",
    "InputEncoder",
    "Loader",
    "LocusAverage",
    "MemoryReader",
    "PairDataset",
    "TrackBatches",
    "augment_codes",
    "cell_type_index",
    "flatten",
    "gather",
    "iter_selection",
    "list_pairs",
    "one_hot_layout",
    "open_store",
    "permute_codes",
    "random_inputs",
    "selection_index",
    "tf_dataset",
    "to_dataarray",
]


def tf_dataset(loader: Loader, **kwargs: Any) -> Any:
    """:func:`pitfall.loaders.to_tf.tf_dataset` (imports TensorFlow)."""
    from pitfall.loaders.to_tf import tf_dataset as make

    return make(loader, **kwargs)
