"""The cube's schema: its variables, coordinates, dtypes, and the shape of a new cube.

============ ========================== ======= ===========================================
variable     dims                       dtype   meaning
============ ========================== ======= ===========================================
``signal``   (cell_type, locus, mark)   float32 mean of arcsinh(signal) over the locus window
``label``    (cell_type, locus)         float32 binary target, NaN unknown
``value``    (cell_type, locus)         float32 optional continuous target (e.g. RPKM)
``sequence`` (locus, position)          uint8   A=0 C=1 G=2 T=3 N=4, strand-aware
============ ========================== ======= ===========================================

Coordinates: ``cell_type`` (with ``cell_type_name`` and ``cell_type_group``), ``mark``,
``observed`` (dims ``(cell_type, mark)``, bool, chunks ``(1, n_marks)``, fill False: whether
the experiment exists; ``signal`` is NaN where it does not; cubes with signal only), and
along ``locus``: the integer index ``locus`` (0 .. n-1, stored), ``chrom``, ``start``,
``end`` and, where they carry information, ``strand`` and ``name``. Strings are
variable-length UTF-8 (numpy ``StringDType`` on read). :func:`layout` lists every array of
a new cube as xarray's ``to_zarr`` writes it, so plain xarray reads the cube back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pitfall import loci as loci_mod

__all__ = [
    "ArraySpec",
    "CELL_TYPE_COORDS",
    "CELL_TYPE_COORD_CHUNK",
    "CellTypeInfo",
    "CubeError",
    "DEFAULT_LOCUS_CHUNK",
    "OBSERVED_ATTRS",
    "LOCUS_COORDS",
    "PER_CELL_TYPE_VARS",
    "REQUIRED_LOCUS_COORDS",
    "SCHEMA_VERSION",
    "SEQUENCE_COMPRESSORS",
    "SHARED_VARS",
    "Schema",
    "VAR_DTYPES",
    "layout",
]

#: 3: the ``observed`` (cell_type, mark) coordinate. Cubes of version 2 (every cell type has
#: every mark) open with ``observed`` all True (:func:`pitfall.cube.open_cube`).
SCHEMA_VERSION = 3
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
#: Cell types per chunk of the cell-type coordinates (``cell_type`` and its names, groups).
#: Not 1 like the data variables: three tiny chunks per cell type would dominate a new cube's
#: array creation and the opening of a cube (``docs/performance.rst``). An append rewrites the last chunk of each inside its own commit, so a failed one changes
#: nothing.
CELL_TYPE_COORD_CHUNK = 1024


#: CF attributes of ``observed`` (a flag variable).
OBSERVED_ATTRS = {
    "long_name": "whether the experiment (cell type, mark) exists; signal is NaN where not",
    "flag_values": [0, 1],
    "flag_meanings": "missing observed",
}


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
    """A cell type's coordinates and provenance, written with its slab.

    ``marks`` are the marks it has (its row of ``observed``); None: every mark of the cube.
    """

    id: str
    name: str = ""
    group: str = ""
    sources: Mapping[str, Any] = field(default_factory=dict)
    marks: tuple[str, ...] | None = None

    def observed(self, marks: Sequence[str]) -> np.ndarray:
        """Its row of ``observed`` over the cube's ``marks``: shape ``(n_marks,)`` bool."""
        if self.marks is None:
            return np.ones(len(marks), dtype=bool)
        unknown = sorted(set(self.marks) - set(marks))
        if unknown:
            raise CubeError(
                f"cell type {self.id}: marks {unknown} are not among the cube's marks {list(marks)}"
            )
        return np.isin(np.asarray(marks, dtype=object), list(self.marks))


@dataclass(frozen=True)
class ArraySpec:
    """One zarr array of a new cube: its metadata, and its values when made with it.

    Attributes
    ----------
    name, dims, shape, chunks, dtype, fill_value
        As zarr stores them (``dims`` as ``dimension_names``); ``dtype`` ``str`` is a
        variable-length string.
    attributes
        What xarray needs to read the array back: the ``coordinates`` it is described by,
        and a float's ``_FillValue``.
    compressors
        zarr's ``compressors`` argument (codec documents), or ``"auto"``: zarr's default.
    data
        Values written with the metadata (the small cell-type and mark coordinates); None
        for arrays the workers fill.
    """

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: Any
    fill_value: Any
    attributes: Mapping[str, Any] = field(default_factory=dict)
    data: np.ndarray | None = None
    compressors: Any = "auto"


#: xarray's ``_FillValue`` attribute of a float array whose fill is NaN: the float64 NaN's
#: bytes in base64, as xarray's zarr encoder writes it.
_NAN_FILL_ATTR = "AAAAAAAA+H8="

#: The codec of ``sequence``: five codes use 3 of each byte's 8 bits, which bit-shuffling
#: lays out for zstd: smaller and faster to write than zarr's default (zstd alone), as fast
#: to read (``benchmarks/bench_sequence_codec.py``, ``docs/performance.rst``).
SEQUENCE_COMPRESSORS = (
    {
        "name": "blosc",
        "configuration": {
            "cname": "zstd",
            "clevel": 1,
            "shuffle": "bitshuffle",
            "typesize": 1,
            "blocksize": 0,
        },
    },
)


def layout(schema: Schema, cell_types: Sequence[CellTypeInfo]) -> list[ArraySpec]:
    """The arrays of a new cube with ``cell_types``, as xarray's ``to_zarr`` would make them.

    Written directly by :func:`pitfall._transaction.begin_create`: the same documents as
    ``Dataset.to_zarr(compute=False)`` of the equivalent dask-backed dataset, without the
    dask graph that call builds and discards (a sizeable part of the driver's time in a
    small build). Tests check the two agree.

    Returns
    -------
    list of ArraySpec
        Coordinates first (``cell_type``, its names and groups, ``mark``, ``observed``, the
        locus coordinates and the ``locus`` index), then the data variables.
    """
    n, c, k = schema.n_loci, schema.chunk, len(cell_types)
    locus_coords = ["chrom", "start", "end"]
    if schema.strand:
        locus_coords.append("strand")
    if schema.name:
        locus_coords.append("name")
    per_ct = {
        "cell_type": [ct.id for ct in cell_types],
        "cell_type_name": [ct.name or ct.id for ct in cell_types],
        "cell_type_group": [ct.group for ct in cell_types],
    }
    by = (CELL_TYPE_COORD_CHUNK,)
    out = [
        ArraySpec(name, ("cell_type",), (k,), by, str, "", data=np.array(v, dtype=object))
        for name, v in per_ct.items()
    ]
    if schema.marks:
        m = len(schema.marks)
        out.append(
            ArraySpec(
                "mark", ("mark",), (m,), (m,), str, "", data=np.array(schema.marks, dtype=object)
            )
        )
        out.append(
            ArraySpec(
                "observed",
                ("cell_type", "mark"),
                (k, m),
                (1, m),
                np.bool_,
                False,
                dict(OBSERVED_ATTRS),
                data=np.stack([ct.observed(schema.marks) for ct in cell_types]),
            )
        )
    for name in locus_coords:
        string = name in ("chrom", "strand", "name")
        out.append(
            ArraySpec(
                name, ("locus",), (n,), (c,), str if string else np.int64, "" if string else 0
            )
        )
    out.append(ArraySpec("locus", ("locus",), (n,), (c,), np.int64, 0))
    # xarray names, on each data variable, the non-dimension coordinates that share its dims.
    by_ct = " ".join(sorted([*CELL_TYPE_COORDS, *locus_coords]))
    by_locus = " ".join(sorted(locus_coords))
    nan = {"_FillValue": _NAN_FILL_ATTR}
    for name in ("label", "value"):
        if name == "label" or schema.value:
            out.append(
                ArraySpec(
                    name,
                    PER_CELL_TYPE_VARS[name],
                    (k, n),
                    (1, c),
                    np.float32,
                    np.nan,
                    {"coordinates": by_ct, **nan},
                )
            )
    if schema.marks:
        m = len(schema.marks)
        by_signal = " ".join(sorted([*CELL_TYPE_COORDS, *locus_coords, "observed"]))
        out.append(
            ArraySpec(
                "signal",
                PER_CELL_TYPE_VARS["signal"],
                (k, n, m),
                (1, c, m),
                np.float32,
                np.nan,
                {"coordinates": by_signal, **nan},
            )
        )
    if schema.sequence_length:
        L = schema.sequence_length
        out.append(
            ArraySpec(
                "sequence",
                SHARED_VARS["sequence"],
                (n, L),
                (c, L),
                np.uint8,
                0,
                {"coordinates": by_locus},
                compressors=SEQUENCE_COMPRESSORS,
            )
        )
    return out
