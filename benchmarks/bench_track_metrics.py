"""The imputation metrics of one 10-million-bin track: block statistics vs in-memory numpy.

Run: ``.venv/bin/python benchmarks/bench_track_metrics.py [--bins 10000000] [--repeats 3]``

Data: an observed track ``arcsinh(gamma(0.4, 3))`` and a predicted one (observed + normal
noise), both float32 as the cube stores them; promoter, gene-body and enhancer masks (runs
of 10 bins); a float32 variance track; 1 Mb blocks of 5,000 bins of 200 bp. The nine
metrics of :mod:`pitfall.track_metrics` by:

- ``naive``, the anchor: :func:`pitfall.track_metrics.track_metrics_naive`, the
  straightforward in-memory numpy implementation (float64 copies of the tracks,
  ``scipy.stats.spearmanr``, ``np.sort`` for the top-1% thresholds);
- ``fast``: :func:`pitfall.track_metrics.track_metrics`, the chunked Numba kernels over
  per-block sufficient statistics;
- ``fast + bootstrap``: :func:`pitfall.track_metrics.block_statistics` once, then the point
  estimate and 200 block-bootstrap replicates (multinomial block counts ``W``,
  ``metrics_from_statistics(W @ S)``).

Each runs in a fresh subprocess: build the inputs, one warm-up call (Numba cache load), then
the peak RSS is reset (``/proc/self/clear_refs``) and the median wall time of ``--repeats``
calls is taken. Memory: **peak RSS during the timed calls minus the RSS just before them**
(``VmHWM - VmRSS`` from ``/proc/self/status``), so the inputs, the imports and the compiled
kernels are not counted; also the ``tracemalloc`` peak of one more call (numpy's
allocations only, Numba's own invisible to it). The fast path's metrics must agree with the
anchor's to 1e-9 relative or the script exits with status 1. Targets: fast time <= 0.5x and
peak memory <= 0.25x the anchor's. The machine load is printed first: compare ratios
measured in one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_kernels import median_seconds  # noqa: E402

from pitfall import track_metrics as tm  # noqa: E402

BINS_PER_BLOCK = 5_000  # 1 Mb of 200 bp bins
REPLICATES = 200
MARK = "RESULT "
VARIANTS = ("naive", "fast", "fast + bootstrap")


def make_inputs(n: int, seed: int = 0) -> dict:
    """The tracks, masks, variance and blocks, built chunk by chunk (low temporary peak)."""
    rng = np.random.default_rng(seed)
    y_true = np.empty(n, dtype=np.float32)
    y_pred = np.empty(n, dtype=np.float32)
    variance = np.empty(n, dtype=np.float32)
    step = 1_000_000
    for s in range(0, n, step):
        m = min(step, n - s)
        y_true[s : s + m] = np.arcsinh(rng.gamma(0.4, 3.0, m))
        y_pred[s : s + m] = y_true[s : s + m] + rng.normal(0.0, 0.5, m)
        variance[s : s + m] = rng.gamma(1.0, 0.2, m)
    runs = -(-n // 10)
    regions = {
        kind: np.repeat(rng.random(runs) < p, 10)[:n]
        for kind, p in (("prom", 0.03), ("gene", 0.4), ("enh", 0.06))
    }
    blocks = np.arange(n, dtype=np.int64) // BINS_PER_BLOCK
    return {
        "y_true": y_true,
        "y_pred": y_pred,
        "regions": regions,
        "variance": variance,
        "blocks": blocks,
        "n_blocks": int(blocks[-1]) + 1,
    }


def variant_call(name: str, data: dict) -> Callable[[], dict]:
    """The call measured for one variant; it returns the point estimates."""
    yt, yp = data["y_true"], data["y_pred"]
    regions, variance = data["regions"], data["variance"]
    if name == "naive":
        return lambda: tm.track_metrics_naive(yt, yp, regions=regions, variance=variance)
    if name == "fast":
        return lambda: tm.track_metrics(
            yt, yp, blocks=data["blocks"], regions=regions, variance=variance
        )
    n_blocks = data["n_blocks"]
    weights = np.random.default_rng(1).multinomial(
        n_blocks, np.full(n_blocks, 1 / n_blocks), size=REPLICATES
    )

    def bootstrap() -> dict:
        stats = tm.block_statistics(
            yt, yp, data["blocks"], n_blocks, regions=regions, variance=variance
        )
        replicates = tm.metrics_from_statistics(weights @ stats)
        assert all(v.shape == (REPLICATES,) for v in replicates.values())
        return tm.metrics_from_statistics(stats.sum(axis=0))

    return bootstrap


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(name: str, n: int, repeats: int) -> dict:
    data = make_inputs(n)
    call = variant_call(name, data)
    metrics = call()  # warm-up: Numba cache load, page faults of the inputs
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (the peak RSS) to the current RSS
    before = _status_kib("VmRSS")
    seconds = median_seconds(call, repeats=repeats) if repeats else math.nan
    peak_rss = _status_kib("VmHWM") - before
    tracemalloc.start()
    call()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "seconds": seconds,
        "peak_mib": peak_rss / 1024,
        "traced_mib": traced_peak / 2**20,
        "metrics": metrics,
    }


def spawn(name: str, n: int, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--bins", str(n), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"{name} child failed with status {proc.returncode}")
    return json.loads(lines[-1][len(MARK) :])


def agree(a: dict, b: dict, rtol: float = 1e-9) -> list[str]:
    bad = []
    for k in tm.METRICS:
        x, y = a[k], b[k]
        if not (
            math.isclose(x, y, rel_tol=rtol, abs_tol=rtol) or (math.isnan(x) and math.isnan(y))
        ):
            bad.append(f"{k}: {x!r} vs {y!r}")
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bins", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args.bins, args.repeats)
        print(MARK + json.dumps(result))
        return

    print(f"load average {os.getloadavg()}; {args.bins:,} bins, {args.repeats} repeats")
    t0 = time.perf_counter()
    results = {name: spawn(name, args.bins, args.repeats) for name in VARIANTS}
    naive = results["naive"]
    print(
        f"\n{'variant':18s} {'median s':>9s} {'peak MiB':>9s} {'traced MiB':>11s}"
        f" {'time/naive':>11s} {'mem/naive':>10s}"
    )
    for name, r in results.items():
        print(
            f"{name:18s} {r['seconds']:9.3f} {r['peak_mib']:9.1f} {r['traced_mib']:11.1f}"
            f" {r['seconds'] / naive['seconds']:11.3f} {r['peak_mib'] / naive['peak_mib']:10.3f}"
        )
    print(
        "\npeak MiB: peak RSS of the timed calls minus the RSS before them;"
        " traced MiB: tracemalloc peak of one call (numpy allocations)"
    )
    print("targets: fast time/naive <= 0.5, fast mem/naive <= 0.25")
    print(f"load average {os.getloadavg()}; {time.perf_counter() - t0:.0f} s in all")
    bad = agree(results["fast"]["metrics"], naive["metrics"])
    bad += agree(results["fast + bootstrap"]["metrics"], naive["metrics"])
    if bad:
        print("DISAGREE with the anchor:\n  " + "\n  ".join(bad))
        sys.exit(1)
    print("fast path and anchor agree to 1e-9 relative on every metric")


if __name__ == "__main__":
    main()
