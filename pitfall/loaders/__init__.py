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
    th = train.to_torch()              # torch.utils.data.IterableDataset

A loader reads the cube a zarr chunk at a time (:mod:`pitfall.loaders.readers`), draws each
epoch from the seed alone (:mod:`pitfall.loaders.sampling`), prepares the next epoch in a
background thread, and one-hot encodes each batch when it is served
(:mod:`pitfall.loaders.encoding`). ``shard=(k, n)`` splits every epoch into disjoint parts
for data-parallel workers.

Importing this package imports neither TensorFlow, Keras nor PyTorch: the adapters
(:mod:`~pitfall.loaders.to_tf`, :mod:`~pitfall.loaders.to_keras`,
:mod:`~pitfall.loaders.to_torch`) import theirs when used.
"""

from __future__ import annotations

from typing import Any

from pitfall.loaders.average import LocusAverage
from pitfall.loaders.core import Batch, Loader
from pitfall.loaders.encoding import InputEncoder, flatten, permute_codes, random_inputs
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
)
from pitfall.loaders.tracks import TrackBatches

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "AllPairs",
    "BalancedBatches",
    "BalancedSampler",
    "Batch",
    "ChunkReader",
    "Epoch",
    "EpochSource",
    "InputEncoder",
    "Loader",
    "LocusAverage",
    "MemoryReader",
    "TrackBatches",
    "cell_type_index",
    "flatten",
    "gather",
    "iter_selection",
    "open_store",
    "permute_codes",
    "random_inputs",
    "selection_index",
    "tf_dataset",
]


def tf_dataset(loader: Loader, **kwargs: Any) -> Any:
    """:func:`pitfall.loaders.to_tf.tf_dataset` (imports TensorFlow)."""
    from pitfall.loaders.to_tf import tf_dataset as make

    return make(loader, **kwargs)
