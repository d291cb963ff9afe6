"""The cell-type cube: one chunked Zarr v3 dataset in an Icechunk repository.

Every write is one Icechunk commit, so a reader never sees half a cell type and a killed
writer leaves the cube exactly as it was. A cube lives in a local folder or in object
storage (``s3://``, ``gs://``, ``az://``: see :mod:`pitfall.storage`); its variables and
coordinates are in :mod:`pitfall.schema` (cubes of genome bins store no ``strand`` and no
``name``: see :func:`locus_names`).

The store is plain Zarr written the way xarray writes it, so
``xr.open_zarr(repo.readonly_session("main").store)`` without pitfall gives what
:func:`open_cube` gives.

Loci lie inside their chromosome (``0 <= start < end <= size``); where a locus's window
reaches past a chromosome end (a TSS window near a chromosome start) the cube keeps it as
``window_start``, ``window_end``, and the chromosome sizes are stored (:func:`chrom_sizes`,
used by every export). Every variable carries CF attributes and the root attributes are
plain values or JSON strings (:func:`root_attr` reads them), so ``ds.to_netcdf`` takes any
selection. Boolean selection on a lazy coordinate computes the mask first:
``ds.where((ds.chrom == "chr1").compute(), drop=True)`` (xarray refuses a lazy mask with
``drop=True``).

Missing experiments: a cell type may lack marks; ``signal`` is NaN there and the
``observed`` coordinate (cell_type, mark) says which experiments exist
(:mod:`pitfall.schema`). :func:`append_experiments` adds marks to a cell type in the cube.

This module holds the verbs on whole slabs (small cubes, tests, the synthetic compendium:
:func:`create_cube`, :func:`append_cell_type`, :func:`append_experiments`) and the readers (:func:`open_cube`,
:func:`cube_log`, :func:`cube_info`, :func:`export_cube`). Featurization writes through
:mod:`pitfall._transaction` directly, block by block, from workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from pitfall import _repository as repository
from pitfall import loci as loci_mod
from pitfall._atomic import atomic_path
from pitfall._repository import open_repository
from pitfall._transaction import (
    begin_append,
    begin_create,
    begin_experiments,
    write_loci,
    write_marks,
    write_regions,
)
from pitfall.loci import STR, LocusTable, chrom_order
from pitfall.schema import (
    CELL_TYPE_COORDS,
    CF_ATTRS,
    CHROM_SIZES_ATTR,
    DEFAULT_LOCUS_CHUNK,
    LOCUS_COORDS,
    PER_CELL_TYPE_VARS,
    REQUIRED_LOCUS_COORDS,
    SCHEMA_VERSION,
    SHARED_VARS,
    VAR_DTYPES,
    WINDOW_COORDS,
    CellTypeInfo,
    CubeError,
    Schema,
    chrom_sizes_attr,
    encode_root_attrs,
    root_attr,
)
from pitfall.storage import Location, parse_location

__all__ = [
    "CubeError",
    "append_cell_type",
    "append_experiments",
    "chrom_order",
    "chrom_sizes",
    "create_cube",
    "cube_info",
    "cube_log",
    "export_cube",
    "locus_names",
    "locus_strands",
    "locus_table",
    "make_loci",
    "make_slab",
    "observed_grid",
    "observed_matrix",
    "open_cube",
    "root_attr",
    "validate",
]


# --------------------------------------------------------------------------------------------
# Small helpers


def _strings(values: Any) -> np.ndarray:
    """Strings as an object array of Python ``str`` (for small arrays and messages)."""
    values = np.asarray(values)
    if values.dtype.kind in "OTU":
        return values.astype(object).ravel()
    return np.asarray([str(v) for v in values.ravel()], dtype=object)


def _fixed_width(values: Any) -> np.ndarray:
    """Strings as a fixed-width ``str`` array (``<U`` as wide as the longest)."""
    values = loci_mod.strings(values)
    return values.astype(f"<U{loci_mod.string_width(values)}")


def locus_names(ds: xr.Dataset) -> np.ndarray:
    """Locus names, shape ``(n_locus,)`` ``StringDType``: stored, or ``chrom:start-end``."""
    if "name" in ds.coords:
        return loci_mod.strings(ds["name"].values)
    return loci_mod.bin_names(ds["chrom"].values, ds["start"].values, ds["end"].values)


def locus_strands(ds: xr.Dataset) -> np.ndarray:
    """Locus strands, shape ``(n_locus,)`` ``StringDType``: stored, or ``"."``."""
    if "strand" in ds.coords:
        return loci_mod.strings(ds["strand"].values)
    return np.full(ds.sizes["locus"], ".", dtype=STR)


def make_loci(
    chrom: Sequence[str],
    start: Sequence[int],
    end: Sequence[int],
    strand: Sequence[str] | None = None,
    name: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return a locus table (a data frame) with the columns the cube stores.

    Parameters
    ----------
    chrom, start, end
        Length ``n_loci``; 0-based half-open coordinates.
    strand
        ``"+"``, ``"-"`` or ``"."``; default ``"."``.
    name
        Locus names; default ``"chrom:start-end"``.
    """
    return LocusTable.from_columns(chrom, start, end, strand, name).to_frame()


def _as_table(loci: pd.DataFrame | LocusTable) -> LocusTable:
    return loci if isinstance(loci, LocusTable) else LocusTable.from_frame(loci)


def _locus_coords(loci: LocusTable) -> dict[str, tuple[str, np.ndarray]]:
    coords: dict[str, tuple[str, np.ndarray]] = {
        "chrom": ("locus", loci.chrom.astype(object)),
        "start": ("locus", loci.start),
        "end": ("locus", loci.end),
    }
    if loci.strand is not None:
        coords["strand"] = ("locus", loci.strand.astype(object))
    if loci.name is not None:
        coords["name"] = ("locus", loci.name.astype(object))
    if loci.window_start is not None and loci.window_end is not None:
        coords["window_start"] = ("locus", loci.window_start)
        coords["window_end"] = ("locus", loci.window_end)
    return coords


def make_slab(
    cell_type: str,
    loci: pd.DataFrame | LocusTable,
    *,
    label: np.ndarray,
    assembly: str,
    value: np.ndarray | None = None,
    signal: np.ndarray | None = None,
    marks: Sequence[str] | None = None,
    name: str | None = None,
    group: str | None = None,
    sources: Mapping[str, Any] | None = None,
    observed: Sequence[str] | None = None,
) -> xr.Dataset:
    """Return one cell type's slab, ready for :func:`create_cube` or :func:`append_cell_type`.

    Parameters
    ----------
    cell_type
        Identifier, e.g. ``"E003"``.
    loci
        Locus table (:func:`make_loci` or a :class:`~pitfall.loci.LocusTable`), ``n_loci``.
    label
        Shape ``(n_loci,)``: 1 active, 0 not, NaN unknown.
    assembly
        Genome assembly of the coordinates, e.g. ``"hg19"``.
    value
        Optional continuous target, shape ``(n_loci,)``.
    signal
        Optional, shape ``(n_loci, n_marks)``, with ``marks`` naming the columns.
    name, group
        Display name and group (lineage) of the cell type.
    sources
        What the slab was computed from (paths, checksums); kept in the cube's attributes.
    observed
        The marks the cell type has (a subset of ``marks``); default every one. The
        signal of the others is set to NaN.

    Returns
    -------
    xarray.Dataset
        Dims ``cell_type`` (1), ``locus`` and, with signal, ``mark``; with signal, the
        ``observed`` coordinate (cell_type, mark) bool.
    """
    table = _as_table(loci)
    n = len(table)
    data_vars: dict[str, Any] = {}
    label = np.asarray(label, dtype=np.float32)
    if label.shape != (n,):
        raise CubeError(f"cell type {cell_type}: label has shape {label.shape}, expected ({n},)")
    data_vars["label"] = (("cell_type", "locus"), label[None, :])
    if value is not None:
        value = np.asarray(value, dtype=np.float32)
        if value.shape != (n,):
            raise CubeError(
                f"cell type {cell_type}: value has shape {value.shape}, expected ({n},)"
            )
        data_vars["value"] = (("cell_type", "locus"), value[None, :])
    coords: dict[str, Any] = {
        "cell_type": ("cell_type", _strings([cell_type])),
        "cell_type_name": ("cell_type", _strings([name or cell_type])),
        "cell_type_group": ("cell_type", _strings([group or ""])),
        **_locus_coords(table),
    }
    if signal is not None:
        signal = np.asarray(signal, dtype=np.float32)
        if marks is None or signal.shape != (n, len(marks)):
            raise CubeError(
                f"cell type {cell_type}: signal has shape {signal.shape}, expected "
                f"({n}, {len(marks or [])}) with one column per mark"
            )
        have = np.ones(len(marks), dtype=bool)
        if observed is not None:
            unknown = sorted(set(observed) - set(marks))
            if unknown:
                raise CubeError(
                    f"cell type {cell_type}: observed marks {unknown} are not among the "
                    f"marks {list(marks)}"
                )
            have = np.isin(np.asarray(list(marks), dtype=object), list(observed))
            signal = np.where(have[None, :], signal, np.float32(np.nan))
        data_vars["signal"] = (("cell_type", "locus", "mark"), signal[None, :, :])
        coords["mark"] = ("mark", _strings(marks))
        coords["observed"] = (("cell_type", "mark"), have[None, :])
    elif observed is not None:
        raise CubeError(f"cell type {cell_type}: observed marks given without signal")
    attrs: dict[str, Any] = {"assembly": assembly}
    if sources:
        attrs.update(
            encode_root_attrs(
                repository.json_attrs({"cell_type_sources": {cell_type: dict(sources)}})
            )
        )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------------------------
# Validation


def validate(ds: xr.Dataset, *, what: str = "dataset") -> None:
    """Raise :class:`CubeError` unless ``ds`` follows the cube schema.

    Checks variable dims and dtypes, the locus and cell-type coordinates, unique cell types
    and the ``assembly`` attribute.
    """
    if "label" not in ds:
        raise CubeError(f"{what} has no 'label' variable (dims cell_type, locus)")
    allowed = {**PER_CELL_TYPE_VARS, **SHARED_VARS}
    for var in ds.data_vars:
        if var not in allowed:
            raise CubeError(f"{what} has variable {var!r}, not in the schema {sorted(allowed)}")
        if ds[var].dims != allowed[var]:
            raise CubeError(
                f"{what}: variable {var!r} has dims {ds[var].dims}, expected {allowed[var]}"
            )
        if ds[var].dtype != VAR_DTYPES[var]:
            raise CubeError(
                f"{what}: variable {var!r} has dtype {ds[var].dtype}, expected "
                f"{np.dtype(VAR_DTYPES[var])}; cast it (make_slab does)"
            )
    for coord in (*REQUIRED_LOCUS_COORDS, *CELL_TYPE_COORDS, "cell_type"):
        if coord not in ds.coords:
            raise CubeError(f"{what} lacks coordinate {coord!r}; build slabs with make_slab")
    for coord in (*LOCUS_COORDS, *WINDOW_COORDS):
        if coord in ds.coords and ds[coord].dims != ("locus",):
            raise CubeError(f"{what}: coordinate {coord!r} must have dims ('locus',)")
    if "signal" in ds and "mark" not in ds.coords:
        raise CubeError(f"{what} has signal but no 'mark' coordinate")
    if "observed" in ds.coords and (
        ds["observed"].dims != ("cell_type", "mark") or ds["observed"].dtype != bool
    ):
        raise CubeError(f"{what}: coordinate 'observed' must be bool with dims (cell_type, mark)")
    cell_types = [str(c) for c in ds["cell_type"].values]
    dup = sorted({c for c in cell_types if cell_types.count(c) > 1})
    if dup:
        raise CubeError(f"{what} holds cell types more than once: {dup}")
    if not ds.attrs.get("assembly"):
        raise CubeError(f"{what} has no 'assembly' attribute (e.g. 'hg19')")
    start = np.asarray(ds["start"].values)
    end = np.asarray(ds["end"].values)
    bad = np.flatnonzero(end <= start)
    if bad.size:
        i = int(bad[0])
        raise CubeError(f"{what}: locus {i} ({locus_names(ds)[i]}) has end <= start")
    if "strand" in ds.coords:
        strands = set(pd.unique(_strings(ds["strand"].values)))
        if not strands <= {"+", "-", "."}:
            raise CubeError(f"{what}: strand values {sorted(strands)}; expected '+', '-' or '.'")


def locus_table(ds: xr.Dataset) -> LocusTable:
    """A cube's (or a slab's) loci as a :class:`~pitfall.loci.LocusTable`, windows included.

    Loads the locus coordinates. The table's :meth:`~pitfall.loci.LocusTable.windows` are
    the windows the cube's features were read over (``window_start``, ``window_end`` where
    stored, else ``start``, ``end``); its ``sizes`` are the stored chromosome sizes.
    """
    windows = all(c in ds.coords for c in WINDOW_COORDS)
    sizes = chrom_sizes(ds)
    return LocusTable(
        loci_mod.strings(ds["chrom"].values),
        np.asarray(ds["start"].values, dtype=np.int64),
        np.asarray(ds["end"].values, dtype=np.int64),
        loci_mod.strings(ds["strand"].values) if "strand" in ds.coords else None,
        loci_mod.strings(ds["name"].values) if "name" in ds.coords else None,
        window_start=np.asarray(ds["window_start"].values, dtype=np.int64) if windows else None,
        window_end=np.asarray(ds["window_end"].values, dtype=np.int64) if windows else None,
        sizes=tuple(sizes.items()) if sizes else None,
    )


def chrom_sizes(ds: xr.Dataset) -> dict[str, int] | None:
    """The chromosome sizes a cube stores (chromosome -> bp), None where it stores none.

    Stored at the build from the manifest's sizes file, FASTA index or bigWig headers
    (:func:`pitfall.featurize.plan.chrom_sizes`), or given to :func:`create_cube`; cubes
    before schema version 4 store none.
    """
    return chrom_sizes_attr(ds.attrs)


def _clips(cube_attrs: Mapping[str, Any]) -> bool:
    # Cubes before schema version 4 hold their loci as made, un-clipped.
    return int(cube_attrs.get("pitfall_schema_version", SCHEMA_VERSION)) >= 4


def _cube_loci(ds: xr.Dataset, cube_attrs: Mapping[str, Any]) -> LocusTable:
    """The loci of a slab as a cube with ``cube_attrs`` stores them (clipped to its sizes)."""
    table = locus_table(ds)
    if not _clips(cube_attrs):
        return table
    try:
        return table.clip(chrom_sizes_attr(cube_attrs) or {}, what="slab loci")
    except ValueError as err:
        raise CubeError(str(err)) from None


def locus_fingerprint(ds: xr.Dataset, block: int) -> str:
    """Fingerprint of a dataset's loci (:func:`pitfall.loci.fingerprint`, blocks of ``block``)."""
    return loci_mod.fingerprint(locus_table(ds), block)


def _first_locus_difference(cube: xr.Dataset, slab: xr.Dataset) -> str | None:
    """Describe the first difference between two locus sets, or None when they are equal."""
    if cube.sizes["locus"] != slab.sizes["locus"]:
        return f"the cube has {cube.sizes['locus']} loci, the slab {slab.sizes['locus']}"
    derived = {"name": locus_names, "strand": locus_strands}
    for coord in (*LOCUS_COORDS, *WINDOW_COORDS):
        if coord in WINDOW_COORDS and coord not in cube.coords and coord not in slab.coords:
            continue
        if coord in WINDOW_COORDS and (coord not in cube.coords or coord not in slab.coords):
            where = "cube" if coord in cube.coords else "slab"
            return f"only the {where} has locus windows ({coord!r})"
        if coord in derived:
            a, b = (derived[coord](x) for x in (cube, slab))
        else:
            a, b = np.asarray(cube[coord].values), np.asarray(slab[coord].values)
        if a.dtype.kind not in "iu":
            a, b = _strings(a), _strings(b)
        diff = np.flatnonzero(a != b)
        if diff.size:
            i = int(diff[0])
            return (
                f"{diff.size} loci differ in {coord!r}, first at position {i}: cube has "
                f"{a[i]!r}, slab has {b[i]!r} (loci must match in names, order and coordinates)"
            )
    return None


def _check_slab(cube: xr.Dataset, slab: xr.Dataset) -> None:
    """Refuse a slab that does not fit ``cube`` (cell types, assembly, variables, marks, loci)."""
    validate(slab, what="slab")
    new = [str(c) for c in slab["cell_type"].values]
    present = sorted(set(new) & {str(c) for c in cube["cell_type"].values})
    if present:
        raise CubeError(
            f"cell type {', '.join(present)} is already in the cube; a cell type is added once "
            "(open the cube with pitfall.open_cube to see what it holds)"
        )
    if slab.attrs["assembly"] != cube.attrs.get("assembly"):
        raise CubeError(
            f"slab assembly {slab.attrs['assembly']!r} differs from the cube's "
            f"{cube.attrs.get('assembly')!r}"
        )
    cube_vars = set(PER_CELL_TYPE_VARS) & set(cube.data_vars)
    slab_vars = {str(v) for v in slab.data_vars}
    if cube_vars != slab_vars:
        raise CubeError(
            f"slab for {', '.join(new)} has variables {sorted(slab_vars)}, the cube "
            f"{sorted(cube_vars)}; every cell type carries the same variables"
        )
    if "signal" in cube_vars:
        a = [str(m) for m in cube["mark"].values]
        b = [str(m) for m in slab["mark"].values]
        if a != b:
            raise CubeError(f"slab marks {b} differ from the cube's marks {a} (same names, order)")
    # The fingerprint saves loading millions of cube coordinates on every append; only a
    # mismatch pays for finding the first differing locus.
    block = int(cube.attrs.get("locus_fingerprint_block", 0)) or cube.sizes["locus"] or 1
    table = _cube_loci(slab, cube.attrs)
    if loci_mod.fingerprint(table, block) != cube.attrs.get("locus_fingerprint"):
        slab = slab.drop_vars([c for c in WINDOW_COORDS if c in slab.coords])
        diff = _first_locus_difference(cube, slab.assign_coords(_locus_coords(table)))
        if diff is not None:
            raise CubeError(f"slab loci do not match the cube: {diff}")


# --------------------------------------------------------------------------------------------
# Repository plumbing


# --------------------------------------------------------------------------------------------
# Transactions: the writer side


# --------------------------------------------------------------------------------------------
# In-memory verbs (slabs): small cubes, tests, the synthetic compendium


def _schema_of(ds: xr.Dataset, table: LocusTable, locus_chunk: int) -> Schema:
    return Schema(
        n_loci=ds.sizes["locus"],
        locus_chunk=locus_chunk,
        marks=tuple(str(m) for m in ds["mark"].values) if "signal" in ds else (),
        value="value" in ds,
        sequence_length=ds.sizes["position"] if "sequence" in ds else None,
        strand="strand" in ds.coords,
        name="name" in ds.coords,
        window=table.window_start is not None,
        chrom_width=loci_mod.string_width(table.chrom),
        name_width=loci_mod.string_width(table.names()),
    )


def _info(slab: xr.Dataset) -> CellTypeInfo:
    """The coordinates, provenance and observed marks of a one-cell-type slab."""
    ct = str(slab["cell_type"].values[0])
    marks = None
    if "observed" in slab.coords:
        row = np.asarray(slab["observed"].values[0], dtype=bool)
        marks = tuple(str(m) for m, has in zip(slab["mark"].values, row, strict=True) if has)
    return CellTypeInfo(
        ct,
        str(slab["cell_type_name"].values[0]),
        str(slab["cell_type_group"].values[0]),
        (root_attr(slab.attrs, "cell_type_sources") or {}).get(ct, {}),
        marks,
    )


def _write_cell_types(fork: Any, ds: xr.Dataset, index: int) -> None:
    regions = {var: np.asarray(ds[var].values) for var in PER_CELL_TYPE_VARS if var in ds}
    write_regions(fork, regions, 0, slice(index, index + ds.sizes["cell_type"]))


def create_cube(
    location: str | os.PathLike[str],
    slabs: xr.Dataset | Sequence[xr.Dataset],
    *,
    sequence: xr.DataArray | np.ndarray | None = None,
    locus_chunk: int = DEFAULT_LOCUS_CHUNK,
    attrs: Mapping[str, Any] | None = None,
    chrom_sizes: Mapping[str, int] | None = None,
    message: str | None = None,
    **storage_options: Any,
) -> str:
    """Create a cube at ``location`` from a first set of cell-type slabs, as one commit.

    The loci are clipped to their chromosome (at 0, and at ``chrom_sizes`` where given),
    each keeping its window (``window_start``, ``window_end``) where it changed; slabs
    appended later are clipped alike (:meth:`pitfall.loci.LocusTable.clip`).

    Parameters
    ----------
    location
        A new (or empty) folder, or an object-store URL (:mod:`pitfall.storage`).
    slabs
        One slab or several (:func:`make_slab`), with identical loci and marks.
    sequence
        Optional, shape ``(n_loci, n_positions)`` uint8 codes (:mod:`pitfall.kernels`).
    locus_chunk
        Loci per chunk; data variables are chunked 1 along ``cell_type``, so an append
        writes only new chunks of them.
    attrs
        Extra root attributes, e.g. the featurization parameters.
    chrom_sizes
        Chromosome -> length in bp, stored (those of the loci's chromosomes) and used by
        every export (:func:`pitfall.tracks.write_track`); default none stored.
    storage_options
        ``anonymous``, ``endpoint_url``, ``region`` (:func:`pitfall.storage.storage`).

    Returns
    -------
    str
        The snapshot id of the commit.
    """
    slabs = [slabs] if isinstance(slabs, xr.Dataset) else list(slabs)
    if not slabs:
        raise CubeError("create_cube needs at least one cell-type slab")
    first = slabs[0]
    validate(first, what=f"slab {first['cell_type'].values.tolist()}")
    order = loci_mod.chrom_order(pd.unique(_strings(first["chrom"].values)))
    sizes = {c: int(chrom_sizes[c]) for c in order if c in chrom_sizes} if chrom_sizes else {}
    first = first.assign_attrs(encode_root_attrs({CHROM_SIZES_ATTR: sizes}) if sizes else {})
    table = _cube_loci(first, first.attrs)
    first.attrs["locus_fingerprint"] = loci_mod.fingerprint(table, locus_chunk)
    first.attrs["locus_fingerprint_block"] = locus_chunk
    for slab in slabs[1:]:
        _check_slab(first, slab)
    ds = xr.concat(slabs, dim="cell_type", data_vars="all", coords="different", compat="equals")
    schema = _schema_of(ds, table, locus_chunk)
    if sequence is not None:
        seq = np.asarray(sequence, dtype=np.uint8)
        if seq.ndim != 2 or seq.shape[0] != ds.sizes["locus"]:
            raise CubeError(f"sequence has shape {seq.shape}, expected ({ds.sizes['locus']}, L)")
        schema = Schema(**{**schema.__dict__, "sequence_length": seq.shape[1]})
    infos = [_info(slab) for slab in slabs]
    loc = parse_location(location)
    repo, created = repository.create_repository(loc, **storage_options)
    try:
        extra = {**(attrs or {}), **({CHROM_SIZES_ATTR: sizes} if sizes else {})}
        txn = begin_create(
            loc, schema, infos, assembly=first.attrs["assembly"], attrs=extra, repo=repo
        )
        digests = [
            write_loci(txn.fork, table.block(a, b), a, schema) for a, b in schema.chunk_blocks()
        ]
        if sequence is not None:
            write_regions(txn.fork, {"sequence": seq}, 0)
        _write_cell_types(txn.fork, ds, 0)
        txn.attrs["locus_fingerprint"] = loci_mod.combine_digests(digests, schema.n_loci)
    except Exception:
        # Nothing was committed: the repository this call made goes with the failure. (Past
        # the commit nothing may remove it, whatever is raised.)
        if created:
            repository.remove_new_repository(loc, **storage_options)
        raise
    return txn.commit(message=message or f"create with {', '.join(txn.cell_types)}")


def _commit_or_wait(txn: Any, message: str | None, attempt: int, retries: int) -> str | None:
    """Commit ``txn``: its snapshot id, or None after a conflict (wait, then try again).

    The last attempt's conflict is raised.
    """
    try:
        return txn.commit(message=message)
    except icechunk.ConflictError:
        if attempt == retries:
            raise
        time.sleep(0.05 * (attempt + 1))
        return None


def append_cell_type(
    location: str | os.PathLike[str],
    slab: xr.Dataset,
    *,
    message: str | None = None,
    retries: int = 20,
    **storage_options: Any,
) -> str:
    """Append one cell type's slab to the cube at ``location`` as one Icechunk commit.

    The append is refused (:class:`CubeError`, nothing written) when the cell type is already
    present, or the loci (names, order, coordinates), marks, variables, dims, dtypes or
    assembly differ from the cube's. A writer that loses a race with another one (an
    Icechunk ``ConflictError``) starts again at the new tip, up to ``retries`` times.

    Returns
    -------
    str
        The snapshot id of the commit.
    """
    slab = slab.load()
    validate(slab, what=f"slab {slab['cell_type'].values.tolist()}")
    if slab.sizes["cell_type"] != 1:
        raise CubeError(
            f"a slab holds one cell type, this one {slab.sizes['cell_type']}; append them one "
            "at a time so each is its own commit"
        )
    info = _info(slab)
    loc = parse_location(location)
    repo = open_repository(loc, **storage_options)
    for attempt in range(retries + 1):
        cube = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
        _check_slab(cube, slab)
        txn = begin_append(loc, [info], repo=repo)
        _write_cell_types(txn.fork, slab, txn.index)
        repository.pause_point("during_write")
        snapshot = _commit_or_wait(txn, message, attempt, retries)
        if snapshot is not None:
            return snapshot
    raise AssertionError("unreachable")


def append_experiments(
    location: str | os.PathLike[str],
    cell_type: str,
    signal: Mapping[str, np.ndarray],
    *,
    sources: Mapping[str, Any] | None = None,
    message: str | None = None,
    retries: int = 20,
    **storage_options: Any,
) -> str:
    """Add experiments (marks) to a cell type already in the cube, as one Icechunk commit.

    Writes each mark's signal into the cell type's ``signal`` (the other marks' values are
    kept) and sets its ``observed`` True. Refused (:class:`CubeError`, nothing written): a
    cell type not in the cube, a mark not among the cube's marks, a mark the cell type has
    already. A killed append leaves the cube as it was; a writer that loses a race with
    another one starts again at the new tip, up to ``retries`` times.

    Parameters
    ----------
    cell_type
        A cell type of the cube.
    signal
        Mark -> values, shape ``(n_loci,)`` (mean arcsinh signal per locus, NaN unknown).
    sources
        What the experiments were computed from, added to the cell type's sources.

    Returns
    -------
    str
        The snapshot id of the commit.
    """
    marks = [str(m) for m in signal]
    values = [np.asarray(signal[m], dtype=np.float32) for m in marks]
    loc = parse_location(location)
    repo = open_repository(loc, **storage_options)
    for attempt in range(retries + 1):
        txn = begin_experiments(loc, cell_type, marks, sources=sources, repo=repo)
        with repository.quiet_zarr():
            arr = zarr.open_array(store=txn.fork.store, path="signal", mode="r")
            n, chunk = arr.shape[1], arr.chunks[1]
        for m, v in zip(marks, values, strict=True):
            if v.shape != (n,):
                raise CubeError(
                    f"cell type {cell_type}, mark {m}: signal has shape {v.shape}, expected ({n},)"
                )
        block = np.stack(values, axis=1)
        for a, b in loci_mod.blocks(n, chunk):
            write_marks(txn.fork, txn.index, a, txn.columns, block[a:b])
        repository.pause_point("during_write")
        snapshot = _commit_or_wait(txn, message, attempt, retries)
        if snapshot is not None:
            return snapshot
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Readers


def open_cube(
    location: str | os.PathLike[str] | Location,
    *,
    branch: str | None = "main",
    tag: str | None = None,
    snapshot: str | None = None,
    **storage_options: Any,
) -> xr.Dataset:
    """Open a cube read-only as a lazy, Dask-backed :class:`xarray.Dataset`.

    :func:`xarray.open_zarr` on the repository's read-only session (the same variables,
    coordinates and values as plain xarray gives), with the snapshot read in
    ``ds.attrs["snapshot"]`` so results can name what they saw, and the two small cell-type
    coordinates (``cell_type_name``, ``cell_type_group``) loaded. The
    ``locus`` coordinate is each locus's position in the cube, so any selection (a split's
    test loci, say) can be matched back to the whole cube with ``ds.sel(locus=part.locus)``.

    A cube with ``signal`` has the ``observed`` coordinate (cell_type, mark), bool (lazy,
    like plain xarray's). A cube built before missing experiments (schema version 2, no
    ``observed`` stored) required every mark of every cell type: its ``observed`` is all
    True, made here. Cubes before version 4 get their CF attributes here; their loci are as
    they were built (``start`` may be negative), with variable-length strings, and they
    store no chromosome sizes (rebuild with ``pitfall build`` for all of these).

    Every variable has CF attributes; nested root attributes are JSON strings
    (:func:`root_attr` parses them), so ``ds.to_netcdf`` writes any selection.

    Parameters
    ----------
    location
        The cube's folder or URL (:mod:`pitfall.storage`).
    branch, tag, snapshot
        Which version to read; default the tip of ``main``.
    storage_options
        ``anonymous``, ``endpoint_url``, ``region`` (:func:`pitfall.storage.storage`).
    """
    repo = open_repository(location, **storage_options)
    if snapshot is not None or tag is not None:
        branch = None
    session = _session(repo, location, branch, tag, snapshot)
    if "label" not in _root_group(session):
        raise FileNotFoundError(
            f"{parse_location(location)} holds an empty repository (a build that never "
            "committed a cell type); build into it again or remove it"
        )
    # The stored ``locus`` coordinate is each locus's position (written so by every
    # transaction): a RangeIndex holds the same values without reading or keeping them.
    ds = xr.open_zarr(session.store, consolidated=False, drop_variables=["locus"])
    ds = ds.assign_coords(locus=pd.RangeIndex(ds.sizes["locus"], name="locus"))
    ds["locus"].attrs.update(CF_ATTRS["locus"])
    # Cubes before schema version 4 carry no CF attributes: the same ones, made here.
    for name, var in ds.variables.items():
        for key, value in CF_ATTRS.get(str(name), {}).items():
            var.attrs.setdefault(key, value)
    if "signal" in ds and "observed" not in ds.coords:
        shape = (ds.sizes["cell_type"], ds.sizes["mark"])
        ds = ds.assign_coords(observed=(("cell_type", "mark"), np.ones(shape, dtype=bool)))
    build = root_attr(ds.attrs, "build") or {}
    if build and not build.get("complete", True):
        done = ds.sizes["cell_type"]
        raise CubeError(
            f"{parse_location(location)} holds an unfinished build ({done} of "
            f"{len(build.get('cell_types', []))} cell types; it was killed or is still "
            "running): run the same `pitfall build` again to finish it"
        )
    # Tiny, and read by almost every caller: loaded once here (plain xarray leaves them lazy),
    # as ``str`` arrays (stored variable-length, so that appends can grow them).
    ds = ds.assign_coords(
        {
            c: ds[c].variable.copy(deep=False, data=_fixed_width(ds[c].values))
            for c in ("cell_type", *CELL_TYPE_COORDS, "mark")
            if c in ds.coords
        }
    )
    ds.attrs["snapshot"] = session.snapshot_id
    # Loaders read chunks straight from it (pitfall.loaders.ChunkReader), past Dask.
    ds.encoding["store"] = session.store
    return ds


#: How Icechunk says that a version asked for does not exist (or cannot be one).
_NO_VERSION = ("invalid snapshot id", "snapshot not found", "ref not found", "branch not found")


def _session(
    repo: icechunk.Repository,
    location: str | os.PathLike[str] | Location,
    branch: str | None,
    tag: str | None,
    snapshot: str | None,
) -> Any:
    """The read-only session of one version; a version the cube lacks is a bad argument."""
    try:
        return repo.readonly_session(branch, tag=tag, snapshot_id=snapshot)
    except icechunk.IcechunkError as err:
        if not any(phrase in str(err) for phrase in _NO_VERSION):
            raise
        if snapshot is not None:
            what = f"snapshot {snapshot!r} (CLI: --snapshot)"
        elif tag is not None:
            what = f"tag {tag!r}"
        else:
            what = f"branch {branch!r}"
        loc = parse_location(location)
        raise CubeError(
            f"{loc} has no {what}; `pitfall cube log {loc}` lists its snapshots"
        ) from err


def _root_group(session: Any) -> Any:
    """The root group, or an empty dict for a repository that has none yet."""
    try:
        return zarr.open_group(session.store, mode="r")
    except FileNotFoundError:  # zarr's GroupNotFoundError: no commit made the root group
        return {}


@dataclass
class Commit:
    """One entry of a cube's history."""

    snapshot: str
    written_at: pd.Timestamp
    message: str
    cell_types: list[str]
    marks: list[str] = field(default_factory=list)  # an experiment append's marks


def cube_log(location: str | os.PathLike[str], **storage_options: Any) -> list[Commit]:
    """The history of the cube's ``main`` branch, newest first."""
    repo = open_repository(location, **storage_options)
    return [
        Commit(
            snapshot=info.id,
            written_at=pd.Timestamp(info.written_at),
            message=info.message,
            cell_types=list((info.metadata or {}).get("cell_types", [])),
            marks=list((info.metadata or {}).get("marks", [])),
        )
        for info in repo.ancestry(branch="main")
    ]


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def observed_matrix(ds: xr.Dataset) -> np.ndarray:
    """Which experiments exist: shape ``(n_cell_type, n_mark)`` bool (empty without signal)."""
    if "observed" not in ds.coords:
        return np.zeros((ds.sizes["cell_type"], 0), dtype=bool)
    return np.asarray(ds["observed"].transpose("cell_type", "mark").values, dtype=bool)


#: Cell types shown by :func:`observed_grid` (the rest are counted in one line).
GRID_ROWS = 100


def observed_grid(
    cell_types: Sequence[str], marks: Sequence[str], observed: Sequence[Sequence[bool]]
) -> list[str]:
    """The observed matrix as text lines: a header of marks, one row per cell type.

    ``x`` marks an observed experiment, ``.`` a missing one; at most :data:`GRID_ROWS` cell
    types are drawn.
    """
    width = max((len(c) for c in cell_types), default=0)
    cols = [max(1, len(m)) for m in marks]
    lines = [" " * width + "  " + " ".join(m for m in marks)]
    for ct, row in list(zip(cell_types, observed, strict=True))[:GRID_ROWS]:
        cells = " ".join(("x" if has else ".").ljust(w) for has, w in zip(row, cols, strict=True))
        lines.append(f"{ct:<{width}}  {cells}".rstrip())
    if len(cell_types) > GRID_ROWS:
        lines.append(f"... {len(cell_types) - GRID_ROWS} more cell types (--json lists them all)")
    return lines


def cube_info(location: str | os.PathLike[str], **storage_options: Any) -> dict[str, Any]:
    """Summarise a cube: cell types, loci, marks, variables, chunking and stored bytes.

    ``observed`` is the experiment matrix: a list per cell type (in ``cell_types`` order)
    of a bool per mark (in ``marks`` order); ``n_observed`` counts the True, ``n_missing``
    the False. ``chrom_sizes`` is what the cube stores (:func:`chrom_sizes`), None where it
    stores none (then exports need sizes given: ``--chrom-sizes``).
    """
    loc = parse_location(location)
    ds = open_cube(loc, **storage_options)
    repo = open_repository(loc, **storage_options)
    sizes = chrom_sizes(ds)
    chroms = pd.Series(_strings(ds["chrom"].values)).value_counts(sort=False)
    observed = observed_matrix(ds)
    return {
        "path": str(loc),
        "snapshot": ds.attrs["snapshot"],
        "assembly": ds.attrs.get("assembly"),
        "cell_types": [str(c) for c in ds["cell_type"].values],
        "cell_type_names": [str(c) for c in ds["cell_type_name"].values],
        "n_loci": ds.sizes["locus"],
        "loci_per_chrom": {str(k): int(v) for k, v in chroms.items()},
        "chrom_sizes": sizes,
        "schema_version": int(ds.attrs.get("pitfall_schema_version", 0)),
        "marks": [str(m) for m in ds["mark"].values] if "mark" in ds.coords else [],
        "observed": observed.tolist(),
        "n_observed": int(observed.sum()),
        "n_missing": int(observed.size - observed.sum()),
        "variables": {
            name: {
                "dims": list(var.dims),
                "shape": list(var.shape),
                "dtype": str(var.dtype),
                "chunks": list(var.encoding.get("chunks", ())),
            }
            for name, var in ds.data_vars.items()
        },
        "bytes_on_disk": repository.stored_bytes(repo),
    }


def export_cube(
    location: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    snapshot: str | None = None,
    zarr_format: int = 3,
    **storage_options: Any,
) -> Path | str:
    """Write a cube (a snapshot of it) as a plain Zarr store that ``xr.open_zarr(out)`` opens.

    For tools that do not speak Icechunk. ``out`` is a new local folder or an object-store
    URL; the copy streams chunk by chunk (Dask), so it never holds a variable in memory.

    The store is complete under ``out`` or not there: a local export is written to a
    temporary folder beside ``out`` and renamed when complete
    (:func:`pitfall._atomic.atomic_path`); an object-store export removes what it wrote when
    it fails, and writes the consolidated metadata (what ``xr.open_zarr`` reads first) last.

    Raises
    ------
    FileExistsError
        ``out`` is a file, a folder that is not empty, or a prefix holding objects.
    CubeError
        The cube has no such ``snapshot``.
    """
    if zarr_format not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    target = parse_location(out)
    _check_export_target(target, storage_options)
    ds = open_cube(location, snapshot=snapshot, **storage_options)
    ds.attrs.pop("snapshot")
    ds.attrs.update(
        encode_root_attrs(
            {
                "exported_from": {
                    "cube": str(parse_location(location)),
                    "snapshot": snapshot
                    or open_cube(location, **storage_options).attrs["snapshot"],
                }
            }
        )
    )
    for var in ds.variables.values():
        chunks = var.encoding.get("chunks")
        var.encoding = {"chunks": chunks} if chunks else {}
    if target.is_local:
        with atomic_path(target.path, folder=True) as tmp:
            _write_plain(ds, str(tmp), zarr_format)
        return target.path
    from pitfall.storage import object_store

    try:
        with repository.native_errors(target):
            store = zarr.storage.ObjectStore(object_store(target, **storage_options))
            _write_plain(ds, store, zarr_format)
    except BaseException:
        # The prefix was empty before (checked above): what is there now is this export's.
        repository.remove_objects(target, **storage_options)
        raise
    return target.url


def _check_export_target(target: Location, storage_options: Mapping[str, Any]) -> None:
    """Refuse an export target that holds anything (pitfall never writes over it)."""
    if target.is_local:
        if target.path.exists() and not target.path.is_dir():
            raise FileExistsError(f"{target} is a file; name a new folder for the export")
        if repository.has_foreign_files(target):
            raise FileExistsError(f"{target} exists and is not empty; choose a new folder")
        return
    if repository.has_foreign_files(target, **storage_options):
        raise FileExistsError(
            f"{target} is not empty (it holds objects already); choose a new prefix: an "
            "export never writes over objects"
        )


def _write_plain(ds: xr.Dataset, store: Any, zarr_format: int) -> None:
    """Write ``ds`` as plain Zarr; the consolidated metadata last, once every chunk is in."""
    with repository.quiet_zarr():
        ds.to_zarr(store, mode="w-", zarr_format=zarr_format, consolidated=False)
        zarr.consolidate_metadata(store, zarr_format=2 if zarr_format == 2 else 3)
