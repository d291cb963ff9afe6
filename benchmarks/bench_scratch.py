"""A worker's compute under Dask's malloc setting, with and without reused buffers.

Run: ``python benchmarks/bench_scratch.py [--cell-types 18] [--repeats 7]``

Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which fixes glibc's
mmap threshold at 128 KiB, so every larger temporary becomes fresh pages that fault on first
touch. This times what a build's compute tasks do (``jobs.compute_blocks`` over the demo
preset, 3 cell types per task: signal window means, labels, file checksums) in child
processes that differ only in that variable and in :data:`pitfall._buffers.KEEP_BYTES`
(0 makes every buffer a fresh allocation per call, as before :mod:`pitfall._buffers`). The anchor is a plain
process without reused buffers. Each child prints the median seconds of ``--repeats``
rounds over all cell types (wall and CPU time: CPU time leaves out what a shared machine's
neighbours take), after one warm-up round, and the minor page faults of its last round.
Children run interleaved, ``--passes`` times each; the table shows the median pass.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

CONFIGS = {
    "plain process, fresh buffers (anchor)": ({}, 0),
    "Dask worker's malloc, fresh buffers": ({"MALLOC_TRIM_THRESHOLD_": "65536"}, 0),
    "plain process, pitfall._buffers": ({}, None),
    "Dask worker's malloc, pitfall._buffers": ({"MALLOC_TRIM_THRESHOLD_": "65536"}, None),
}


def child(manifest: Path, keep: int | None, repeats: int) -> dict[str, Any]:
    import resource
    import time

    from pitfall import _buffers as buffers
    from pitfall.featurize import load, plan, writer
    from pitfall.featurize.jobs import compute_blocks

    if keep is not None:
        buffers.KEEP_BYTES = keep
    m = load(manifest)
    loci, _ = plan.plan_loci(m)
    jobs = writer.jobs_for(m, loci, list(m.cell_types))
    groups = [jobs[i : i + 3] for i in range(0, len(jobs), 3)]

    def one_round() -> None:
        for g in groups:
            compute_blocks(g, loci, 0, len(loci))

    one_round()
    times, cpu, faults = [], [], 0
    for _ in range(repeats):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0, c0 = time.perf_counter(), time.process_time()
        one_round()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    return {"seconds": statistics.median(times), "cpu": statistics.median(cpu), "faults": faults}


def main() -> None:
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell-types", type=int, default=18)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--child", nargs=2, metavar=("MANIFEST", "KEEP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        keep = None if args.child[1] == "default" else int(args.child[1])
        print(json.dumps(child(Path(args.child[0]), keep, args.repeats)))
        return

    from pitfall import synth

    print(f"machine load: {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="bench-scratch-"))
    comp = synth.synthesize(work / "demo", "demo", n_cell_types=args.cell_types, workers=2)
    print(f"demo preset, {args.cell_types} cell types; median of {args.repeats} rounds")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    for _ in range(args.passes):
        for name, (env, keep) in CONFIGS.items():
            base = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
            cmd = [sys.executable, __file__, "--repeats", str(args.repeats), "--child",
                   str(comp.manifest), "default" if keep is None else str(keep)]  # fmt: skip
            out = subprocess.run(
                cmd, env={**base, **env}, check=True, capture_output=True, text=True
            )
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    mid = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in results.items()
    }
    anchor = next(iter(mid.values()))
    print(f"  {'':<42} {'wall s':>7} {'x anchor':>9} {'CPU s':>7} {'x anchor':>9} {'faults':>8}")
    for name, r in mid.items():
        print(f"  {name:<42} {r['seconds']:>7.3f} {r['seconds'] / anchor['seconds']:>9.2f}"
              f" {r['cpu']:>7.3f} {r['cpu'] / anchor['cpu']:>9.2f} {r['faults']:>8,.0f}")  # fmt: skip
    print(f"machine load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
