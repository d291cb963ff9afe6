"""Training throughput: balanced batches streamed from the cube vs the same arrays in memory.

Anchor: the in-memory reader (:class:`pitfall.models.batches.MemoryReader`), which serves the
same chunks from numpy arrays, so both runs train on identical batches. Measured on the demo
synthetic compendium (expression cube, 3,000 genes x 18 cell types, 2 kbp sequence), on the
cross-cell-type split of E003, for two representative models:

- ``seq_conv``: conv 2x32 / dense 64 on the one-hot 2 kbp sequence;
- ``dense``: dense 2x64 on the 5 epigenomic marks.

Throughput is mini-batches per second of training wall time, counting the time blocked on
data (``wait_seconds``) and leaving out the first epoch (graph tracing, first draw).
Median of ``--repeats`` fits per mode; ratio = streamed / in memory (target >= 0.9).

Usage::

    python benchmarks/bench_stream.py [--work DIR] [--repeats 3] [--epochs 4] [--batches 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pitfall import open_cube, splits  # noqa: E402
from pitfall.models import ModelSpec, make_model  # noqa: E402

MODES = {
    "in memory": {"in_memory": True},
    "streamed": {},
    "streamed, no cache": {"cache_bytes": 0},
    "streamed, no cache/prefetch": {"cache_bytes": 0, "prefetch": False},
}
MODELS = {
    "seq_conv 2x32 / dense 64": ModelSpec("seq_conv", filters=(32, 32), units=(64,)),
    "dense 2x64 (signal)": ModelSpec("dense", units=(64, 64)),
}


def demo_cube(work: Path) -> Path:
    """The demo compendium's expression cube under ``work`` (built once)."""
    store = work / "demo_cube"
    if not store.exists():
        from pitfall import featurize, synth

        t0 = time.perf_counter()
        comp = synth.synthesize(work / "demo", "demo")
        featurize.build(comp.manifest, store, workers=1, processes=False, progress=False)
        print(f"built the demo cube in {time.perf_counter() - t0:.1f} s")
    return store


def throughput(model) -> float:
    """Mini-batches per second over epochs 2.., including time blocked on data."""
    rows = model.history_[1:]
    seconds = sum(r["seconds"] + r["wait_seconds"] for r in rows)
    return len(rows) * model.batches_per_epoch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="folder for the demo cube")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=100, help="mini-batches per epoch")
    args = parser.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / "pitfall-bench-stream"
    work.mkdir(parents=True, exist_ok=True)
    cube = open_cube(demo_cube(work))
    split = splits.preset(cube, "cross-cell-type", "E003")
    train, valid = split.train(cube), split.valid(cube)
    print(
        f"cube: {cube.sizes['cell_type']} cell types x {cube.sizes['locus']} loci, "
        f"{cube.sizes['position']} bp, locus chunk {cube['label'].encoding['chunks'][1]}; "
        f"{args.epochs} epochs x {args.batches} batches of 32, median of {args.repeats}"
    )
    print(f"{'model':<28}{'mode':<30}{'batches/s':>10}{'ratio':>8}{'fit s':>8}")
    for name, spec in MODELS.items():
        base = None
        for mode, opts in MODES.items():
            rates, fits = [], []
            for _ in range(args.repeats):
                model = make_model(
                    spec, cube, max_epochs=args.epochs, patience=args.epochs,
                    batches_per_epoch=args.batches, valid_size=3200, **opts,
                )  # fmt: skip
                model.fit(train, valid)
                rates.append(throughput(model))
                fits.append(model.train_seconds_)
            rate = statistics.median(rates)
            base = base or rate
            print(
                f"{name:<28}{mode:<30}{rate:>10.1f}{rate / base:>8.2f}"
                f"{statistics.median(fits):>8.1f}"
            )


if __name__ == "__main__":
    main()
