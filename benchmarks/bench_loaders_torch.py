"""Loader throughput through a torch ``DataLoader`` with 2 workers vs the same data in memory.

Anchor: the same examples (every labelled pair of a training selection, inputs ``both``:
the one-hot 2 kbp sequence channels first and the 5 marks) one-hot encoded once into torch
tensors in memory, served by ``DataLoader(TensorDataset(...), batch_size=32, shuffle=True)``
in the main process -- what a torch user writes for data that fits in memory.

Modes, each batches of 32 of the same examples in a random order, streamed from the cube's
store with 2 spawned, persistent workers:

- ``PairDataset``: the map-style dataset through ``DataLoader(batch_size=32,
  shuffle=True)``: a worker reads and encodes a batch's examples together
  (``__getitems__``), then ``default_collate`` stacks them one by one;
- ``PairDataset, BatchSampler``: the same dataset through ``DataLoader(batch_size=None,
  sampler=BatchSampler(RandomSampler(data), 32, drop_last=False))``: ``data[indices]`` is
  the whole batch, with no per-example collation;
- ``Loader.to_torch()``: the iterable of whole batches (unbalanced, shuffled), the worker
  shards of :class:`pitfall.loaders.core.Loader`;

each with prefetch off (``prefetch_factor=1``; the loader's epoch prefetch thread off) and on
(``prefetch_factor=4``; the thread on); and each in the main process (``num_workers=0``,
the loader's prefetch thread on): what reading and encoding cost without the workers'
transfer. A worker sends a whole batch as one record of a slot of shared memory
(:mod:`pitfall.loaders.slots`); ``PairDataset``'s per-example collation is torch's, whose
tensors cross one file descriptor each. One more mode bounds what any worker can reach
here: ``ready batches, 2 workers``, workers that send one ready-made batch of the same
shapes through the slots again and again (no reading, no encoding).

Throughput is batches per second over ``--epochs`` epochs after a first one (worker start,
first reads) left out; the consumer only counts the rows. Median of ``--repeats`` runs per
mode, the modes interleaved so load drifts hit them alike; ratio = mode / anchor (target
>= 0.9). ``main CPU`` is the main process's CPU time per batch (all its threads): the share
of a core a mode leaves to the workers, and, on a machine whose other cores are free, the
bound on its speed. The load average is printed before and after.

Usage::

    python benchmarks/bench_loaders_torch.py [--work DIR] [--repeats 3] [--epochs 2]
        [--cell-types 4] [--batch 32] [--preset demo|tiny]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _cubes import build_cube
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    TensorDataset,
    get_worker_info,
)

from pitfall import open_cube, splits
from pitfall.loaders import Loader, PairDataset
from pitfall.loaders.slots import send

BATCH = 32
WORKERS = 2


class ReadyBatches(IterableDataset):
    """``n`` batches an epoch, each the same ready-made batch sent through the slots: what
    the DataLoader and the transfer cost alone."""

    def __init__(self, batch: Any, n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):  # type: ignore[no-untyped-def]
        info = get_worker_info()
        share = range(info.id, self.n, info.num_workers) if info else range(self.n)
        for _ in share:
            yield send(self, self.batch)


def anchor_loader(data: PairDataset) -> DataLoader:
    """The dataset's examples one-hot encoded once, in memory, as a ``TensorDataset``."""
    x, y, _ = data.batch(np.arange(len(data)))
    tensors = TensorDataset(
        torch.from_numpy(x["sequence"]), torch.from_numpy(x["signal"]), torch.from_numpy(y)
    )
    return DataLoader(tensors, batch_size=BATCH, shuffle=True)


def ready_loader(data: PairDataset) -> DataLoader:
    """2 workers sending one ready-made batch of the dataset's shapes, an epoch's worth."""
    x, y, _ = data.batch(np.arange(BATCH))
    batches = ReadyBatches((x, y), -(-len(data) // BATCH))
    return DataLoader(batches, batch_size=None, num_workers=WORKERS, prefetch_factor=4,
                      multiprocessing_context="spawn", persistent_workers=True)  # fmt: skip


def streamed(
    kind: str, prefetch: bool | None, cube: Any, selection: Any, store: Path
) -> DataLoader:
    """``kind`` through a DataLoader: 2 workers (prefetch off or on), or none (None)."""
    workers: dict[str, Any] = {}
    if prefetch is not None:
        workers = {
            "num_workers": WORKERS,
            "multiprocessing_context": "spawn",
            "persistent_workers": True,
            "prefetch_factor": 4 if prefetch else 1,
        }
    if kind.startswith("PairDataset"):
        data = PairDataset(cube, selection, inputs="both", store=store)
        if kind == "PairDataset":
            return DataLoader(data, batch_size=BATCH, shuffle=True, **workers)
        batches = BatchSampler(RandomSampler(data), BATCH, drop_last=False)
        return DataLoader(data, batch_size=None, sampler=batches, **workers)
    loader = Loader(cube, selection, inputs="both", balanced=False, batch_size=BATCH,
                    store=store, prefetch=prefetch is not False)  # fmt: skip
    return DataLoader(loader.to_torch(), batch_size=None, **workers)


def throughput(dl: DataLoader, epochs: int) -> tuple[float, float]:
    """Batches per second over ``epochs`` epochs after a first one left out, and the main
    process's CPU milliseconds per batch."""
    for _ in dl:
        pass
    n, n_rows = 0, 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for batch in dl:
            n += 1
            n_rows += len(batch[1])  # the consumer touches what it got
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return n / seconds, 1e3 * cpu / n


def main() -> None:
    global BATCH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cell-types", type=int, default=4)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--preset", default="demo", choices=("demo", "tiny"))
    args = parser.parse_args()
    BATCH = args.batch
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_loaders_torch_"))
    work.mkdir(parents=True, exist_ok=True)
    store = build_cube(work, args.preset)
    cube = open_cube(store)
    split = splits.preset(cube, "cross-cell-type", "E003")
    selection = split.train(cube).isel(cell_type=slice(0, args.cell_types))
    anchor_data = PairDataset(cube, selection, inputs="both", in_memory=True)
    n = len(anchor_data)
    print(f"{n:,} examples ({selection.sizes['cell_type']} cell types), "
          f"{-(-n // BATCH)} batches of {BATCH} an epoch; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    anchor_name, ready_name = "one-hot once, in memory (anchor)", "ready batches, 2 workers"
    modes: dict[str, tuple[str, bool | None] | None] = {anchor_name: None, ready_name: None}
    kinds = ("PairDataset", "PairDataset, BatchSampler", "Loader.to_torch()")
    for kind in kinds:
        for prefetch in (False, True):
            modes[f"{kind}, 2 workers, prefetch {'on' if prefetch else 'off'}"] = (kind, prefetch)
    for kind in kinds:
        modes[f"{kind}, main process"] = (kind, None)
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    anchor = anchor_loader(anchor_data)
    for r in range(args.repeats):
        for name, mode in modes.items():
            if name == anchor_name:
                results[name].append(throughput(anchor, args.epochs))
                continue
            dl = (
                ready_loader(anchor_data)
                if mode is None
                else streamed(*mode, cube, selection, store)
            )
            results[name].append(throughput(dl, args.epochs))
            del dl  # its workers stop
        print(f"repeat {r + 1}/{args.repeats} done")
    base = statistics.median(rate for rate, _ in results[anchor_name])
    print(f"\nbatches of {BATCH}")
    print(f"{'mode':<52} {'batches/s':>10} {'ratio':>6} {'main CPU ms':>12}   runs")
    for name, runs in results.items():
        med = statistics.median(rate for rate, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        shown = ", ".join(f"{v:.0f}" for v, _ in runs)
        print(f"{name:<52} {med:>10.0f} {med / base:>6.2f} {cpu:>12.3f}   {shown}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
