"""The audit at the scale of a genome in 200 bp bins: each CTCF line of the 14.4 M-bin cube.

For each of the cube's seven cell lines in turn, the predictions are what a memorising model
outputs: the mean label of the six other lines plus Gaussian noise (sd 0.05), float32, at
every bin. Two paths, each in its own subprocess (peak memory is ``ru_maxrss`` of the child
minus that of a ``floor`` child that only imports the libraries, opens the cube and maps
the predictions):

- ``audit``: :func:`pitfall.audit.audit_predictions` of one line's predictions (a
  DataArray over every bin, integer locus positions) with ``--bootstrap`` block-bootstrap
  replicates (1 Mb blocks): every AP with its interval, the baseline with its ties broken
  at random, the within-group permutation tests and their correction;
- ``chunked AP`` (the anchor): the AP of the same predictions against the same labels in
  one chunked pass, :func:`pitfall.evaluate.average_precision` on the cube's lazy labels
  (per-chunk counts of each distinct score, merged), which is what scoring a model costs
  before any audit.

The predictions are computed once, chunk by chunk, into ``.npy`` files under ``--work``
(reused by later runs). Times are wall seconds inside the child (imports, cube opening and
mapping the predictions excluded), medians of ``--repeats`` children; ``cpu ratio`` is the
ratio of their CPU seconds (every thread), which other processes on the machine disturb
less than the wall time. ``--loci`` audits N bins only (from chr2 on: the peak files leave
chr1 unlabelled), to see how time and memory grow with the number of loci: with several
sizes, the growth of the audit's peak above the floor per bin between them (its slope).

Usage::

    python benchmarks/bench_audit_scale.py [CUBE] [--targets A549,HepG2] [--repeats 3]
        [--bootstrap 200] [--loci 1000000,4000000,0]
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
from typing import Any

DEFAULT_CUBE = "/tmp/real/store/ctcf"
MARK = "RESULT "


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """User and system time of every thread of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(cube_path: str, work: Path) -> list[str]:
    """Write each line's predictions (float32, every bin) to ``work/<line>.npy``."""
    import numpy as np

    from pitfall.cube import open_cube

    ds = open_cube(cube_path)
    lines = [str(c) for c in ds["cell_type"].values]
    work.mkdir(parents=True, exist_ok=True)
    todo = [c for c in lines if not (work / f"{c}.npy").exists()]
    if not todo:
        return lines
    n = ds.sizes["locus"]
    rng = np.random.default_rng(0)
    out = {c: np.lib.format.open_memmap(work / f".{c}.npy", "w+", np.float32, (n,)) for c in todo}
    step = 1 << 20
    for a in range(0, n, step):
        lab = np.asarray(ds["label"].isel(locus=slice(a, a + step)).values, dtype=np.float32)
        total = np.nansum(lab, axis=0)
        count = np.sum(np.isfinite(lab), axis=0)
        for c in todo:
            i = lines.index(c)
            own = np.nan_to_num(lab[i])
            mean = (total - own) / np.maximum(count - np.isfinite(lab[i]), 1)
            out[c][a : a + step] = mean + rng.normal(0, 0.05, mean.size).astype(np.float32)
    for c in todo:
        out[c].flush()
        del out[c]
        os.replace(work / f".{c}.npy", work / f"{c}.npy")
    return lines


def cube_bins(cube_path: str) -> int:
    """The cube's number of bins."""
    from pitfall.cube import open_cube

    return int(open_cube(cube_path).sizes["locus"])


def _loci(ds, n_loci: int) -> slice:
    """Every bin, or N bins from chr2 on (the peak files leave chr1 unlabelled).

    The first bin past chr1 is found a stored chunk of names at a time, so that the
    child's peak holds no more names than one chunk's.
    """
    import numpy as np

    n = ds.sizes["locus"]
    if n_loci <= 0:
        return slice(0, n)
    step, first = 1 << 18, 0
    for a in range(0, n, step):
        names = np.asarray(ds["chrom"].isel(locus=slice(a, a + step)).values).astype(object)
        past = np.flatnonzero(names != "chr1")
        if past.size:
            first = a + int(past[0])
            break
    return slice(first, min(first + n_loci, n))


def _predictions(work: Path, target: str, loci: slice):
    import numpy as np
    import xarray as xr

    values = np.load(work / f"{target}.npy", mmap_mode="r")
    return xr.DataArray(
        values[None, loci], dims=("cell_type", "locus"),
        coords={"cell_type": [target], "locus": np.arange(loci.start, loci.stop)},
    )  # fmt: skip


def child(path: str, cube_path: str, work: Path, target: str, n_loci: int, boot: int) -> dict:
    import warnings

    from pitfall.cube import open_cube

    ds = open_cube(cube_path)
    loci = _loci(ds, n_loci)
    pred = _predictions(work, target, loci)
    if path == "floor":
        from pitfall import audit, evaluate  # noqa: F401

        return {"seconds": 0.0}
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    if path == "audit":
        from pitfall.audit import AuditWarning, audit_predictions

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AuditWarning)  # unlabelled bins: left out
            rep = audit_predictions(pred, ds, n_bootstrap=boot)
        row = rep.summary.iloc[0]
        result = {"ap": float(row["ap_model"]), "ci": list(row["ap_model_ci"]),
                  "call": rep.call, "groups": int(row["n_groups_tested"])}  # fmt: skip
    else:
        from pitfall import evaluate

        labels = ds["label"].sel(cell_type=target).isel(locus=loci)
        score = labels.copy(data=__import__("dask.array").array.from_array(
            pred.values[0], chunks=labels.data.chunks))  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = {"ap": float(evaluate.average_precision(labels, score))}
    result["seconds"] = time.perf_counter() - t0
    result["cpu"] = _cpu_seconds() - cpu0
    return result


def run_child(args: argparse.Namespace, path: str, target: str, n_loci: int) -> dict:
    cmd = [sys.executable, __file__, args.cube, "--child", path, "--target", target,
           "--n-loci", str(n_loci), "--bootstrap", str(args.bootstrap), "--work", str(args.work)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith(MARK))
    return json.loads(line[len(MARK) :])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cube", nargs="?", default=DEFAULT_CUBE)
    ap.add_argument("--targets", default="", help="comma-separated lines (default: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--loci", default="0", help="comma-separated bin counts (0: every bin)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_audit_scale"))
    ap.add_argument("--child", default=None)
    ap.add_argument("--target", default=None)
    ap.add_argument("--n-loci", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        res = child(args.child, args.cube, args.work, args.target, args.n_loci, args.bootstrap)
        res["peak_mb"] = _peak_rss_mb()
        print(MARK + json.dumps(res), flush=True)
        return
    lines = prepare(args.cube, args.work)
    targets = [t for t in args.targets.split(",") if t] or lines
    sizes = [int(x) for x in args.loci.split(",")]
    print(f"cube {args.cube}: {len(lines)} lines; {args.bootstrap} bootstrap replicates; "
          f"medians of {args.repeats} children")  # fmt: skip
    print(f"{'bins':>10} {'line':>9} {'AP':>7} {'anchor s':>9} {'audit s':>8} {'ratio':>6} "
          f"{'cpu ratio':>9} {'anchor MB':>10} {'audit MB':>9}  call")  # fmt: skip
    totals: dict[str, float] = {"anchor": 0.0, "audit": 0.0}
    peaks: dict[str, float] = {"anchor": 0.0, "audit": 0.0}
    above: dict[int, float] = {}  # bins -> the audit's largest peak above the floor
    for n_loci in sizes:
        floor = run_child(args, "floor", targets[0], n_loci)["peak_mb"]
        n_bins = n_loci if n_loci > 0 else int(cube_bins(args.cube))
        for target in targets:
            runs: dict[str, list[dict[str, Any]]] = {"anchor": [], "audit": []}
            for _ in range(args.repeats):
                for path in ("anchor", "audit"):
                    runs[path].append(run_child(args, path, target, n_loci))
            med = {p: statistics.median(r["seconds"] for r in runs[p]) for p in runs}
            cpu = {p: statistics.median(r["cpu"] for r in runs[p]) for p in runs}
            mem = {p: max(r["peak_mb"] for r in runs[p]) - floor for p in runs}
            for p in runs:
                peaks[p] = max(peaks[p], mem[p] + floor)
            above[n_bins] = max(above.get(n_bins, 0.0), mem["audit"])
            a = runs["audit"][0]
            if abs(a["ap"] - runs["anchor"][0]["ap"]) > 1e-9:
                sys.exit(f"{target}: the audit's AP {a['ap']} differs from the anchor's")
            if n_loci == sizes[-1]:
                totals["anchor"] += med["anchor"]
                totals["audit"] += med["audit"]
            shown = n_loci if n_loci > 0 else "all"
            print(f"{shown:>10} {target:>9} {a['ap']:7.4f} {med['anchor']:9.2f} "
                  f"{med['audit']:8.2f} {med['audit'] / med['anchor']:6.2f} "
                  f"{cpu['audit'] / cpu['anchor']:9.2f} "
                  f"{mem['anchor']:10.0f} {mem['audit']:9.0f}  {a['call']}", flush=True)  # fmt: skip
        print(f"  floor (imports, cube, mapped predictions): {floor:.0f} MB; largest whole "
              f"process: anchor {peaks['anchor']:.0f} MB, audit {peaks['audit']:.0f} MB")  # fmt: skip
    bins = sorted(above)
    for small, large in zip(bins, bins[1:], strict=False):
        slope = (above[large] - above[small]) * 2**20 / (large - small)
        print(f"audit peak above the floor: {above[small]:.0f} MB at {small:,} bins, "
              f"{above[large]:.0f} MB at {large:,}: {slope:.1f} bytes per bin")  # fmt: skip
    if totals["anchor"]:
        print(
            f"every line: anchor {totals['anchor']:.1f} s, audit {totals['audit']:.1f} s, "
            f"ratio {totals['audit'] / totals['anchor']:.2f}"
        )


if __name__ == "__main__":
    main()
