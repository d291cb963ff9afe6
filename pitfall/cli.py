"""The ``pitfall`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cmd_synth(args: argparse.Namespace) -> int:
    from pitfall import synth

    t0 = time.perf_counter()
    overrides = {}
    if args.cell_types is not None:
        overrides["n_cell_types"] = args.cell_types
    if args.seed is not None:
        overrides["seed"] = args.seed
    comp = synth.synthesize(args.dir, args.preset, **overrides)
    print(
        f"synthesized the {args.preset!r} compendium in {time.perf_counter() - t0:.1f} s: "
        f"{comp.params.n_genes:,} genes, {len(comp.cell_types)} cell types, "
        f"{len(comp.marks)} marks in {args.dir}"
    )
    print(f"  manifests: {comp.manifest} (expression), {comp.manifest_tad} (TAD boundaries)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from pitfall import featurize

    summary = featurize.build(
        args.manifest,
        args.store,
        cell_types=args.cell_type,
        workers=args.workers,
        scheduler=args.scheduler,
    )
    print(summary)
    return 0


def cmd_append(args: argparse.Namespace) -> int:
    from pitfall import featurize

    summary = featurize.append(
        args.store,
        args.manifest,
        args.cell_type,
        workers=args.workers,
        scheduler=args.scheduler,
    )
    print(summary)
    return 0


def cmd_cube_export(args: argparse.Namespace) -> int:
    from pitfall import cube

    t0 = time.perf_counter()
    out = cube.export_cube(
        args.path, args.out, snapshot=args.snapshot, zarr_format=args.zarr_format
    )
    print(
        f"exported {args.path}{f' at {args.snapshot}' if args.snapshot else ''} to {out} "
        f"(Zarr v{args.zarr_format}) in {time.perf_counter() - t0:.1f} s; open it with "
        f"xarray.open_zarr({str(out)!r})"
    )
    return 0


def cmd_cube_log(args: argparse.Namespace) -> int:
    from pitfall import cube

    for c in cube.cube_log(args.path):
        when = c.written_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{c.snapshot}  {when}  {c.message}")
    return 0


def cmd_cube_info(args: argparse.Namespace) -> int:
    from pitfall import cube

    info = cube.cube_info(args.path)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    cts = info["cell_types"]
    print(f"cube {info['path']} (snapshot {info['snapshot']}, assembly {info['assembly']})")
    shown = ", ".join(cts[:12]) + (f", ... ({len(cts)} in all)" if len(cts) > 12 else "")
    print(f"  cell types: {len(cts)}: {shown}")
    per_chrom = info["loci_per_chrom"]
    print(f"  loci: {info['n_loci']:,} on {len(per_chrom)} chromosomes")
    print(f"  marks: {', '.join(info['marks']) or 'none'}")
    for name, var in info["variables"].items():
        dims = " x ".join(f"{d}={s:,}" for d, s in zip(var["dims"], var["shape"], strict=True))
        chunks = " x ".join(map(str, var["chunks"]))
        print(f"  {name:<9} {var['dtype']:<8} {dims}  chunks {chunks}")
    print(f"  size on disk: {cube.human_bytes(info['bytes_on_disk'])}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import tomllib

    from pitfall import sweep

    spec_path = Path(args.spec).resolve()
    raw = tomllib.loads(spec_path.read_text())
    if args.store:
        raw["cube"] = args.store if "://" in args.store else str(Path(args.store).resolve())
    spec = sweep.sweep_from_dict(raw, root=spec_path.parent, path=spec_path)
    table = sweep.run_sweep(
        spec.experiments,
        args.results,
        workers=args.workers,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
    )
    ok = table[table["status"] == "ok"]
    print(f"{len(ok)} models done, {len(table) - len(ok)} failed; table in {args.results}")
    if len(ok):
        cols = ["setting", "inputs", "label", "n_params", "ap", "ap_average_activity"]
        print(ok[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0 if len(ok) == len(table) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from pitfall import demo

    try:
        demo.run(Path(args.out), quick=args.quick, workers=args.workers)
    except demo.DemoError as err:
        print(f"pitfall demo: {err}", file=sys.stderr)
        return 1
    return 0


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers", type=int, default=None, help="local Dask worker processes (default 2)"
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="a running Dask cluster: scheduler address (tcp://host:8786) or scheduler file",
    )


def _storage_parent() -> argparse.ArgumentParser:
    """Options of every verb that reads or writes a cube (a path or s3://, gs://, az:// URL)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("cube storage (credentials always come from the environment)")
    g.add_argument(
        "--endpoint-url",
        default=None,
        help="S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default $AWS_ENDPOINT_URL)",
    )
    g.add_argument(
        "--anonymous", action="store_true", help="read a public bucket without credentials"
    )
    return p


def _apply_storage(args: argparse.Namespace) -> None:
    # Through the environment, so that every reader of the cube (and the local Dask workers,
    # which inherit it) sees the same storage options.
    if getattr(args, "endpoint_url", None):
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    if getattr(args, "anonymous", False):
        os.environ["PITFALL_ANONYMOUS"] = "1"


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pitfall`` command."""
    ap = argparse.ArgumentParser(
        prog="pitfall",
        description="Machine learning across cell types, and the pitfall of memorised loci.",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="synthesize a compendium, build its cubes, run the job")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.add_argument("--workers", type=int, default=None, help="local Dask workers")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synth", help="write a synthetic compendium in real formats")
    p.add_argument("dir", help="output folder")
    p.add_argument("--preset", default="demo", help="tiny | demo | paper (default demo)")
    p.add_argument("--cell-types", type=int, default=None, help="number of cell types")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=cmd_synth)

    storage = _storage_parent()
    p = sub.add_parser("build", help="build a cube from a manifest", parents=[storage])
    p.add_argument("manifest")
    p.add_argument("--store", required=True, help="the new cube: a folder or s3:// gs:// az:// URL")
    p.add_argument("--cell-type", action="append", default=None, help="only these (repeatable)")
    _cluster_args(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("append", help="add cell types from a manifest to a cube", parents=[storage])
    p.add_argument("store", help="the cube: a folder or s3:// gs:// az:// URL")
    p.add_argument("manifest")
    p.add_argument("--cell-type", action="append", required=True, help="repeatable")
    _cluster_args(p)
    p.set_defaults(func=cmd_append)

    p = sub.add_parser(
        "sweep", help="train and score many models; one results row each", parents=[storage]
    )
    p.add_argument("spec", help="sweep spec (TOML)")
    p.add_argument("--store", default=None, help="the cube (overrides the spec's 'cube')")
    p.add_argument("--results", required=True, help="folder of results.parquet")
    p.add_argument("--retry-failed", action="store_true", help="run failed experiments again")
    p.add_argument("--workers", type=int, default=None, help="local workers; 0 = in-process")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.set_defaults(func=cmd_sweep)

    from pitfall.audit import add_audit_parser
    from pitfall.fetch import add_fetch_parser

    add_audit_parser(sub)
    add_fetch_parser(sub)

    p = sub.add_parser("cube", help="inspect a cube")
    cube_sub = p.add_subparsers(dest="cube_command", required=True)
    q = cube_sub.add_parser("log", help="history of commits", parents=[storage])
    q.add_argument("path", help="the cube: a folder or s3:// gs:// az:// URL")
    q.set_defaults(func=cmd_cube_log)
    q = cube_sub.add_parser(
        "info", help="cell types, loci, marks, chunking, size on disk", parents=[storage]
    )
    q.add_argument("path", help="the cube: a folder or s3:// gs:// az:// URL")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_cube_info)
    q = cube_sub.add_parser(
        "export",
        help="write the cube as a plain Zarr store (for tools without Icechunk)",
        parents=[storage],
    )
    q.add_argument("path", help="the cube: a folder or s3:// gs:// az:// URL")
    q.add_argument("out", help="new folder or s3:// gs:// az:// URL of the plain Zarr store")
    q.add_argument("--snapshot", default=None, help="export this snapshot (default the tip)")
    q.add_argument("--zarr-format", type=int, choices=(2, 3), default=3)
    q.set_defaults(func=cmd_cube_export)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the ``pitfall`` command; errors in the user's input print one line, not a trace."""
    args = parser().parse_args(argv)
    _apply_storage(args)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError, KeyError) as err:
        if os.environ.get("PITFALL_DEBUG"):
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"pitfall {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
