"""Featurize real files into a cube: a Dask graph of (cell type x chromosome) tasks.

``build`` writes a new cube from a manifest; ``append`` adds cell types to an existing one.
Both check every input before computing anything, run on a local cluster (``workers``) or an
existing one (``scheduler``), and commit each finished cell type as one slab. A build writes
into ``<store>.building`` and renames it into place when done, so a failed or killed build
never leaves a cube at ``store``; a failed append leaves the cube as it was, plus the cell
types that completed before the failure, each whole.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pitfall import cube
from pitfall.manifest import Manifest, load_manifest
from pitfall.sources import annotation, bigwig, fasta, labels


class BuildError(ValueError):
    """Inputs that cannot be featurized; the message names the file or cell type."""


@dataclass
class BuildSummary:
    """What a build or append wrote."""

    store: Path
    cell_types: list[str]
    n_loci: int
    loci_per_chrom: dict[str, int]
    marks: list[str]
    sequence_length: int | None
    snapshots: list[str]
    seconds: float
    gene_matching: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"wrote {len(self.cell_types)} cell types to {self.store} in {self.seconds:.1f} s",
            f"  cell types: {', '.join(self.cell_types)}",
            f"  loci: {self.n_loci:,} on {len(self.loci_per_chrom)} chromosomes",
            f"  marks: {', '.join(self.marks) or 'none'}",
            f"  sequence: {f'{self.sequence_length} bp per locus' if self.sequence_length else 'none'}",
        ]
        if self.gene_matching:
            g = self.gene_matching
            lines.append(
                "  genes: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in g.items())
            )
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Planning: loci and checks, all before any computation


def _expression_table(m: Manifest) -> pd.DataFrame | None:
    """The manifest's expression table, read once per build (planning, checks and labels)."""
    if m.table is None:
        return None
    if not m.table.is_file():
        return labels.read_expression_table(m.table)  # raises its message naming the file
    stat = m.table.stat()
    return _read_table(str(m.table), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _read_table(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    # Keyed on mtime and size too: a table rewritten between two builds is read anew.
    return labels.read_expression_table(path)


def plan_loci(m: Manifest) -> tuple[pd.DataFrame, dict[str, int] | None]:
    """The manifest's locus table (and, for expression, the gene-matching counts)."""
    if m.loci_kind == "tss":
        genes = annotation.read_genes(m.loci_path)
        dup = genes["gene_id"][annotation.strip_version(genes["gene_id"]).duplicated().to_numpy()]
        if len(dup):
            raise BuildError(
                f"{m.loci_path}: {len(dup)} duplicate gene ids (e.g. {dup.iloc[0]}); each gene "
                "must appear once (ids are compared without their version suffix)"
            )
        loci = annotation.tss_windows(genes, m.upstream, m.downstream, m.chroms)
        if m.target_kind == "expression":
            table = _expression_table(m)
            loci, summary = labels.match_genes(loci, table)
            return loci.reset_index(drop=True), summary
        return loci, None
    if m.loci_kind == "bins":
        sizes = annotation.read_chrom_sizes(m.loci_path)
        chroms = m.chroms or [c for c in annotation.chrom_order(sizes)]
        missing = [c for c in chroms if c not in sizes]
        if missing:
            raise BuildError(f"{m.loci_path}: chromosomes {missing} (from the manifest) are absent")
        return annotation.genome_bins(sizes, m.bin_size, chroms), None
    return annotation.read_bed_regions(m.loci_path, m.chroms), None


def resolve_cell_types(m: Manifest, cell_types: Sequence[str] | None) -> list[str]:
    """The manifest's cell types to featurize, checked against the manifest and the table."""
    if m.cell_types:
        available = list(m.cell_types)
    else:
        table = _expression_table(m)
        available = [c for c in table.columns if c not in m.exclude]
    if cell_types is None:
        return available
    unknown = [c for c in cell_types if c not in available]
    if unknown:
        raise BuildError(f"{m.path}: cell types {unknown} are not in the manifest ({available})")
    return list(cell_types)


def _chrom_check(path: Path, file_chroms: Sequence[str], loci_chroms: Sequence[str]) -> None:
    labels.check_chrom_names(list(file_chroms), list(loci_chroms), path)


def _missing_chrom_note(path: str | os.PathLike, chrom: str) -> str:
    # One wording for the check and the task, so the summary lists each case once.
    return f"{path} has no {chrom}: its mark is NaN on {chrom}"


def check_inputs(m: Manifest, loci: pd.DataFrame, cell_types: list[str]) -> list[str]:
    """Open every input once (headers, indexes, label files); raise on the first unusable one.

    Returns warnings for the build summary (e.g. a bigWig lacking a chromosome of the loci).
    """
    notes: list[str] = []
    for f in m.input_files(cell_types if m.cell_types else []):
        if f.is_dir():
            # BuildError, not IsADirectoryError: the CLI reports ValueErrors in one line.
            raise BuildError(f"{f}: is a directory, not a file (named in {m.path})")
        if not f.is_file():
            raise FileNotFoundError(f"{f}: no such file (named in {m.path})")
        if not os.access(f, os.R_OK):
            raise PermissionError(f"{f}: not readable (named in {m.path})")
    loci_chroms = list(pd.unique(loci["chrom"]))
    # Chromosome lengths other files state, to catch a FASTA cut short or from another
    # assembly (its sequence would silently read as N past the cut).
    reference: dict[str, tuple[int, Path]] = {}
    if m.loci_kind == "bins":
        reference = {
            c: (n, m.loci_path) for c, n in annotation.read_chrom_sizes(m.loci_path).items()
        }
    if m.target_kind == "expression":
        table = _expression_table(m)
        absent = [c for c in cell_types if c not in table.columns]
        if absent:
            raise BuildError(
                f"{m.table}: cell types {absent} (from {m.path}) are not columns of the "
                f"expression table (it has {', '.join(map(str, table.columns[:8]))}, ...)"
            )
    for ct in cell_types if m.cell_types else []:
        spec = m.cell_types[ct]
        for path in spec.signal.values():
            sizes = bigwig.chrom_sizes(path)
            _chrom_check(path, list(sizes), loci_chroms)
            notes += [_missing_chrom_note(path, c) for c in loci_chroms if c not in sizes]
            for c, n in sizes.items():
                reference.setdefault(c, (n, path))
        if m.target_kind in ("domains", "peaks"):
            # Read now (they are small) so an empty or malformed call set stops the build
            # before any work, not from inside a task.
            reader = labels.read_domains if m.target_kind == "domains" else labels.read_peaks
            regions = reader(spec.target)
            _chrom_check(spec.target, list(pd.unique(regions["chrom"])), loci_chroms)
    if m.fasta is not None:
        fasta_sizes = fasta.chrom_sizes(m.fasta)
        _chrom_check(m.fasta, list(fasta_sizes), loci_chroms)
        lacking = [c for c in loci_chroms if c not in fasta_sizes]
        if lacking:
            raise BuildError(
                f"{m.fasta}: has no sequence for {', '.join(lacking)} (chromosomes of the loci "
                f"of {m.path}); the FASTA must cover every chromosome of the loci"
            )
        for c in loci_chroms:
            if c in reference and reference[c][0] != fasta_sizes[c]:
                n, other = reference[c]
                raise BuildError(
                    f"{m.fasta}: {c} has {fasta_sizes[c]:,} bases but {other} says {n:,}; the "
                    "FASTA is truncated or from another assembly"
                )
        past = loci["start"].to_numpy() >= loci["chrom"].map(fasta_sizes).to_numpy()
        if past.any():
            row = loci.iloc[int(np.flatnonzero(past)[0])]
            raise BuildError(
                f"{m.fasta}: {int(past.sum())} loci start past the end of their chromosome "
                f"(e.g. {row['name']} at {row['chrom']}:{row['start']}, length "
                f"{fasta_sizes[row['chrom']]:,}); the FASTA is truncated or from another assembly"
            )
        lengths = np.unique(loci["end"] - loci["start"])
        if m.sequence_length is None and lengths.size > 1:
            raise BuildError(
                f"{m.path}: loci have {lengths.size} different lengths ({lengths[:3]}...), so "
                "their sequences cannot share one array; set [sequence] length = N to take N bp "
                "centred on each locus"
            )
    return notes


def file_checksum(path: Path, algorithm: str = "sha256") -> str:
    """Checksum of a file, streamed."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sources(m: Manifest, ct: str) -> dict[str, Any]:
    spec = m.cell_types.get(ct)
    files = {}
    if spec is not None:
        files = {f"signal:{k}": v for k, v in spec.signal.items()}
        if spec.target is not None:
            files["target"] = spec.target
    if m.table is not None:
        files["table"] = m.table
    return {key: {"path": str(p), "sha256": file_checksum(p)} for key, p in files.items()}


def sequence_windows(loci: pd.DataFrame, length: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Sequence windows: the loci themselves, or ``length`` bp centred on each locus.

    The centre is ``(start + end) // 2``; the window is ``[centre - length // 2, + length)``.
    """
    start = loci["start"].to_numpy(np.int64)
    end = loci["end"].to_numpy(np.int64)
    if length is None:
        return start, end
    lo = (start + end) // 2 - length // 2
    return lo, lo + length


# --------------------------------------------------------------------------------------------
# Tasks (run on workers; plain functions of paths and arrays)


def signal_task(
    paths: dict[str, str], chrom: str, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Signal of one cell type on one chromosome: shape ``(n, n_marks)`` float32, warnings."""
    out = np.full((len(starts), len(paths)), np.nan, dtype=np.float32)
    notes = []
    for j, path in enumerate(paths.values()):
        try:
            out[:, j] = bigwig.window_means(path, chrom, starts, ends)
        except bigwig.MissingChromosome:
            notes.append(_missing_chrom_note(path, chrom))
    return out, notes


def _signal_task_shared(
    paths: dict[str, str], chrom: str, windows: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, list[str]]:
    return signal_task(paths, chrom, *windows)


def target_task(kind: str, path: str, bins: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Labels of one cell type from its domain or peak file over ``bins``: float32, warnings.

    A chromosome without a single domain or peak in the file is NaN (unknown), not 0: such
    files usually hold out whole chromosomes (the ENCODE-DREAM CTCF calls lack chr1, chr8
    and chr21; Rao's K562 domains lack chr9).
    """
    if kind == "domains":
        label, summary = labels.domain_boundaries(
            labels.read_domains(path), bins, missing="nan", return_summary=True
        )
    else:
        label, summary = labels.peak_labels(
            labels.read_peaks(path), bins, missing="nan", return_summary=True
        )
    notes = [
        f"{path} has no {kind} on {c}: its labels are NaN there"
        for c in summary.get("chroms_without", [])
    ]
    return label, notes


def sequence_task(
    path: str, chrom: str, starts: np.ndarray, ends: np.ndarray, strands: np.ndarray
) -> np.ndarray:
    """Sequence codes of the loci of one chromosome, shape ``(n, L)`` uint8."""
    return fasta.window_codes(path, chrom, starts, ends, strands)


# --------------------------------------------------------------------------------------------
# Driver


def _client(workers: int | None, scheduler: str | None, processes: bool):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    n = workers or min(2, os.cpu_count() or 1)
    # Task errors reach the user re-raised here, with their own message; the workers'
    # tracebacks in the log would only repeat them.
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=":0",  # any free port: never clash with another cluster
        silence_logs=logging.CRITICAL,
    )
    return Client(cluster), cluster


def _featurize(
    m: Manifest,
    loci: pd.DataFrame,
    cell_types: list[str],
    *,
    store: Path,
    create: bool,
    workers: int | None,
    scheduler: str | None,
    processes: bool,
    progress: bool,
) -> tuple[list[str], list[str], int | None]:
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    client, cluster = _client(workers, scheduler, processes)
    notes: list[str] = []
    snapshots: list[str] = []
    seq_len = None
    try:
        chroms = list(pd.unique(loci["chrom"]))
        rows = {c: np.flatnonzero(loci["chrom"].to_numpy() == c) for c in chroms}
        futures: dict[Any, tuple[str, str, str]] = {}
        seq_parts: dict[str, np.ndarray] = {}
        if create and m.fasta is not None:
            seq_start, seq_end = sequence_windows(loci, m.sequence_length)
            for c in chroms:
                r = rows[c]
                f = client.submit(
                    sequence_task,
                    str(m.fasta),
                    c,
                    seq_start[r],
                    seq_end[r],
                    loci["strand"].to_numpy()[r],
                    pure=False,
                )
                futures[f] = ("sequence", "", c)
        # Each chromosome's windows go to the cluster once and every cell type's tasks
        # share them, instead of a copy inside every task (megabytes each for 200 bp bins).
        shared: dict[str, Any] = {}
        for c in chroms:
            r = rows[c]
            if m.marks:
                starts = loci["start"].to_numpy()[r]
                ends = loci["end"].to_numpy()[r]
                shared[f"windows:{c}"] = client.scatter((starts, ends))
            if m.target_kind in ("domains", "peaks"):
                bins = loci.loc[r, ["chrom", "start", "end"]].reset_index(drop=True)
                shared[f"bins:{c}"] = client.scatter(bins)
        for ct in cell_types:
            spec = m.cell_types.get(ct)
            if m.marks:
                paths = {mk: str(spec.signal[mk]) for mk in m.marks}
                for c in chroms:
                    f = client.submit(
                        _signal_task_shared, paths, c, shared[f"windows:{c}"], pure=False
                    )
                    futures[f] = ("signal", ct, c)
            if m.target_kind in ("domains", "peaks"):
                for c in chroms:
                    f = client.submit(
                        target_task, m.target_kind, str(spec.target), shared[f"bins:{c}"],
                        pure=False,
                    )  # fmt: skip
                    futures[f] = ("target", ct, c)

        table = _expression_table(m) if m.target_kind == "expression" else None
        pending = defaultdict(int)
        for _kind, ct, _ in futures.values():
            pending[ct] += 1
        signal_parts: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        target_parts: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        done_cts: list[str] = []

        def finish(ct: str) -> None:
            nonlocal seq_len
            value = None
            if table is not None:
                label, value = labels.expression_labels(table, loci, ct, m.threshold)
            else:
                label = np.concatenate([target_parts[ct][c] for c in chroms])
            signal = np.concatenate([signal_parts[ct][c] for c in chroms]) if m.marks else None
            spec = m.cell_types.get(ct)
            slab = cube.make_slab(
                ct,
                loci,
                label=label,
                value=value,
                signal=signal,
                marks=m.marks or None,
                assembly=m.assembly,
                name=spec.name if spec else ct,
                group=spec.group if spec else "",
                sources=_sources(m, ct),
            )
            if not snapshots and create:
                sequence = None
                if m.fasta is not None:
                    sequence = np.concatenate([seq_parts[c] for c in chroms])
                    seq_len = sequence.shape[1]
                snapshots.append(
                    cube.create_cube(
                        store,
                        slab,
                        sequence=sequence,
                        locus_chunk=m.locus_chunk,
                        attrs={"featurization": m.featurization()},
                    )
                )
            else:
                snapshots.append(cube.append_cell_type(store, slab))
            signal_parts.pop(ct, None)
            target_parts.pop(ct, None)
            done_cts.append(ct)

        bar = tqdm(total=len(futures), desc="featurize", unit="task", disable=not progress)
        # Commit in the requested order, not the order tasks happen to finish: with several
        # workers the cube's cell-type axis (and its history) would otherwise vary by run.
        queue = list(cell_types)

        def commit_ready(seq_done: bool) -> None:
            while queue and seq_done and pending[queue[0]] == 0:
                finish(queue.pop(0))

        for f in as_completed(list(futures)):
            kind, ct, c = futures.pop(f)
            result = f.result()
            if kind == "sequence":
                seq_parts[c] = result
            elif kind == "signal":
                signal_parts[ct][c], task_notes = result
                notes += task_notes
            else:
                target_parts[ct][c], task_notes = result
                notes += task_notes
            f.release()
            bar.update(1)
            if kind != "sequence":
                pending[ct] -= 1
            commit_ready(not (create and m.fasta is not None) or len(seq_parts) == len(chroms))
        commit_ready(True)
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return snapshots, notes, seq_len


def build(
    manifest: str | os.PathLike | Manifest,
    store: str | os.PathLike,
    *,
    cell_types: Sequence[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    processes: bool = True,
    progress: bool = True,
) -> BuildSummary:
    """Build a new cube at ``store`` from a manifest.

    Parameters
    ----------
    manifest
        Path of the manifest TOML (or a loaded :class:`~pitfall.manifest.Manifest`).
    store
        Folder of the new cube; must not hold a cube already (use :func:`append`).
    cell_types
        Subset of the manifest's cell types; default all.
    workers
        Local Dask workers (processes, one thread each); default ``min(2, cores)``.
    scheduler
        Address of an existing Dask scheduler; overrides ``workers``.
    processes
        Local workers as processes (default) or threads in this process.
    """
    t0 = time.perf_counter()
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    store = Path(store)
    if store.exists() and any(store.iterdir()):
        raise FileExistsError(
            f"{store} already holds files; add cell types with `pitfall append {store} MANIFEST "
            "--cell-type ID`, or choose a new --store"
        )
    loci, gene_matching = plan_loci(m)
    cts = resolve_cell_types(m, cell_types)
    notes = check_inputs(m, loci, cts)
    partial = store.with_name(store.name + ".building")
    if partial.exists():
        shutil.rmtree(partial)  # left by a killed build: never a cube anyone has seen
    try:
        snapshots, task_notes, seq_len = _featurize(
            m, loci, cts, store=partial, create=True, workers=workers, scheduler=scheduler,
            processes=processes, progress=progress,
        )  # fmt: skip
    except Exception:
        # A failed build leaves nothing behind (a killed one leaves <store>.building, which
        # the next build removes).
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if store.exists():
        store.rmdir()
    partial.rename(store)
    return BuildSummary(
        store=store,
        cell_types=cts,
        n_loci=len(loci),
        loci_per_chrom=loci["chrom"].value_counts(sort=False).to_dict(),
        marks=m.marks,
        sequence_length=seq_len,
        snapshots=snapshots,
        seconds=time.perf_counter() - t0,
        gene_matching=gene_matching,
        warnings=_dedupe(notes + task_notes),
    )


def append(
    store: str | os.PathLike,
    manifest: str | os.PathLike | Manifest,
    cell_types: Sequence[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    processes: bool = True,
    progress: bool = True,
) -> BuildSummary:
    """Add cell types from a manifest to the cube at ``store``, one commit per cell type.

    The manifest must describe the cube's loci (same loci source, windows and chromosomes);
    a cell type already in the cube is refused before anything is computed.
    """
    t0 = time.perf_counter()
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    store = Path(store)
    ds = cube.open_cube(store)
    present = sorted(set(cell_types) & {str(c) for c in ds["cell_type"].values})
    if present:
        raise cube.CubeError(f"cell types {present} are already in the cube at {store}")
    loci, gene_matching = plan_loci(m)
    cts = resolve_cell_types(m, cell_types)
    fingerprint = cube.locus_fingerprint(
        cube.make_slab("_", loci, label=np.zeros(len(loci)), assembly=m.assembly)
    )
    if fingerprint != ds.attrs.get("locus_fingerprint"):
        raise cube.CubeError(
            f"the loci of {m.path} differ from the cube's at {store}; the manifest must use the "
            "same loci source, windows and chromosomes as the build"
        )
    notes = check_inputs(m, loci, cts)
    snapshots, task_notes, seq_len = _featurize(
        m, loci, cts, store=store, create=False, workers=workers, scheduler=scheduler,
        processes=processes, progress=progress,
    )  # fmt: skip
    return BuildSummary(
        store=store,
        cell_types=cts,
        n_loci=len(loci),
        loci_per_chrom=loci["chrom"].value_counts(sort=False).to_dict(),
        marks=m.marks,
        sequence_length=ds.sizes.get("position"),
        snapshots=snapshots,
        seconds=time.perf_counter() - t0,
        gene_matching=gene_matching,
        warnings=_dedupe(notes + task_notes),
    )


def _dedupe(notes: list[str]) -> list[str]:
    out = list(dict.fromkeys(notes))
    for note in out:
        warnings.warn(note, stacklevel=3)
    return out
