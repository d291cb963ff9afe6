"""Parallel speed-up of ``pitfall build``: 1, 2 and more workers, and where the time goes.

Run: ``python benchmarks/bench_build_workers.py [--repeats 3] [--warm-builds 5] [--bins 1000000] [--pairs 12]``

Two builds, each timed (median of ``--repeats``) in this process with a fresh local cluster
per run (the one ``pitfall build --workers N`` starts, :func:`pitfall.cluster.dask_client`),
three ways: counting the cluster's start (whose workers import the build's modules as they
start, :data:`pitfall.featurize.WORKER_MODULES`), on the started cluster, and the same build
again on those warm workers (the median of
``--warm-builds`` builds: in the first of them a worker may still run a task it has not run
before; on the demo preset with 2 workers the first took 0.85-0.94 s, the later ones about
0.75 s):

1. the demo preset with ``--demo-cell-types`` (default 4, then all 18; 3,000 genes x 5
   marks, FASTA and RPKM): in this process (``workers=0``, what ``pitfall build`` picks for a
   build this small), 1, 2 and 4 worker processes (4 on this 2-core machine oversubscribes: the "more workers"
   case, simulated);
2. a signal cube of ``--bins`` 200 bp bins x 4 cell types x 3 marks (synthetic bigWigs from
   ``bench_build_scale.write_inputs``), 1, 2 and 4 worker processes.

For the 2-worker run of each, the Dask task stream is summed per task function (seconds of
worker time), and a Dask performance report is written next to the inputs.

Speed-up = time(1 worker) / time(n workers). The anchor is this machine's own ceiling: on
the same warm workers, n tasks of the same pure-Python CPU work (one per worker) against one
(:func:`_parallel_work`; speed-up = n x time(1 task) / time(n tasks), alternating pairs).
A build stays below it: two busy cores of a VM run slower than one (shared turbo, caches
and host), and the driver (planning, Dask's scheduler, commits) shares the same cores.
Last, ``--pairs`` builds of the last demo preset alternate between a live 1-worker and a live
2-worker cluster (:func:`_paired`): each pair's ratio compares builds seconds apart, where
the tables compare clusters timed minutes apart on a machine whose speed drifts.
Guarded by ``if __name__ == "__main__"``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def _timed_build(
    manifest: Path, store: Path, workers: int, profile: Path | None, warm_builds: int
) -> dict[str, Any]:
    from dask.utils import key_split
    from distributed import get_task_stream, performance_report

    from pitfall import featurize
    from pitfall.cluster import dask_client

    def again(**how: Any) -> float:
        times = []
        cpu0 = _cpu_seconds()
        for k in range(warm_builds):
            t1 = time.perf_counter()
            featurize.build(manifest, store.with_name(f"{store.name}-again{k}"), progress=False,
                            **how)  # fmt: skip
            times.append(time.perf_counter() - t1)
        cpu1 = _cpu_seconds()
        cpu.update({k: (cpu1[k] - cpu0[k]) / max(1, warm_builds) for k in cpu0})
        return statistics.median(times)

    cpu: dict[str, float] = {}

    t0 = time.perf_counter()
    if workers == 0:
        featurize.build(manifest, store, workers=0, progress=False)
        seconds = time.perf_counter() - t0
        warm = again(workers=0)
        return {
            "seconds": seconds, "build_only": seconds, "warm": warm, "by_task": {}, "cpu": cpu,
            "ceiling": None,
        }  # fmt: skip
    with dask_client(workers=workers, preload=featurize.WORKER_MODULES) as client:
        started = time.perf_counter()
        # the HTML report needs bokeh; the task-stream summary below does not
        has_bokeh = importlib.util.find_spec("bokeh") is not None
        report = performance_report(filename=str(profile)) if profile and has_bokeh else _nothing()
        with report, get_task_stream(client) as stream:
            featurize.build(manifest, store, client=client, progress=False)
        seconds = time.perf_counter() - t0
        by_task: dict[str, float] = defaultdict(float)
        for t in stream.data:
            for part in t.get("startstops", ()):
                if part.get("action") == "compute":
                    by_task[key_split(t["key"])] += part["stop"] - part["start"]
        build_only = time.perf_counter() - started
        # The same build again on these workers: what a long-lived cluster (dask-jobqueue,
        # a notebook's client) costs once its workers have imported pitfall.
        warm = again(client=client)
        ceiling = _parallel_work(client, workers) if workers > 1 else None
    return {
        "seconds": seconds, "build_only": build_only, "warm": warm, "by_task": dict(by_task),
        "cpu": cpu, "ceiling": ceiling,
    }  # fmt: skip


def _busy_loop(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i % 7
    return x


def _parallel_work(client: Any, workers: int, pairs: int = 9, n: int = 3_000_000) -> float:
    """This machine's speed-up ceiling for ``workers`` workers: ``workers`` x the wall time of
    one CPU-bound task (about 0.2 s here) over that of ``workers`` copies submitted at once,
    the median of ``pairs`` alternating pairs on the same workers."""
    client.gather(client.map(_busy_loop, [10] * workers, pure=False))  # shipped to every worker
    ratios = []
    for _ in range(pairs):
        t = time.perf_counter()
        client.gather(client.map(_busy_loop, [n], pure=False))
        one = time.perf_counter() - t
        t = time.perf_counter()
        client.gather(client.map(_busy_loop, [n] * workers, pure=False))
        ratios.append(workers * one / (time.perf_counter() - t))
    return statistics.median(ratios)


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds so far: of the driver, of its worker processes, and of the whole machine.

    The driver is this process: planning, Dask's scheduler and the commits. The machine's
    are the busy seconds of every core, from ``/proc/stat`` (absent elsewhere than Linux).
    """
    import psutil

    me = psutil.Process()
    kids = 0.0
    for child in me.children(recursive=True):
        try:
            kids += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    out = {"driver": sum(me.cpu_times()[:2]), "workers": kids}
    stat = Path("/proc/stat")
    if stat.exists():
        fields = [int(x) for x in stat.read_text().split("\n", 1)[0].split()[1:]]
        out["machine"] = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    return out


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _series(
    name: str, manifest: Path, work: Path, workers: list[int], repeats: int, warm_builds: int
) -> None:
    columns = ("seconds", "build_only", "warm")
    times: dict[str, dict[int, list[float]]] = {c: defaultdict(list) for c in columns}
    ceiling: dict[int, list[float]] = defaultdict(list)
    cpu_of: dict[int, dict[str, float]] = {}
    profile = None
    for r in range(repeats):
        for w in workers:
            prof = work / f"{name}-report.html" if (w == 2 and r == 0) else None
            out = _timed_build(manifest, work / f"{name}-{w}-{r}", w, prof, warm_builds)
            for c in columns:
                times[c][w].append(out[c])
            cpu_of[w] = out["cpu"]  # the last repeat's
            if out["ceiling"] is not None:
                ceiling[w].append(out["ceiling"])
            if prof is not None:
                profile = out
    med = {c: {w: statistics.median(t) for w, t in times[c].items()} for c in columns}
    print(f"\n{name}: median of {repeats} (seconds, speed-up over 1 worker)")
    heads = (
        "with cluster start",
        "on a started cluster",
        f"warm workers (median of {warm_builds})",
    )
    print(f"  {'':<22}" + "".join(f" {h:>26}" for h in heads))
    for w in workers:
        label = "in this process" if w == 0 else f"{w} worker process{'es' if w > 1 else ''}"
        cells = []
        for c in columns:
            base = med[c].get(1)
            ratio = f"x{base / med[c][w]:.2f}" if base else ""
            cells.append(f"{med[c][w]:17.2f} s {ratio:>6}")
        print(f"  {label:<22}" + "".join(f" {x:>26}" for x in cells))
    if ceiling and 1 in med["warm"]:
        print("  the machine's ceiling: n copies of one pure-Python CPU task on n warm workers "
              "against one (speed-up = n x t(1) / t(n)), and the warm build's share of it:")  # fmt: skip
        for w in sorted(ceiling):
            top = statistics.median(ceiling[w])
            build = med["warm"][1] / med["warm"][w]
            print(f"    {w} workers: x{top:.2f}; warm build x{build:.2f} = {build / top:.0%} of it")
    # A build takes at least its CPU seconds over the cores (the driver's too: planning,
    # Dask's scheduler and the commits run on the same cores) and at least its workers' CPU
    # seconds over the workers (one thread each).
    cores = os.cpu_count() or 1
    print(f"  CPU seconds per warm build (last repeat), and the least wall time they allow on "
          f"{cores} cores:")  # fmt: skip
    for w, cpu in cpu_of.items():
        if not cpu:
            continue
        label = "in this process" if w == 0 else f"{w} worker process{'es' if w > 1 else ''}"
        total = cpu["driver"] + cpu["workers"]
        machine = f", whole machine {cpu['machine']:.2f} s" if "machine" in cpu else ""
        print(
            f"    {label:<22} driver {cpu['driver']:.2f} s, workers {cpu['workers']:.2f} s"
            f"{machine}; >= {max(total / cores, cpu['workers'] / max(1, w)):.2f} s"
        )
    if profile and profile["by_task"]:
        total = sum(profile["by_task"].values())
        print(
            f"  worker time by task (2 workers, first build, {total:.1f} s over "
            f"{profile['build_only']:.1f} s wall):"
        )
        for key, sec in sorted(profile["by_task"].items(), key=lambda kv: -kv[1]):
            print(f"    {key:<28} {sec:6.2f} s  {sec / total:5.1%}")
        if (work / f"{name}-report.html").exists():
            print(f"  Dask performance report: {work / f'{name}-report.html'}")


def _paired(manifest: Path, work: Path, workers: int, pairs: int) -> None:
    """1 against ``workers`` warm workers, builds alternating between two live clusters.

    The machine's speed drifts by 10-30% over minutes (a shared VM): clusters timed one after
    the other (the table above) compare different minutes. Here each pair's ratio compares
    builds seconds apart, and the ceiling is measured on the same clusters in between.
    """
    from pitfall import featurize
    from pitfall.cluster import dask_client

    ratios, tops, times = [], [], {1: [], workers: []}
    with (
        dask_client(workers=1, preload=featurize.WORKER_MODULES) as one,
        dask_client(workers=workers, preload=featurize.WORKER_MODULES) as many,
    ):
        for client in (one, many):  # each worker runs each task once before timing
            for k in range(2):
                featurize.build(manifest, work / f"paired-warm-{id(client)}-{k}", client=client,
                                progress=False)  # fmt: skip
        for k in range(pairs):
            t = {}
            for n, client in (
                ((1, one), (workers, many)) if k % 2 == 0 else ((workers, many), (1, one))
            ):
                t0 = time.perf_counter()
                featurize.build(manifest, work / f"paired-{n}-{k}", client=client, progress=False)
                t[n] = time.perf_counter() - t0
                times[n].append(t[n])
            ratios.append(t[1] / t[workers])
            tops.append(_parallel_work(many, workers, pairs=1))
    q = statistics.quantiles(ratios, n=4)
    top = statistics.median(tops)
    build = statistics.median(ratios)
    print(f"  paired, {pairs} builds each alternating on a live 1-worker and {workers}-worker "
          f"cluster: {statistics.median(times[1]):.2f} s against "
          f"{statistics.median(times[workers]):.2f} s; speed-up per pair median x{build:.2f} "
          f"(quartiles x{q[0]:.2f}-x{q[2]:.2f}); ceiling x{top:.2f}, the build {build / top:.0%} of it")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warm-builds", type=int, default=5,
                    help="builds timed again on each run's warm workers (their median)")  # fmt: skip
    ap.add_argument("--bins", type=float, default=1e6)
    ap.add_argument("--demo-cell-types", type=int, nargs="*", default=[4, 18],
                    help="cell types of the demo preset to build (the preset has 18)")  # fmt: skip
    ap.add_argument("--pairs", type=int, default=12,
                    help="alternating 1- and 2-worker builds of the last demo preset")  # fmt: skip
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import bench_build_scale

    from pitfall import synth

    work = Path(tempfile.mkdtemp(prefix="bench-build-workers-"))
    print(f"machine load before: {Path('/proc/loadavg').read_text().split()[:3]}")
    for n in args.demo_cell_types:
        comp = synth.synthesize(work / f"demo{n}", "demo", n_cell_types=n, workers=2)
        _series(f"demo preset, {n} cell types", comp.manifest, work, [0, 1, 2, 4], args.repeats,
                args.warm_builds)  # fmt: skip
    if args.demo_cell_types and args.pairs:
        _paired(comp.manifest, work, 2, args.pairs)
    manifest = bench_build_scale.write_inputs(work / "bins", int(args.bins))
    _series(f"{args.bins / 1e6:g} M bins x 4 cell types x 3 marks", manifest, work, [1, 2, 4],
            args.repeats, args.warm_builds)  # fmt: skip
    print(f"\nmachine load after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
