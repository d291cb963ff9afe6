"""Planning a build: the locus set, the cell types, and every input checked up front.

Inputs are local paths or URLs (:mod:`pitfall.sources.remote`); the checks open each one
once (headers, indexes, label files) and raise on the first unusable one, naming it, before
any task runs.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pitfall import _checksum as checksum
from pitfall import loci as loci_mod
from pitfall.manifest import Manifest, Source, load_manifest
from pitfall.sources import annotation, bigwig, fasta, labels, remote

__all__ = [
    "BuildError",
    "centred_windows",
    "check_inputs",
    "check_not_empty",
    "chrom_sizes",
    "file_checksum",
    "load",
    "local_path",
    "locus_lengths",
    "missing_chrom_note",
    "no_data_note",
    "plan_loci",
    "read_input",
    "resolve_cell_types",
    "sequence_length",
]


class BuildError(ValueError):
    """Inputs that cannot be featurized; the message names the file or cell type."""


def local_path(source: Source) -> Path:
    """A local path for a reader that needs one (remote files are cached per machine)."""
    return (
        remote.local_copy(source)
        if isinstance(source, str) and remote.is_url(source)
        else Path(source)
    )


def _read(reader: Callable[..., Any], source: Source, *args: Any, **kw: Any) -> Any:
    """``reader(path)``, with a URL's local cache path replaced by the URL in errors."""
    path = local_path(source)
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
    reader = labels.LABEL_KINDS[kind].read
    if reader is None:
        raise BuildError(f"label kind {kind!r} has no reader (LabelKind.read)")
    return _read(reader, source)


def read_input(kind: str, source: Source | None) -> Any:
    """Read a label kind's table or file (cached per process and version of the file).

    ``kind`` names a :data:`pitfall.sources.labels.LABEL_KINDS` entry; ``source`` is the
    manifest's ``[target] table`` or a cell type's ``target`` (the manifest's checks make
    sure the kind's one is given).
    """
    if source is None:
        raise BuildError(f"label kind {kind!r}: no table or target file to read is given")
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


def _track_header(source: Source) -> tuple[dict[str, int], bool]:
    """A bigWig's chromosome sizes, and whether it holds any value; one opening."""
    # A URL's header and chromosome tree are read by range requests, not downloaded.
    with bigwig.open_bigwig(str(source)) as handle:
        return bigwig.chrom_sizes(handle), bigwig.has_data(handle)


def _fasta_sizes(source: Source) -> dict[str, int]:
    if isinstance(source, str) and remote.is_url(source):
        # The index names every sequence and its length: the driver reads it, not the
        # genome (workers download the FASTA itself, once per machine, to read windows).
        try:
            text = remote.read_bytes(source + ".fai").decode()
        except FileNotFoundError as err:
            raise BuildError(
                f"{source}: a FASTA given by URL needs its index beside it, at {source}.fai "
                "(make it with `samtools faidx`)"
            ) from err
        return {f[0]: int(f[1]) for f in (line.split("\t") for line in text.splitlines()) if f[0]}
    return fasta.chrom_sizes(source)


def load(manifest: str | os.PathLike | Manifest) -> Manifest:
    """A manifest, read and checked whole: its structure, then its label kind's rules."""
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    labels.label_kind(m)
    return m


def chrom_sizes(m: Manifest, chroms: Sequence[str]) -> tuple[dict[str, int], str] | None:
    """The sizes of ``chroms`` from the first input of the manifest that states them.

    The bins' sizes file, else the FASTA's index, else the bigWig headers (the first file,
    in manifest order, holding each chromosome). Returns the sizes (natural chromosome
    order; chromosomes no input states are left out) and where they came from, or None
    when no input states any.
    """
    wanted = loci_mod.chrom_order(chroms)
    if m.loci_kind == "bins":
        known = _read(annotation.read_chrom_sizes, m.loci_path)
        where = str(m.loci_path)
    elif m.fasta is not None:
        _exists(m.fasta, m)
        known = _fasta_sizes(m.fasta)
        where = f"{m.fasta} (its index)"
    else:
        known, files = {}, []
        for spec in m.cell_types.values():
            for path in spec.signal.values():
                if all(c in known for c in wanted):
                    break
                _exists(path, m)  # the message check_inputs gives, naming the manifest
                header, _ = _track_header(path)
                if any(c in header and c not in known for c in wanted):
                    files.append(str(path))
                known = {**header, **known}
        where = "bigWig headers (" + ", ".join(files) + ")"
    sizes = {c: int(known[c]) for c in wanted if c in known}
    return (sizes, where) if sizes else None


def plan_loci(m: Manifest) -> tuple[loci_mod.LocusSet, dict[str, int] | None]:
    """The manifest's locus set (and, for expression, the gene-matching counts).

    Genome bins are described by their chromosome sizes alone (:class:`~pitfall.loci.
    GenomeBins`): no per-bin array exists until a worker builds its block. TSS windows and
    BED regions are clipped to their chromosome (:meth:`~pitfall.loci.LocusTable.clip`,
    at 0 where no input states the chromosome's size), each keeping its window, which the
    features are read over; the sizes travel with the table
    (:attr:`~pitfall.loci.LocusTable.sizes`).
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
        if labels.label_kind(m).table:
            frame, summary = labels.match_genes(frame, read_input(m.target_kind, m.table))
        return _clipped(m, loci_mod.LocusTable.from_frame(frame.reset_index(drop=True))), summary
    if m.loci_kind == "bins":
        sizes = _read(annotation.read_chrom_sizes, m.loci_path)
        chroms = m.chroms or loci_mod.chrom_order(sizes)
        missing = [c for c in chroms if c not in sizes]
        if missing:
            raise BuildError(f"{m.loci_path}: chromosomes {missing} (from the manifest) are absent")
        if m.bin_size is None:
            raise BuildError(f"{m.path}: [loci] bins needs bin_size (e.g. 40000)")
        return loci_mod.GenomeBins.from_sizes(sizes, m.bin_size, chroms, m.stride), None
    frame = _read(annotation.read_bed_regions, m.loci_path, m.chroms)
    return _clipped(m, loci_mod.LocusTable.from_frame(frame)), None


def _clipped(m: Manifest, table: loci_mod.LocusTable) -> loci_mod.LocusTable:
    """``table`` clipped to the chromosome sizes the manifest's inputs state, carrying them."""
    found = chrom_sizes(m, list(table.chrom_counts()))
    sizes, where = found if found is not None else ({}, "")
    try:
        clipped = table.clip(sizes, what=str(m.loci_path))
    except ValueError as err:
        raise BuildError(f"{err} (chromosome sizes from {where or 'no input'})") from None
    return dataclasses.replace(clipped, sizes=tuple(sizes.items()) or None)


def resolve_cell_types(m: Manifest, cell_types: Sequence[str] | None) -> list[str]:
    """The manifest's cell types to featurize, checked against the manifest and the table."""
    if m.cell_types:
        available = list(m.cell_types)
    else:
        table = read_input(m.target_kind, m.table)
        available = [c for c in table.columns if c not in m.exclude]
    if cell_types is None:
        return available
    twice = sorted({c for c in cell_types if list(cell_types).count(c) > 1})
    if twice:
        raise BuildError(
            f"cell type {', '.join(twice)} is named more than once (CLI: --cell-type); a cube "
            "holds each cell type once: name each once"
        )
    unknown = [c for c in cell_types if c not in available]
    if unknown:
        raise BuildError(f"{m.path}: cell types {unknown} are not in the manifest ({available})")
    return list(cell_types)


def check_not_empty(m: Manifest, loci: loci_mod.LocusSet) -> None:
    """Refuse an empty locus set, naming the chromosomes asked for that hold no locus."""
    if len(loci):
        return
    if m.chroms:
        where = f"on {', '.join(m.chroms)} (the manifest's chroms)"
    else:
        where = "on any chromosome"
    raise BuildError(
        f"{m.path}: the locus set is empty: no locus of {m.loci_path} lies {where}; check "
        "[loci] and chroms"
    )


def missing_chrom_note(path: Source, chrom: str) -> str:
    """The warning for a bigWig without a chromosome of the loci (its mark is NaN there)."""
    # One wording for the check and the task, so the summary lists each case once.
    return f"{path} has no {chrom}: its mark is NaN on {chrom}"


def no_data_note(path: Source, cell_type: str) -> str:
    """The warning for a bigWig holding a header and no value (its mark is NaN)."""
    return f"{path} has no data (a header without values): its mark is NaN in {cell_type}"


def _extents(loci: loci_mod.LocusSet) -> dict[str, tuple[int, int]]:
    """Per chromosome of the loci: (smallest start, largest end)."""
    if isinstance(loci, loci_mod.GenomeBins):
        return {c: (0, n) for c, n in loci.sizes}
    t = loci.block(0, len(loci))
    runs = t.chrom_runs()
    if not runs:
        return {}
    firsts = np.array([a for _, a, _ in runs])
    # One reduction per run (a chromosome's loci are one run when sorted, several if not).
    lo, hi = np.minimum.reduceat(t.start, firsts), np.maximum.reduceat(t.end, firsts)
    out: dict[str, tuple[int, int]] = {}
    for (c, _, _), a, b in zip(runs, lo.tolist(), hi.tolist(), strict=True):
        a0, b0 = out.get(c, (a, b))
        out[c] = (min(a, a0), max(b, b0))
    return out


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
    kind = labels.label_kind(m)
    if kind.table:
        table = read_input(m.target_kind, m.table)
        absent = [c for c in cell_types if c not in table.columns]
        if absent:
            raise BuildError(
                f"{m.table}: cell types {absent} (from {m.path}) are not columns of the "
                f"expression table (it has {', '.join(map(str, table.columns[:8]))}, ...)"
            )
    for ct in cell_types if m.cell_types else []:
        spec = m.cell_types[ct]
        for path in spec.signal.values():
            sizes, has_data = _track_header(path)
            if not has_data:
                notes.append(no_data_note(path, ct))
            labels.check_chrom_names(list(sizes), loci_chroms, path)
            notes += [missing_chrom_note(path, c) for c in loci_chroms if c not in sizes]
            # Every track against the first word on each chromosome (the bins' sizes file,
            # or the first track): a track from another assembly would silently give every
            # value of its mark at the wrong place.
            for c in loci_chroms:
                if c not in sizes:
                    continue
                n, other = reference.setdefault(c, (sizes[c], path))
                if n != sizes[c]:
                    raise BuildError(
                        f"{path}: {c} has {sizes[c]:,} bases but {other} says {n:,}; the "
                        "bigWig is from another assembly (or the other file is); use tracks "
                        f"of the manifest's assembly ({m.assembly})"
                    )
        if kind.per_cell_type_file:
            # Read now (they are small) so an empty or malformed call set stops the build
            # before any work, not from inside a task.
            for region_file in (spec.target, spec.ambiguous):
                if region_file is not None:
                    regions = read_input(m.target_kind, region_file)
                    labels.check_chrom_names(
                        list(pd.unique(regions["chrom"])), loci_chroms, region_file
                    )
    if kind.per_cell_type_file and m.blacklist is not None:
        regions = read_input(m.target_kind, m.blacklist)
        labels.check_chrom_names(list(pd.unique(regions["chrom"])), loci_chroms, m.blacklist)
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
        if sequence_length(m) is None:
            lengths = locus_lengths(loci)
            if lengths.size > 1:
                raise BuildError(
                    f"{m.path}: loci have {lengths.size} different lengths ({lengths[:3]}...), "
                    "so their sequences cannot share one array; set [sequence] length = N to "
                    "take N bp centred on each locus"
                )
    return notes


def locus_lengths(loci: loci_mod.LocusSet) -> np.ndarray:
    """The distinct lengths of the loci's windows (bins: the bin size and shorter last bins)."""
    if isinstance(loci, loci_mod.GenomeBins):
        return np.unique([min(loci.bin_size, n) for _, n in loci.sizes] + [loci.bin_size])
    lo, hi = loci.block(0, len(loci)).windows()
    return np.unique(hi - lo)


def file_checksum(path: Source) -> dict[str, Any]:
    """How to recognise an input later: sha256 of a local file, ETag and size of a URL."""
    if isinstance(path, str) and remote.is_url(path):
        meta = remote.head(path)
        return {"path": path, "etag": meta["etag"], "size": meta["size"]}
    return {"path": str(path), "sha256": checksum.sha256_of(path)}


def centred_windows(
    table: loci_mod.LocusTable, length: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The loci's windows, or ``length`` bp centred on each: (starts, ends) int64.

    A locus's window is the interval it was made from (:meth:`~pitfall.loci.LocusTable.
    windows`: un-clipped where it reaches past a chromosome end). The centre is
    ``(start + end) // 2`` of that window; the centred window is ``[centre - length // 2,
    + length)``. Signal is averaged over these windows (the manifest's feature window) and
    sequence read from them (its sequence length, else the feature window).
    """
    start, end = table.windows()
    if length is None:
        return start, end
    lo = (start + end) // 2 - length // 2
    return lo, lo + length


def sequence_length(m: Manifest) -> int | None:
    """Bases of sequence per locus the manifest asks for (None: each locus's own length)."""
    return m.sequence_length or m.feature_window
