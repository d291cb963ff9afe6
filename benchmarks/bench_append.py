"""Benchmark appending one cell type to a small vs a large cube; the ratio is in one run.

Run: ``/work/venv/bin/python benchmarks/bench_append.py``

Cubes of 2 and 50 cell types (20,000 loci x 5 marks, chunks of 1 cell type) are built with
``cube.create_cube`` + ``cube.append_cell_type``; then each gets ``REPEATS`` more appends,
timed one by one, alternating between the cubes. Chunks are 1 along ``cell_type``, so an
append should write only its own chunks: the target is a 50/2 time ratio <= 1.3.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pitfall import cube
from pitfall.genome import CORE_MARKS

N_LOCI = 20_000
MARKS = list(CORE_MARKS)
REPEATS = 7
SIZES = (2, 50)


def make_loci() -> pd.DataFrame:
    chrom = np.repeat(["chr1", "chr2", "chr3"], [8000, 7000, 5000])
    start = np.concatenate([np.arange(n) * 10_000 for n in (8000, 7000, 5000)])
    strand = np.where(np.arange(N_LOCI) % 2, "+", "-")
    return cube.make_loci(chrom, start, start + 2000, strand, [f"G{i}" for i in range(N_LOCI)])


def make_slab(loci: pd.DataFrame, i: int):
    rng = np.random.default_rng(i)
    value = rng.gamma(0.5, 4.0, N_LOCI).astype(np.float32)
    return cube.make_slab(
        f"C{i:03d}",
        loci,
        label=(value > 0.5).astype(np.float32),
        value=value,
        signal=rng.random((N_LOCI, len(MARKS)), dtype=np.float32),
        marks=MARKS,
        assembly="hg19",
        name=f"cell type {i}",
        group="bench",
        sources={"signal:H3K4me3": {"path": f"/data/C{i:03d}.bw", "sha256": "0" * 64}},
    )


def main() -> int:
    loci = make_loci()
    with tempfile.TemporaryDirectory() as d:
        stores = {}
        counter = 0
        for n in SIZES:
            t0 = time.perf_counter()
            store = Path(d) / f"cube{n}"
            cube.create_cube(store, make_slab(loci, counter), locus_chunk=4096)
            counter += 1
            for _ in range(n - 1):
                cube.append_cell_type(store, make_slab(loci, counter))
                counter += 1
            stores[n] = store
            print(f"built a cube of {n} cell types in {time.perf_counter() - t0:.1f} s")
        seconds: dict[int, list[float]] = {n: [] for n in SIZES}
        for _ in range(REPEATS):
            for n in SIZES:
                slab = make_slab(loci, counter)  # made outside the timing
                counter += 1
                t0 = time.perf_counter()
                cube.append_cell_type(stores[n], slab)
                seconds[n].append(time.perf_counter() - t0)
        med = {n: statistics.median(s) for n, s in seconds.items()}
        print(
            f"\nappend one slab ({N_LOCI:,} loci x {len(MARKS)} marks + label + value), "
            f"median of {REPEATS}"
        )
        print(f"  {'cube':>18s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s}")
        for n in SIZES:
            s = seconds[n]
            print(
                f"  {n:>3d} -> {n + REPEATS:>3d} cell types {med[n] * 1e3:10.1f} "
                f"{min(s) * 1e3:8.1f} {max(s) * 1e3:8.1f}"
            )
        ratio = med[SIZES[1]] / med[SIZES[0]]
        verdict = "meets" if ratio <= 1.3 else "misses"
        print(f"  ratio {SIZES[1]}/{SIZES[0]}: {ratio:.2f} ({verdict} the target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
