"""The cube's schema: its variables, coordinates, dtypes, and the shape of a new cube.

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
``end`` and, where they carry information, ``strand`` and ``name``. Strings are
variable-length UTF-8 (numpy ``StringDType`` on read). :func:`template` is the empty
Dataset whose ``to_zarr(compute=False)`` makes every array of a new cube the way xarray
writes it, so plain xarray reads the cube back.

Floor 1: imports only :mod:`pitfall.loci`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pitfall import loci as loci_mod

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

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


class CubeError(ValueError):
    """A slab or cube that does not fit the schema, or a write the cube must refuse."""


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


def _lazy(shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...]) -> da.Array:
    import dask.array as da

    # Never computed: xarray's to_zarr(compute=False) only needs shape, dtype and chunks.
    return da.empty(shape, dtype=dtype, chunks=chunks)


def template(schema: Schema, cell_types: Sequence[CellTypeInfo], assembly: str) -> xr.Dataset:
    # xarray and dask are imported here, not with the module: workers that only write
    # blocks (pitfall.featurize.tasks) then start without them.
    import xarray as xr
    from xarray.coding.strings import create_vlen_dtype

    vstr = create_vlen_dtype(str)
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
        "chrom": ("locus", _lazy((n,), vstr, (c,))),
        "start": ("locus", _lazy((n,), np.int64, (c,))),
        "end": ("locus", _lazy((n,), np.int64, (c,))),
    }
    if schema.strand:
        coords["strand"] = ("locus", _lazy((n,), vstr, (c,)))
    if schema.name:
        coords["name"] = ("locus", _lazy((n,), vstr, (c,)))
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
