"""Build cubes at scale: wall time and the peak memory of the driver and of every worker.

Run: ``python benchmarks/bench_build_scale.py [DATA] [--sizes 1,4,14.4] [--workers 2]``
(``DATA`` is the real data folder, ``../shared/data`` by default).

Two builds, each next to its anchor, a straightforward numpy build of the same arrays written
with ``xarray.Dataset.to_zarr`` (everything in memory, one process), in the same run:

1. **CTCF label cube**: 14,405,178 bins of 200 bp on chr1-22 x 7 ENCODE lines, a bin bound
   when a conservative IDR summit falls in it (``pitfall build`` of
   ``pitfall.datasets.ctcf.manifest_from_folder``).
2. **Signal cubes** from synthetic bigWigs (4 cell types x 3 marks, runs of 50-2,000 bp, a
   fifth of the genome without data) over genomes of 1 M, 4 M and 14.4 M bins of 200 bp,
   labels from a synthetic peak file.

Every measurement runs in fresh processes: the driver's peak is its ``ru_maxrss``; each Dask
worker reports its own ``ru_maxrss`` (``Client.run``) before the cluster closes. Targets
(issue 10): the CTCF build within 3x the numpy build's time; no process above 1 GB; peak
per-process memory growing by at most 1.2x from 1 M to 14.4 M bins.

Guarded by ``if __name__ == "__main__"``: the workers are separate processes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MARK = "RESULT "
BIN = 200
CTCF_LINES = ["A549", "H1-hESC", "HeLa-S3", "HepG2", "IMR-90", "K562", "MCF-7"]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ----------------------------------------------------------------------------- inputs


def synthetic_genome(n_bins: int) -> dict[str, int]:
    """Chromosome sizes in hg19's proportions (chr1-22) holding ``n_bins`` bins of 200 bp."""
    hg19 = [249250621, 243199373, 198022430, 191154276, 180915260, 171115067, 159138663,
            146364022, 141213431, 135534747, 135006516, 133851895, 115169878, 107349540,
            102531392, 90354753, 81195210, 78077248, 59128983, 63025520, 48129895, 51304566]  # fmt: skip
    total = sum(hg19)
    sizes = {f"chr{i + 1}": max(BIN, int(n * n_bins * BIN / total)) for i, n in enumerate(hg19)}
    return sizes


def write_inputs(folder: Path, n_bins: int, seed: int = 0) -> Path:
    """Synthetic bigWigs (4 cell types x 3 marks), peaks and a manifest; return the manifest."""
    import pyBigWig

    from pitfall.manifest import dump_manifest

    rng = np.random.default_rng(seed)
    sizes = synthetic_genome(n_bins)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "genome.sizes").write_text("".join(f"{c}\t{n}\n" for c, n in sizes.items()))
    cell_types = {}
    for k in range(4):
        ct = f"CT{k}"
        signal = {}
        for mark in ("m1", "m2", "m3"):
            path = folder / f"{ct}-{mark}.bw"
            bw = pyBigWig.open(str(path), "w")
            bw.addHeader(list(sizes.items()), maxZooms=0)
            for chrom, size in sizes.items():
                lengths = rng.integers(50, 2001, size=size // 1000 + 10)
                ends = np.cumsum(lengths)
                ends = ends[ends <= size]
                starts = np.concatenate([[0], ends[:-1]])
                keep = rng.random(starts.size) > 0.2
                values = rng.gamma(1.0, 3.0, starts.size)
                bw.addEntries([chrom] * int(keep.sum()), starts[keep], ends=ends[keep],
                              values=values[keep])  # fmt: skip
            bw.close()
            signal[mark] = str(path)
        peaks = folder / f"{ct}.narrowPeak"
        with open(peaks, "w") as fh:
            for chrom, size in sizes.items():
                pos = np.sort(rng.integers(0, size - 500, size // 20_000 + 1))
                for p in pos:
                    fh.write(f"{chrom}\t{p}\t{p + 400}\t.\t0\t.\t1\t1\t1\t200\n")
        cell_types[ct] = {"name": ct, "group": "synthetic", "signal": signal, "target": str(peaks)}
    return dump_manifest(
        {
            "assembly": "synthetic",
            "locus_chunk": 1 << 18,
            "loci": {"bins": str(folder / "genome.sizes"), "bin_size": BIN},
            "signal": {"marks": ["m1", "m2", "m3"]},
            "target": {"kind": "peaks"},
            "cell_types": cell_types,
        },
        folder / "manifest.toml",
    )


# ----------------------------------------------------------------------------- children


def run_pitfall(manifest: str, store: str, workers: int) -> dict[str, Any]:
    """``pitfall``'s build on a local cluster; peaks of the driver and of each worker."""
    import warnings

    from pitfall import featurize
    from pitfall.cluster import dask_client

    with dask_client(workers=workers, preload=featurize.WORKER_MODULES) as client:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = featurize.build(manifest, store, client=client, progress=False)
        seconds = time.perf_counter() - t0
        workers_mb = sorted(client.run(_peak_mb).values())
    return {
        "seconds": seconds,
        "driver_mb": _peak_mb(),
        "workers_mb": workers_mb,
        "n_loci": summary.n_loci,
    }


def run_numpy(manifest: str, store: str) -> dict[str, Any]:
    """The anchor: every array in memory with numpy, written once with ``to_zarr``."""
    import pandas as pd
    import pyBigWig
    import xarray as xr

    from pitfall.manifest import load_manifest

    m = load_manifest(manifest)
    t0 = time.perf_counter()
    sizes = {}
    for line in Path(m.loci_path).read_text().splitlines():
        c, n = line.split()[:2]
        sizes[c] = int(n)
    chroms = m.chroms or list(sizes)
    starts = [np.arange(0, sizes[c], BIN, dtype=np.int64) for c in chroms]
    chrom = np.repeat(np.array(chroms), [len(s) for s in starts])  # fixed-width: lean
    start = np.concatenate(starts)
    end = np.concatenate(
        [np.minimum(s + BIN, sizes[c]) for c, s in zip(chroms, starts, strict=True)]
    )
    offsets = dict(zip(chroms, np.cumsum([0] + [len(s) for s in starts[:-1]]), strict=True))
    cts = list(m.cell_types)
    label = np.zeros((len(cts), start.size), dtype=np.float32)
    signal = np.zeros((len(cts), start.size, len(m.marks)), dtype=np.float32) if m.marks else None
    for k, ct in enumerate(cts):
        spec = m.cell_types[ct]
        peaks = pd.read_csv(spec.target, sep="\t", header=None, usecols=[0, 1, 9])
        for c, grp in peaks.groupby(0):
            if c not in offsets:
                continue
            summit = (grp[1] + grp[9]).to_numpy() // BIN
            label[k, offsets[c] + summit[summit < len(starts[chroms.index(c)])]] = 1
        for j, mark in enumerate(m.marks):
            bw = pyBigWig.open(str(spec.signal[mark]))
            for c in chroms:
                n = len(starts[chroms.index(c)])
                lo, hi = offsets[c], offsets[c] + n
                signal[k, lo:hi, j] = _bin_means(bw, c, start[lo:hi], end[lo:hi])
            bw.close()
    data = {"label": (("cell_type", "locus"), label)}
    if signal is not None:
        data["signal"] = (("cell_type", "locus", "mark"), signal)
    ds = xr.Dataset(
        data,
        coords={
            "cell_type": cts,
            "chrom": ("locus", chrom),
            "start": ("locus", start),
            "end": ("locus", end),
        },  # fmt: skip
    )
    ds.to_zarr(store, mode="w-", consolidated=False,
               encoding={"label": {"chunks": (1, 1 << 18)}})  # fmt: skip
    return {"seconds": time.perf_counter() - t0, "driver_mb": _peak_mb(), "workers_mb": []}


def _bin_means(bw: Any, chrom: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of arcsinh(value) per bin from the runs' running integral (bases without data 0)."""
    iv = np.array(bw.intervals(chrom) or [], dtype=np.float64).reshape(-1, 3)
    s, e, a = iv[:, 0], iv[:, 1], np.arcsinh(iv[:, 2])
    cum = np.concatenate([[0.0], np.cumsum(a * (e - s))])

    def integral(x: np.ndarray) -> np.ndarray:
        i = np.searchsorted(e, x, side="right")  # runs wholly before x
        part = np.where(i < len(s), np.clip(x - s[np.minimum(i, len(s) - 1)], 0, None), 0)
        return cum[i] + part * a[np.minimum(i, len(s) - 1)] * (i < len(s))

    return ((integral(hi) - integral(lo)) / (hi - lo)).astype(np.float32)


def _child(kind: str, manifest: str, store: str, workers: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--manifest", manifest, "--store", store,
           "--workers", str(workers)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith(MARK))
    return json.loads(line[len(MARK) :])


# ----------------------------------------------------------------------------- driver


def _row(name: str, r: dict[str, Any]) -> str:
    workers = ", ".join(f"{w:.0f}" for w in r["workers_mb"]) or "-"
    return f"| {name} | {r['seconds']:.1f} | {r['driver_mb']:.0f} | {workers} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    ap.add_argument("--sizes", default="1,4,14.4", help="signal cubes, millions of bins")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-ctcf", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--manifest", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--store", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = run_pitfall if args.child == "pitfall" else run_numpy
        kw = {"workers": args.workers} if args.child == "pitfall" else {}
        print(MARK + json.dumps(fn(args.manifest, args.store, **kw)), flush=True)
        return

    from pitfall.datasets import ctcf

    work = Path(tempfile.mkdtemp(prefix="bench-build-scale-"))
    print(f"machine load before: {Path('/proc/loadavg').read_text().split()[:3]}")
    print("| build | seconds | driver peak MB | worker peaks MB |")
    print("| --- | --- | --- | --- |")
    results: dict[str, Any] = {}
    if not args.skip_ctcf:
        manifest = str(ctcf.manifest_from_folder(args.data, work / "ctcf"))
        results["ctcf pitfall"] = _child("pitfall", manifest, str(work / "ctcf-cube"), args.workers)
        print(_row("CTCF labels, pitfall", results["ctcf pitfall"]), flush=True)
        results["ctcf numpy"] = _child("numpy", manifest, str(work / "ctcf-numpy.zarr"), 1)
        print(_row("CTCF labels, numpy + to_zarr", results["ctcf numpy"]), flush=True)
    for size in [float(s) for s in args.sizes.split(",") if s.strip()]:
        n = int(size * 1e6)
        manifest = str(write_inputs(work / f"sig{size}", n))
        key = f"{size:g}M"
        results[f"{key} pitfall"] = _child(
            "pitfall", manifest, str(work / f"sig{size}-cube"), args.workers
        )
        print(_row(f"signal {key} bins, pitfall", results[f"{key} pitfall"]), flush=True)
        results[f"{key} numpy"] = _child("numpy", manifest, str(work / f"sig{size}-numpy.zarr"), 1)
        print(_row(f"signal {key} bins, numpy + to_zarr", results[f"{key} numpy"]), flush=True)
    print()
    if "ctcf pitfall" in results:
        ratio = results["ctcf pitfall"]["seconds"] / results["ctcf numpy"]["seconds"]
        print(f"CTCF: pitfall / numpy time = {ratio:.2f} (target <= 3)")
    peaks = {
        k: max([r["driver_mb"], *r["workers_mb"]]) for k, r in results.items() if "pitfall" in k
    }
    print(f"largest pitfall process: {max(peaks.values()):.0f} MB (target <= 1024)")
    sizes = [k for k in results if k.endswith("M pitfall")]
    if len(sizes) >= 2:
        lo, hi = results[sizes[0]], results[sizes[-1]]
        for what, a, b in (("driver", lo["driver_mb"], hi["driver_mb"]),
                           ("workers", max(lo["workers_mb"]), max(hi["workers_mb"]))):  # fmt: skip
            print(f"{what} peak {sizes[0].split()[0]} -> {sizes[-1].split()[0]}: "
                  f"{a:.0f} -> {b:.0f} MB, x{b / a:.2f} (target <= 1.2)")  # fmt: skip
    print(f"machine load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
