"""The cell-type cube: one chunked Zarr v3 dataset in an Icechunk repository.

Every write is one Icechunk commit, so a reader never sees half a cell type and a
killed writer leaves the cube exactly as it was. Schema (see ``docs`` in README):

=========== ========================== ======= ============================================
variable    dims                       dtype   meaning
=========== ========================== ======= ============================================
``signal``  (cell_type, locus, mark)   float32 mean of arcsinh(signal) over the locus window
``label``   (cell_type, locus)         float32 binary target, NaN unknown
``value``   (cell_type, locus)         float32 optional continuous target (e.g. RPKM)
``sequence`` (locus, position)         uint8   A=0 C=1 G=2 T=3 N=4, strand-aware
=========== ========================== ======= ============================================

Coordinates: ``cell_type`` (with ``cell_type_name`` and ``cell_type_group``), ``mark``, and
along ``locus``: ``chrom``, ``start``, ``end``, ``strand``, ``name``. Strings are stored as
variable-length strings (fixed-width ones break appends).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr

SCHEMA_VERSION = 1
LOCUS_COORDS = ("chrom", "start", "end", "strand", "name")
CELL_TYPE_COORDS = ("cell_type_name", "cell_type_group")
PER_CELL_TYPE_VARS = {
    "signal": ("cell_type", "locus", "mark"),
    "label": ("cell_type", "locus"),
    "value": ("cell_type", "locus"),
}
SHARED_VARS = {"sequence": ("locus", "position")}
VAR_DTYPES = {"signal": np.float32, "label": np.float32, "value": np.float32, "sequence": np.uint8}
DEFAULT_LOCUS_CHUNK = 4096
LOCK_NAME = "pitfall.lock"

# The local filesystem storage warns on every open that concurrent commits are unsafe; the
# cube serialises its writers with a file lock (see ``_writer_lock``), so the warning is noise.
icechunk.set_logs_filter("icechunk=error")


class CubeError(ValueError):
    """A slab or cube that does not fit the schema, or an append the cube must refuse."""


# --------------------------------------------------------------------------------------------
# Building slabs


def chrom_order(chroms: Sequence[str]) -> list[str]:
    """Natural chromosome order: chr1, chr2, ..., chr10, ..., chrX, chrY, chrM, then others."""

    def key(c: str) -> tuple[int, int, str]:
        core = re.sub(r"^chr", "", c)
        if core.isdigit():
            return (0, int(core), c)
        special = {"X": 1, "Y": 2, "M": 3, "MT": 3}
        return (1, special.get(core, 9), c)

    return sorted(set(chroms), key=key)


def make_loci(
    chrom: Sequence[str],
    start: Sequence[int],
    end: Sequence[int],
    strand: Sequence[str] | None = None,
    name: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return a locus table with the columns the cube stores.

    Parameters
    ----------
    chrom, start, end
        Length ``n_loci``; 0-based half-open coordinates.
    strand
        ``"+"``, ``"-"`` or ``"."``; default ``"."``.
    name
        Locus names; default ``"chrom:start-end"``.
    """
    chrom = np.asarray(chrom, dtype=object)
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    if strand is None:
        strand = np.full(len(chrom), ".", dtype=object)
    if name is None:
        name = [f"{c}:{s}-{e}" for c, s, e in zip(chrom, start, end, strict=True)]
    return pd.DataFrame(
        {
            "chrom": chrom,
            "start": start,
            "end": end,
            "strand": np.asarray(strand, dtype=object),
            "name": np.asarray(name, dtype=object),
        }
    )


def _strings(values: Any) -> np.ndarray:
    """Variable-length strings as an object array (xarray writes them as vlen-utf8).

    Accepts lists, object arrays and numpy's ``StringDType`` arrays that Zarr reads back.
    """
    values = np.asarray(values)
    if values.dtype.kind in "OTU":
        return values.astype(object).ravel()
    return np.asarray([str(v) for v in values.ravel()], dtype=object)


def _locus_coords(loci: pd.DataFrame) -> dict[str, tuple[str, np.ndarray]]:
    missing = [c for c in LOCUS_COORDS if c not in loci.columns]
    if missing:
        raise CubeError(
            f"locus table lacks columns {missing}; build it with pitfall.cube.make_loci"
        )
    return {
        "chrom": ("locus", _strings(loci["chrom"])),
        "start": ("locus", np.asarray(loci["start"], dtype=np.int64)),
        "end": ("locus", np.asarray(loci["end"], dtype=np.int64)),
        "strand": ("locus", _strings(loci["strand"])),
        "name": ("locus", _strings(loci["name"])),
    }


def make_slab(
    cell_type: str,
    loci: pd.DataFrame,
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
        Locus table (:func:`make_loci`), ``n_loci`` rows.
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
    n = len(loci)
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
        **_locus_coords(loci),
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
    attrs = {"assembly": assembly}
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
    for coord in (*LOCUS_COORDS, *CELL_TYPE_COORDS, "cell_type"):
        if coord not in ds.coords:
            raise CubeError(f"{what} lacks coordinate {coord!r}; build slabs with make_slab")
    for coord in LOCUS_COORDS:
        if ds[coord].dims != ("locus",):
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
        raise CubeError(f"{what}: locus {i} ({ds['name'].values[i]}) has end <= start")
    strands = set(pd.unique(_strings(ds["strand"].values)))
    if not strands <= {"+", "-", "."}:
        raise CubeError(f"{what}: strand values {sorted(strands)}; expected '+', '-' or '.'")


def locus_fingerprint(ds: xr.Dataset) -> str:
    """A hash of the locus coordinates (names, order, chrom, start, end, strand)."""
    h = hashlib.blake2b(digest_size=16)
    for coord in LOCUS_COORDS:
        values = np.asarray(ds[coord].values)
        if values.dtype.kind in "iu":
            h.update(values.astype(np.int64).tobytes())
        else:
            h.update("\x00".join(map(str, values)).encode())
        h.update(b"\x01")
    return h.hexdigest()


def _first_locus_difference(cube: xr.Dataset, slab: xr.Dataset) -> str | None:
    """Describe the first difference between two locus sets, or None when they are equal."""
    if cube.sizes["locus"] != slab.sizes["locus"]:
        return f"the cube has {cube.sizes['locus']} loci, the slab {slab.sizes['locus']}"
    for coord in LOCUS_COORDS:
        a = np.asarray(cube[coord].values)
        b = np.asarray(slab[coord].values)
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


def _check_append(cube: xr.Dataset, slab: xr.Dataset, fingerprint: str | None) -> None:
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
    if fingerprint is None or locus_fingerprint(slab) != fingerprint:
        diff = _first_locus_difference(cube, slab)
        if fingerprint is not None or diff is not None:
            raise CubeError(f"slab loci do not match the cube: {diff or 'their hashes differ'}")


# --------------------------------------------------------------------------------------------
# Repository plumbing


def _storage(path: str | os.PathLike) -> icechunk.Storage:
    return icechunk.local_filesystem_storage(str(Path(path).resolve()))


def _open_repo(path: str | os.PathLike) -> icechunk.Repository:
    storage = _storage(path)
    if not Path(path).is_dir() or not icechunk.Repository.exists(storage):
        raise FileNotFoundError(
            f"{path} is not a pitfall cube (no Icechunk repository there); create one with "
            "`pitfall build MANIFEST --store PATH` or `pitfall demo`"
        )
    return icechunk.Repository.open(storage)


@contextlib.contextmanager
def _writer_lock(path: str | os.PathLike, timeout: float = 3600.0) -> Iterator[None]:
    """Serialise writers of one cube across processes on this machine.

    The kernel releases a ``flock`` when its holder dies, even by SIGKILL, so a killed append
    never leaves a stale lock behind. Icechunk's local storage is not safe for concurrent
    commits; the lock makes the second writer wait for the first.
    """
    lock_path = Path(path) / LOCK_NAME
    with open(lock_path, "a+") as fh:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another process has held the write lock on {path} for {timeout:.0f} s"
                    ) from None
                if not told:
                    print(f"waiting for another writer of {path} to finish ...", flush=True)
                    told = True
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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


# --------------------------------------------------------------------------------------------
# Public verbs


def create_cube(
    path: str | os.PathLike,
    slabs: xr.Dataset | Sequence[xr.Dataset],
    *,
    sequence: xr.DataArray | np.ndarray | None = None,
    locus_chunk: int = DEFAULT_LOCUS_CHUNK,
    attrs: Mapping[str, Any] | None = None,
    message: str | None = None,
) -> str:
    """Create a cube at ``path`` from a first set of cell-type slabs, as one commit.

    Parameters
    ----------
    path
        A new or empty folder; the Icechunk repository is created there.
    slabs
        One slab or several (:func:`make_slab`), with identical loci and marks.
    sequence
        Optional, shape ``(n_loci, n_positions)`` uint8 codes (:mod:`pitfall.kernels`).
    locus_chunk
        Loci per chunk; chunks are 1 along ``cell_type`` so an append writes only new chunks.
    attrs
        Extra root attributes, e.g. the featurization parameters.

    Returns
    -------
    str
        The snapshot id of the commit.
    """
    slabs = [slabs] if isinstance(slabs, xr.Dataset) else list(slabs)
    if not slabs:
        raise CubeError("create_cube needs at least one cell-type slab")
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not empty; choose a new folder for the cube")
    first = slabs[0]
    validate(first, what=f"slab {first['cell_type'].values.tolist()}")
    fingerprint = locus_fingerprint(first)
    for slab in slabs[1:]:
        _check_append(first, slab, fingerprint)
    sources: dict[str, Any] = {}
    for slab in slabs:
        sources.update(slab.attrs.get("cell_type_sources", {}))
    ds = xr.concat(slabs, dim="cell_type", data_vars="all", coords="different", compat="equals")
    if sequence is not None:
        seq = np.asarray(sequence, dtype=np.uint8)
        if seq.ndim != 2 or seq.shape[0] != ds.sizes["locus"]:
            raise CubeError(f"sequence has shape {seq.shape}, expected ({ds.sizes['locus']}, L)")
        ds["sequence"] = (("locus", "position"), seq)
    ds.attrs = _json_attrs(
        {
            **(attrs or {}),
            "assembly": first.attrs["assembly"],
            "pitfall_schema_version": SCHEMA_VERSION,
            "locus_fingerprint": fingerprint,
            "cell_type_sources": sources,
        }
    )
    validate(ds, what="cube")
    chunk = min(locus_chunk, ds.sizes["locus"])
    encoding: dict[str, Any] = {
        "label": {"chunks": (1, chunk)},
        "cell_type": {"chunks": (1,)},
        "cell_type_name": {"chunks": (1,)},
        "cell_type_group": {"chunks": (1,)},
    }
    if "value" in ds:
        encoding["value"] = {"chunks": (1, chunk)}
    if "signal" in ds:
        encoding["signal"] = {"chunks": (1, chunk, ds.sizes["mark"])}
    if "sequence" in ds:
        encoding["sequence"] = {"chunks": (chunk, ds.sizes["position"])}
    for coord in LOCUS_COORDS:
        encoding[coord] = {"chunks": (min(ds.sizes["locus"], 1 << 20),)}
    path.mkdir(parents=True, exist_ok=True)
    # Icechunk creates repositories only in empty folders, so the lock file comes after.
    repo = icechunk.Repository.create(_storage(path))
    with _writer_lock(path):
        session = repo.writable_session("main")
        ds.to_zarr(session.store, mode="w-", consolidated=False, encoding=encoding)
        cell_types = [str(c) for c in ds["cell_type"].values]
        return session.commit(
            message or f"create with {', '.join(cell_types)}",
            metadata={"action": "create", "cell_types": cell_types},
        )


def append_cell_type(
    path: str | os.PathLike, slab: xr.Dataset, *, message: str | None = None
) -> str:
    """Append one cell type's slab to the cube at ``path`` as one Icechunk commit.

    The append is refused (:class:`CubeError`, nothing written) when the cell type is already
    present, or the loci (names, order, coordinates), marks, variables, dims, dtypes or
    assembly differ from the cube's. Concurrent writers on one machine wait for each other.

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
    cell_type = str(slab["cell_type"].values[0])
    repo = _open_repo(path)
    with _writer_lock(path):
        _pause_point("before_write")
        session = repo.writable_session("main")
        cube = xr.open_zarr(session.store, consolidated=False)
        _check_append(cube, slab, cube.attrs.get("locus_fingerprint"))
        group = zarr.open_group(session.store, mode="r+")
        n_old = cube.sizes["cell_type"]
        names = ["cell_type", *CELL_TYPE_COORDS, *(v for v in PER_CELL_TYPE_VARS if v in slab)]
        for i, name in enumerate(names):
            arr = group[name]
            arr.resize((n_old + 1, *arr.shape[1:]))
            arr[n_old : n_old + 1] = np.asarray(slab[name].values)
            if i == 3:
                _pause_point("during_write")
        sources = dict(cube.attrs.get("cell_type_sources", {}))
        sources.update(slab.attrs.get("cell_type_sources", {}))
        group.attrs["cell_type_sources"] = _json_attrs(sources)
        _pause_point("after_write")
        snapshot = session.commit(
            message or f"append {cell_type}",
            metadata={"action": "append", "cell_types": [cell_type]},
        )
        _pause_point("after_commit")
    return snapshot


def open_cube(
    path: str | os.PathLike,
    *,
    branch: str | None = "main",
    tag: str | None = None,
    snapshot: str | None = None,
) -> xr.Dataset:
    """Open a cube read-only as a lazy, Dask-backed :class:`xarray.Dataset`.

    A thin wrapper over :func:`xarray.open_zarr` on the repository's read-only session; the
    snapshot read is recorded in ``ds.attrs["snapshot"]`` so results can name what they saw,
    and the ``locus`` dimension gets an integer coordinate: each locus's position in the cube.

    Parameters
    ----------
    path
        The cube's folder.
    branch, tag, snapshot
        Which version to read; default the tip of ``main``.
    """
    repo = _open_repo(path)
    if snapshot is not None or tag is not None:
        branch = None
    session = repo.readonly_session(branch, tag=tag, snapshot_id=snapshot)
    ds = xr.open_zarr(session.store, consolidated=False)
    # ``locus`` counts positions in the cube, so any selection (a split's test loci, say)
    # can be matched back to the whole cube with ``ds.sel(locus=part.locus)``.
    ds = ds.assign_coords(locus=np.arange(ds.sizes["locus"]))
    ds = ds.assign_coords({c: ds[c].load() for c in CELL_TYPE_COORDS})  # tiny; read once
    ds.attrs["snapshot"] = session.snapshot_id
    return ds


@dataclass
class Commit:
    """One entry of a cube's history."""

    snapshot: str
    written_at: pd.Timestamp
    message: str
    cell_types: list[str]


def cube_log(path: str | os.PathLike) -> list[Commit]:
    """The history of the cube's ``main`` branch, newest first."""
    repo = _open_repo(path)
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


def cube_info(path: str | os.PathLike) -> dict[str, Any]:
    """Summarise a cube: cell types, loci, marks, variables, chunking and size on disk."""
    ds = open_cube(path)
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    chroms = pd.Series(_strings(ds["chrom"].values)).value_counts(sort=False)
    return {
        "path": str(path),
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
        "bytes_on_disk": size,
    }
