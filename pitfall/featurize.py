"""Featurize real files into a cube: workers read inputs and write their own chunks.

``build`` writes a new cube from a manifest; ``append`` adds cell types to an existing one.
Both check every input before computing anything, then run a Dask task graph whose tasks
each take one block of loci (whole chunks), read the inputs for it (local paths or URLs)
and write the block straight into the cube's Icechunk session (:mod:`pitfall.cube`
transactions: the forked session travels to the workers, their changes come back and are
merged). The driver plans, merges and commits, one commit per cell type, in the requested
order; it never holds a cell type's arrays, the sequence or a task's result, and the tasks
in flight (and blocks computed ahead) are bounded, so memory depends on the block size,
not on the number of loci.

While cell type *k* is being written, workers with nothing left to do for it compute the
blocks of *k + 1* ahead (kept on the worker that computed them); they are written as soon as
*k* commits. A commit that loses a race with another writer (another machine appending to
the same object store) is started again at the new tip.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pitfall import cube
from pitfall import loci as loci_mod
from pitfall.cluster import dask_client, n_threads
from pitfall.location import Location, parse_location
from pitfall.manifest import Manifest, Source, load_manifest
from pitfall.sources import annotation, bigwig, fasta, labels, remote

#: Upper bound on the loci of one task's block (rounded down to whole chunks): keeps a
#: worker's memory (runs read from a bigWig, the block's arrays) independent of cube size.
MAX_BLOCK_LOCI = 1 << 18
#: Upper bound on the bytes of one block of ``sequence``.
MAX_SEQUENCE_BLOCK_BYTES = 32 << 20


class BuildError(ValueError):
    """Inputs that cannot be featurized; the message names the file or cell type."""


@dataclass
class BuildSummary:
    """What a build or append wrote."""

    store: str
    cell_types: list[str]
    n_loci: int
    loci_per_chrom: dict[str, int]
    marks: list[str]
    sequence_length: int | None
    snapshots: list[str]
    seconds: float
    gene_matching: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)
    retries: int = 0
    resumed: list[str] = field(default_factory=list)

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
        if self.resumed:
            lines.append(
                f"  finished an unfinished build: {', '.join(self.resumed)} were already there"
            )
        if self.retries:
            lines.append(f"  {self.retries} commit(s) redone after another writer committed first")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Reading inputs (local paths or URLs)


def _local(source: Source) -> Path:
    """A local path for a reader that needs one (remote files are cached per machine)."""
    return (
        remote.local_copy(source)
        if isinstance(source, str) and remote.is_url(source)
        else Path(source)
    )


def _read(reader: Callable[..., Any], source: Source, *args: Any, **kw: Any) -> Any:
    """``reader(path)``, with a URL's local cache path replaced by the URL in errors."""
    path = _local(source)
    try:
        return reader(path, *args, **kw)
    except (ValueError, OSError) as err:
        if str(path) != str(source) and str(path) in str(err):
            raise type(err)(str(err).replace(str(path), str(source))) from err
        raise


def _signature(source: Source) -> tuple[Any, ...]:
    """What identifies a version of an input: (mtime, size) locally, (ETag, size) remotely."""
    if isinstance(source, str) and remote.is_url(source):
        meta = remote.head(source)
        return (meta["etag"], meta["size"])
    stat = Path(source).stat()
    return (stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _cached(kind: str, source: str, signature: tuple[Any, ...]) -> Any:
    # Per process (each worker keeps its own): a peak or domain file is read once per
    # worker, not once per block; keyed on the signature so an edited file is read anew.
    readers = {
        "table": labels.read_expression_table,
        "domains": labels.read_domains,
        "peaks": labels.read_peaks,
    }
    return _read(readers[kind], source)


def read_input(kind: str, source: Source) -> Any:
    """Read an expression table, domain list or peak file (cached per process and version)."""
    return _cached(kind, str(source), _signature(source))


def _exists(source: Source, m: Manifest) -> None:
    if isinstance(source, str) and remote.is_url(source):
        try:
            remote.head(source)
        except OSError as err:
            raise type(err)(f"{err} (named in {m.path})") from err
        return
    f = Path(source)
    if f.is_dir():
        # BuildError, not IsADirectoryError: the CLI reports ValueErrors in one line.
        raise BuildError(f"{f}: is a directory, not a file (named in {m.path})")
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no such file (named in {m.path})")
    if not os.access(f, os.R_OK):
        raise PermissionError(f"{f}: not readable (named in {m.path})")


def _track_sizes(source: Source) -> dict[str, int]:
    return _read(bigwig.chrom_sizes, source)


def _fasta_sizes(source: Source) -> dict[str, int]:
    return _read(fasta.chrom_sizes, source)


# --------------------------------------------------------------------------------------------
# Planning: loci and checks, all before any computation


def plan_loci(m: Manifest) -> tuple[loci_mod.LocusSet, dict[str, int] | None]:
    """The manifest's locus set (and, for expression, the gene-matching counts).

    Genome bins are described by their chromosome sizes alone (:class:`~pitfall.loci.
    GenomeBins`): no per-bin array exists until a worker builds its block.
    """
    if m.loci_kind == "tss":
        genes = _read(annotation.read_genes, m.loci_path)
        dup = genes["gene_id"][annotation.strip_version(genes["gene_id"]).duplicated().to_numpy()]
        if len(dup):
            raise BuildError(
                f"{m.loci_path}: {len(dup)} duplicate gene ids (e.g. {dup.iloc[0]}); each gene "
                "must appear once (ids are compared without their version suffix)"
            )
        frame = annotation.tss_windows(genes, m.upstream, m.downstream, m.chroms)
        summary = None
        if m.target_kind == "expression":
            frame, summary = labels.match_genes(frame, read_input("table", m.table))
        return loci_mod.LocusTable.from_frame(frame.reset_index(drop=True)), summary
    if m.loci_kind == "bins":
        sizes = _read(annotation.read_chrom_sizes, m.loci_path)
        chroms = m.chroms or loci_mod.chrom_order(sizes)
        missing = [c for c in chroms if c not in sizes]
        if missing:
            raise BuildError(f"{m.loci_path}: chromosomes {missing} (from the manifest) are absent")
        return loci_mod.GenomeBins.from_sizes(sizes, m.bin_size, chroms), None
    frame = _read(annotation.read_bed_regions, m.loci_path, m.chroms)
    return loci_mod.LocusTable.from_frame(frame), None


def resolve_cell_types(m: Manifest, cell_types: Sequence[str] | None) -> list[str]:
    """The manifest's cell types to featurize, checked against the manifest and the table."""
    if m.cell_types:
        available = list(m.cell_types)
    else:
        table = read_input("table", m.table)
        available = [c for c in table.columns if c not in m.exclude]
    if cell_types is None:
        return available
    unknown = [c for c in cell_types if c not in available]
    if unknown:
        raise BuildError(f"{m.path}: cell types {unknown} are not in the manifest ({available})")
    return list(cell_types)


def _missing_chrom_note(path: Source, chrom: str) -> str:
    # One wording for the check and the task, so the summary lists each case once.
    return f"{path} has no {chrom}: its mark is NaN on {chrom}"


def _extents(loci: loci_mod.LocusSet) -> dict[str, tuple[int, int]]:
    """Per chromosome of the loci: (smallest start, largest end)."""
    if isinstance(loci, loci_mod.GenomeBins):
        return {c: (0, n) for c, n in loci.sizes}
    t = loci.block(0, len(loci))
    frame = pd.DataFrame({"chrom": t.chrom.astype(object), "start": t.start, "end": t.end})
    agg = frame.groupby("chrom", sort=False).agg(start=("start", "min"), end=("end", "max"))
    return {str(c): (int(r.start), int(r.end)) for c, r in agg.iterrows()}


def check_inputs(m: Manifest, loci: loci_mod.LocusSet, cell_types: list[str]) -> list[str]:
    """Open every input once (headers, indexes, label files); raise on the first unusable one.

    Returns warnings for the build summary (e.g. a bigWig lacking a chromosome of the loci).
    """
    notes: list[str] = []
    for f in m.input_files(cell_types if m.cell_types else []):
        _exists(f, m)
    extents = _extents(loci)
    loci_chroms = list(extents)
    # Chromosome lengths other files state, to catch a FASTA cut short or from another
    # assembly (its sequence would silently read as N past the cut).
    reference: dict[str, tuple[int, Source]] = {}
    if isinstance(loci, loci_mod.GenomeBins):
        reference = {c: (n, m.loci_path) for c, n in loci.sizes}
    if m.target_kind == "expression":
        table = read_input("table", m.table)
        absent = [c for c in cell_types if c not in table.columns]
        if absent:
            raise BuildError(
                f"{m.table}: cell types {absent} (from {m.path}) are not columns of the "
                f"expression table (it has {', '.join(map(str, table.columns[:8]))}, ...)"
            )
    for ct in cell_types if m.cell_types else []:
        spec = m.cell_types[ct]
        for path in spec.signal.values():
            sizes = _track_sizes(path)
            labels.check_chrom_names(list(sizes), loci_chroms, path)
            notes += [_missing_chrom_note(path, c) for c in loci_chroms if c not in sizes]
            for c, n in sizes.items():
                reference.setdefault(c, (n, path))
        if m.target_kind in ("domains", "peaks"):
            # Read now (they are small) so an empty or malformed call set stops the build
            # before any work, not from inside a task.
            regions = read_input(m.target_kind, spec.target)
            labels.check_chrom_names(list(pd.unique(regions["chrom"])), loci_chroms, spec.target)
    if m.fasta is not None:
        fasta_sizes = _fasta_sizes(m.fasta)
        labels.check_chrom_names(list(fasta_sizes), loci_chroms, m.fasta)
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
        past = [c for c, (lo, _) in extents.items() if lo >= fasta_sizes[c]]
        if past:
            c = past[0]
            raise BuildError(
                f"{m.fasta}: loci start past the end of {c} (at {extents[c][0]:,}, length "
                f"{fasta_sizes[c]:,}); the FASTA is truncated or from another assembly"
            )
        if m.sequence_length is None:
            lengths = _lengths(loci)
            if lengths.size > 1:
                raise BuildError(
                    f"{m.path}: loci have {lengths.size} different lengths ({lengths[:3]}...), "
                    "so their sequences cannot share one array; set [sequence] length = N to "
                    "take N bp centred on each locus"
                )
    return notes


def _lengths(loci: loci_mod.LocusSet) -> np.ndarray:
    if isinstance(loci, loci_mod.GenomeBins):
        return np.unique([min(loci.bin_size, n) for _, n in loci.sizes] + [loci.bin_size])
    t = loci.block(0, len(loci))
    return np.unique(t.end - t.start)


def file_checksum(path: Source, algorithm: str = "sha256") -> dict[str, Any]:
    """How to recognise an input later: sha256 of a local file, ETag and size of a URL."""
    if isinstance(path, str) and remote.is_url(path):
        meta = remote.head(path)
        return {"path": path, "etag": meta["etag"], "size": meta["size"]}
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"path": str(path), algorithm: h.hexdigest()}


def sequence_windows(
    table: loci_mod.LocusTable, length: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sequence windows: the loci themselves, or ``length`` bp centred on each locus.

    The centre is ``(start + end) // 2``; the window is ``[centre - length // 2, + length)``.
    """
    if length is None:
        return table.start, table.end
    lo = (table.start + table.end) // 2 - length // 2
    return lo, lo + length


# --------------------------------------------------------------------------------------------
# Tasks (run on workers; plain functions of small arguments)


@dataclass(frozen=True)
class CellTypeJob:
    """Everything a worker needs to compute one cell type's blocks."""

    id: str
    kind: str  # expression | domains | peaks
    marks: tuple[str, ...]
    signal: tuple[Source, ...]
    target: Source | None = None
    values: np.ndarray | None = None  # expression: one value per locus of the cube
    threshold: float = 0.5


@dataclass
class BlockData:
    """One cell type's variables over one block of loci (kept on the worker that made it)."""

    i0: int
    label: np.ndarray
    value: np.ndarray | None
    signal: np.ndarray | None
    notes: list[str]


def compute_block(job: CellTypeJob, loci: loci_mod.LocusSet, i0: int, i1: int) -> BlockData:
    """Label, value and signal of one cell type over loci ``[i0, i1)``."""
    table = loci.block(i0, i1)
    notes: list[str] = []
    value = None
    if job.kind == "expression":
        value = np.asarray(job.values[i0:i1], dtype=np.float32)
        label = np.where(np.isnan(value), np.float32(np.nan), value > job.threshold)
        label = label.astype(np.float32)
    else:
        regions = read_input(job.kind, job.target)
        place = labels.domain_boundaries if job.kind == "domains" else labels.peak_labels
        label, summary = place(regions, table, missing="nan", return_summary=True)
        notes += [
            f"{job.target} has no {job.kind} on {c}: its labels are NaN there"
            for c in summary.get("chroms_without", [])
        ]
    signal = None
    if job.marks:
        signal = np.full((len(table), len(job.marks)), np.nan, dtype=np.float32)
        runs = table.chrom_runs()
        for j, path in enumerate(job.signal):
            local = _local(path)
            for chrom, a, b in runs:
                try:
                    signal[a:b, j] = bigwig.window_means(
                        local, chrom, table.start[a:b], table.end[a:b]
                    )
                except bigwig.MissingChromosome:
                    notes.append(_missing_chrom_note(path, chrom))
    return BlockData(i0, label, value, signal, notes)


def _fresh(fork_bytes: bytes) -> Any:
    # Each task writes into its own copy of the transaction's fork (also in-process, where
    # Dask would otherwise hand every task the same object).
    import pickle

    return pickle.loads(fork_bytes)


def write_block(fork_bytes: bytes, index: int, data: BlockData) -> tuple[Any, list[str]]:
    """Write a computed block at cell type ``index``; return the changed fork and notes."""
    fork = _fresh(fork_bytes)
    cube.write_region(fork, "label", data.label, data.i0, index)
    if data.value is not None:
        cube.write_region(fork, "value", data.value, data.i0, index)
    if data.signal is not None:
        cube.write_region(fork, "signal", data.signal, data.i0, index)
    return fork, data.notes


def compute_write_block(
    fork_bytes: bytes, index: int, job: CellTypeJob, loci: loci_mod.LocusSet, i0: int, i1: int
) -> tuple[Any, list[str]]:
    """:func:`compute_block` then :func:`write_block`, in one task."""
    return write_block(fork_bytes, index, compute_block(job, loci, i0, i1))


def write_loci_block(
    fork_bytes: bytes, loci: loci_mod.LocusSet, i0: int, i1: int, schema: cube.Schema
) -> tuple[Any, dict[int, str]]:
    """Write the coordinates of loci ``[i0, i1)``; return the fork and each chunk's digest."""
    fork = _fresh(fork_bytes)
    digests = {}
    for a, b in loci_mod.blocks(i1 - i0, schema.chunk):
        digests[i0 + a] = cube.write_loci(fork, loci.block(i0 + a, i0 + b), i0 + a, schema)
    return fork, digests


def write_sequence_block(
    fork_bytes: bytes, source: Source, loci: loci_mod.LocusSet, i0: int, i1: int, length: int | None
) -> Any:
    """Write the sequence codes of loci ``[i0, i1)`` (strand-aware)."""
    fork = _fresh(fork_bytes)
    table = loci.block(i0, i1)
    lo, hi = sequence_windows(table, length)
    path = _local(source)
    parts = [
        fasta.window_codes(path, chrom, lo[a:b], hi[a:b], table.strands()[a:b])
        for chrom, a, b in table.chrom_runs()
    ]
    cube.write_region(fork, "sequence", np.concatenate(parts), i0)
    return fork


def checksums(m: Manifest, ct: str) -> dict[str, Any]:
    """Checksums of the files one cell type is computed from (a task: files can be large)."""
    spec = m.cell_types.get(ct)
    files: dict[str, Source] = {}
    if spec is not None:
        files = {f"signal:{k}": v for k, v in spec.signal.items()}
        if spec.target is not None:
            files["target"] = spec.target
    if m.table is not None:
        files["table"] = m.table
    return {key: file_checksum(p) for key, p in files.items()}


# --------------------------------------------------------------------------------------------
# Driver


def _block_size(schema: cube.Schema, bytes_per_locus: int, max_bytes: int | None = None) -> int:
    """Loci per task: whole chunks, at most MAX_BLOCK_LOCI (and ``max_bytes``), at least one."""
    cap = MAX_BLOCK_LOCI
    if max_bytes is not None:
        cap = min(cap, max(1, max_bytes // max(1, bytes_per_locus)))
    return max(1, cap // schema.chunk) * schema.chunk


@dataclass
class _Item:
    """One block of one cell type, through compute (ahead) and write."""

    ct: int
    i0: int
    i1: int
    future: Any = None
    state: str = "pending"  # pending | computing | computed | writing | written


class _Writer:
    """Drives the task graph: commit in order, bounded work in flight, compute ahead.

    Two budgets of ``limit`` tasks each: writes of the cell type being committed (the
    *head*), and blocks of later cell types computed ahead (running or done and waiting on
    their worker). Head tasks never wait for ahead tasks, so a commit is never starved.
    """

    def __init__(
        self,
        client: Any,
        loc: Location,
        m: Manifest,
        loci: loci_mod.LocusSet,
        cell_types: list[str],
        jobs: list[CellTypeJob],
        schema: cube.Schema,
        *,
        create: bool,
        planned: list[str],
        repo: Any,
        progress: bool,
    ) -> None:
        self.client, self.loc, self.m, self.schema = client, loc, m, schema
        self.cell_types, self.jobs, self.create, self.repo = cell_types, jobs, create, repo
        self.planned = planned
        self.n_loci = len(loci)
        # Large locus tables travel to each worker once, not with every task.
        self.loci = (
            client.scatter(loci, broadcast=False)
            if isinstance(loci, loci_mod.LocusTable) and len(loci) > 100_000
            else loci
        )
        self.limit = max(2, 2 * n_threads(client))
        step = _block_size(schema, 4 * (2 + len(schema.marks)))
        self.items = [
            [_Item(k, a, b) for a, b in loci_mod.blocks(self.n_loci, step)]
            for k in range(len(cell_types))
        ]
        self.todo = [deque(items) for items in self.items]
        self.by_future: dict[Any, tuple[str, Any]] = {}
        self.n_head = 0
        self.n_ahead = 0
        self.notes: list[str] = []
        self.snapshots: list[str] = []
        self.retries = 0
        self.progress = progress
        self.sources = {ct: client.submit(checksums, m, ct, pure=False) for ct in cell_types}

    def _submit(self, kind: str, obj: Any, fn: Callable[..., Any], *args: Any) -> Any:
        fut = self.client.submit(fn, *args, pure=False)
        self.by_future[fut] = (kind, obj)
        self.ac.add(fut)
        return fut

    # -- transactions ------------------------------------------------------------------------

    def _begin(self, k: int) -> None:
        ct = self.cell_types[k]
        spec = self.m.cell_types.get(ct)
        info = cube.CellTypeInfo(ct, spec.name if spec else ct, spec.group if spec else "")
        first = self.create and k == 0
        if first:
            self.txn = cube.begin_create(
                self.loc, self.schema, [info], assembly=self.m.assembly, repo=self.repo
            )
        else:
            self.txn = cube.begin_append(self.loc, info, repo=self.repo)
        self.head = k
        self.fork_bytes = _pickle(self.txn.fork)
        self.forks: list[Any] = []
        self.extra: deque[tuple[str, int, int]] = deque()
        self.n_extra = 0
        self.digests: dict[int, str] = {}
        if first:
            step = _block_size(self.schema, 64)
            self.extra += [("loci", a, b) for a, b in loci_mod.blocks(self.n_loci, step)]
            if self.schema.sequence_length:
                step = _block_size(
                    self.schema, self.schema.sequence_length, MAX_SEQUENCE_BLOCK_BYTES
                )
                self.extra += [("sequence", a, b) for a, b in loci_mod.blocks(self.n_loci, step)]
        # Blocks of this cell type computed ahead are written now, where they lie.
        for it in self.items[k]:
            if it.state == "computed":
                self._write_computed(it)

    def _write_computed(self, it: _Item) -> None:
        computed = it.future
        it.future = self._submit(
            "write", it, write_block, self.fork_bytes, self.txn.index, computed
        )
        it.state = "writing"
        self.n_ahead -= 1
        self.n_head += 1
        computed.release()

    def _commit(self) -> None:
        import icechunk

        k = self.head
        ct = self.cell_types[k]
        attrs = self.txn.attrs
        attrs["cell_type_sources"] = {
            **attrs.get("cell_type_sources", {}),
            ct: self.sources[ct].result(),
        }
        if self.planned:
            attrs["build"] = {
                "cell_types": self.planned,
                "complete": k == len(self.cell_types) - 1,
            }
        if self.create and k == 0:
            attrs["featurization"] = self.m.featurization()
            attrs["locus_fingerprint"] = loci_mod.combine_digests(
                [self.digests[a] for a in sorted(self.digests)], self.n_loci
            )
        try:
            message = f"create with {ct}" if self.create and k == 0 else None
            self.snapshots.append(self.txn.commit(self.forks, message=message))
        except icechunk.ConflictError:
            if self.create and k == 0:
                raise
            # Another writer appended first: this cell type starts again at the new tip.
            self.retries += 1
            for it in self.items[k]:
                it.state, it.future = "pending", None
            self.todo[k] = deque(self.items[k])
            self._begin(k)
            return
        self.bar.set_postfix(committed=f"{len(self.snapshots)}/{len(self.cell_types)}", last=ct)
        if k + 1 < len(self.cell_types):
            self._begin(k + 1)

    # -- the loop ----------------------------------------------------------------------------

    def _fill(self) -> None:
        k = self.head
        while self.extra and self.n_head < self.limit:
            kind, a, b = self.extra.popleft()
            if kind == "loci":
                self._submit(
                    kind, a, write_loci_block, self.fork_bytes, self.loci, a, b, self.schema
                )
            else:
                self._submit(
                    kind, a, write_sequence_block, self.fork_bytes, self.m.fasta, self.loci, a,
                    b, self.m.sequence_length,
                )  # fmt: skip
            self.n_head += 1
            self.n_extra += 1
        while self.todo[k] and self.n_head < self.limit:
            it = self.todo[k].popleft()
            it.future = self._submit(
                "write", it, compute_write_block, self.fork_bytes, self.txn.index,
                self.jobs[k], self.loci, it.i0, it.i1,
            )  # fmt: skip
            it.state = "writing"
            self.n_head += 1
        for later in range(k + 1, len(self.items)):
            while self.todo[later] and self.n_ahead < self.limit:
                it = self.todo[later].popleft()
                it.future = self._submit(
                    "compute", it, compute_block, self.jobs[later], self.loci, it.i0, it.i1
                )
                it.state = "computing"
                self.n_ahead += 1
            if self.n_ahead >= self.limit:
                break

    def _head_done(self) -> bool:
        return (
            not self.extra
            and self.n_extra == 0
            and all(it.state == "written" for it in self.items[self.head])
        )

    def _done(self, fut: Any) -> None:
        kind, obj = self.by_future.pop(fut)
        result = fut.result()  # a task's error is raised here, with its own message
        if kind in ("loci", "sequence"):
            fork = result
            if kind == "loci":
                fork, digests = result
                self.digests.update(digests)
            self.forks.append(fork)
            self.n_head -= 1
            self.n_extra -= 1
        elif kind == "compute":
            obj.state = "computed"
            if obj.ct == self.head:
                self._write_computed(obj)
            return  # the result stays on its worker until written
        else:
            fork, notes = result
            self.forks.append(fork)
            self.notes += notes
            obj.state, obj.future = "written", None
            self.n_head -= 1
            self.bar.update(1)
            cube._pause_point("during_write")
        fut.release()

    def run(self) -> None:
        from distributed import as_completed
        from tqdm.auto import tqdm

        n_blocks = sum(len(items) for items in self.items)
        self.bar = tqdm(total=n_blocks, desc="featurize", unit="block", disable=not self.progress)
        self.ac = as_completed([])
        try:
            self._begin(0)
            while True:
                self._fill()
                if self._head_done():
                    self._commit()
                    if len(self.snapshots) == len(self.cell_types):
                        break
                    continue
                self._done(next(self.ac))
        finally:
            self.bar.close()
            for f in list(self.by_future):
                f.cancel()


def _pickle(obj: Any) -> bytes:
    import pickle

    return pickle.dumps(obj)


def _jobs(m: Manifest, loci: loci_mod.LocusSet, cell_types: list[str]) -> list[CellTypeJob]:
    table = read_input("table", m.table) if m.target_kind == "expression" else None
    ids = None
    if table is not None:
        t = loci.block(0, len(loci))
        ids = annotation.strip_version(
            pd.Series((t.extra or {}).get("gene_id", t.names()).astype(object))
        ).to_numpy()
    jobs = []
    for ct in cell_types:
        spec = m.cell_types.get(ct)
        values = None
        if table is not None:
            values = table[ct].reindex(ids).to_numpy(dtype=np.float32)
        jobs.append(
            CellTypeJob(
                id=ct,
                kind=m.target_kind,
                marks=tuple(m.marks),
                signal=tuple(spec.signal[mk] for mk in m.marks) if spec else (),
                target=spec.target if spec else None,
                values=values,
                threshold=m.threshold,
            )
        )
    return jobs


def _schema(m: Manifest, loci: loci_mod.LocusSet) -> cube.Schema:
    seq_len = None
    if m.fasta is not None:
        seq_len = m.sequence_length or int(_lengths(loci)[0])
    bins = isinstance(loci, loci_mod.GenomeBins)
    return cube.Schema(
        n_loci=len(loci),
        locus_chunk=m.locus_chunk,
        marks=tuple(m.marks),
        value=m.target_kind == "expression",
        sequence_length=seq_len,
        strand=not bins,
        name=not bins,
    )


def _featurize(
    m: Manifest,
    loci: loci_mod.LocusSet,
    cell_types: list[str],
    loc: Location,
    *,
    create: bool,
    planned: list[str],
    repo: Any,
    workers: int | None,
    scheduler: str | None,
    client: Any,
    progress: bool,
) -> _Writer:
    jobs = _jobs(m, loci, cell_types)
    with dask_client(workers=workers, scheduler=scheduler, client=client) as c:
        w = _Writer(
            c, loc, m, loci, cell_types, jobs, _schema(m, loci), create=create,
            planned=planned, repo=repo, progress=progress,
        )  # fmt: skip
        w.run()
    return w


def _workers(workers: int | None, processes: bool) -> int | None:
    return 0 if not processes else workers


def _same_featurization(a: dict[str, Any], b: dict[str, Any]) -> bool:
    # The manifest's own path may differ (a copy, a moved folder); what it says may not.
    return {k: v for k, v in a.items() if k != "manifest"} == {
        k: v for k, v in b.items() if k != "manifest"
    }


def _resume_plan(
    loc: Location, m: Manifest, loci: loci_mod.LocusSet, cts: list[str], storage_options: Any
) -> tuple[Any, list[str], list[str]] | None:
    """For a cube left by an unfinished build of this manifest: (repo, planned, still to do)."""
    repo = cube.open_repository(loc, **storage_options)
    attrs = cube.root_attrs(repo)
    build_state = attrs.get("build") or {}
    if not build_state or build_state.get("complete", True):
        return None
    if not _same_featurization(attrs.get("featurization", {}), m.featurization()):
        raise BuildError(
            f"{loc} holds an unfinished build of another manifest; build to a new --store, "
            "or finish that build with its own manifest"
        )
    block = int(attrs.get("locus_fingerprint_block") or 0)
    if loci_mod.fingerprint(loci, block) != attrs.get("locus_fingerprint"):
        raise BuildError(f"the loci of {m.path} changed since the unfinished build at {loc} began")
    planned = list(build_state["cell_types"])
    if set(cts) != set(planned):
        raise BuildError(
            f"{loc} holds an unfinished build of cell types {planned}; rerun it with the same "
            "cell types to finish it"
        )
    present = set(cube.cell_types_of(repo))
    return repo, planned, [ct for ct in planned if ct not in present]


def build(
    manifest: str | os.PathLike | Manifest,
    store: str | os.PathLike,
    *,
    cell_types: Sequence[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    processes: bool = True,
    progress: bool = True,
    **storage_options: Any,
) -> BuildSummary:
    """Build a new cube at ``store`` from a manifest, one commit per cell type.

    A failed build leaves no cube; a killed one leaves whole cell types in a cube marked
    unfinished (which :func:`~pitfall.cube.open_cube` refuses): running the same build again
    finishes it, computing only the cell types still missing.

    Parameters
    ----------
    manifest
        Path of the manifest TOML (or a loaded :class:`~pitfall.manifest.Manifest`).
    store
        Location of the new cube: a folder or a URL (``s3://bucket/prefix``, ...); it must
        not hold a cube already (use :func:`append`).
    cell_types
        Subset of the manifest's cell types; default all.
    workers
        Local Dask workers (processes, one thread each); default ``min(2, cores)``; 0 runs
        in this process.
    scheduler
        Address or scheduler file of a running Dask cluster; overrides ``workers``.
    client
        An existing :class:`distributed.Client` (dask-jobqueue, Gateway, Kubernetes...).
    processes
        Local workers as processes (default) or one thread in this process.
    storage_options
        ``anonymous``, ``endpoint_url``, ``region`` of the cube's object store.
    """
    t0 = time.perf_counter()
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    loc = parse_location(store)
    loci, gene_matching = plan_loci(m)
    if len(loci) == 0:
        raise BuildError(f"{m.path}: the locus set is empty (check [loci] and chroms)")
    cts = resolve_cell_types(m, cell_types)
    notes = check_inputs(m, loci, cts)
    created, create, todo = False, True, cts
    try:
        repo, created = cube.create_repository(loc, **storage_options)
    except FileExistsError:
        resume = _resume_plan(loc, m, loci, cts, storage_options)
        if resume is None:
            raise
        repo, cts, todo = resume
        create = False
    try:
        w = _featurize(
            m, loci, todo, loc, create=create, planned=cts, repo=repo,
            workers=_workers(workers, processes), scheduler=scheduler, client=client,
            progress=progress,
        )  # fmt: skip
    except Exception:
        # A failed build leaves no cube: the repository it created goes. An interrupted or
        # killed one leaves whole cell types in a cube marked unfinished, which the same
        # build finishes when run again.
        if created:
            cube.remove_new_repository(loc, **storage_options)
        raise
    return BuildSummary(
        store=str(loc),
        cell_types=cts,
        n_loci=len(loci),
        loci_per_chrom=loci.chrom_counts(),
        marks=m.marks,
        sequence_length=w.schema.sequence_length,
        snapshots=w.snapshots,
        seconds=time.perf_counter() - t0,
        gene_matching=gene_matching,
        warnings=_dedupe(notes + w.notes),
        retries=w.retries,
        resumed=[ct for ct in cts if ct not in todo],
    )


def append(
    store: str | os.PathLike,
    manifest: str | os.PathLike | Manifest,
    cell_types: Sequence[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    processes: bool = True,
    progress: bool = True,
    **storage_options: Any,
) -> BuildSummary:
    """Add cell types from a manifest to the cube at ``store``, one commit per cell type.

    The manifest must describe the cube's loci (same loci source, windows and chromosomes);
    a cell type already in the cube is refused before anything is computed. Several
    appenders (on several machines) may write to one cube at once: a commit that loses the
    race is redone at the new tip.
    """
    t0 = time.perf_counter()
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    loc = parse_location(store)
    repo = cube.open_repository(loc, **storage_options)
    attrs = cube.root_attrs(repo)
    present = sorted(set(cell_types) & set(cube.cell_types_of(repo)))
    if present:
        raise cube.CubeError(f"cell types {present} are already in the cube at {loc}")
    loci, gene_matching = plan_loci(m)
    cts = resolve_cell_types(m, cell_types)
    block = int(attrs.get("locus_fingerprint_block") or 0)
    if not block or loci_mod.fingerprint(loci, block) != attrs.get("locus_fingerprint"):
        raise cube.CubeError(
            f"the loci of {m.path} differ from the cube's at {loc}; the manifest must use the "
            "same loci source, windows and chromosomes as the build"
        )
    notes = check_inputs(m, loci, cts)
    w = _featurize(
        m, loci, cts, loc, create=False, planned=[], repo=repo,
        workers=_workers(workers, processes), scheduler=scheduler, client=client,
        progress=progress,
    )  # fmt: skip
    return BuildSummary(
        store=str(loc),
        cell_types=cts,
        n_loci=len(loci),
        loci_per_chrom=loci.chrom_counts(),
        marks=m.marks,
        sequence_length=w.schema.sequence_length,
        snapshots=w.snapshots,
        seconds=time.perf_counter() - t0,
        gene_matching=gene_matching,
        warnings=_dedupe(notes + w.notes),
        retries=w.retries,
    )


def _dedupe(notes: list[str]) -> list[str]:
    out = list(dict.fromkeys(notes))
    for note in out:
        warnings.warn(note, stacklevel=3)
    return out
