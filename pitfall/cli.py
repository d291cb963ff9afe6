"""The ``pitfall`` command line."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["main", "run"]


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
    print(
        f"  imputation: {comp.manifest_imputation} ({int(comp.observed.sum())} of "
        f"{comp.observed.size} experiments observed)"
    )
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from pitfall import featurize

    summary = featurize.build(
        args.manifest,
        args.store,
        cell_types=args.cell_type,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=sys.stderr.isatty(),
        cell_types_per_commit=args.cell_types_per_commit,
    )
    print(summary)
    return 0


def cmd_append(args: argparse.Namespace) -> int:
    from pitfall import featurize

    if args.mark:
        if len(args.cell_type) != 1:
            raise ValueError(
                f"--mark adds experiments to one cell type; {len(args.cell_type)} were named "
                f"(--cell-type {' --cell-type '.join(args.cell_type)}): run one append per "
                "cell type"
            )
        print(
            featurize.append_experiments(
                args.store,
                args.manifest,
                args.cell_type[0],
                args.mark,
                progress=sys.stderr.isatty(),
            )
        )
        return 0
    summary = featurize.append(
        args.store,
        args.manifest,
        args.cell_type,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=sys.stderr.isatty(),
        cell_types_per_commit=args.cell_types_per_commit,
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
    if info["chrom_sizes"]:
        sizes = ", ".join(f"{c} {n:,}" for c, n in list(info["chrom_sizes"].items())[:6])
        more = f", ... ({len(info['chrom_sizes'])} in all)" if len(info["chrom_sizes"]) > 6 else ""
        print(f"  chromosome sizes: {sizes}{more}")
    else:
        print(
            "  chromosome sizes: none stored (no FASTA, sizes file or bigWig in the manifest, "
            "or built before schema 4): export-predictions needs --chrom-sizes"
        )
    print(f"  marks: {', '.join(info['marks']) or 'none'}")
    if info["marks"]:
        total = info["n_observed"] + info["n_missing"]
        print(
            f"  experiments: {info['n_observed']} of {total} observed, {info['n_missing']} "
            "missing (x observed, . missing)"
        )
        for line in cube.observed_grid(info["cell_types"], info["marks"], info["observed"]):
            print(f"    {line}")
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
        from pitfall.storage import is_url

        raw["cube"] = args.store if is_url(args.store) else str(Path(args.store).resolve())
    spec = sweep.sweep_from_dict(raw, root=spec_path.parent, path=spec_path)
    table = sweep.run_sweep(
        spec.experiments,
        args.results,
        workers=args.workers,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
        progress=sys.stderr.isatty(),
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


def cmd_report_real(args: argparse.Namespace) -> int:
    from pitfall.experiments import real_labels

    real_labels.run(
        args.data,
        args.out,
        size=args.size,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=sys.stderr.isatty(),
    )
    return 0


# ---------------------------------------------------------------------------- audit, tracks


AUDIT_EPILOG = """\
exit status:
  0  the audit ran, and no --fail-on gate failed
  1  a --fail-on gate failed: 'memorising' when the model is flagged as likely
     memorising locus activity; 'no-gain' when it beats the average-activity baseline
     neither pooled nor within activity groups (the verdict is 'no gain' or
     'memorising')
  2  the audit could not run (unreadable or ambiguous predictions, unknown cell types,
     a target among the training cell types, no matching locus, ...): the message says
     what to change

leakage: without --train-cell-types / --train-chroms the audit assumes the worst (every
scored locus was labelled in training under another cell type) and says so.

loci: a table names its loci in ONE column (locus, name, gene_id, gene, locus_name),
matched by name, or gives chrom, start, end; --loci-by position reads the locus column
as integer positions along the cube's locus dim. A bigWig / bedGraph track holds one
cell type's scores (--cell-type): each locus gets the mean over its window.
"""


def _csv_list(text: str) -> list[str]:
    return [t for t in (x.strip() for x in text.split(",")) if t]


def cmd_audit(args: argparse.Namespace) -> int:
    import warnings

    from pitfall.audit import AuditWarning, audit_predictions

    common = {
        "train_cell_types": args.train_cell_types,
        "train_chroms": args.train_chroms,
        "figure": args.figure,
        "json_path": args.json_path,
        "html_path": args.html_path,
        "margin": args.margin,
        "memorisation_threshold": args.memorisation_threshold,
        "level": args.level,
        "n_bootstrap": args.bootstrap,
        "block_size": args.block_size,
        "n_permutations": args.permutations,
        "adjust": args.adjust,
        "seed": args.seed,
    }
    with warnings.catch_warnings():
        # The report prints its warnings; do not print them twice.
        warnings.simplefilter("ignore", AuditWarning)
        if args.mark is not None:
            from pitfall.audit.continuous import audit_track

            if args.cell_type is None:
                raise ValueError("--mark audits one imputed track: give its --cell-type too")
            report = audit_track(
                args.predictions,
                args.cube,
                cell_type=args.cell_type,
                mark=args.mark,
                loci_by=args.loci_by,
                chrom_sizes=args.chrom_sizes,
                genes=args.genes,
                enhancers=args.enhancers,
                **common,
            )
        else:
            report = audit_predictions(
                args.predictions,
                args.cube,
                loci_by=args.loci_by,
                cell_type=args.cell_type,
                chrom_sizes=args.chrom_sizes,
                **common,
            )
    print(report)
    for path in (args.json_path, args.figure, args.html_path):
        if path:
            print(f"wrote {path}", file=sys.stderr)
    failed = report.failed(args.fail_on or [])
    if failed:
        print(
            f"pitfall audit: failed --fail-on {', '.join(failed)} (call: {report.call})",
            file=sys.stderr,
        )
        return 1
    return 0


@contextlib.contextmanager
def _warnings_as_lines(command: str) -> Iterator[None]:
    """pitfall's warnings raised inside, each as one line on stderr (as errors are), after it.

    Python's own display adds the file, the line and its source code, which mean nothing
    to the user of a command.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default", UserWarning)
        yield
    for w in caught:
        if issubclass(w.category, UserWarning):
            text = (str(w.message).strip().splitlines() or [w.category.__name__])[0]
            print(f"pitfall {command}: warning: {text}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def cmd_export_predictions(args: argparse.Namespace) -> int:
    from pitfall import tracks
    from pitfall.audit import load_predictions
    from pitfall.cube import open_cube

    tracks.check_track_path(args.out)  # before any work
    ds = open_cube(args.cube)
    with _warnings_as_lines(args.command):
        preds = load_predictions(
            args.predictions, ds, loci_by=args.loci_by, cell_type=args.cell_type
        )
    if args.cell_type not in preds.targets:
        raise ValueError(
            f"{args.predictions} has no score for cell type {args.cell_type!r} in the cube "
            f"(it has {', '.join(preds.targets)})"
        )
    out = tracks.write_track(
        preds.to_dataarray(ds),
        ds,
        args.out,
        cell_type=args.cell_type,
        overlaps=args.overlaps,
        chrom_sizes=args.chrom_sizes,
    )
    n = int((preds.table["cell_type"] == args.cell_type).sum())
    print(f"wrote {n:,} loci of {args.cell_type} to {out}")
    return 0


def _add_loci_by(p: argparse.ArgumentParser) -> None:
    from pitfall.audit import LOCI_BY

    p.add_argument(
        "--loci-by",
        choices=LOCI_BY,
        default="auto",
        help="how a table's loci match the cube's: by name, integer position or "
        "chrom/start/end (default auto: the locus column is names, chrom/start/end "
        "coordinates; a table with both is refused)",
    )


def _add_audit(sub: Any) -> None:
    from pitfall.audit import FAIL_ON

    p = sub.add_parser(
        "audit",
        help="audit a model's cross-cell-type predictions for the pitfall",
        description=(
            "Compare predictions (TSV/CSV/Parquet: locus, cell_type, score; a NetCDF/Zarr "
            "DataArray; or a bigWig/bedGraph track with --cell-type) with the "
            "average-activity and most-similar baselines and a random ranking, with "
            "block-bootstrap intervals and corrected tests, and say whether the model just "
            "memorises each locus's average activity. With --mark, PRED is an imputed track "
            "of that mark in --cell-type, scored with the ENCODE Imputation Challenge's "
            "metrics against the cube's observed signal."
        ),
        epilog=AUDIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("predictions", help="predictions file (table, NetCDF, Zarr, bigWig, bedGraph)")
    p.add_argument("cube", help="the cube (pitfall.open_cube path)")
    p.add_argument(
        "--cell-type", default=None, help="cell type of a track (for a table: only its rows)"
    )
    _add_loci_by(p)
    p.add_argument(
        "--train-cell-types",
        type=_csv_list,
        default=None,
        help="comma-separated training cell types (default: all but the target)",
    )
    p.add_argument(
        "--train-chroms",
        type=_csv_list,
        default=None,
        help="comma-separated training chromosomes (for the leakage)",
    )
    p.add_argument("--chrom-sizes", default=None, help="chrom.sizes to clip a bedGraph to")
    p.add_argument("--json", dest="json_path", default=None, help="write the report as JSON")
    p.add_argument("--figure", default=None, help="save the report's figure (PNG)")
    p.add_argument("--html", dest="html_path", default=None, help="write the report as HTML")
    p.add_argument("--margin", type=float, default=0.01, help="AP margin to beat (0.01)")
    p.add_argument(
        "--memorisation-threshold",
        type=float,
        default=0.8,
        help="Spearman correlation with average activity flagged (0.8)",
    )
    g = p.add_argument_group("intervals and tests")
    g.add_argument("--level", type=float, default=0.95, help="interval coverage (0.95)")
    g.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (1000)")
    g.add_argument(
        "--block-size", type=int, default=1_000_000, help="bootstrap block length, bp (1 Mb)"
    )
    g.add_argument(
        "--permutations",
        type=int,
        default=None,
        help="label placements per group or decile (default: enough for the corrected threshold)",
    )
    g.add_argument(
        "--adjust",
        choices=("holm", "bh"),
        default="holm",
        help="per-group p-value adjustment: holm (default) or bh (Benjamini-Hochberg)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and tests (0)")
    c = p.add_argument_group("continuous targets (an imputed track of one mark)")
    c.add_argument("--mark", default=None, help="audit PRED as this mark's track in --cell-type")
    c.add_argument(
        "--genes",
        default=None,
        help="GTF or BED6 of genes: msegene over gene bodies, mseprom over the 2 kb upstream "
        "of each TSS (strand-aware)",
    )
    c.add_argument("--enhancers", default=None, help="BED of enhancers for mseenh")
    p.add_argument(
        "--fail-on",
        action="append",
        choices=FAIL_ON,
        default=None,
        help="exit with status 1 when this gate fails (repeatable; see exit status)",
    )
    p.set_defaults(func=cmd_audit)


def _add_export_predictions(sub: Any) -> None:
    from pitfall.tracks import OVERLAP_RULES

    p = sub.add_parser(
        "export-predictions",
        help="write one cell type's predictions over the cube's loci as bigWig or bedGraph",
        description=(
            "Write the scores of one cell type (from any predictions file the audit reads) "
            "over each locus's window of the cube, as a bigWig (.bw) or bedGraph "
            "(.bedGraph, .bg, optionally .gz) for a genome browser. bigWig stores 32-bit "
            "floats; bedGraph keeps every digit."
        ),
    )
    p.add_argument("predictions", help="predictions file (table, NetCDF, Zarr)")
    p.add_argument("cube", help="the cube (pitfall.open_cube path)")
    p.add_argument("--cell-type", required=True, help="the cell type to write")
    p.add_argument("--out", required=True, help="the track: x.bw or x.bedGraph")
    _add_loci_by(p)
    p.add_argument(
        "--overlaps",
        choices=OVERLAP_RULES,
        default="error",
        help="what bases shared by overlapping locus windows get (default: refuse)",
    )
    p.add_argument(
        "--chrom-sizes",
        default=None,
        help="chrom.sizes of the assembly (default: the sizes the cube stores)",
    )
    p.set_defaults(func=cmd_export_predictions)


# ---------------------------------------------------------------------------- fetch


def _download_options(q: argparse.ArgumentParser, mirror_env: str) -> None:
    """The options every ``pitfall fetch`` source takes: mirror, dry run, checks, retries."""
    q.add_argument(
        "--mirror",
        default=None,
        help=f"one base URL serving the mirror layout (default ${mirror_env}, else "
        "the public sites)",
    )
    q.add_argument("--dry-run", action="store_true", help="list files, sizes and free space only")
    q.add_argument(
        "--no-verify",
        dest="deep_verify",
        action="store_false",
        help="check files already present by size only, not sha256",
    )
    q.add_argument("--retries", type=int, default=2, help="attempts after a failure (default 2)")
    q.add_argument("--no-progress", dest="progress", action="store_false")


def _fetch_outcome(report: Any, dry_run: bool, holds: str) -> int:
    """Print what a fetch did (``holds``: what its manifest covers); 1 if anything failed."""
    if not dry_run:
        print(
            f"fetch into {report.dest}: {len(report.fetched)} downloaded, "
            f"{len(report.cached)} already there (verified)"
        )
        for note in report.notes:
            print(f"  note: {note}")
        if report.manifest:
            print(f"  manifest: {report.manifest} ({holds})")
    if report.failures:
        print(f"{len(report.failures)} failed:", file=sys.stderr)
        for f in report.failures:
            print(f"  {f.message}", file=sys.stderr)
        return 1
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from pitfall.datasets import roadmap

    report = roadmap.fetch(
        args.dest,
        args.epigenomes,
        args.marks,
        genome=args.genome,
        annotation=args.annotation,
        mirror=args.mirror,
        dry_run=args.dry_run,
        deep_verify=args.deep_verify,
        retries=args.retries,
        progress=args.progress and sys.stderr.isatty(),
    )
    return _fetch_outcome(report, args.dry_run, f"{len(report.epigenomes)} epigenomes")


def cmd_fetch_tads(args: argparse.Namespace) -> int:
    from pitfall.datasets import tads

    report = tads.fetch(
        args.dest,
        args.compendium,
        mirror=args.mirror,
        dry_run=args.dry_run,
        deep_verify=args.deep_verify,
        retries=args.retries,
        progress=args.progress and sys.stderr.isatty(),
    )
    return _fetch_outcome(report, args.dry_run, f"{len(report.cell_types)} cell lines")


def _add_fetch(sub: Any) -> None:
    from pitfall.datasets import roadmap
    from pitfall.genome import CORE_MARKS

    p = sub.add_parser(
        "fetch",
        help="download public data and write its manifest",
        epilog="exit status: 0 every file in place; 1 some download failed; 2 bad arguments",
    )
    sources = p.add_subparsers(dest="source", required=True)
    q = sources.add_parser(
        "roadmap",
        help="Roadmap RNA-seq + histone bigWigs, GENCODE, hg19 (the paper's expression task)",
        description="Download Roadmap's RPKM matrix, MACS2 p-value bigWigs, a GENCODE "
        "annotation and hg19 into DEST, then write DEST/manifest.toml for `pitfall build`.",
        epilog="exit status: 0 every file in place; 1 some download failed (the manifest "
        "then lists the complete epigenomes only); 2 bad arguments",
    )
    q.add_argument("--dest", required=True, help="folder to download into (also the cache)")
    q.add_argument(
        "--epigenomes",
        nargs="+",
        required=True,
        metavar="EID",
        help="Roadmap ids (E003 E116 or E003,E116), or 'all' (every epigenome of the RPKM "
        "matrix except E000)",
    )
    q.add_argument(
        "--marks",
        nargs="+",
        default=list(CORE_MARKS),
        metavar="MARK",
        help=f"histone marks (default the core five: {' '.join(CORE_MARKS)})",
    )
    q.add_argument(
        "--genome",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fetch hg19 (gunzipped to hg19/hg19.fa) and add [sequence] (default: yes)",
    )
    q.add_argument("--annotation", choices=sorted(roadmap.ANNOTATIONS), default="gencode-v19")
    _download_options(q, roadmap.MIRROR_ENV)
    q.set_defaults(func=cmd_fetch)

    from pitfall.datasets import tads

    q = sources.add_parser(
        "tads",
        help="TAD domain lists of the paper's seven lines (Dixon et al. 2015), hg19 sizes",
        description="Download the 3D Genome Browser's hg19 TAD archive and UCSC's hg19 "
        "chromosome sizes into DEST, extract the compendium's domain lists, then write "
        "DEST/manifest.toml (40 kb bins, boundary labels) for `pitfall build`.",
        epilog="exit status: 0 every file in place; 1 some download failed or a line's list "
        "is not in the archive (the manifest then lists the lines found); 2 bad arguments",
    )
    q.add_argument("--dest", required=True, help="folder to download into (also the cache)")
    q.add_argument(
        "--compendium",
        choices=sorted(tads.COMPENDIA),
        default="dixon2015",
        help="dixon2015: H1, its four derived lineages, IMR90, GM12878 (default)",
    )
    _download_options(q, roadmap.MIRROR_ENV)
    q.set_defaults(func=cmd_fetch_tads)


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local Dask worker processes (default: this process for small builds, else 2)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="a running Dask cluster: scheduler address (tcp://host:8786) or scheduler file",
    )


def _commit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cell-types-per-commit",
        type=int,
        default=None,
        metavar="N",
        help="cell types per commit, what a killed build can lose (default: one when large, "
        "several small ones together)",
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
        epilog="exit statuses: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items()),
    )
    ap.add_argument("--debug", action="store_true", help="show tracebacks (also PITFALL_DEBUG=1)")
    ap.add_argument("--version", action="version", version=f"pitfall {_version()}")
    ap.add_argument(
        "-v", "--verbose", action="count", default=0, help="say more (-vv: debugging detail)"
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="errors only")
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
    _commit_args(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "append",
        help="add cell types (or, with --mark, experiments of a cell type) from a manifest "
        "to a cube",
        parents=[storage],
    )
    p.add_argument("store", help="the cube: a folder or s3:// gs:// az:// URL")
    p.add_argument("manifest")
    p.add_argument("--cell-type", action="append", required=True, help="repeatable")
    p.add_argument(
        "--mark",
        action="append",
        default=None,
        help="add this experiment (mark) of the one --cell-type, already in the cube, as one "
        "commit (repeatable)",
    )
    _cluster_args(p)
    _commit_args(p)
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

    p = sub.add_parser("report", help="reports on real data")
    report_sub = p.add_subparsers(dest="report_command", required=True)
    q = report_sub.add_parser(
        "real",
        help="the pitfall on real data: every family of the paper on a fetched Roadmap folder, "
        "else on real Roadmap and TAD labels (memorisation curves, a grid of targets, folds "
        "and seeds, XGBoost, partitioned baselines, Figure S5)",
    )
    q.add_argument(
        "data",
        help="a folder `pitfall fetch roadmap` filled (genome and marks: every family of the "
        "paper), else one laid out as ../shared/data (roadmap/, tads/: the labels-only report)",
    )
    q.add_argument("--out", default="out/real", help="output folder (default out/real)")
    q.add_argument(
        "--size",
        choices=("paper", "quick"),
        default="paper",
        help="paper: the paper's recipe; quick: fewer, shorter models (times: docs/performance.rst)",
    )
    q.add_argument("--workers", type=int, default=None, help="local workers; 0 = in-process")
    q.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    q.set_defaults(func=cmd_report_real)

    _add_audit(sub)
    _add_export_predictions(sub)
    _add_fetch(sub)

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


#: Exit statuses, the same for every verb (also in ``pitfall --help``).
EXIT_CODES = {
    0: "done",
    1: "done, and the result says no (models failed, an audit gate, downloads missing)",
    2: "bad input: a file, a configuration or an argument (the message names it)",
    3: "the environment failed: disk full or read-only, permissions, network, storage",
    4: "internal error (a bug): rerun with --debug and report the traceback",
    130: "interrupted",
}

_ERRNO_HINTS = {
    errno.ENOSPC: "the disk is full: free space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: check the permissions, or write elsewhere",
    errno.EPERM: "operation not permitted: check the permissions",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EDQUOT: "the disk quota is exceeded: free space or write elsewhere",
}


def _classify(err: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) of an error that reached the command line."""
    import icechunk

    from pitfall._config_schema import ConfigError
    from pitfall._repository import os_error_of
    from pitfall.storage import innermost_cause

    text = (str(err).strip().splitlines() or [""])[0]
    if isinstance(err, (ConfigError, FileNotFoundError, FileExistsError)):
        return 2, text
    if not isinstance(err, OSError):
        # A native library's error about the disk (Icechunk says "(os error 28)").
        native = os_error_of(err)
        if native is not None and native.errno in _ERRNO_HINTS:
            return 3, f"the cube's storage failed: {_ERRNO_HINTS[native.errno]}"
    if isinstance(err, OSError):
        hint = _ERRNO_HINTS.get(err.errno or -1)
        if hint:
            where = err.filename or ""
            return 3, f"{where}: {hint}" if where else hint
        if err.filename and err.strerror:
            return 3, f"{err.filename}: {err.strerror}"
        return 3, text or f"{type(err).__name__}: {err.strerror or 'I/O error'}"
    if isinstance(err, icechunk.IcechunkError):
        # Icechunk lists the chain of causes, the root last: that one says what happened.
        cause = innermost_cause(err)
        return 3, f"the cube's storage failed ({cause}); check the location and try again"
    if isinstance(err, (ValueError, LookupError)) and text and not isinstance(err, KeyError):
        return 2, text
    return 4, f"internal error ({type(err).__name__}: {text}); rerun with --debug and report it"


def _version() -> str:
    from pitfall import __version__

    return __version__


def _setup_logging(args: argparse.Namespace) -> None:
    """pitfall's messages on stderr at the level -q / -v ask for; third-party noise off."""
    import logging

    from pitfall._logs import quiet_third_party

    if args.quiet:
        level = logging.ERROR
    else:
        level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("pitfall")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    quiet_third_party(debug=args.verbose >= 2)


def _first(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def main(argv: list[str] | None = None) -> int:
    """Run the ``pitfall`` command.

    Errors print one line naming what failed and what to do, never a traceback (``--debug``
    or ``PITFALL_DEBUG=1`` shows it), and exit with the status of their class
    (:data:`EXIT_CODES`); a closed output pipe (``pitfall cube log | head -1``) ends quietly.
    """
    args = parser().parse_args(argv)
    _apply_storage(args)
    _setup_logging(args)
    debug = getattr(args, "debug", False) or os.environ.get("PITFALL_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (head, less): say nothing more, and let Python's exit flush
        # write to nowhere instead of raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"pitfall {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        status, message = _classify(err)
        print(f"pitfall {args.command}: error: {message}", file=sys.stderr)
        return status
    except BaseException as err:
        # Rust libraries (Icechunk, pybigtools) surface a panic as pyo3's PanicException,
        # a BaseException; SystemExit and the like go through untouched.
        if debug or type(err).__name__ != "PanicException":
            raise
        status, message = _classify(err)
        print(f"pitfall {args.command}: error: {message}", file=sys.stderr)
        return status


def run() -> None:
    """The ``pitfall`` console script: :func:`main`, then an exit that skips finalization.

    Icechunk completes zarr's reads on its own threads. One that returns from a call made
    without the GIL while the interpreter finalizes is ended by ``pthread_exit`` through
    Rust frames, which aborts the process (SIGABRT) after the command has finished and
    printed its result (now and then, after quick commands). So the exit does what
    Python's would, short of finalization: stop thread pools and join the other non-daemon
    threads, run the ``atexit`` handlers (Dask, zarr, logging), flush, and end the process.
    """
    code = main()
    # Python's own first step of exit: stop the thread pools (concurrent.futures registers
    # there, not in atexit) and join the other non-daemon threads.
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
