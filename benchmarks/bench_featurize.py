"""Benchmark featurization at the paper's scale; ratios are measured in one run.

Run: ``/work/venv/bin/python benchmarks/bench_featurize.py [--quick]``

1. One track, 17,951 TSS windows of 2 kbp on hg19's chr1-chr3 (real lengths, 690 Mbp;
   runs of 20-200 bp, 10% gaps): ``pitfall.sources.bigwig.window_means`` with each
   backend vs pybigtools ``average_over_bed`` (mean0, the anchor) on the same windows.
   Windows/s and Mbp/s (of windows, and of chromosome spanned). Then the exactness of each
   backend against the naive per-base twin, and where the builtin reader's time goes next to
   the anchor's (both inflate the same blocks with libdeflate).
2. A whole ``featurize.build`` of the demo compendium restricted to 4 cell types (5 marks,
   3,000 genes + FASTA + labels) on a LocalCluster of 1 vs 2 worker processes.

Peak memory (max RSS of this process and of its reaped children) is printed at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pybigtools
import pyBigWig

from pitfall import featurize, kernels, synth
from pitfall.sources import bigwig

sys.path.insert(0, str(Path(__file__).parent))
from bench_kernels import builtin_stages, interleaved_medians, median_seconds  # noqa: E402

HG19 = {"chr1": 249_250_621, "chr2": 243_199_373, "chr3": 198_022_430}
N_WINDOWS = 17_951
WINDOW = 2000


def write_track(path: Path, chroms: dict[str, int], rng: np.random.Generator) -> int:
    """A bigWig tiling ``chroms`` with runs of 20-200 bp, 10% left without data; run count."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(chroms.items()), maxZooms=10)
    n_runs = 0
    for chrom, size in chroms.items():
        lengths = rng.integers(20, 201, size=size // 100 + 10)
        ends = np.cumsum(lengths)
        ends = ends[ends <= size]
        starts = np.concatenate([[0], ends[:-1]])
        keep = rng.random(starts.size) >= 0.1
        starts, ends = starts[keep], ends[keep]
        values = rng.gamma(0.6, 3.0, size=starts.size)
        # pyBigWig takes lists; a few million runs per chromosome, written in blocks.
        for lo in range(0, starts.size, 1_000_000):
            sl = slice(lo, lo + 1_000_000)
            bw.addEntries(
                [chrom] * len(starts[sl]),
                starts[sl].tolist(),
                ends=ends[sl].tolist(),
                values=values[sl].tolist(),
            )
        n_runs += starts.size
    bw.close()
    return n_runs


def tss_windows(chroms: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """17,951 window starts spread over the chromosomes in proportion to their length."""
    total = sum(chroms.values())
    out = {}
    left = N_WINDOWS
    for i, (chrom, size) in enumerate(chroms.items()):
        n = left if i == len(chroms) - 1 else round(N_WINDOWS * size / total)
        left -= n
        out[chrom] = np.sort(rng.integers(0, size - WINDOW, size=n)).astype(np.int64)
    return out


def bench_track(tmp: Path, repeats: int) -> None:
    rng = np.random.default_rng(0)
    track = tmp / "track.bw"
    t0 = time.perf_counter()
    n_runs = write_track(track, HG19, rng)
    print(
        f"wrote a {sum(HG19.values()) / 1e6:.0f} Mbp track ({n_runs / 1e6:.1f} M runs, "
        f"{track.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s"
    )
    windows = tss_windows(HG19, rng)
    bed = tmp / "windows.bed"
    with open(bed, "w") as fh:
        for chrom, starts in windows.items():
            fh.writelines(f"{chrom}\t{s}\t{s + WINDOW}\n" for s in starts)

    def ours(backend: str, **kw: object) -> Callable[[], object]:
        def run() -> list:
            # One handle per chromosome, as featurize's signal task opens the path each time.
            out = []
            for c, s in windows.items():
                with bigwig.open_bigwig(track, backend, **kw) as handle:
                    out.append(bigwig.window_means(handle, c, s, s + WINDOW))
            return out

        return run

    def anchor() -> list:
        with pybigtools.open(str(track)) as bw:
            return list(bw.average_over_bed(str(bed), stats="mean0"))

    anchor_name = "pybigtools average_over_bed (mean0)"
    candidates = {
        "bigwig.window_means (builtin)": ours("builtin"),
        anchor_name: anchor,
        "bigwig.window_means (builtin, zlib)": ours("builtin", use_libdeflate=False),
        "bigwig.window_means (pybigtools)": ours("pybigtools"),
        "bigwig.window_means (pyBigWig)": ours("pyBigWig"),
    }
    timings = interleaved_medians(candidates, repeats)
    spanned = sum(int(s[-1] + WINDOW - s[0]) for s in windows.values())
    anchor_s = timings[anchor_name]
    print(
        f"\n1. one track, {N_WINDOWS:,} windows of {WINDOW} bp on chr1-chr3 (median of {repeats}, "
        "interleaved)"
    )
    print(
        f"  {'method':38s} {'seconds':>8s} {'windows/s':>11s} {'window Mbp/s':>13s} "
        f"{'span Mbp/s':>11s} {'x anchor':>9s}"
    )
    for name, sec in timings.items():
        print(
            f"  {name:38s} {sec:8.3f} {N_WINDOWS / sec:11,.0f} "
            f"{N_WINDOWS * WINDOW / 1e6 / sec:13.1f} {spanned / 1e6 / sec:11.1f} "
            f"{anchor_s / sec:9.2f}"
        )
    print("  (window_means: mean of arcsinh per base; average_over_bed: mean of raw values;")
    print("   'x anchor' = anchor seconds / these seconds, > 1 is faster than the anchor)")
    exactness(track, windows)
    stages(track, windows, repeats, anchor_s)


def exactness(track: Path, windows: dict[str, np.ndarray]) -> None:
    """Max error against the naive per-base twin, on the first 400 windows of each chromosome.

    The naive twin expands a chromosome base by base, so it runs on the region those windows
    span, shifted to start at 0 (windows and runs alike); the runs come from pyBigWig.
    """
    worst = dict.fromkeys(bigwig.BACKENDS, 0.0)
    for chrom, starts in windows.items():
        first = starts[:400]
        lo, hi = int(first[0]), int(first[-1] + WINDOW)
        runs = bigwig.read_runs(track, chrom, lo, hi, backend="pyBigWig")
        naive = kernels.naive_window_arcsinh_means(
            runs[0] - lo, runs[1] - lo, runs[2], first - lo, first + WINDOW - lo, hi - lo
        )
        for backend in bigwig.BACKENDS:
            ours = bigwig.window_means(track, chrom, first, first + WINDOW, backend=backend)
            worst[backend] = max(worst[backend], float(np.abs(ours - naive).max()))
    print("  max abs error vs naive per-base arcsinh mean (1,200 windows): " + ", ".join(
        f"{b} {e:.3g}" for b, e in worst.items()
    ))  # fmt: skip


def stages(track: Path, windows: dict[str, np.ndarray], repeats: int, anchor_s: float) -> None:
    """The builtin reader's time split into its stages, summed over the three chromosomes."""
    totals: dict[str, float] = {}
    for chrom, starts in windows.items():
        for name, fn in builtin_stages(track, chrom, starts, starts + WINDOW).items():
            key = name.split(" (")[0]
            totals[key] = totals.get(key, 0.0) + median_seconds(fn, repeats)
    print(f"  where the builtin reader's time goes (anchor: {anchor_s:.3f} s in all):")
    for name, sec in totals.items():
        print(f"    {name:44s} {sec:8.3f} s")


def bench_build(tmp: Path, repeats: int, n_cell_types: int) -> None:
    t0 = time.perf_counter()
    comp = synth.synthesize(tmp / "demo", "demo", n_cell_types=n_cell_types, workers=2)
    print(f"\nsynthesized the demo compendium ({n_cell_types} cell types) in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    store = tmp / "cube"
    seconds: dict[int, list[float]] = {1: [], 2: []}
    # Interleave the two settings so drift in machine load hits both alike.
    for _ in range(repeats):
        for workers in (1, 2):
            shutil.rmtree(store, ignore_errors=True)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                summary = featurize.build(comp.manifest, store, workers=workers, progress=False)
            seconds[workers].append(time.perf_counter() - t0)
    med = {w: statistics.median(s) for w, s in seconds.items()}
    print(f"\n2. featurize.build, demo preset: {len(summary.cell_types)} cell types x "
          f"{summary.n_loci:,} loci x {len(summary.marks)} marks + sequence (median of {repeats})")  # fmt: skip
    for w, sec in med.items():
        print(f"  {w} worker process{'es' if w > 1 else '  '} {sec:8.2f} s")
    print(f"  time ratio 1 / 2 workers: {med[1] / med[2]:.2f}  (cores: {os.cpu_count()})")


def peak_memory() -> None:
    # ru_maxrss is in KiB on Linux; children = reaped Dask worker processes (largest one).
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak memory (max RSS): this process {own:,.0f} MiB, largest child {kids:,.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--cell-types", type=int, default=4)
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else 5
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory() as d:
        bench_track(Path(d), repeats)
        bench_build(Path(d), repeats, args.cell_types)
    peak_memory()
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
