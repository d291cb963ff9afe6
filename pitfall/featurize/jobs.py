"""What the workers run: compute a block of loci for a few cell types, and write it into the cube.

Plain functions of small arguments (a job description, the locus set, a block range, the
transaction's fork as bytes), so any Dask worker can run them; each writes into its own
copy of the fork and returns it with its notes. (The prediction problems a cube poses are
another thing, :mod:`pitfall.tasks`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pitfall import _transaction as transaction
from pitfall import loci as loci_mod
from pitfall.featurize.plan import (
    BuildError,
    centred_windows,
    file_checksum,
    local_path,
    missing_chrom_note,
    no_data_note,
    read_input,
)
from pitfall.manifest import Source
from pitfall.schema import Schema
from pitfall.sources import bigwig, fasta, labels

__all__ = [
    "BlockData",
    "CellTypeJob",
    "checksums",
    "compute_blocks",
    "compute_signal",
    "compute_write_block",
    "sequence_codes",
    "write_block",
    "write_loci_block",
    "write_sequence_block",
]


@dataclass(frozen=True)
class CellTypeJob:
    """Everything a worker needs to compute one cell type's blocks."""

    id: str
    kind: str  # a pitfall.sources.labels.LABEL_KINDS name
    marks: tuple[str, ...]
    signal: tuple[Source | None, ...]  # per mark; None: a missing experiment (NaN)
    target: Source | None = None
    values: np.ndarray | None = None  # table kinds: one value per locus of the cube
    threshold: float = 0.5
    window: int | None = None  # signal over this many bp centred on each locus
    files: tuple[tuple[str, Source], ...] = ()  # what the cell type is computed from, by role
    # Further keyword arguments of the label kind's place (LabelKind.options): values, and
    # files read with the kind's reader.
    place_options: tuple[tuple[str, Any], ...] = ()
    place_files: tuple[tuple[str, Source], ...] = ()


@dataclass
class BlockData:
    """One cell type's variables over one block of loci (kept on the worker that made it)."""

    i0: int
    label: np.ndarray
    value: np.ndarray | None
    signal: np.ndarray | None
    notes: list[str]
    sources: dict[str, Any] | None = None  # the first block's: checksums of the job's files


def compute_blocks(
    jobs: Sequence[CellTypeJob], loci: loci_mod.LocusSet, i0: int, i1: int
) -> list[BlockData]:
    """Label, value and signal of each of ``jobs`` (consecutive cell types) over loci ``[i0, i1)``.

    Several small cell types share one task, so the driver's fixed cost per task (its
    scheduler's messages) is paid once for all of them; the locus block and its windows
    are made once too.
    """
    table = loci.block(i0, i1)
    runs = table.chrom_runs()
    windows: dict[int | None, tuple[np.ndarray, np.ndarray]] = {}
    out = []
    for job in jobs:
        if job.window not in windows:
            windows[job.window] = centred_windows(table, job.window)
        out.append(_compute(job, table, runs, windows[job.window], i0, i1))
    return out


def _compute(
    job: CellTypeJob,
    table: loci_mod.LocusTable,
    runs: list[tuple[str, int, int]],
    windows: tuple[np.ndarray, np.ndarray],
    i0: int,
    i1: int,
) -> BlockData:
    notes: list[str] = []
    value = None
    if job.values is not None:
        value = np.asarray(job.values[i0:i1], dtype=np.float32)
        label = np.where(np.isnan(value), np.float32(np.nan), value > job.threshold)
        label = label.astype(np.float32)
    else:
        regions = read_input(job.kind, job.target)
        place = labels.LABEL_KINDS[job.kind].place
        if place is None:
            raise BuildError(f"label kind {job.kind!r} has no place function (LabelKind.place)")
        options = dict(job.place_options)
        options.update({k: read_input(job.kind, f) for k, f in job.place_files})
        label, summary = place(regions, table, missing="nan", return_summary=True, **options)
        notes += [
            f"{job.target} has no {job.kind} on {c}: its labels are NaN there"
            for c in summary.get("chroms_without", [])
        ]
    signal = None
    if job.marks:
        signal = compute_signal(job, table, runs, windows, notes)
    # Each cell type's files are checksummed once, by the task of its first block.
    sources = checksums(job) if i0 == 0 else None
    return BlockData(i0, label, value, signal, notes, sources)


def compute_signal(
    job: CellTypeJob,
    table: loci_mod.LocusTable,
    runs: list[tuple[str, int, int]],
    windows: tuple[np.ndarray, np.ndarray],
    notes: list[str],
) -> np.ndarray:
    """The job's signal over the loci of ``table``: shape ``(n_block, len(job.marks))`` float32.

    NaN for a mark without a file (a missing experiment), a file without data and a
    chromosome a file lacks (the last two appended to ``notes``).
    """
    signal = np.full((len(table), len(job.marks)), np.nan, dtype=np.float32)
    lo, hi = windows
    for j, path in enumerate(job.signal):
        if path is None:
            continue
        # One reader per file and block: a URL's header and index travel once.
        with bigwig.open_bigwig(str(path)) as handle:
            if not bigwig.has_data(handle):
                # Without a value anywhere its mark is unknown (NaN), not 0 everywhere.
                notes.append(no_data_note(path, job.id))
                continue
            for chrom, a, b in runs:
                try:
                    signal[a:b, j] = bigwig.window_means(handle, chrom, lo[a:b], hi[a:b])
                except bigwig.MissingChromosome:
                    notes.append(missing_chrom_note(path, chrom))
    return signal


def _fresh(fork_bytes: bytes) -> Any:
    # Each task writes into its own copy of the transaction's fork (also in-process, where
    # Dask would otherwise hand every task the same object).
    import pickle

    return pickle.loads(fork_bytes)


def write_block(
    fork_bytes: bytes, index: int, data: Sequence[BlockData]
) -> tuple[Any, list[str], list[dict[str, Any] | None]]:
    """Write computed blocks of consecutive cell types from ``index``.

    Returns the changed fork, the blocks' notes and each cell type's sources (None but for
    a cell type's first block).
    """
    regions = {"label": np.stack([d.label for d in data])}
    if data[0].value is not None:
        regions["value"] = np.stack([d.value for d in data])  # type: ignore[misc]
    if data[0].signal is not None:
        regions["signal"] = np.stack([d.signal for d in data])  # type: ignore[misc]
    fork = transaction.write_regions(
        _fresh(fork_bytes), regions, data[0].i0, slice(index, index + len(data))
    )
    return fork, [n for d in data for n in d.notes], [d.sources for d in data]


def compute_write_block(
    fork_bytes: bytes,
    index: int,
    jobs: Sequence[CellTypeJob],
    loci: loci_mod.LocusSet,
    i0: int,
    i1: int,
) -> tuple[Any, list[str], list[dict[str, Any] | None]]:
    """:func:`compute_blocks` then :func:`write_block`, in one task."""
    return write_block(fork_bytes, index, compute_blocks(jobs, loci, i0, i1))


def write_loci_block(
    fork_bytes: bytes, loci: loci_mod.LocusSet, i0: int, i1: int, schema: Schema
) -> tuple[Any, dict[int, str]]:
    """Write the coordinates of loci ``[i0, i1)``; return the fork and each chunk's digest."""
    fork = _fresh(fork_bytes)
    digests = {}
    for a, b in loci_mod.blocks(i1 - i0, schema.chunk):
        digests[i0 + a] = transaction.write_loci(fork, loci.block(i0 + a, i0 + b), i0 + a, schema)
    return fork, digests


def write_sequence_block(
    fork_bytes: bytes, source: Source, loci: loci_mod.LocusSet, i0: int, i1: int, length: int | None
) -> Any:
    """Write the sequence codes of loci ``[i0, i1)`` (strand-aware)."""
    codes = sequence_codes(source, loci.block(i0, i1), length)
    return transaction.write_regions(_fresh(fork_bytes), {"sequence": codes}, i0)


def sequence_codes(source: Source, table: loci_mod.LocusTable, length: int | None) -> np.ndarray:
    """Codes of ``length`` bp centred on each locus of ``table`` (strand-aware).

    Returns
    -------
    numpy.ndarray
        Shape ``(loci, length)`` uint8: A=0 C=1 G=2 T=3 N=4, as
        :func:`pitfall.sources.fasta.window_codes` reads them.
    """
    lo, hi = centred_windows(table, length)
    path = local_path(source)
    parts = [
        fasta.window_codes(path, chrom, lo[a:b], hi[a:b], table.strands()[a:b])
        for chrom, a, b in table.chrom_runs()
    ]
    return np.concatenate(parts)


def checksums(job: CellTypeJob) -> dict[str, Any]:
    """Checksums of the files one cell type is computed from, by role (``signal:<mark>``...)."""
    return {role: file_checksum(path) for role, path in job.files}
