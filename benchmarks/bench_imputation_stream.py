"""Imputation training streamed from the cube against the same training from memory.

A cube of 1 M bins x 18 cell types x 5 marks (synthetic signal: a per-locus constant, a
per-(cell type, locus) latent shared by the marks, noise; a fifth of the experiments
missing) is written once under ``--work``. For each family (the paper's dense network on the
target cell type's other marks; the Avocado-style factorization), the same Keras model
(same seed, batch size and number of steps) is trained two ways, interleaved, ``--repeats``
times each:

- ``memory`` (the anchor): the signal read whole into memory and the training arrays built
  (:meth:`pitfall.models.impute.ImputationModel.training_data`), then ``fit`` on them;
- ``stream``: ``fit`` on :meth:`pitfall.loaders.TrackBatches.to_tf`, which reads the cube
  a block of loci at a time in a background thread while the model trains.

Printed per family: the median batches per second of the ``fit`` call (``--steps`` batches)
both ways and their ratio (stream / memory), and apart from it what each way pays before
training: the read and array building of ``memory``, the counting pass of ``stream``
(the batches per epoch Keras needs), and each process's peak RSS.

Usage::

    python benchmarks/bench_imputation_stream.py [--loci 1000000] [--steps 1500]
        [--repeats 3] [--families impute_dense,avocado]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARK = "RESULT "
N_CT, MARKS, TARGET, TARGET_MARK = 18, ["m0", "m1", "m2", "m3", "m4"], "c0", "m2"
#: A demo-sized model of each family (pitfall.experiments.grids.imputation_grid("demo")).
SPECS = {
    "impute_dense": {"inputs": "signal", "units": [256, 256]},
    "avocado": {"inputs": "signal", "embed": [16, 8, 16, 8], "units": [64], "block_size": 40},
}


def build(path: Path, n: int) -> None:
    """Write the synthetic cube (once)."""
    import numpy as np

    from pitfall.cube import create_cube, make_loci, make_slab

    rng = np.random.default_rng(0)
    chroms = np.where(np.arange(n) < n // 2, "chr1", "chr2")
    starts = np.where(chroms == "chr1", np.arange(n), np.arange(n) - n // 2) * 200
    loci = make_loci(chroms, starts, starts + 200)
    const = rng.normal(2.0, 1.0, n).astype(np.float32)
    v = np.array([1.0, 0.5, 0.8, 1.2, 0.3], np.float32)
    w = np.array([1.0, -0.8, 0.6, 1.0, 0.4], np.float32)
    slabs = []
    for i in range(N_CT):
        z = rng.normal(0.0, 1.0, n).astype(np.float32)
        sig = const[:, None] * v + z[:, None] * w + rng.normal(0, 0.1, (n, 5)).astype(np.float32)
        have = [m for k, m in enumerate(MARKS) if i == 0 or k == 2 or rng.random() > 0.2]
        sig[:, [k for k, m in enumerate(MARKS) if m not in have]] = np.nan
        slabs.append(
            make_slab(f"c{i}", loci, label=np.zeros(n, np.float32), assembly="hg19",
                      signal=sig, marks=MARKS, observed=have)
        )  # fmt: skip
    create_cube(path, slabs, locus_chunk=65_536)


def child(cube_path: str, family: str, way: str, steps: int, batch: int) -> dict:
    import numpy as np

    from pitfall import imputation
    from pitfall.cube import open_cube
    from pitfall.loaders import TrackBatches
    from pitfall.models import devices
    from pitfall.models.impute import ImputationModel, build_imputation_model
    from pitfall.models.spec import ModelSpec

    ds = open_cube(cube_path)
    split = imputation.imputation_split(ds, "hybrid", TARGET, TARGET_MARK, test_chroms=["chr2"])
    spec = ModelSpec(family, **SPECS[family])
    model = ImputationModel(spec, ds, batch_size=batch)
    keras = devices.keras()
    keras.utils.set_random_seed(0)
    net = build_imputation_model(
        spec, n_cell_types=ds.sizes["cell_type"], n_marks=ds.sizes["mark"],
        n_loci=ds.sizes["locus"], learning_rate=1e-3,
    )  # fmt: skip
    t0 = time.perf_counter()
    if way == "memory":
        x, y = model.training_data(split)
        data = {"x": x, "y": y, "batch_size": batch, "shuffle": True}
        n = int(y.size)
    else:
        stream = TrackBatches(model, split, batch_size=batch, seed=0)
        n = stream.n_examples()
        data = {"x": stream.to_tf(1), "shuffle": False}
    before = time.perf_counter() - t0
    steps = min(steps, -(-n // batch))
    t1 = time.perf_counter()
    net.fit(**data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - t1
    return {"before_s": before, "fit_s": seconds, "steps": steps, "n_examples": n,
            "batches_per_s": steps / seconds, "peak_mb": _peak_mb(), "finite": bool(
                np.isfinite(net.count_params()))}  # fmt: skip


def _peak_mb() -> float:
    """This process's peak RSS since its exec (``VmHWM``: ``ru_maxrss`` keeps the forking
    parent's when that was larger, as after the cube was built here)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loci", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--families", default="impute_dense,avocado")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_imputation_stream"))
    ap.add_argument("--child", nargs=2, default=None, metavar=("FAMILY", "WAY"))
    args = ap.parse_args()
    cube_path = args.work / f"cube_{args.loci}"
    if args.child:
        res = child(str(cube_path), *args.child, args.steps, args.batch)
        print(MARK + json.dumps(res), flush=True)
        return
    if not cube_path.exists():
        t = time.perf_counter()
        build(cube_path, args.loci)
        print(f"built {cube_path} in {time.perf_counter() - t:.1f} s", flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"{args.loci:,} bins x {N_CT} cell types x {len(MARKS)} marks; target {TARGET} "
          f"{TARGET_MARK} (hybrid, test chr2); batch {args.batch}; medians of "
          f"{args.repeats} interleaved children")  # fmt: skip
    for family in args.families.split(","):
        runs: dict[str, list[dict]] = {"memory": [], "stream": []}
        for _ in range(args.repeats):
            for way in ("memory", "stream"):
                cmd = [sys.executable, __file__, "--loci", str(args.loci), "--steps",
                       str(args.steps), "--batch", str(args.batch), "--work", str(args.work),
                       "--child", family, way]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                line = next(x for x in out.stdout.splitlines() if x.startswith(MARK))
                runs[way].append(json.loads(line[len(MARK) :]))
        med = {w: statistics.median(r["batches_per_s"] for r in runs[w]) for w in runs}
        pre = {w: statistics.median(r["before_s"] for r in runs[w]) for w in runs}
        mem = {w: max(r["peak_mb"] for r in runs[w]) for w in runs}
        print(f"{family}: {runs['memory'][0]['n_examples']:,} training examples, "
              f"{runs['memory'][0]['steps']} steps per fit")  # fmt: skip
        for w in runs:
            rates = ", ".join(f"{r['batches_per_s']:.0f}" for r in runs[w])
            print(f"  {w:>6}: {med[w]:7.1f} batches/s ({rates}); before fit {pre[w]:6.1f} s; "
                  f"peak {mem[w]:,.0f} MB")  # fmt: skip
        print(f"  ratio stream / memory: {med['stream'] / med['memory']:.2f}", flush=True)


if __name__ == "__main__":
    main()
