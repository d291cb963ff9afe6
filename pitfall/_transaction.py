"""Writing a cube: one commit, prepared by the driver, written by workers, merged.

A write is a *transaction*: :func:`begin_create` or :func:`begin_append` opens a session at
the branch tip and prepares, in a forked session, the metadata of the commit (the new
arrays, or the cell-type axis grown by the new cell types). That fork is what workers write into
(:func:`write_regions`, :func:`write_loci`), each into its own copy, which comes back;
:meth:`Transaction.commit` merges them all and commits. Writers on different machines rely on
Icechunk's optimistic concurrency: a commit whose parent moved raises
:class:`icechunk.ConflictError`, and the writer starts its cell types again at the new tip.
The data variables (and ``observed``) are chunked 1 along ``cell_type``, so an append writes
only new chunks of them (and the last chunk of each small cell-type coordinate,
:data:`~pitfall.schema.CELL_TYPE_COORD_CHUNK`).

:func:`begin_experiments` starts a commit that adds experiments (marks) to a cell type
already in the cube: it flips the cell type's row of ``observed`` in the fork, and
:func:`write_marks` rewrites the cell type's ``signal`` chunks with the new columns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import icechunk
import numpy as np
import zarr

from pitfall import _repository as repository
from pitfall import loci as loci_mod
from pitfall.loci import STR, LocusTable
from pitfall.schema import (
    CELL_TYPE_COORDS,
    PER_CELL_TYPE_VARS,
    SCHEMA_VERSION,
    CellTypeInfo,
    CubeError,
    Schema,
    encode_root_attrs,
    layout,
    root_attr,
)
from pitfall.storage import Location, commit_lock, parse_location

__all__ = [
    "Transaction",
    "begin_append",
    "begin_create",
    "begin_experiments",
    "write_loci",
    "write_marks",
    "write_regions",
]


@dataclass
class Transaction:
    """One commit in the making (see the module docstring).

    Attributes
    ----------
    location
        The cube.
    session
        The writable session at the tip the transaction started from.
    fork
        The forked session holding this commit's metadata changes: pickle it to workers.
    index
        Position of the first new cell type along ``cell_type``.
    cell_types
        Ids of the cell types this commit adds (of the one cell type it adds experiments to).
    marks
        The marks an experiment append adds (empty for other commits).
    columns
        Their positions along ``mark``.
    """

    location: Location
    session: icechunk.Session
    fork: Any
    index: int
    cell_types: list[str]
    action: str
    attrs: dict[str, Any] = field(default_factory=dict)
    writer: str = ""
    marks: list[str] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)

    def commit(self, forks: Sequence[Any] = (), *, message: str | None = None) -> str:
        """Merge the workers' forks (or this transaction's own) and commit; return the snapshot.

        Raises
        ------
        icechunk.ConflictError
            When another writer committed since this transaction began (start it again).
        """
        self.session.merge(*(forks or [self.fork]))
        if self.attrs:
            with repository.quiet_zarr():
                group = zarr.open_group(self.session.store, mode="r+")
                # One write of the root's document (``attrs.update`` writes it once per key).
                group.update_attributes(encode_root_attrs(repository.json_attrs(self.attrs)))
        repository.pause_point("after_write")
        default = f"{self.action} {', '.join(self.cell_types)}"
        if self.marks:
            default = f"append experiments {', '.join(self.cell_types)}: {', '.join(self.marks)}"
        with commit_lock(self.location):
            snapshot = self.session.commit(
                message or default,
                metadata={
                    "action": self.action,
                    "cell_types": list(self.cell_types),
                    **({"marks": list(self.marks)} if self.marks else {}),
                    **({"writer": self.writer} if self.writer else {}),
                },
            )
        repository.pause_point("after_commit")
        return snapshot


def begin_create(
    location: str | os.PathLike[str] | Location,
    schema: Schema,
    cell_types: Sequence[CellTypeInfo],
    *,
    assembly: str,
    attrs: Mapping[str, Any] | None = None,
    repo: icechunk.Repository | None = None,
    **storage_options: Any,
) -> Transaction:
    """Start the first commit of a new cube: every array made, none of their chunks written.

    Workers then write the locus coordinates (:func:`write_loci`), the sequence and the
    first cell types' variables (:func:`write_regions`) into :attr:`Transaction.fork`.
    """
    loc = parse_location(location)
    if repo is None:
        repo, _ = repository.create_repository(loc, **storage_options)
    if not cell_types:
        raise CubeError("a new cube needs at least one cell type")
    session = repo.writable_session("main")
    fork = session.fork()
    attrs = encode_root_attrs(
        repository.json_attrs(
            {
                **(attrs or {}),
                "assembly": assembly,
                "pitfall_schema_version": SCHEMA_VERSION,
                "locus_fingerprint_block": schema.chunk,
                "cell_type_sources": {ct.id: dict(ct.sources) for ct in cell_types},
            }
        )
    )
    with repository.quiet_zarr():
        _make_arrays(fork.store, layout(schema, cell_types), attrs)
    repository.pause_point("before_write")
    return Transaction(loc, session, fork, 0, [ct.id for ct in cell_types], "create")


def _make_arrays(store: Any, specs: Sequence[Any], attrs: Mapping[str, Any]) -> None:
    """The root group with ``attrs`` and every array of ``specs`` (with its data, if any)."""
    import asyncio

    from zarr.api.asynchronous import group as make_group
    from zarr.core.sync import sync

    async def make() -> None:
        root = await make_group(store=store, attributes=dict(attrs), zarr_format=3)
        arrays = await asyncio.gather(
            *(
                root.create_array(
                    spec.name,
                    shape=spec.shape,
                    chunks=spec.chunks,
                    dtype=spec.dtype,
                    fill_value=spec.fill_value,
                    dimension_names=spec.dims,
                    attributes=dict(spec.attributes),
                    compressors=spec.compressors,
                )
                for spec in specs
            )
        )
        await asyncio.gather(
            *(
                arr.setitem(slice(None), spec.data)
                for arr, spec in zip(arrays, specs, strict=True)
                if spec.data is not None
            )
        )

    # Fixed-width strings (the loci's) warn that their Zarr v3 representation may change.
    with repository.quiet_zarr():
        sync(make())


def _named_twice(names: Sequence[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    return sorted({n for n in names if names.count(n) > 1})


def _open_tip(
    loc: Location, repo: icechunk.Repository | None, storage_options: Mapping[str, Any]
) -> tuple[Any, Any, list[str], dict[str, Any]]:
    """A writable session at main's tip: (session, root group, cell types, root attributes)."""
    repo = repo or repository.open_repository(loc, **storage_options)
    session = repo.writable_session("main")
    repository.pause_point("before_write")
    with repository.quiet_zarr():
        group = zarr.open_group(session.store, mode="r")
        present = [str(c) for c in np.asarray(repository.zarr_array(group, "cell_type")[:])]
        attrs: dict[str, Any] = dict(group.attrs)
    return session, group, present, attrs


def begin_append(
    location: str | os.PathLike[str] | Location,
    cell_types: Sequence[CellTypeInfo],
    *,
    fingerprint: str | None = None,
    repo: icechunk.Repository | None = None,
    **storage_options: Any,
) -> Transaction:
    """Start a commit that adds ``cell_types`` at the end of the ``cell_type`` axis.

    Refuses (:class:`CubeError`, nothing written) a cell type already in the cube or named
    twice, loci whose ``fingerprint`` differs from the cube's, and a cell type lacking marks
    (:attr:`~pitfall.schema.CellTypeInfo.marks`) in a cube without ``observed`` (schema
    version 2, where every cell type has every mark). Each cell type's row of ``observed``
    is written with its coordinates.
    """
    loc = parse_location(location)
    if not cell_types:
        raise CubeError("an append needs at least one cell type")
    ids = [ct.id for ct in cell_types]
    twice = _named_twice(ids)
    if twice:
        raise CubeError(f"cell types {twice} are named twice in one append")
    session, group, present, attrs = _open_tip(loc, repo, storage_options)
    again = [i for i in ids if i in present]
    if again:
        raise CubeError(
            f"cell type {', '.join(again)} is already in the cube at {loc}; a cell type is "
            "added once (open the cube with pitfall.open_cube to see what it holds)"
        )
    if fingerprint is not None and fingerprint != attrs.get("locus_fingerprint"):
        raise CubeError(
            f"the loci to append differ from the cube's at {loc}; use the same loci source, "
            "windows and chromosomes as the build"
        )
    n, g = len(present), len(cell_types)
    fork = session.fork()
    with repository.quiet_zarr():
        group = zarr.open_group(fork.store, mode="r+")
        marks = (
            [str(m) for m in np.asarray(repository.zarr_array(group, "mark")[:])]
            if "mark" in group
            else []
        )
        rows = np.stack([ct.observed(marks) for ct in cell_types]) if marks else None
        if rows is not None and "observed" not in group and not rows.all():
            lacking = [ct.id for ct, row in zip(cell_types, rows, strict=True) if not row.all()]
            raise CubeError(
                f"cell type {', '.join(lacking)} lacks marks of the cube at {loc}, which "
                "predates missing experiments (schema version 2: every cell type has every "
                "mark); build a new cube to hold cell types with missing marks"
            )
        for name in [
            "cell_type",
            *CELL_TYPE_COORDS,
            *(v for v in ("observed", *PER_CELL_TYPE_VARS) if v in group),
        ]:
            arr = repository.zarr_array(group, name)
            arr.resize((n + g, *arr.shape[1:]))
        # One write per coordinate, not one per cell type: each is a round trip.
        for name, values in (
            ("cell_type", ids),
            ("cell_type_name", [ct.name or ct.id for ct in cell_types]),
            ("cell_type_group", [ct.group for ct in cell_types]),
        ):
            repository.zarr_array(group, name)[n : n + g] = np.array(values, dtype=object)
        if rows is not None and "observed" in group:
            repository.zarr_array(group, "observed")[n : n + g] = rows
    sources = dict(root_attr(attrs, "cell_type_sources", {}))
    sources.update({ct.id: dict(ct.sources) for ct in cell_types})
    return Transaction(loc, session, fork, n, ids, "append", attrs={"cell_type_sources": sources})


def begin_experiments(
    location: str | os.PathLike[str] | Location,
    cell_type: str,
    marks: Sequence[str],
    *,
    sources: Mapping[str, Any] | None = None,
    repo: icechunk.Repository | None = None,
    **storage_options: Any,
) -> Transaction:
    """Start a commit that adds the experiments ``marks`` to ``cell_type``, already in the cube.

    Flips the cell type's ``observed`` for ``marks`` in the fork; the caller then writes the
    signal of those marks (:func:`write_marks`, over every locus) and commits. Refuses
    (:class:`CubeError`, nothing written) a cell type not in the cube, a mark not among the
    cube's marks or named twice, and a mark the cell type already has.

    Parameters
    ----------
    sources
        What each new experiment was computed from (``signal:<mark>`` -> checksum), added
        to the cell type's entry of the ``cell_type_sources`` attribute.
    """
    loc = parse_location(location)
    marks = [str(m) for m in marks]
    if not marks:
        raise CubeError(f"an experiment append to {cell_type} needs at least one mark")
    twice = _named_twice(marks)
    if twice:
        raise CubeError(f"marks {twice} are named twice in one experiment append to {cell_type}")
    session, group, present, attrs = _open_tip(loc, repo, storage_options)
    with repository.quiet_zarr():
        if "signal" not in group:
            raise CubeError(
                f"the cube at {loc} holds no signal (no [signal] marks); experiments are "
                "marks of a cell type, so it can take none"
            )
        cube_marks = [str(m) for m in np.asarray(repository.zarr_array(group, "mark")[:])]
        if cell_type not in present:
            raise CubeError(
                f"cell type {cell_type} is not in the cube at {loc}; add it whole first "
                f"(pitfall append {loc} MANIFEST --cell-type {cell_type})"
            )
        index = present.index(cell_type)
        unknown = [m for m in marks if m not in cube_marks]
        if unknown:
            raise CubeError(
                f"mark {', '.join(unknown)} (for cell type {cell_type}) is not among the marks "
                f"of the cube at {loc} ({', '.join(cube_marks)}); a cube's marks are fixed at "
                "its build: build a new cube with that mark in [signal] marks"
            )
        row = (
            np.asarray(repository.zarr_array(group, "observed")[index])
            if "observed" in group
            else np.ones(len(cube_marks), dtype=bool)
        )
    columns = [cube_marks.index(m) for m in marks]
    have = [m for m, j in zip(marks, columns, strict=True) if row[j]]
    if have:
        raise CubeError(
            f"cell type {cell_type} already has mark {', '.join(have)} in the cube at {loc}; an "
            "experiment is added once (pitfall cube info shows which it has; build a new cube "
            "to replace one)"
        )
    fork = session.fork()
    with repository.quiet_zarr():
        group = zarr.open_group(fork.store, mode="r+")
        row[columns] = True
        repository.zarr_array(group, "observed")[index] = row
    all_sources = dict(root_attr(attrs, "cell_type_sources", {}))
    all_sources[cell_type] = {**all_sources.get(cell_type, {}), **dict(sources or {})}
    return Transaction(
        loc,
        session,
        fork,
        index,
        [cell_type],
        "append_experiments",
        attrs={"cell_type_sources": all_sources},
        marks=marks,
        columns=columns,
    )


def write_marks(
    session: Any, index: int, i0: int, columns: Sequence[int], values: np.ndarray
) -> Any:
    """Write columns ``columns`` of ``signal`` for cell type ``index`` from locus ``i0``.

    Read-modify-write of the cell type's ``signal`` chunks over loci ``[i0, i0 + len)``
    (the other marks' values stay as stored). ``values`` has shape ``(n_block, len(columns))``
    and covers whole chunks along ``locus`` (the last may be partial). Returns ``session``.
    """
    values = np.asarray(values, dtype=np.float32)
    with repository.quiet_zarr():
        arr = zarr.open_array(store=session.store, path="signal", mode="r+")
        i1 = i0 + values.shape[0]
        block = np.asarray(arr[index, i0:i1, :])
        block[:, list(columns)] = values
        arr.with_config({"write_empty_chunks": True})[index, i0:i1, :] = block
    return session


def write_regions(
    session: Any,
    regions: Mapping[str, np.ndarray],
    i0: int,
    index: int | slice | None = None,
) -> Any:
    """Write each of ``regions`` (variable -> values) from locus ``i0`` (at cell type ``index``).

    Runs on a worker: ``session`` is a transaction's fork (or a copy of it) and comes back
    changed. Each array has its variable's shape without the ``cell_type`` axis (with it, of
    the slice's length, when ``index`` is a slice of cell types; ``index`` None: variables
    without it, locus first), covering whole chunks along ``locus`` (the last may be
    partial), so no two writers share a chunk. The variables are written in one call to
    zarr's event loop: their chunks go to the store together, not one variable after
    another (one round trip on an object store, not one per variable).
    """
    import asyncio

    from zarr.api.asynchronous import open_array
    from zarr.core.sync import sync

    def selection(data: np.ndarray) -> Any:
        if index is None:
            return slice(i0, i0 + data.shape[0])
        if isinstance(index, slice):
            return (index, slice(i0, i0 + data.shape[1]))
        return (index, slice(i0, i0 + data.shape[0]))

    async def write(name: str, data: np.ndarray) -> None:
        arr = await open_array(store=session.store, path=name, mode="r+")
        # Every region is new chunks, so zarr's check that a chunk is all fill value (to
        # skip storing it) is pure cost: a full scan with temporaries, most of a chunk's
        # write time.
        await arr.with_config({"write_empty_chunks": True}).setitem(selection(data), data)

    async def write_all() -> None:
        await asyncio.gather(*(write(name, data) for name, data in regions.items()))

    with repository.quiet_zarr():
        sync(write_all())
    return session


def write_loci(session: Any, table: LocusTable, i0: int, schema: Schema) -> str:
    """Write the locus coordinates of ``table`` from locus ``i0``; return its digest.

    Strings are written at the schema's fixed widths, which hold the longest of the loci.
    """
    regions = {
        "locus": np.arange(i0, i0 + len(table), dtype=np.int64),
        "chrom": table.chrom,
        "start": table.start,
        "end": table.end,
    }
    if schema.strand:
        regions["strand"] = (
            table.strand if table.strand is not None else np.full(len(table), ".", STR)
        )
    if schema.name:
        regions["name"] = (
            table.name
            if table.name is not None
            else loci_mod.bin_names(table.chrom, table.start, table.end)
        )
    if schema.window:
        regions["window_start"], regions["window_end"] = table.windows()
    for coord in ("chrom", "strand", "name"):
        if coord in regions:
            dtype = schema.string_dtype(coord)
            width = loci_mod.string_width(regions[coord])
            if width > dtype.itemsize // 4:
                raise CubeError(
                    f"locus {coord} strings of up to {width} characters do not fit the cube's "
                    f"{dtype} (set from the loci at the build)"
                )
            regions[coord] = np.asarray(regions[coord]).astype(dtype)
    write_regions(session, regions, i0)
    return loci_mod.block_digest(table)
