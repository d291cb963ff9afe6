"""Average-activity baseline and partitioned evaluation on the CTCF cube: chunked vs in memory.

For each of the cube's cell lines held out in turn (a cross-cell-type split over every
chromosome of the cube), the baseline is the mean label of the other lines, scored by its
average precision (AP) on the held-out line's labels, overall and within each group of bins
bound in 0..n of the other lines (the paper's partitioned evaluation). Two implementations:

- ``chunked``: the library, lazily over the cube's chunks (262,144 bins per task):
  :class:`pitfall.baselines.AverageActivity` on a :class:`pitfall.splits.Split`,
  :func:`pitfall.baselines.score_predictions` (AP through
  :func:`pitfall.evaluate.average_precision_dask`), and
  :func:`pitfall.evaluate.partition_by_activity` (lazy) +
  :func:`pitfall.evaluate.partitioned_ap_dask` for the groups. Dask's threaded
  scheduler (``--workers``), no cluster.
- ``in memory``: the straightforward version: ``ds.label.values`` into numpy, ``nanmean``
  of the other lines, NaN labels dropped, :func:`sklearn.metrics.average_precision_score`
  overall and per group.

Each path runs in its own subprocess so peak memory is per path (``ru_maxrss`` of the child;
a ``floor`` child that only imports the libraries and opens the cube gives the baseline that
both pay). Times are wall seconds of the evaluation inside the child (imports and cube
opening excluded), median of ``--repeats`` children. Every AP (overall and per group, every
line) must agree across the paths to 1e-9, or the script exits with status 1.

Usage::

    python benchmarks/bench_ctcf_eval.py [CUBE] [--repeats 3] [--workers 2]
        [--targets A549,HepG2]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_CUBE = "/tmp/real/store/ctcf"
TOL = 1e-9
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
    """The library's lazy path; returns per target the AP and the per-group APs."""
    import dask

    from pitfall import baselines, evaluate, splits
    from pitfall.cube import open_cube

    ds = open_cube(cube_path)
    t0 = time.perf_counter()
    chroms = splits._cube_chroms(ds)
    cell_types = [str(c) for c in ds["cell_type"].values]
    results: dict[str, Any] = {}
    with dask.config.set(scheduler="threads", num_workers=workers):
        for target in targets:
            others = tuple(c for c in cell_types if c != target)
            split = splits.Split(
                train_cell_types=others,
                train_chroms=chroms,
                valid_cell_types=(),
                valid_chroms=chroms,
                test_cell_types=(target,),
                test_chroms=chroms,
                setting="cross-cell-type",
            )
            train, test = split.train(ds), split.test(ds)
            scores = baselines.AverageActivity(ds).fit(train).predict(test)
            scored = baselines.score_predictions(test, scores)
            # Same treatment of unscorable bins (no other line labelled) as score_predictions.
            label = test["label"].sel(cell_type=target)
            score = scores.sel(cell_type=target)
            label = label.where(score.notnull())
            groups = evaluate.partition_by_activity(train["label"])
            by_group = evaluate.partitioned_ap_dask(label, score.fillna(0.0), groups)
            results[target] = {
                "ap": scored[target],
                "n_unscored": scored["n_unscored"],
                "groups": {str(g): v for g, v in by_group.items()},
            }
    return {"seconds": time.perf_counter() - t0, "results": results}


def run_in_memory(cube_path: str, targets: list[str]) -> dict:
    """The straightforward numpy + scikit-learn version, whole label matrix in memory."""
    import warnings

    import numpy as np
    from sklearn.metrics import average_precision_score

    from pitfall.cube import open_cube

    ds = open_cube(cube_path)
    t0 = time.perf_counter()
    labels = ds["label"].values
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
    return {"seconds": time.perf_counter() - t0, "results": results}


def child(args: argparse.Namespace) -> None:
    targets = args.targets.split(",") if args.targets else _cell_types(args.cube)
    if args.child == "floor":
        out = run_floor(args.cube)
    elif args.child == "chunked":
        out = run_chunked(args.cube, targets, args.workers)
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
        "--child", choices=["floor", "chunked", "in-memory"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not Path(args.cube).is_dir():
        sys.exit(f"{args.cube}: no cube (build it with pipelines/real_ctcf.py)")

    floor = spawn("floor", args)
    runs: dict[str, list[dict]] = {"chunked": [], "in-memory": []}
    for _ in range(args.repeats):
        for mode in runs:  # interleaved, so a change in machine load hits both paths
            runs[mode].append(spawn(mode, args))
    summary = {
        mode: {
            "seconds": statistics.median(r["seconds"] for r in rs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
            "all_seconds": [round(r["seconds"], 1) for r in rs],
        }
        for mode, rs in runs.items()
    }
    chunked, in_memory = runs["chunked"][0]["results"], runs["in-memory"][0]["results"]
    worst, bad = compare(chunked, in_memory)
    for rs in runs.values():  # every repeat must give the same numbers
        for r in rs[1:]:
            w, b = compare(r["results"], rs[0]["results"])
            worst, bad = max(worst, w), bad + b

    print(
        f"cube {args.cube}: lines {', '.join(chunked)}; dask threads {args.workers}; "
        f"median of {args.repeats} run(s) per path"
    )
    print(f"\n{'line':<10}{'AP':>10}{'unscored':>10}  AP per group (bound in n of the others)")
    for target, r in chunked.items():
        groups = "  ".join(f"{g}:{_nan(v):.4f}" for g, v in r["groups"].items())
        print(f"{target:<10}{r['ap']:>10.4f}{r['n_unscored']:>10}  {groups}")
    print(f"\n{'path':<12}{'seconds':>9}{'peak RSS MB':>13}  runs (s)")
    print(f"{'floor':<12}{'':>9}{floor['peak_rss_mb']:>13.0f}  imports + open_cube only")
    for mode, s in summary.items():
        print(f"{mode:<12}{s['seconds']:>9.1f}{s['peak_rss_mb']:>13.0f}  {s['all_seconds']}")
    c, m = summary["chunked"], summary["in-memory"]
    print(
        f"\ntime ratio chunked / in memory: {c['seconds'] / m['seconds']:.2f}; peak RSS ratio: "
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
