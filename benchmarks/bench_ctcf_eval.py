"""Average-activity baseline and partitioned evaluation on the CTCF cube: chunked vs in memory.

For each of the cube's cell lines held out in turn (a cross-cell-type split over every
chromosome of the cube), the baseline is the mean label of the other lines, scored by its
average precision (AP) on the held-out line's labels, overall and within each group of bins
bound in 0..n of the other lines (the paper's partitioned evaluation). Two implementations:

- ``chunked``: the library, lazily over the cube's chunks (262,144 bins per task):
  :func:`pitfall.evaluate.average_activity_evaluation`, one pass in which each task reads
  the labels of all seven lines at one chunk of bins once and counts, for every held-out
  line, the bins per (its label, number of other lines bound, number labelled): the
  baseline's score, the group and whether the bin is scored all follow from those two
  numbers, so every AP, per-group AP and unscored count comes exactly from the summed
  counts. Dask's threaded scheduler (``--workers``), no cluster.
- ``in memory``: the straightforward version: ``ds.label.values`` into numpy, ``nanmean``
  of the other lines, NaN labels dropped, :func:`sklearn.metrics.average_precision_score`
  overall and per group.

Each path runs in its own subprocess so peak memory is per path (``ru_maxrss`` of the child;
a ``floor`` child that only imports the libraries and opens the cube gives the baseline that
both pay). Times are wall seconds of the evaluation inside the child (imports and cube
opening excluded), median of ``--repeats`` children. Every AP (overall and per group, every
line) must agree across the paths to 1e-12, and the unscored counts exactly, or the
script exits with status 1.

Usage::

    python benchmarks/bench_ctcf_eval.py [CUBE] [--repeats 3] [--workers 2]
        [--targets A549,HepG2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_CUBE = "/tmp/real/store/ctcf"
TOL = 1e-12
MARK = "RESULT "


# ----------------------------------------------------------------------------- children


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_floor(cube_path: str) -> dict[str, Any]:
    """Import what the paths import and open the cube: the memory both pay anyway."""
    import sklearn.metrics  # noqa: F401

    from pitfall import baselines, evaluate, splits  # noqa: F401
    from pitfall.cube import open_cube

    open_cube(cube_path)
    return {"seconds": 0.0, "results": {}}


def run_chunked(cube_path: str, targets: list[str], workers: int) -> dict:
    """The library's lazy one-pass path; returns per target the AP and the per-group APs."""
    import dask

    from pitfall import evaluate
    from pitfall.cube import open_cube

    ds = open_cube(cube_path)
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=workers):
        # Every line of the cube, every chromosome: each target's baseline averages the
        # six others, as AverageActivity on a cross-cell-type Split over the cube's
        # chromosomes would.
        ev = evaluate.average_activity_evaluation(ds["label"], targets)
    ap, by_group, n_unscored = ev.ap, ev.ap_by_group, ev.n_unscored
    results = {
        target: {
            "ap": float(ap[target]),
            "n_unscored": int(n_unscored[target]),
            "groups": {str(g): _none_if_nan(v) for g, v in by_group.loc[target].items()},
        }
        for target in targets
    }
    return {"seconds": time.perf_counter() - t0, "results": results}


def run_read(cube_path: str, workers: int) -> dict:
    """Only read every label chunk once, in the chunked path's tasks: its I/O floor."""
    import dask

    from pitfall.cube import open_cube

    ds = open_cube(cube_path)
    t0 = time.perf_counter()
    blocks = ds["label"].data.to_delayed()
    nbytes = dask.delayed(lambda *b: sum(x.nbytes for x in b), pure=True)
    with dask.config.set(scheduler="threads", num_workers=workers):
        dask.compute(*[nbytes(*blocks[:, j]) for j in range(blocks.shape[1])])
    return {"seconds": time.perf_counter() - t0, "results": {}}


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def run_in_memory(cube_path: str, targets: list[str]) -> dict:
    """The straightforward numpy + scikit-learn version, whole label matrix in memory."""
    import warnings

    import numpy as np
    from sklearn.metrics import average_precision_score

    from pitfall.cube import open_cube

    ds = open_cube(cube_path)
    t0 = time.perf_counter()
    labels = ds["label"].values
    read_seconds = time.perf_counter() - t0
    cell_types = [str(c) for c in ds["cell_type"].values]
    results: dict[str, Any] = {}
    for target in targets:
        i = cell_types.index(target)
        y = labels[i]
        others = np.delete(labels, i, axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins: mean is NaN
            score = np.nanmean(others, axis=0)
        known = ~np.isnan(y) & ~np.isnan(score)
        n_active = np.count_nonzero(others == 1, axis=0)
        y_k, s_k, g_k = y[known], score[known], n_active[known]
        groups = {}
        for g in np.unique(g_k):
            m = g_k == g
            has_pos = np.any(y_k[m] == 1)
            groups[str(g)] = float(average_precision_score(y_k[m], s_k[m])) if has_pos else None
        results[target] = {
            "ap": float(average_precision_score(y_k, s_k)),
            "n_unscored": int(np.count_nonzero(~np.isnan(y) & np.isnan(score))),
            "groups": groups,
        }
    return {"seconds": time.perf_counter() - t0, "read_seconds": read_seconds, "results": results}


def child(args: argparse.Namespace) -> None:
    targets = args.targets.split(",") if args.targets else _cell_types(args.cube)
    if args.child == "floor":
        out = run_floor(args.cube)
    elif args.child == "chunked":
        out = run_chunked(args.cube, targets, args.workers)
    elif args.child == "read":
        out = run_read(args.cube, args.workers)
    else:
        out = run_in_memory(args.cube, targets)
    out["peak_rss_mb"] = _peak_rss_mb()
    print(MARK + json.dumps(out, default=_json_nan), flush=True)


def _json_nan(x: Any) -> Any:
    return float(x)


def _cell_types(cube_path: str) -> list[str]:
    from pitfall.cube import open_cube

    return [str(c) for c in open_cube(cube_path)["cell_type"].values]


# ------------------------------------------------------------------------------- parent


def spawn(mode: str, args: argparse.Namespace) -> dict:
    """Run one path in a fresh interpreter and parse its result line."""
    cmd = [sys.executable, __file__, args.cube, "--child", mode, "--workers", str(args.workers)]
    if args.targets:
        cmd += ["--targets", args.targets]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"{mode} child failed with status {proc.returncode}")
    return json.loads(lines[-1][len(MARK) :])


def _load(avg: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def compare(chunked: dict, in_memory: dict) -> tuple[float, list[str]]:
    """Largest AP difference over every line and group, and the disagreements."""
    worst, bad = 0.0, []
    for target, a in chunked.items():
        b = in_memory[target]
        pairs = [("all", a["ap"], b["ap"])]
        for g in sorted(set(a["groups"]) | set(b["groups"]), key=int):
            pairs.append((g, _nan(a["groups"].get(g)), _nan(b["groups"].get(g))))
        for g, x, y in pairs:
            if math.isnan(x) and math.isnan(y):
                continue
            diff = abs(x - y) if not (math.isnan(x) or math.isnan(y)) else math.inf
            worst = max(worst, diff)
            if diff > TOL:
                bad.append(f"{target} group {g}: chunked {x!r} vs in memory {y!r}")
        if a["n_unscored"] != b["n_unscored"]:
            bad.append(f"{target}: n_unscored {a['n_unscored']} vs {b['n_unscored']}")
    return worst, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cube", nargs="?", default=DEFAULT_CUBE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="dask threads (chunked path)")
    parser.add_argument("--targets", default="", help="comma-separated lines (default: all)")
    parser.add_argument(
        "--child", choices=["floor", "chunked", "in-memory", "read"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not Path(args.cube).is_dir():
        sys.exit(f"{args.cube}: no cube (build it with pipelines/real_ctcf.py)")

    load_before = os.getloadavg()
    floor = spawn("floor", args)
    runs: dict[str, list[dict]] = {"chunked": [], "in-memory": [], "read": []}
    for _ in range(args.repeats):
        for mode in runs:  # interleaved, so a change in machine load hits every path
            runs[mode].append(spawn(mode, args))
    load_after = os.getloadavg()
    summary = {
        mode: {
            "seconds": statistics.median(r["seconds"] for r in rs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
            "all_seconds": [round(r["seconds"], 2) for r in rs],
        }
        for mode, rs in runs.items()
    }
    chunked, in_memory = runs["chunked"][0]["results"], runs["in-memory"][0]["results"]
    worst, bad = compare(chunked, in_memory)
    for mode, rs in runs.items():  # every repeat must give the same numbers
        if mode == "read":
            continue
        for r in rs[1:]:
            w, b = compare(r["results"], rs[0]["results"])
            worst, bad = max(worst, w), bad + b

    print(
        f"cube {args.cube}: lines {', '.join(chunked)}; dask threads {args.workers}; "
        f"median of {args.repeats} run(s) per path; load average (1, 5, 15 min) "
        f"{_load(load_before)} before, {_load(load_after)} after, on {os.cpu_count()} CPUs"
    )
    print(f"\n{'line':<10}{'AP':>10}{'unscored':>10}  AP per group (bound in n of the others)")
    for target, r in chunked.items():
        groups = "  ".join(f"{g}:{_nan(v):.4f}" for g, v in r["groups"].items())
        print(f"{target:<10}{r['ap']:>10.4f}{r['n_unscored']:>10}  {groups}")
    print(f"\n{'path':<12}{'seconds':>9}{'peak RSS MB':>13}  runs (s)")
    print(f"{'floor':<12}{'':>9}{floor['peak_rss_mb']:>13.0f}  imports + open_cube only")
    notes = {
        "chunked": "one pass: read + count + merge + APs",
        "in-memory": "ds.label.values + numpy + scikit-learn",
        "read": "chunked path's tasks reading each chunk, nothing else",
    }
    for mode, s in summary.items():
        print(
            f"{mode:<12}{s['seconds']:>9.2f}{s['peak_rss_mb']:>13.0f}  {s['all_seconds']}  "
            f"{notes[mode]}"
        )
    c, m, r = summary["chunked"], summary["in-memory"], summary["read"]
    m_read = statistics.median(x["read_seconds"] for x in runs["in-memory"])
    print(
        f"\nchunked: {r['seconds']:.2f} s reading, {c['seconds'] - r['seconds']:.2f} s the "
        f"rest; in memory: {m_read:.2f} s reading (ds.label.values), "
        f"{m['seconds'] - m_read:.2f} s the rest"
    )
    print(
        f"time ratio chunked / in memory: {c['seconds'] / m['seconds']:.2f}; peak RSS ratio: "
        f"{c['peak_rss_mb'] / m['peak_rss_mb']:.2f}; above the floor: "
        f"{c['peak_rss_mb'] - floor['peak_rss_mb']:.0f} MB vs "
        f"{m['peak_rss_mb'] - floor['peak_rss_mb']:.0f} MB"
    )
    n_values = sum(1 + len(r["groups"]) for r in chunked.values())
    print(f"AP agreement: {n_values} values, max |diff| = {worst:.2e} (tolerance {TOL:g})")
    if bad:
        print("DISAGREEMENT:\n  " + "\n  ".join(bad))
        sys.exit(1)


if __name__ == "__main__":
    main()
