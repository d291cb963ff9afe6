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
``end`` (inside the chromosome: ``0 <= start < end <= size``) and, where they carry
information, ``strand``, ``name`` and ``window_start``, ``window_end`` (the window each
locus was made from, which the features were read over, where some window reaches past a
chromosome end). The loci never change after the build, so their strings are fixed-width
(numpy ``<U`` on every open path); the cell-type strings grow with appends and are
variable-length UTF-8 (numpy ``StringDType`` on read).

Every variable carries CF attributes (:data:`CF_ATTRS`: ``long_name``, and ``units`` or
``flag_values``/``flag_meanings``; the alphabet of ``sequence``). Root attributes are
strings and numbers, nested values JSON strings (:func:`encode_root_attrs`, read back by
:func:`root_attr`), so any netCDF writer takes a selection; ``chrom_sizes`` holds the
chromosome sizes (:func:`chrom_sizes_attr`). :func:`layout` lists every array of a new cube
as xarray's ``to_zarr`` writes it, so plain xarray reads the cube back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pitfall import loci as loci_mod

__all__ = [
    "ArraySpec",
    "CELL_TYPE_COORDS",
    "CELL_TYPE_COORD_CHUNK",
    "CF_ATTRS",
    "CHROM_SIZES_ATTR",
    "CellTypeInfo",
    "CubeError",
    "DEFAULT_LOCUS_CHUNK",
    "JSON_ROOT_ATTRS",
    "OBSERVED_ATTRS",
    "LOCUS_COORDS",
    "PER_CELL_TYPE_VARS",
    "REQUIRED_LOCUS_COORDS",
    "SCHEMA_VERSION",
    "SEQUENCE_ALPHABET",
    "SEQUENCE_COMPRESSORS",
    "SHARED_VARS",
    "Schema",
    "VAR_DTYPES",
    "WINDOW_COORDS",
    "chrom_sizes_attr",
    "decode_root_attrs",
    "encode_root_attrs",
    "layout",
    "root_attr",
]

#: 4: chromosome sizes (root attribute ``chrom_sizes``), loci clipped to their chromosome
#: with ``window_start``/``window_end`` where a window reaches past an end, fixed-width
#: locus strings, CF attributes on every variable, nested root attributes as JSON strings.
#: 3: the ``observed`` (cell_type, mark) coordinate. Older cubes open as they are, with
#: what each version lacks made on read (:func:`pitfall.cube.open_cube`): version 2 cubes
#: (every cell type has every mark) get ``observed`` all True, cubes before 4 their CF
#: attributes; their loci stay un-clipped and they store no chromosome sizes.
SCHEMA_VERSION = 4
LOCUS_COORDS = ("chrom", "start", "end", "strand", "name")
#: The window each locus was made from, stored where some window reaches past a chromosome end.
WINDOW_COORDS = ("window_start", "window_end")
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

#: The codes of ``sequence``, in order: code ``i`` is ``SEQUENCE_ALPHABET[i]``.
SEQUENCE_ALPHABET = "ACGTN"

#: CF attributes of every variable and coordinate a cube may hold. Counts and coordinates
#: in base pairs are dimensionless for CF (``units = "1"``); the long name says what they count.
CF_ATTRS: dict[str, dict[str, Any]] = {
    "signal": {
        "long_name": "mean over the locus window of arcsinh(signal), NaN where not assayed",
        "units": "1",
    },
    "label": {
        "long_name": "binary target (1 active, boundary or bound; 0 not; NaN unknown)",
        "flag_values": [0.0, 1.0],
        "flag_meanings": "inactive active",
    },
    "value": {
        "long_name": "continuous target the label was thresholded from (e.g. RPKM)",
        "units": "1",
    },
    "sequence": {
        "long_name": "DNA of the locus window as codes A=0 C=1 G=2 T=3 N=4, strand-aware",
        "flag_values": list(range(len(SEQUENCE_ALPHABET))),
        "flag_meanings": " ".join(SEQUENCE_ALPHABET),
        "alphabet": SEQUENCE_ALPHABET,
    },
    "observed": OBSERVED_ATTRS,
    "cell_type": {"long_name": "cell type identifier"},
    "cell_type_name": {"long_name": "cell type display name"},
    "cell_type_group": {"long_name": "cell type group (lineage)"},
    "mark": {"long_name": "assay (mark) of each signal column"},
    "locus": {"long_name": "position of the locus in the cube", "units": "1"},
    "chrom": {"long_name": "chromosome"},
    "start": {
        "long_name": "locus start inside the chromosome (0-based, base pairs)",
        "units": "1",
    },
    "end": {
        "long_name": "locus end inside the chromosome (exclusive, base pairs)",
        "units": "1",
    },
    "strand": {"long_name": "strand of the locus (+, - or .)"},
    "name": {"long_name": "locus name"},
    "window_start": {
        "long_name": "start of the window the features were read over (base pairs; may lie "
        "before the chromosome start)",
        "units": "1",
    },
    "window_end": {
        "long_name": "end of the window the features were read over (base pairs; may lie past "
        "the chromosome end)",
        "units": "1",
    },
}

#: Root attributes holding nested values, stored as JSON strings (:func:`encode_root_attrs`).
JSON_ROOT_ATTRS = ("cell_type_sources", "build", "featurization", "exported_from", "chrom_sizes")
#: The root attribute of the chromosome sizes (chromosome -> bp, JSON), and of their source.
CHROM_SIZES_ATTR = "chrom_sizes"


def encode_root_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Root attributes as netCDF writers take them: nested values become JSON strings.

    The attributes of :data:`JSON_ROOT_ATTRS` become JSON text whatever they hold; of the
    others, strings and numbers stay and dicts, lists, booleans and None become JSON text
    (:func:`root_attr` reads them back). Values must be JSON already (numpy scalars are not:
    :func:`pitfall._repository.json_attrs` makes them so).
    """
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        plain = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        out[key] = value if plain and key not in JSON_ROOT_ATTRS else json.dumps(value)
    return out


def root_attr(attrs: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """Root attribute ``key``, a JSON string parsed back (:func:`encode_root_attrs`).

    The one reader of the cube's nested attributes: ``attrs`` is ``ds.attrs`` of a cube (any
    version: older ones hold the nested values as such) or the root group's attributes.
    Parsed: the attributes of :data:`JSON_ROOT_ATTRS`, and any other string holding a JSON
    object or array.
    """
    if key not in attrs:
        return default
    value = attrs[key]
    nested = key in JSON_ROOT_ATTRS or (isinstance(value, str) and value[:1] in ("{", "["))
    if nested and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def decode_root_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Every root attribute, nested values parsed back (:func:`root_attr`)."""
    return {key: root_attr(attrs, key) for key in attrs}


def chrom_sizes_attr(attrs: Mapping[str, Any]) -> dict[str, int] | None:
    """The chromosome sizes a cube stores (chromosome -> bp), None where it stores none."""
    sizes = root_attr(attrs, CHROM_SIZES_ATTR)
    if not sizes:
        return None
    return {str(c): int(n) for c, n in dict(sizes).items()}


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
    window
        Whether the loci store ``window_start``, ``window_end`` (some window reaches past a
        chromosome end).
    chrom_width, name_width
        Characters of the fixed-width ``chrom`` and ``name`` strings (the longest of the
        loci; :func:`pitfall.loci.string_width`).
    """

    n_loci: int
    locus_chunk: int = DEFAULT_LOCUS_CHUNK
    marks: tuple[str, ...] = ()
    value: bool = False
    sequence_length: int | None = None
    strand: bool = True
    name: bool = True
    window: bool = False
    chrom_width: int = 1
    name_width: int = 1

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

    def locus_coords(self) -> list[str]:
        """The locus coordinates this cube stores, in :data:`LOCUS_COORDS` order, then windows."""
        coords = ["chrom", "start", "end"]
        if self.strand:
            coords.append("strand")
        if self.name:
            coords.append("name")
        if self.window:
            coords += list(WINDOW_COORDS)
        return coords

    def string_dtype(self, coord: str) -> np.dtype:
        """The fixed-width dtype of a locus string coordinate (``chrom``, ``strand``, ``name``)."""
        width = {"chrom": self.chrom_width, "strand": 1, "name": self.name_width}[coord]
        return np.dtype(f"<U{width}")


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
    locus_coords = schema.locus_coords()

    def cf(name: str) -> dict[str, Any]:
        return dict(CF_ATTRS[name])

    per_ct = {
        "cell_type": [ct.id for ct in cell_types],
        "cell_type_name": [ct.name or ct.id for ct in cell_types],
        "cell_type_group": [ct.group for ct in cell_types],
    }
    by = (CELL_TYPE_COORD_CHUNK,)
    out = [
        ArraySpec(name, ("cell_type",), (k,), by, str, "", cf(name), data=np.array(v, dtype=object))
        for name, v in per_ct.items()
    ]
    if schema.marks:
        m = len(schema.marks)
        out.append(
            ArraySpec(
                "mark",
                ("mark",),
                (m,),
                (m,),
                str,
                "",
                cf("mark"),
                data=np.array(schema.marks, dtype=object),
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
                cf("observed"),
                data=np.stack([ct.observed(schema.marks) for ct in cell_types]),
            )
        )
    for name in locus_coords:
        string = name in ("chrom", "strand", "name")
        dtype = schema.string_dtype(name) if string else np.int64
        out.append(ArraySpec(name, ("locus",), (n,), (c,), dtype, "" if string else 0, cf(name)))
    out.append(ArraySpec("locus", ("locus",), (n,), (c,), np.int64, 0, cf("locus")))
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
                    {**cf(name), "coordinates": by_ct, **nan},
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
                {**cf("signal"), "coordinates": by_signal, **nan},
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
                {**cf("sequence"), "coordinates": by_locus},
                compressors=SEQUENCE_COMPRESSORS,
            )
        )
    return out
