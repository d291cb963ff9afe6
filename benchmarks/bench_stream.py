"""Training throughput: ``model.fit`` over the loader's ``tf.data`` vs the ``train_on_batch`` loop.

Anchor: the training loop the networks had before they trained through
:class:`pitfall.loaders.Loader` -- ``train_on_batch`` over balanced epochs streamed from the
cube with the next epoch prefetched in a thread, validation by ``predict_on_batch`` -- kept
here verbatim (:func:`anchor_fit`). Both train on identical batches (same seed, same reader).
Measured on the demo synthetic compendium (expression cube, 3,000 genes x 18 cell types,
2 kbp sequence), on the cross-cell-type split of E003, for two representative models:

- ``seq_conv``: conv 2x32 / dense 64 on the one-hot 2 kbp sequence;
- ``dense``: dense 2x64 on the 5 epigenomic marks.

Modes: the anchor; ``NeuralModel.fit`` streamed (zarr straight from the store); the same in
memory; and the same with one batch per call into TensorFlow (``steps_per_execution=1``), to
show where the gain comes from. Throughput is mini-batches per second of training wall time,
counting time blocked on data and leaving out the first epoch (graph tracing, first draw).
Median of ``--repeats`` fits per mode, the modes interleaved so load drifts hit them alike;
ratio = mode / anchor (target >= 1). The load average is printed before and after.

Usage::

    python benchmarks/bench_stream.py [--work DIR] [--repeats 3] [--epochs 4] [--batches 100]
        [--models NAME ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pitfall import loaders, open_cube, splits  # noqa: E402
from pitfall.models import ModelSpec, make_model  # noqa: E402
from pitfall.models.nn import build_model  # noqa: E402

MODELS = {
    "seq_conv 2x32 / dense 64": ModelSpec("seq_conv", filters=(32, 32), units=(64,)),
    "dense 2x64 (signal)": ModelSpec("dense", units=(64, 64)),
}
MODES = {
    "train_on_batch loop (anchor)": None,
    "fit over loader": {},
    "fit over loader, in memory": {"in_memory": True},
    "fit, steps_per_execution=1": {"steps_per_execution": 1},
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


def anchor_fit(spec, cube, train, valid, *, store, epochs, batches, valid_size=3200):
    """The networks' training loop before ``model.fit`` (``NeuralModel.fit`` up to ef7dfbc),
    patience disabled; returns its per-epoch rows (``seconds``, ``wait_seconds``)."""
    import keras

    keras.utils.set_random_seed(spec.seed)
    n_marks, seq_len = cube.sizes["mark"], cube.sizes["position"]
    model = build_model(spec, n_marks=n_marks, seq_len=seq_len)
    enc = loaders.InputEncoder(spec.inputs, seed=spec.seed, n_random=spec.n_random)
    reader = loaders.ChunkReader(cube, store=store)
    cts, loci = loaders.selection_index(cube, train)
    stream = loaders.BalancedBatches(
        reader, cts, loci, enc, batch_size=32, batches_per_epoch=batches, seed=spec.seed,
        prefetch=True,
    )  # fmt: skip
    vcts, vloci = loaders.selection_index(cube, valid)
    val = loaders.BalancedBatches(reader, vcts, vloci, enc, seed=spec.seed).balanced(
        valid_size, key=(2,)
    )
    val_x = [x.copy() for x in enc.encode(val)]
    one = (lambda xs: xs[0]) if len(val_x) == 1 else (lambda xs: xs)

    def predict_rows(xs):
        parts = []
        for i in range(0, len(xs[0]), 512):
            block = [x[i : i + 512] for x in xs]
            rows = len(block[0])
            if rows < 512:
                block = [np.concatenate([b, np.zeros((512 - rows, *b.shape[1:]), b.dtype)])
                         for b in block]  # fmt: skip
            parts.append(np.asarray(model.predict_on_batch(one(block)))[:rows])
        return np.concatenate(parts).ravel()

    history = []
    t_ready = time.perf_counter()
    for epoch in stream.epochs(epochs):
        te = time.perf_counter()
        wait = te - t_ready
        losses = []
        for b in range(epoch.n_batches):
            rows = epoch.rows(b)
            losses.append(model.train_on_batch(one(enc.encode(epoch.data, rows)),
                                               epoch.data["y"][rows]))  # fmt: skip
        float(np.mean([float(np.asarray(v).ravel()[0]) for v in losses]))
        row = {"seconds": time.perf_counter() - te, "wait_seconds": wait}
        p = np.clip(predict_rows(val_x), 1e-7, 1 - 1e-7)
        row["val_loss"] = float(-np.mean(val["y"] * np.log(p) + (1 - val["y"]) * np.log(1 - p)))
        history.append(row)
        t_ready = time.perf_counter()
    return history


def throughput(rows, batches: int) -> float:
    """Mini-batches per second over epochs 2.., including time blocked on data."""
    rows = rows[1:]
    seconds = sum(r["seconds"] + r.get("wait_seconds", 0.0) for r in rows)
    return len(rows) * batches / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="folder for the demo cube")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=100, help="mini-batches per epoch")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / "pitfall-bench-stream"
    work.mkdir(parents=True, exist_ok=True)
    path = demo_cube(work)
    cube = open_cube(path)
    split = splits.preset(cube, "cross-cell-type", "E003")
    train, valid = split.train(cube), split.valid(cube)
    print(
        f"cube: {cube.sizes['cell_type']} cell types x {cube.sizes['locus']} loci, "
        f"{cube.sizes['position']} bp, locus chunk {cube['label'].encoding['chunks'][1]}; "
        f"{args.epochs} epochs x {args.batches} batches of 32, median of {args.repeats}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'model':<28}{'mode':<32}{'batches/s':>10}{'ratio':>8}{'fit s':>8}")
    for name in args.models:
        spec = MODELS[name]
        rates: dict[str, list[float]] = {m: [] for m in MODES}
        fits: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(args.repeats):
            for mode, opts in MODES.items():
                t0 = time.perf_counter()
                if opts is None:
                    rows = anchor_fit(spec, cube, train, valid, store=path, epochs=args.epochs,
                                      batches=args.batches)  # fmt: skip
                else:
                    model = make_model(
                        spec, cube, max_epochs=args.epochs, patience=args.epochs,
                        batches_per_epoch=args.batches, valid_size=3200, store=path, **opts,
                    )  # fmt: skip
                    rows = model.fit(train, valid).history_
                fits[mode].append(time.perf_counter() - t0)
                rates[mode].append(throughput(rows, args.batches))
        base = statistics.median(rates["train_on_batch loop (anchor)"])
        for mode in MODES:
            rate = statistics.median(rates[mode])
            print(
                f"{name:<28}{mode:<32}{rate:>10.1f}{rate / base:>8.2f}"
                f"{statistics.median(fits[mode]):>8.1f}",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
