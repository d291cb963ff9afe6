"""Label cubes at the speed of a script: ``pitfall build`` against a naive numpy build.

Run: ``python benchmarks/bench_label_build.py [DATA] [--cubes dream,tiling] [--workers 2]``
(``DATA`` is the real data folder, ``../shared/data`` by default).

The cubes (CTCF peaks of seven ENCODE lines over chr1-22):

- ``dream``: the ENCODE-DREAM conventions, :func:`pitfall.datasets.ctcf.dream_manifest`:
  200 bp bins every 50 bp (57.6 M bins), bound where a conservative peak overlaps the
  bin, NaN where only a relaxed peak does, NaN where the blacklist overlaps it;
- ``tiling``: the same rules on non-overlapping 200 bp bins (14.4 M bins).

Each cube is built twice in one run, in fresh processes: by ``pitfall build`` as the
command runs it (a labels-only manifest builds in the calling process; ``--workers N``: a
local cluster of N worker processes instead), and by the naive anchor the issue names: the narrowPeak
files read with pandas, each peak placed with integer arithmetic (the bins a peak ``[s, e)``
overlaps are ``ceil((s - 199) / 50) .. (e - 1) // 50``: a +1/-1 difference array summed
along the chromosome) into one preallocated ``(cell_type, locus)`` array, coordinates
alongside, written with ``xarray.Dataset.to_zarr`` and its default codecs. The two cubes'
labels are compared before the timings are printed.

Printed: seconds of each build, their ratio (target <= 3) and the peak RSS of every process
(the driver's ``ru_maxrss``; each Dask worker's, gathered with ``Client.run`` before the
cluster closes; target: none above 1 GB for ``pitfall build``).

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
WIDTH = 200


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def write_manifest(kind: str, data: str, folder: Path) -> Path:
    from pitfall.datasets import ctcf

    if kind == "dream":
        return ctcf.dream_manifest(data, folder)
    return ctcf.manifest_from_folder(data, folder, rule="overlap", ambiguous=True, blacklist=True)


# ----------------------------------------------------------------------------- children


def run_pitfall(manifest: str, store: str, workers: int | None) -> dict[str, Any]:
    """``pitfall build``: as the command runs it (``workers`` None: its own choice, in this
    process for a labels-only manifest), or on a local cluster of ``workers`` processes
    whose peaks are gathered before it closes."""
    import warnings

    from pitfall import featurize
    from pitfall.cluster import dask_client

    warnings.simplefilter("ignore")
    if workers is None:
        t0 = time.perf_counter()
        summary = featurize.build(manifest, store, progress=False)
        seconds = time.perf_counter() - t0
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        workers_mb = [children] if children > 0 else []
    else:
        with dask_client(workers=workers, preload=featurize.WORKER_MODULES) as client:
            t0 = time.perf_counter()
            summary = featurize.build(manifest, store, client=client, progress=False)
            seconds = time.perf_counter() - t0
            workers_mb = sorted(client.run(_peak_mb).values())
    return {"seconds": seconds, "driver_mb": _peak_mb(), "workers_mb": workers_mb,
            "n_loci": summary.n_loci}  # fmt: skip


def _ranges(path: str, offsets: dict[str, int], counts: dict[str, int], step: int):
    """Per peak of a narrowPeak file: (first bin, last bin + 1) of the bins it overlaps."""
    import pandas as pd

    peaks = pd.read_csv(path, sep="\t", header=None, usecols=[0, 1, 2])
    peaks = peaks[peaks[0].isin(offsets)]
    s, e = peaks[1].to_numpy(np.int64), peaks[2].to_numpy(np.int64)
    base = peaks[0].map(offsets).to_numpy(np.int64)
    n = peaks[0].map(counts).to_numpy(np.int64)
    lo = np.clip(-(-(s - WIDTH + 1) // step), 0, n)
    hi = np.clip((e - 1) // step + 1, 0, n)
    return base + lo, base + hi, set(peaks[0])


def _mark(n_total: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    diff = np.zeros(n_total + 1, dtype=np.int32)
    np.add.at(diff, lo, 1)
    np.add.at(diff, hi, -1)
    return np.cumsum(diff[:-1]) > 0


def run_numpy(manifest: str, store: str) -> dict[str, Any]:
    """The anchor: pandas, integer arithmetic, one preallocated array, ``to_zarr``."""
    import xarray as xr

    from pitfall.manifest import load_manifest

    m = load_manifest(manifest)
    t0 = time.perf_counter()
    step = m.stride or WIDTH
    sizes = dict(line.split()[:2] for line in Path(m.loci_path).read_text().splitlines())
    chroms = m.chroms or list(sizes)
    counts = {c: 1 + max(0, -(-(int(sizes[c]) - WIDTH) // step)) for c in chroms}
    offsets = dict(zip(chroms, np.cumsum([0] + [counts[c] for c in chroms[:-1]]), strict=True))
    n = sum(counts.values())
    start = np.concatenate([np.arange(counts[c], dtype=np.int64) * step for c in chroms])
    end = np.minimum(
        start + WIDTH, np.repeat([int(sizes[c]) for c in chroms], list(counts.values()))
    )
    chrom = np.repeat(np.array(chroms, dtype="S5"), list(counts.values()))
    cts = list(m.cell_types)
    label = np.zeros((len(cts), n), dtype=np.float32)
    black = None
    if m.blacklist is not None:
        lo, hi, _ = _ranges(str(m.blacklist), offsets, counts, step)
        black = _mark(n, lo, hi)
    for k, ct in enumerate(cts):
        spec = m.cell_types[ct]
        lo, hi, present = _ranges(str(spec.target), offsets, counts, step)
        bound = _mark(n, lo, hi)
        label[k] = bound
        if spec.ambiguous is not None:
            lo, hi, _ = _ranges(str(spec.ambiguous), offsets, counts, step)
            label[k, _mark(n, lo, hi) & ~bound] = np.nan
        if black is not None:
            label[k, black] = np.nan
        for c in chroms:
            if c not in present:
                label[k, offsets[c] : offsets[c] + counts[c]] = np.nan
    ds = xr.Dataset(
        {"label": (("cell_type", "locus"), label)},
        coords={
            "cell_type": cts,
            "chrom": ("locus", chrom),
            "start": ("locus", start),
            "end": ("locus", end),
        },  # fmt: skip
    )
    ds.to_zarr(store, mode="w-")
    return {"seconds": time.perf_counter() - t0, "driver_mb": _peak_mb(), "workers_mb": [],
            "n_loci": n}  # fmt: skip


def compare(pitfall_store: str, numpy_store: str) -> dict[str, Any]:
    """Whether the two cubes hold the same labels (NaN where NaN), one cell type at a time."""
    import xarray as xr

    from pitfall.cube import open_cube

    a = open_cube(pitfall_store)
    b = xr.open_zarr(numpy_store)
    same = {}
    for ct in b["cell_type"].values:
        x = a["label"].sel(cell_type=str(ct)).values
        y = b["label"].sel(cell_type=ct).values
        same[str(ct)] = bool(np.array_equal(x, y, equal_nan=True))
    return {"same": same, "seconds": 0.0, "driver_mb": _peak_mb(), "workers_mb": []}


def _child(
    kind: str, manifest: str, store: str, workers: int | None, other: str = ""
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--manifest", manifest, "--store", store,
           "--other", other]  # fmt: skip
    if workers is not None:
        cmd += ["--workers", str(workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith(MARK))
    return json.loads(line[len(MARK) :])


# ----------------------------------------------------------------------------- driver


def _row(name: str, r: dict[str, Any]) -> str:
    workers = ", ".join(f"{w:.0f}" for w in r["workers_mb"]) or "-"
    return f"| {name} | {r['n_loci']:,} | {r['seconds']:.1f} | {r['driver_mb']:.0f} | {workers} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    ap.add_argument("--cubes", default="dream,tiling", help="dream and/or tiling")
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="pitfall build's local worker processes (default: its own choice)",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--manifest", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--store", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--other", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "pitfall":
        print(MARK + json.dumps(run_pitfall(args.manifest, args.store, args.workers)), flush=True)
        return
    if args.child == "numpy":
        print(MARK + json.dumps(run_numpy(args.manifest, args.store)), flush=True)
        return
    if args.child == "compare":
        print(MARK + json.dumps(compare(args.store, args.other)), flush=True)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-label-build-"))
    print(f"machine load before: {Path('/proc/loadavg').read_text().split()[:3]}")
    print("| build | bins | seconds | driver peak MB | worker peaks MB |")
    print("| --- | --- | --- | --- | --- |")
    results: dict[str, Any] = {}
    for kind in [k.strip() for k in args.cubes.split(",") if k.strip()]:
        manifest = str(write_manifest(kind, args.data, work / kind))
        cube, zarr = str(work / f"{kind}-cube"), str(work / f"{kind}-numpy.zarr")
        p = results[f"{kind} pitfall"] = _child("pitfall", manifest, cube, args.workers)
        print(_row(f"{kind}: pitfall build", p), flush=True)
        q = results[f"{kind} numpy"] = _child("numpy", manifest, zarr, 1)
        print(_row(f"{kind}: numpy + to_zarr", q), flush=True)
        same = _child("compare", manifest, cube, 1, zarr)["same"]
        results[f"{kind} same labels"] = same
        largest = max([p["driver_mb"], *p["workers_mb"]])
        print(
            f"{kind}: pitfall / numpy time = {p['seconds'] / q['seconds']:.2f} (target <= 3); "
            f"largest pitfall process {largest:.0f} MB (target <= 1024); numpy process "
            f"{q['driver_mb']:.0f} MB; labels identical in {sum(same.values())} of "
            f"{len(same)} lines",
            flush=True,
        )
    print(f"machine load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
