"""The cell-type cube: one chunked Zarr v3 dataset in an Icechunk repository.

Every write is one Icechunk commit, so a reader never sees half a cell type and a killed
writer leaves the cube exactly as it was. A cube lives in a local folder or in object
storage (``s3://``, ``gs://``, ``az://``: see :mod:`pitfall.location`). Schema:

============ ========================== ======= ===========================================
variable     dims                       dtype   meaning
============ ========================== ======= ===========================================
``signal``   (cell_type, locus, mark)   float32 mean of arcsinh(signal) over the locus window
``label``    (cell_type, locus)         float32 binary target, NaN unknown
``value``    (cell_type, locus)         float32 optional continuous target (e.g. RPKM)
``sequence`` (locus, position)          uint8   A=0 C=1 G=2 T=3 N=4, strand-aware
============ ========================== ======= ===========================================

Coordinates: ``cell_type`` (with ``cell_type_name`` and ``cell_type_group``), ``mark``, and
along ``locus``: the integer index ``locus`` (0 .. n-1, stored), ``chrom``, ``start``,
``end`` and, where they carry information, ``strand`` and ``name`` (cubes of genome bins
store neither: their names are ``chrom:start-end`` and their strand ``.``, see
:func:`locus_names`). Strings are variable-length UTF-8 (numpy ``StringDType`` on read).

The store is plain Zarr written the way xarray writes it, so
``xr.open_zarr(repo.readonly_session("main").store)`` without pitfall gives exactly what
:func:`open_cube` gives.

Writers
-------
A write is a *transaction*: :func:`begin_create` or :func:`begin_append` opens a session at
the branch tip and prepares, in a forked session, the metadata of the commit (the new
arrays, or the cell-type axis grown by one). That fork is what workers write into
(:func:`write_region`, :func:`write_loci`); each returns its copy and
:meth:`Transaction.commit` merges them all and commits. Writers on different machines rely on
Icechunk's optimistic concurrency: a commit whose parent moved raises
:class:`icechunk.ConflictError`, and the writer starts the cell type again at the new tip.
Chunks are 1 along ``cell_type``, so an append writes only new chunks.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from xarray.coding.strings import create_vlen_dtype

from pitfall import loci as loci_mod
from pitfall.location import Location, commit_lock, parse_location, storage
from pitfall.loci import STR, LocusTable, chrom_order

__all__ = [
    "CubeError",
    "Transaction",
    "append_cell_type",
    "begin_append",
    "begin_create",
    "chrom_order",
    "create_cube",
    "cube_info",
    "cube_log",
    "export_cube",
    "locus_names",
    "make_loci",
    "make_slab",
    "open_cube",
    "open_repository",
    "write_loci",
    "write_region",
]

SCHEMA_VERSION = 2
LOCUS_COORDS = ("chrom", "start", "end", "strand", "name")
REQUIRED_LOCUS_COORDS = ("chrom", "start", "end")
CELL_TYPE_COORDS = ("cell_type_name", "cell_type_group")
PER_CELL_TYPE_VARS = {
    "signal": ("cell_type", "locus", "mark"),
    "label": ("cell_type", "locus"),
    "value": ("cell_type", "locus"),
}
SHARED_VARS = {"sequence": ("locus", "position")}
VAR_DTYPES = {"signal": np.float32, "label": np.float32, "value": np.float32, "sequence": np.uint8}
DEFAULT_LOCUS_CHUNK = 4096
_VSTR = create_vlen_dtype(str)

# Icechunk's local storage warns on every open that concurrent commits are unsafe; local
# commits are serialised by pitfall.location.commit_lock, so the warning is noise.
icechunk.set_logs_filter("icechunk=error")


class CubeError(ValueError):
    """A slab or cube that does not fit the schema, or a write the cube must refuse."""


# --------------------------------------------------------------------------------------------
# Small helpers


def _strings(values: Any) -> np.ndarray:
    """Strings as an object array of Python ``str`` (for small arrays and messages)."""
    values = np.asarray(values)
    if values.dtype.kind in "OTU":
        return values.astype(object).ravel()
    return np.asarray([str(v) for v in values.ravel()], dtype=object)


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

    Returns
    -------
    xarray.Dataset
        Dims ``cell_type`` (1), ``locus`` and, with signal, ``mark``.
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
        data_vars["signal"] = (("cell_type", "locus", "mark"), signal[None, :, :])
        coords["mark"] = ("mark", _strings(marks))
    attrs: dict[str, Any] = {"assembly": assembly}
    if sources:
        attrs["cell_type_sources"] = {cell_type: dict(sources)}
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
    for coord in LOCUS_COORDS:
        if coord in ds.coords and ds[coord].dims != ("locus",):
            raise CubeError(f"{what}: coordinate {coord!r} must have dims ('locus',)")
    if "signal" in ds and "mark" not in ds.coords:
        raise CubeError(f"{what} has signal but no 'mark' coordinate")
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


def _table_of(ds: xr.Dataset) -> LocusTable:
    return LocusTable(
        loci_mod.strings(ds["chrom"].values),
        np.asarray(ds["start"].values, dtype=np.int64),
        np.asarray(ds["end"].values, dtype=np.int64),
        loci_mod.strings(ds["strand"].values) if "strand" in ds.coords else None,
        loci_mod.strings(ds["name"].values) if "name" in ds.coords else None,
    )


def locus_fingerprint(ds: xr.Dataset, block: int) -> str:
    """Fingerprint of a dataset's loci (:func:`pitfall.loci.fingerprint`, blocks of ``block``)."""
    return loci_mod.fingerprint(_table_of(ds), block)


def _first_locus_difference(cube: xr.Dataset, slab: xr.Dataset) -> str | None:
    """Describe the first difference between two locus sets, or None when they are equal."""
    if cube.sizes["locus"] != slab.sizes["locus"]:
        return f"the cube has {cube.sizes['locus']} loci, the slab {slab.sizes['locus']}"
    derived = {"name": locus_names, "strand": locus_strands}
    for coord in LOCUS_COORDS:
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
    cube_vars = set(cube.data_vars) & set(PER_CELL_TYPE_VARS)
    slab_vars = set(slab.data_vars)
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
    if locus_fingerprint(slab, block) != cube.attrs.get("locus_fingerprint"):
        diff = _first_locus_difference(cube, slab)
        if diff is not None:
            raise CubeError(f"slab loci do not match the cube: {diff}")


# --------------------------------------------------------------------------------------------
# Repository plumbing


def _has_foreign_files(loc: Location) -> bool:
    if loc.is_local:
        return loc.path.exists() and any(loc.path.iterdir())
    from pitfall.location import list_objects

    return next(iter(list_objects(loc)), None) is not None


def open_repository(
    location: str | os.PathLike[str] | Location, **storage_options: Any
) -> icechunk.Repository:
    """Open the Icechunk repository of an existing cube.

    Raises
    ------
    FileNotFoundError
        When no cube exists at ``location`` (the message says how to make one).
    """
    loc = parse_location(location)
    if loc.is_local and not loc.path.is_dir():
        raise FileNotFoundError(_no_cube(loc))
    st = storage(loc, **storage_options)
    try:
        exists = icechunk.Repository.exists(st)
    except icechunk.IcechunkError as err:
        raise OSError(f"{loc}: cannot reach the store ({_first_line(err)})") from err
    if not exists:
        raise FileNotFoundError(_no_cube(loc))
    return icechunk.Repository.open(st)


def _no_cube(loc: Location) -> str:
    return (
        f"{loc} is not a pitfall cube (no Icechunk repository there); create one with "
        "`pitfall build MANIFEST --store LOCATION` or `pitfall demo`"
    )


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _is_empty_repository(repo: icechunk.Repository) -> bool:
    """A repository with only Icechunk's initial commit (a build killed before its first)."""
    return len(list(repo.ancestry(branch="main"))) <= 1


def create_repository(
    location: str | os.PathLike[str] | Location, **storage_options: Any
) -> tuple[icechunk.Repository, bool]:
    """A new, empty repository at ``location``, and whether this call created it.

    An empty repository left by a build killed before its first commit is reused; anything
    else already there (a cube, or files pitfall did not write) is refused.
    """
    loc = parse_location(location)
    st = storage(loc, **storage_options)
    if icechunk.Repository.exists(st):
        repo = icechunk.Repository.open(st)
        if _is_empty_repository(repo):
            return repo, False
        raise FileExistsError(
            f"{loc} already holds a cube; add cell types with `pitfall append {loc} MANIFEST "
            "--cell-type ID`, or choose a new --store"
        )
    if _has_foreign_files(loc):
        raise FileExistsError(
            f"{loc} exists and holds files that are not a pitfall cube; choose a new --store "
            "(pitfall never writes over files it did not make)"
        )
    if loc.is_local:
        loc.path.mkdir(parents=True, exist_ok=True)
    try:
        return icechunk.Repository.create(st), True
    except icechunk.IcechunkError as err:
        # Another build created it between our check and our create.
        raise FileExistsError(
            f"{loc}: another writer is creating a cube there ({_first_line(err)})"
        ) from err


def _pause_point(name: str) -> None:
    """Let tests stop a writer at a named point (to kill it there); a no-op otherwise.

    The writer announces the pause by writing ``PITFALL_PAUSE_FILE`` and waits until the
    file ``PITFALL_RESUME_FILE`` exists (or 120 s pass).
    """
    if os.environ.get("PITFALL_PAUSE_AT") == name:
        Path(os.environ["PITFALL_PAUSE_FILE"]).write_text(name)
        resume = Path(os.environ.get("PITFALL_RESUME_FILE", "/nonexistent"))
        deadline = time.monotonic() + 120
        while not resume.exists() and time.monotonic() < deadline:
            time.sleep(0.02)


def _json_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    # Zarr attributes must be JSON; a round trip turns numpy scalars and tuples into plain types.
    return json.loads(json.dumps(dict(attrs), default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in cube attributes")


@contextlib.contextmanager
def _quiet_zarr() -> Iterator[None]:
    # Writing vlen strings in Zarr v3 warns that the extension dtype may change; the cube
    # pins zarr's version range, and readers are unaffected.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        yield


# --------------------------------------------------------------------------------------------
# Transactions: the writer side


@dataclass(frozen=True)
class Schema:
    """Shape of a cube: what :func:`begin_create` makes.

    Attributes
    ----------
    n_loci
        Number of loci.
    locus_chunk
        Loci per chunk of every locus-dimensioned array.
    marks
        Signal marks (empty: no ``signal``).
    value
        Whether cell types carry a continuous ``value``.
    sequence_length
        Bases per locus of ``sequence`` (None: no sequence).
    strand, name
        Whether the loci store a strand and a name coordinate.
    """

    n_loci: int
    locus_chunk: int = DEFAULT_LOCUS_CHUNK
    marks: tuple[str, ...] = ()
    value: bool = False
    sequence_length: int | None = None
    strand: bool = True
    name: bool = True

    def __post_init__(self) -> None:
        if self.n_loci <= 0:
            raise CubeError("a cube needs at least one locus; the locus set is empty")
        if self.locus_chunk <= 0:
            raise CubeError(f"locus_chunk must be positive, got {self.locus_chunk}")

    @property
    def chunk(self) -> int:
        return min(self.locus_chunk, self.n_loci)

    def chunk_blocks(self) -> list[tuple[int, int]]:
        """``[i0, i1)`` of every locus chunk (the unit of a worker's write and of a digest)."""
        return list(loci_mod.blocks(self.n_loci, self.chunk))


@dataclass(frozen=True)
class CellTypeInfo:
    """A cell type's coordinates and provenance, written with its slab."""

    id: str
    name: str = ""
    group: str = ""
    sources: Mapping[str, Any] = field(default_factory=dict)


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
        Ids of the cell types this commit adds.
    """

    location: Location
    session: icechunk.Session
    fork: Any
    index: int
    cell_types: list[str]
    action: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def commit(self, forks: Sequence[Any] = (), *, message: str | None = None) -> str:
        """Merge the workers' forks (or this transaction's own) and commit; return the snapshot.

        Raises
        ------
        icechunk.ConflictError
            When another writer committed since this transaction began (start it again).
        """
        self.session.merge(*(forks or [self.fork]))
        if self.attrs:
            with _quiet_zarr():
                group = zarr.open_group(self.session.store, mode="r+")
                group.attrs.update(_json_attrs(self.attrs))
        _pause_point("after_write")
        with commit_lock(self.location):
            snapshot = self.session.commit(
                message or f"{self.action} {', '.join(self.cell_types)}",
                metadata={"action": self.action, "cell_types": list(self.cell_types)},
            )
        _pause_point("after_commit")
        return snapshot


def _lazy(shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...]) -> da.Array:
    # Never computed: xarray's to_zarr(compute=False) only needs shape, dtype and chunks.
    return da.empty(shape, dtype=dtype, chunks=chunks)


def _template(schema: Schema, cell_types: Sequence[CellTypeInfo], assembly: str) -> xr.Dataset:
    n, c, k = schema.n_loci, schema.chunk, len(cell_types)
    data_vars: dict[str, Any] = {
        "label": (("cell_type", "locus"), _lazy((k, n), np.float32, (1, c)))
    }
    if schema.value:
        data_vars["value"] = (("cell_type", "locus"), _lazy((k, n), np.float32, (1, c)))
    coords: dict[str, Any] = {
        "cell_type": ("cell_type", np.array([ct.id for ct in cell_types], dtype=object)),
        "cell_type_name": (
            "cell_type",
            np.array([ct.name or ct.id for ct in cell_types], dtype=object),
        ),
        "cell_type_group": ("cell_type", np.array([ct.group for ct in cell_types], dtype=object)),
        "chrom": ("locus", _lazy((n,), _VSTR, (c,))),
        "start": ("locus", _lazy((n,), np.int64, (c,))),
        "end": ("locus", _lazy((n,), np.int64, (c,))),
    }
    if schema.strand:
        coords["strand"] = ("locus", _lazy((n,), _VSTR, (c,)))
    if schema.name:
        coords["name"] = ("locus", _lazy((n,), _VSTR, (c,)))
    if schema.marks:
        m = len(schema.marks)
        data_vars["signal"] = (
            ("cell_type", "locus", "mark"),
            _lazy((k, n, m), np.float32, (1, c, m)),
        )
        coords["mark"] = ("mark", np.array(schema.marks, dtype=object))
    if schema.sequence_length:
        L = schema.sequence_length
        data_vars["sequence"] = (("locus", "position"), _lazy((n, L), np.uint8, (c, L)))
    return xr.Dataset(data_vars, coords=coords, attrs={"assembly": assembly})


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
    first cell types' variables (:func:`write_region`) into :attr:`Transaction.fork`.
    """
    loc = parse_location(location)
    if repo is None:
        repo, _ = create_repository(loc, **storage_options)
    if not cell_types:
        raise CubeError("a new cube needs at least one cell type")
    session = repo.writable_session("main")
    fork = session.fork()
    ds = _template(schema, cell_types, assembly)
    ds.attrs.update(
        _json_attrs(
            {
                **(attrs or {}),
                "assembly": assembly,
                "pitfall_schema_version": SCHEMA_VERSION,
                "locus_fingerprint_block": schema.chunk,
                "cell_type_sources": {ct.id: dict(ct.sources) for ct in cell_types},
            }
        )
    )
    encoding: dict[str, Any] = {name: {"chunks": var.data.chunksize} for name, var in ds.variables.items() if isinstance(var.data, da.Array)}  # fmt: skip
    for name in ("cell_type", *CELL_TYPE_COORDS):
        encoding[name] = {"chunks": (1,)}
    with _quiet_zarr():
        ds.to_zarr(fork.store, mode="w-", compute=False, consolidated=False, encoding=encoding)
        group = zarr.open_group(fork.store, mode="r+")
        # The locus index as a stored coordinate: plain xarray then builds the same index.
        group.create_array(
            "locus",
            shape=(schema.n_loci,),
            chunks=(schema.chunk,),
            dtype="int64",
            dimension_names=("locus",),
            fill_value=0,
        )
    _pause_point("before_write")
    return Transaction(loc, session, fork, 0, [ct.id for ct in cell_types], "create")


def begin_append(
    location: str | os.PathLike[str] | Location,
    cell_type: CellTypeInfo,
    *,
    fingerprint: str | None = None,
    repo: icechunk.Repository | None = None,
    **storage_options: Any,
) -> Transaction:
    """Start a commit that adds one cell type at the end of the ``cell_type`` axis.

    Refuses (:class:`CubeError`, nothing written) a cell type already in the cube, and loci
    whose ``fingerprint`` differs from the cube's.
    """
    loc = parse_location(location)
    repo = repo or open_repository(loc, **storage_options)
    session = repo.writable_session("main")
    _pause_point("before_write")
    with _quiet_zarr():
        group = zarr.open_group(session.store, mode="r")
        present = [str(c) for c in group["cell_type"][:]]
        attrs = dict(group.attrs)
    if cell_type.id in present:
        raise CubeError(
            f"cell type {cell_type.id} is already in the cube at {loc}; a cell type is added "
            "once (open the cube with pitfall.open_cube to see what it holds)"
        )
    if fingerprint is not None and fingerprint != attrs.get("locus_fingerprint"):
        raise CubeError(
            f"the loci to append differ from the cube's at {loc}; use the same loci source, "
            "windows and chromosomes as the build"
        )
    n = len(present)
    fork = session.fork()
    with _quiet_zarr():
        group = zarr.open_group(fork.store, mode="r+")
        for name in [
            "cell_type",
            *CELL_TYPE_COORDS,
            *(v for v in PER_CELL_TYPE_VARS if v in group),
        ]:
            arr = group[name]
            arr.resize((n + 1, *arr.shape[1:]))
        group["cell_type"][n] = cell_type.id
        group["cell_type_name"][n] = cell_type.name or cell_type.id
        group["cell_type_group"][n] = cell_type.group
    sources = dict(attrs.get("cell_type_sources", {}))
    sources[cell_type.id] = dict(cell_type.sources)
    return Transaction(
        loc, session, fork, n, [cell_type.id], "append", attrs={"cell_type_sources": sources}
    )


def write_region(
    session: Any, name: str, data: np.ndarray, i0: int, index: int | None = None
) -> Any:
    """Write ``data`` into variable ``name`` from locus ``i0`` (at cell type ``index``).

    Runs on a worker: ``session`` is a transaction's fork (or a copy of it) and comes back
    changed. ``data`` has the variable's shape without the ``cell_type`` axis, covering whole
    chunks along ``locus`` (the last may be partial), so no two writers share a chunk.
    """
    with _quiet_zarr():
        arr = zarr.open_array(session.store, path=name, mode="r+")
        i1 = i0 + data.shape[0]
        if index is None:
            arr[i0:i1] = data
        else:
            arr[index, i0:i1] = data
    return session


def write_loci(session: Any, table: LocusTable, i0: int, schema: Schema) -> str:
    """Write the locus coordinates of ``table`` from locus ``i0``; return its digest."""
    i1 = i0 + len(table)
    with _quiet_zarr():
        group = zarr.open_group(session.store, mode="r+")
        group["locus"][i0:i1] = np.arange(i0, i1, dtype=np.int64)
        group["chrom"][i0:i1] = table.chrom
        group["start"][i0:i1] = table.start
        group["end"][i0:i1] = table.end
        if schema.strand:
            group["strand"][i0:i1] = (
                table.strand if table.strand is not None else np.full(len(table), ".", STR)
            )
        if schema.name:
            group["name"][i0:i1] = (
                table.name if table.name is not None else loci_mod.bin_names(
                    table.chrom, table.start, table.end
                )
            )  # fmt: skip
    return loci_mod.block_digest(table)


# --------------------------------------------------------------------------------------------
# In-memory verbs (slabs): small cubes, tests, the synthetic compendium


def _schema_of(ds: xr.Dataset, locus_chunk: int) -> Schema:
    return Schema(
        n_loci=ds.sizes["locus"],
        locus_chunk=locus_chunk,
        marks=tuple(str(m) for m in ds["mark"].values) if "signal" in ds else (),
        value="value" in ds,
        sequence_length=ds.sizes["position"] if "sequence" in ds else None,
        strand="strand" in ds.coords,
        name="name" in ds.coords,
    )


def _write_cell_types(fork: Any, ds: xr.Dataset, index: int) -> None:
    for k in range(ds.sizes["cell_type"]):
        for var in PER_CELL_TYPE_VARS:
            if var in ds:
                write_region(fork, var, np.asarray(ds[var].values[k]), 0, index + k)


def create_cube(
    location: str | os.PathLike[str],
    slabs: xr.Dataset | Sequence[xr.Dataset],
    *,
    sequence: xr.DataArray | np.ndarray | None = None,
    locus_chunk: int = DEFAULT_LOCUS_CHUNK,
    attrs: Mapping[str, Any] | None = None,
    message: str | None = None,
    **storage_options: Any,
) -> str:
    """Create a cube at ``location`` from a first set of cell-type slabs, as one commit.

    Parameters
    ----------
    location
        A new (or empty) folder, or an object-store URL (:mod:`pitfall.location`).
    slabs
        One slab or several (:func:`make_slab`), with identical loci and marks.
    sequence
        Optional, shape ``(n_loci, n_positions)`` uint8 codes (:mod:`pitfall.kernels`).
    locus_chunk
        Loci per chunk; chunks are 1 along ``cell_type`` so an append writes only new chunks.
    attrs
        Extra root attributes, e.g. the featurization parameters.
    storage_options
        ``anonymous``, ``endpoint_url``, ``region`` (:func:`pitfall.location.storage`).

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
    table = _table_of(first)
    first = first.assign_attrs(locus_fingerprint=loci_mod.fingerprint(table, locus_chunk))
    first.attrs["locus_fingerprint_block"] = locus_chunk
    for slab in slabs[1:]:
        _check_slab(first, slab)
    ds = xr.concat(slabs, dim="cell_type", data_vars="all", coords="different", compat="equals")
    schema = _schema_of(ds, locus_chunk)
    if sequence is not None:
        seq = np.asarray(sequence, dtype=np.uint8)
        if seq.ndim != 2 or seq.shape[0] != ds.sizes["locus"]:
            raise CubeError(f"sequence has shape {seq.shape}, expected ({ds.sizes['locus']}, L)")
        schema = Schema(**{**schema.__dict__, "sequence_length": seq.shape[1]})
    infos = [
        CellTypeInfo(
            str(slab["cell_type"].values[0]),
            str(slab["cell_type_name"].values[0]),
            str(slab["cell_type_group"].values[0]),
            slab.attrs.get("cell_type_sources", {}).get(str(slab["cell_type"].values[0]), {}),
        )
        for slab in slabs
    ]
    loc = parse_location(location)
    repo, created = create_repository(loc, **storage_options)
    try:
        txn = begin_create(
            loc, schema, infos, assembly=first.attrs["assembly"], attrs=attrs, repo=repo
        )
        digests = [
            write_loci(txn.fork, table.block(a, b), a, schema) for a, b in schema.chunk_blocks()
        ]
        if sequence is not None:
            write_region(txn.fork, "sequence", seq, 0)
        _write_cell_types(txn.fork, ds, 0)
        txn.attrs["locus_fingerprint"] = loci_mod.combine_digests(digests, schema.n_loci)
    except Exception:
        # Nothing was committed: the repository this call made goes with the failure. (Past
        # the commit nothing may remove it, whatever is raised.)
        if created:
            remove_new_repository(loc, **storage_options)
        raise
    return txn.commit(message=message or f"create with {', '.join(txn.cell_types)}")


def remove_new_repository(location: str | os.PathLike[str] | Location, **options: Any) -> None:
    """Delete a repository that this process created (a build that failed).

    Only for a location that held nothing before the build (:func:`create_repository` made
    sure), so nothing anyone else wrote is lost.
    """
    loc = parse_location(location)
    if loc.is_local:
        import shutil

        shutil.rmtree(loc.path, ignore_errors=True)
        return
    import obstore

    from pitfall.location import object_store

    store = object_store(loc, **options)
    for batch in obstore.list(store):
        obstore.delete(store, [meta["path"] for meta in batch])


def root_attrs(repo: icechunk.Repository, branch: str = "main") -> dict[str, Any]:
    """The cube's root attributes at the tip of ``branch`` (reads one small object)."""
    with _quiet_zarr():
        return dict(zarr.open_group(repo.readonly_session(branch).store, mode="r").attrs)


def cell_types_of(repo: icechunk.Repository, branch: str = "main") -> list[str]:
    """The cell types of the cube at the tip of ``branch``."""
    group = zarr.open_group(repo.readonly_session(branch).store, mode="r")
    return [str(c) for c in group["cell_type"][:]] if "cell_type" in group else []


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
    ct = str(slab["cell_type"].values[0])
    info = CellTypeInfo(
        ct,
        str(slab["cell_type_name"].values[0]),
        str(slab["cell_type_group"].values[0]),
        slab.attrs.get("cell_type_sources", {}).get(ct, {}),
    )
    loc = parse_location(location)
    repo = open_repository(loc, **storage_options)
    for attempt in range(retries + 1):
        cube = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
        _check_slab(cube, slab)
        txn = begin_append(loc, info, repo=repo)
        _write_cell_types(txn.fork, slab, txn.index)
        _pause_point("during_write")
        try:
            return txn.commit(message=message)
        except icechunk.ConflictError:
            if attempt == retries:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Readers


def open_cube(
    location: str | os.PathLike[str],
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

    Parameters
    ----------
    location
        The cube's folder or URL (:mod:`pitfall.location`).
    branch, tag, snapshot
        Which version to read; default the tip of ``main``.
    storage_options
        ``anonymous``, ``endpoint_url``, ``region`` (:func:`pitfall.location.storage`).
    """
    repo = open_repository(location, **storage_options)
    if snapshot is not None or tag is not None:
        branch = None
    session = repo.readonly_session(branch, tag=tag, snapshot_id=snapshot)
    if "label" not in zarr.open_group(session.store, mode="r"):
        raise FileNotFoundError(
            f"{parse_location(location)} holds an empty repository (a build that never "
            "committed a cell type); build into it again or remove it"
        )
    ds = xr.open_zarr(session.store, consolidated=False)
    build = ds.attrs.get("build") or {}
    if build and not build.get("complete", True):
        done = ds.sizes["cell_type"]
        raise CubeError(
            f"{parse_location(location)} holds an unfinished build ({done} of "
            f"{len(build.get('cell_types', []))} cell types; it was killed or is still "
            "running): run the same `pitfall build` again to finish it"
        )
    # Tiny, and read by almost every caller: loaded once here (plain xarray leaves them lazy).
    ds = ds.assign_coords({c: ds[c].load() for c in CELL_TYPE_COORDS if c in ds.coords})
    ds.attrs["snapshot"] = session.snapshot_id
    return ds


@dataclass
class Commit:
    """One entry of a cube's history."""

    snapshot: str
    written_at: pd.Timestamp
    message: str
    cell_types: list[str]


def cube_log(location: str | os.PathLike[str], **storage_options: Any) -> list[Commit]:
    """The history of the cube's ``main`` branch, newest first."""
    repo = open_repository(location, **storage_options)
    return [
        Commit(
            snapshot=info.id,
            written_at=pd.Timestamp(info.written_at),
            message=info.message,
            cell_types=list((info.metadata or {}).get("cell_types", [])),
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


def cube_info(location: str | os.PathLike[str], **storage_options: Any) -> dict[str, Any]:
    """Summarise a cube: cell types, loci, marks, variables, chunking and stored bytes."""
    loc = parse_location(location)
    ds = open_cube(loc, **storage_options)
    repo = open_repository(loc, **storage_options)
    chroms = pd.Series(_strings(ds["chrom"].values)).value_counts(sort=False)
    return {
        "path": str(loc),
        "snapshot": ds.attrs["snapshot"],
        "assembly": ds.attrs.get("assembly"),
        "cell_types": [str(c) for c in ds["cell_type"].values],
        "cell_type_names": [str(c) for c in ds["cell_type_name"].values],
        "n_loci": ds.sizes["locus"],
        "loci_per_chrom": {str(k): int(v) for k, v in chroms.items()},
        "marks": [str(m) for m in ds["mark"].values] if "mark" in ds.coords else [],
        "variables": {
            name: {
                "dims": list(var.dims),
                "shape": list(var.shape),
                "dtype": str(var.dtype),
                "chunks": list(var.encoding.get("chunks", ())),
            }
            for name, var in ds.data_vars.items()
        },
        "bytes_on_disk": _stored_bytes(repo),
    }


def _stored_bytes(repo: icechunk.Repository) -> int:
    stats = repo.chunk_storage_stats()
    return int(stats.native_bytes + getattr(stats, "inlined_bytes", 0))


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
    """
    ds = open_cube(location, snapshot=snapshot, **storage_options)
    ds.attrs.pop("snapshot")
    ds.attrs["exported_from"] = {
        "cube": str(parse_location(location)),
        "snapshot": snapshot or open_cube(location, **storage_options).attrs["snapshot"],
    }
    for var in ds.variables.values():
        chunks = var.encoding.get("chunks")
        var.encoding = {"chunks": chunks} if chunks else {}
    target = parse_location(out)
    if target.is_local:
        if _has_foreign_files(target):
            raise FileExistsError(f"{target} exists and is not empty; choose a new folder")
        store: Any = str(target.path)
    else:
        from pitfall.location import object_store

        store = zarr.storage.ObjectStore(object_store(target))
    with _quiet_zarr():
        ds.to_zarr(store, mode="w-", zarr_format=zarr_format, consolidated=True)
    return target.path if target.is_local else target.url
