"""The cube: create, append, open, validation, history, crash safety and concurrent writers.

Every storage-dependent test runs twice: on a local folder and on an S3-compatible server
(moto) that the fixtures start on 127.0.0.1.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitfall import _repository as repository
from pitfall import _transaction as transaction
from pitfall import cube, storage
from pitfall import schema as schema_mod
from pitfall.schema import CellTypeInfo

N_LOCI = 300
MARKS = ["H3K4me3", "H3K27me3"]
TESTS = Path(__file__).parent


def _loci(n: int = N_LOCI):
    rng = np.random.default_rng(1)
    chrom = np.where(np.arange(n) < n // 2, "chr1", "chr2")
    start = np.arange(n) * 5000
    strand = rng.choice(["+", "-"], n)
    return cube.make_loci(chrom, start, start + 2000, strand, [f"G{i}" for i in range(n)])


def _slab(cell_type: str, seed: int, loci=None, marks=MARKS, **kw) -> xr.Dataset:
    loci = _loci() if loci is None else loci
    rng = np.random.default_rng(seed)
    n = len(loci)
    label = (rng.random(n) > 0.4).astype(np.float32)
    label[rng.random(n) < 0.05] = np.nan
    return cube.make_slab(
        cell_type,
        loci,
        label=label,
        value=rng.gamma(1.0, 2.0, n),
        signal=rng.normal(size=(n, len(marks))),
        marks=marks,
        assembly=kw.pop("assembly", "hg19"),
        name=f"name of {cell_type}",
        group="ES",
        sources={"H3K4me3": f"{cell_type}-H3K4me3.bw"},
        **kw,
    )


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path: Path) -> str:
    """A fresh cube location: a local folder, or a prefix on the test S3 server."""
    if request.param == "local":
        return str(tmp_path / "cube")
    return request.getfixturevalue("s3").url()


@pytest.fixture
def cube_path(where: str) -> str:
    cube.create_cube(where, [_slab("E003", 3), _slab("E004", 4)], locus_chunk=64)
    return where


def _assert_values(
    ds: xr.Dataset, cell_type: str, seed: int, observed: set[str] | None = None
) -> None:
    """The cell type's values are its slab's; signal NaN for marks not in ``observed``."""
    expected = _slab(cell_type, seed)
    got = ds.sel(cell_type=cell_type)
    for var in ("label", "value"):
        np.testing.assert_array_equal(got[var].values, expected[var].values[0])
    signal = expected["signal"].values[0].copy()
    if observed is not None:
        signal[:, [mk not in observed for mk in MARKS]] = np.nan
    np.testing.assert_array_equal(got["signal"].values, signal)
    assert str(got["cell_type_name"].values) == f"name of {cell_type}"


def _stored(where: str, request) -> dict[str, bytes]:
    """Every stored object of a cube (chunks, manifests, snapshots): name -> bytes."""
    if not where.startswith("s3://"):
        return {str(p): p.read_bytes() for p in Path(where).rglob("*") if p.is_file()}
    s3 = request.getfixturevalue("s3")
    return {k: s3.read(where, k) for k in s3.objects(where)}


def test_create_cube__roundtrip_values_coords_and_chunks(cube_path: str) -> None:
    ds = cube.open_cube(cube_path)
    assert list(ds["cell_type"].values) == ["E003", "E004"]
    assert list(ds["mark"].values) == MARKS
    assert ds["signal"].dims == ("cell_type", "locus", "mark")
    assert ds["signal"].dtype == np.float32
    assert ds["label"].chunks[0] == (1, 1)
    assert ds["label"].chunks[1][0] == 64
    loci = _loci()
    np.testing.assert_array_equal(ds["start"].values, loci["start"])
    np.testing.assert_array_equal(ds["locus"].values, np.arange(N_LOCI))
    assert list(ds["name"].values) == list(loci["name"])
    assert list(ds["strand"].values) == list(loci["strand"])
    _assert_values(ds, "E003", 3)
    _assert_values(ds, "E004", 4)
    assert ds.attrs["assembly"] == "hg19"
    assert cube.root_attr(ds.attrs, "cell_type_sources")["E004"] == {"H3K4me3": "E004-H3K4me3.bw"}


def test_append_cell_type__adds_one_commit_and_keeps_old_values(cube_path: str) -> None:
    before = cube.open_cube(cube_path).load()
    cube.append_cell_type(cube_path, _slab("E037", 37))
    ds = cube.open_cube(cube_path)
    assert list(ds["cell_type"].values) == ["E003", "E004", "E037"]
    xr.testing.assert_identical(
        ds.sel(cell_type=["E003", "E004"]).load().drop_attrs(), before.drop_attrs()
    )
    _assert_values(ds, "E037", 37)
    log = cube.cube_log(cube_path)
    assert [c.cell_types for c in log[:2]] == [["E037"], ["E003", "E004"]]
    assert set(cube.root_attr(ds.attrs, "cell_type_sources")) == {"E003", "E004", "E037"}


def test_append_cell_type__old_objects_stay_byte_identical(cube_path: str, request) -> None:
    old = _stored(cube_path, request)
    cube.append_cell_type(cube_path, _slab("E037", 37))
    new = _stored(cube_path, request)
    # Icechunk never rewrites an object: every old one is still there, byte for byte; only
    # the branch's pointer (refs/) moved to the new snapshot.
    changed = sorted(k for k, v in old.items() if new.get(k) != v)
    assert len(changed) == 1 and "refs/branch.main" in changed[0]
    chunks = [k for k in set(new) - set(old) if "/chunks/" in k or k.startswith("chunks")]
    # label, value, signal: ceil(300 / 64) = 5 chunks each; cell-type coordinates 3
    assert 0 < len(chunks) <= 5 * 3 + 3


def test_append_cell_type__coordinates_across_their_chunks(tmp_path: Path, monkeypatch) -> None:
    from pitfall import schema as schema_mod

    # Two cell types to a coordinate chunk: the appends below fill the second chunk (partly
    # written by the create), then start a third.
    monkeypatch.setattr(schema_mod, "CELL_TYPE_COORD_CHUNK", 2)
    where = str(tmp_path / "cube")
    ids = ["E003", "E004", "E005"]
    cube.create_cube(where, [_slab(c, i) for i, c in enumerate(ids)], locus_chunk=64)
    first = cube.cube_log(where)[0].snapshot
    for i, c in enumerate(["E037", "E038"], start=len(ids)):
        cube.append_cell_type(where, _slab(c, i))
        ids.append(c)
    ds = cube.open_cube(where)
    assert ds["cell_type"].encoding["chunks"] == (2,)
    assert list(ds["cell_type"].values) == ids
    assert list(ds["cell_type_name"].values) == [f"name of {c}" for c in ids]
    assert list(ds["cell_type_group"].values) == ["ES"] * len(ids)
    for i, c in enumerate(ids):
        _assert_values(ds, c, i)
    assert list(cube.open_cube(where, snapshot=first)["cell_type"].values) == ids[:3]


# --------------------------------------------------------------------------------------------
# Missing experiments: the observed coordinate, experiment appends, cubes made before them


def test_create_cube__missing_marks_are_nan_and_not_observed(where: str) -> None:
    cube.create_cube(
        where, [_slab("E003", 3, observed=["H3K27me3"]), _slab("E004", 4)], locus_chunk=64
    )
    ds = cube.open_cube(where)
    assert ds["observed"].dims == ("cell_type", "mark") and ds["observed"].dtype == bool
    assert ds["observed"].chunks == ((1, 1), (2,))
    np.testing.assert_array_equal(ds["observed"].values, [[False, True], [True, True]])
    _assert_values(ds, "E003", 3, {"H3K27me3"})
    assert np.isnan(ds["signal"].sel(cell_type="E003", mark="H3K4me3").values).all()
    _assert_values(ds, "E004", 4)
    # Plain xarray, without pitfall, sees it as a coordinate too.
    plain = xr.open_zarr(
        repository.open_repository(where).readonly_session("main").store, consolidated=False
    )
    assert "observed" in plain.coords and "observed" not in plain.data_vars
    np.testing.assert_array_equal(plain["observed"].values, [[False, True], [True, True]])
    assert plain["observed"].attrs["flag_meanings"] == "missing observed"


def test_append_experiments__one_commit_keeps_other_marks_and_cell_types(where: str) -> None:
    cube.create_cube(
        where, [_slab("E003", 3, observed=[]), _slab("E004", 4, observed=["H3K4me3"])],
        locus_chunk=64,
    )  # fmt: skip
    before = cube.open_cube(where).load()
    full = _slab("E004", 4)["signal"].values[0]
    cube.append_experiments(where, "E004", {"H3K27me3": full[:, 1]}, sources={"s": "x.bw"})
    ds = cube.open_cube(where)
    np.testing.assert_array_equal(cube.observed_matrix(ds), [[False, False], [True, True]])
    _assert_values(ds, "E004", 4)  # every mark now, the first one untouched
    xr.testing.assert_identical(
        ds.sel(cell_type="E003").load().drop_attrs(),
        before.sel(cell_type="E003").drop_attrs(),
    )
    log = cube.cube_log(where)
    assert (log[0].cell_types, log[0].marks) == (["E004"], ["H3K27me3"])
    assert "append experiments E004: H3K27me3" in log[0].message
    assert len(log) == 3
    assert cube.root_attr(ds.attrs, "cell_type_sources")["E004"] == {
        "H3K4me3": "E004-H3K4me3.bw",
        "s": "x.bw",
    }
    # A cell type appended later gets its own row; E003's marks can still come.
    cube.append_cell_type(where, _slab("E037", 37, observed=["H3K27me3"]))
    e003 = _slab("E003", 3)["signal"].values[0]
    cube.append_experiments(where, "E003", {"H3K4me3": e003[:, 0], "H3K27me3": e003[:, 1]})
    ds = cube.open_cube(where)
    np.testing.assert_array_equal(
        cube.observed_matrix(ds), [[True, True], [True, True], [False, True]]
    )
    _assert_values(ds, "E003", 3)
    _assert_values(ds, "E037", 37, {"H3K27me3"})


@pytest.mark.parametrize(
    ("cell_type", "marks", "message"),
    [
        ("E004", ["H3K4me3"], "cell type E004 already has mark H3K4me3 in the cube"),
        ("E003", ["H3K9ac"], r"mark H3K9ac \(for cell type E003\) is not among the marks"),
        ("E999", ["H3K4me3"], "cell type E999 is not in the cube"),
        ("E003", [], "at least one mark"),
    ],
)
def test_append_experiments__refused_and_nothing_written(
    where: str, request, cell_type: str, marks: list[str], message: str
) -> None:
    cube.create_cube(where, [_slab("E003", 3, observed=[]), _slab("E004", 4)], locus_chunk=64)
    old = _stored(where, request)
    signal = {mk: np.zeros(N_LOCI) for mk in marks}
    with pytest.raises(cube.CubeError, match=message):
        cube.append_experiments(where, cell_type, signal)
    assert _stored(where, request) == old


def test_append_experiments__wrong_shape_is_refused(where: str, request) -> None:
    cube.create_cube(where, [_slab("E003", 3, observed=[])], locus_chunk=64)
    old = _stored(where, request)
    with pytest.raises(cube.CubeError, match=r"E003, mark H3K4me3: .*shape \(5,\)"):
        cube.append_experiments(where, "E003", {"H3K4me3": np.zeros(5)})
    assert _stored(where, request) == old


def _drop_observed(path: str) -> None:
    """Make ``path`` a cube as schema version 2 wrote it: no ``observed`` array."""
    import zarr

    session = repository.open_repository(path).writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    del group["observed"]
    signal = group["signal"]
    coords = signal.attrs["coordinates"].split()
    signal.attrs["coordinates"] = " ".join(c for c in coords if c != "observed")
    group.attrs["pitfall_schema_version"] = 2
    session.commit("as schema version 2")


def test_open_cube__version_2_cube_opens_with_observed_all_true(tmp_path: Path) -> None:
    path = str(tmp_path / "cube")
    cube.create_cube(path, [_slab("E003", 3), _slab("E004", 4)], locus_chunk=64)
    _drop_observed(path)
    import zarr

    assert "observed" not in zarr.open_group(
        repository.open_repository(path).readonly_session("main").store, mode="r"
    )
    ds = cube.open_cube(path)
    np.testing.assert_array_equal(ds["observed"].values, np.ones((2, 2), dtype=bool))
    assert cube.cube_info(path)["observed"] == [[True, True], [True, True]]
    # Every mark counts as present: an experiment append is refused, a whole cell type lands.
    with pytest.raises(cube.CubeError, match="E003 already has mark H3K4me3"):
        cube.append_experiments(path, "E003", {"H3K4me3": np.zeros(N_LOCI)})
    cube.append_cell_type(path, _slab("E037", 37))
    _assert_values(cube.open_cube(path), "E037", 37)
    # ...but not one lacking a mark: that cube has nowhere to say so.
    with pytest.raises(cube.CubeError, match="E106 lacks marks.*schema version 2"):
        cube.append_cell_type(path, _slab("E106", 106, observed=["H3K4me3"]))
    assert list(cube.open_cube(path)["cell_type"].values) == ["E003", "E004", "E037"]


def test_cube_info__observed_matrix_and_grid(tmp_path: Path) -> None:
    path = str(tmp_path / "cube")
    have = {"E003": ["H3K27me3"], "E004": MARKS, "E037": []}
    cube.create_cube(path, [_slab(ct, i, observed=m) for i, (ct, m) in enumerate(have.items())])
    info = cube.cube_info(path)
    want = [[mk in have[ct] for mk in MARKS] for ct in have]
    assert info["observed"] == want
    assert (info["n_observed"], info["n_missing"]) == (3, 3)
    assert "observed" not in info["variables"]
    grid = cube.observed_grid(info["cell_types"], info["marks"], info["observed"])
    assert grid[0].split() == MARKS
    assert [line.split() for line in grid[1:]] == [
        ["E003", ".", "x"], ["E004", "x", "x"], ["E037", ".", "."]
    ]  # fmt: skip


def test_open_cube__earlier_snapshot_is_unchanged(cube_path: str) -> None:
    first = cube.cube_log(cube_path)[0].snapshot
    cube.append_cell_type(cube_path, _slab("E037", 37))
    old = cube.open_cube(cube_path, snapshot=first)
    assert list(old["cell_type"].values) == ["E003", "E004"]
    assert old.attrs["snapshot"] == first


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda: _slab("E003", 9), "E003 is already in the cube"),
        (lambda: _slab("E005", 5, assembly="hg38"), "assembly 'hg38'"),
        (lambda: _slab("E005", 5, marks=["H3K27me3", "H3K4me3"]), "marks"),
        (lambda: _slab("E005", 5, marks=["H3K4me3"]), "marks"),
        (lambda: _slab("E005", 5, loci=_loci(N_LOCI - 1)), "300 loci, the slab 299"),
        (
            lambda: _slab("E005", 5, loci=_loci().iloc[::-1].reset_index(drop=True)),
            "first at position 0",
        ),
        (
            lambda: _slab("E005", 5, loci=_loci().assign(end=_loci()["end"] + 1)),
            "differ in 'end'",
        ),
        (lambda: _slab("E005", 5).drop_vars("value"), "same variables"),
        (lambda: _slab("E005", 5).assign(label=lambda d: d.label.astype("f8")), "dtype float64"),
        (lambda: _slab("E005", 5).assign(label=lambda d: d.label.T), "dims"),
    ],
)
def test_append_cell_type__refuses_mismatch(cube_path: str, make_bad, message: str) -> None:
    before = cube.cube_log(cube_path)
    with pytest.raises(cube.CubeError, match=message):
        cube.append_cell_type(cube_path, make_bad())
    assert cube.cube_log(cube_path) == before


def test_make_slab__refuses_wrong_shapes() -> None:
    with pytest.raises(cube.CubeError, match="label has shape"):
        cube.make_slab("E1", _loci(), label=np.zeros(3), assembly="hg19")
    with pytest.raises(cube.CubeError, match="one column per mark"):
        cube.make_slab(
            "E1",
            _loci(),
            label=np.zeros(N_LOCI),
            signal=np.zeros((N_LOCI, 3)),
            marks=["a"],
            assembly="hg19",
        )


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["E005", "E005"], r"\['E005'\] are named twice"),
        (["E005", "E003"], "E003 is already in the cube"),
        ([], "at least one cell type"),
    ],
)
def test_begin_append__refuses_bad_cell_types(cube_path: str, ids, message: str) -> None:
    before = cube.cube_log(cube_path)
    with pytest.raises(cube.CubeError, match=message):
        transaction.begin_append(cube_path, [CellTypeInfo(i, i, "g") for i in ids])
    assert cube.cube_log(cube_path) == before


def _xarray_template(schema, cell_types) -> xr.Dataset:
    """The new cube as the module docstring of pitfall.schema describes it, dask-backed."""
    import dask.array as da

    from pitfall import schema as schema_mod

    n, c, k = schema.n_loci, schema.chunk, len(cell_types)
    # The loci never change: their strings are fixed-width, as wide as the longest.
    width = {"chrom": schema.chrom_width, "strand": 1, "name": schema.name_width}

    def lazy(shape, dtype, chunks):
        return da.empty(shape, dtype=dtype, chunks=chunks)

    data_vars = {"label": (("cell_type", "locus"), lazy((k, n), np.float32, (1, c)))}
    if schema.value:
        data_vars["value"] = (("cell_type", "locus"), lazy((k, n), np.float32, (1, c)))
    coords = {
        "cell_type": ("cell_type", np.array([ct.id for ct in cell_types], dtype=object)),
        "cell_type_name": ("cell_type", np.array([ct.name for ct in cell_types], dtype=object)),
        "cell_type_group": ("cell_type", np.array([ct.group for ct in cell_types], dtype=object)),
        "chrom": ("locus", lazy((n,), f"<U{width['chrom']}", (c,))),
        "start": ("locus", lazy((n,), np.int64, (c,))),
        "end": ("locus", lazy((n,), np.int64, (c,))),
    }
    for name, present in (("strand", schema.strand), ("name", schema.name)):
        if present:
            coords[name] = ("locus", lazy((n,), f"<U{width[name]}", (c,)))
    if schema.window:
        for name in ("window_start", "window_end"):
            coords[name] = ("locus", lazy((n,), np.int64, (c,)))
    if schema.marks:
        m = len(schema.marks)
        data_vars["signal"] = (
            ("cell_type", "locus", "mark"),
            lazy((k, n, m), np.float32, (1, c, m)),
        )
        coords["mark"] = ("mark", np.array(schema.marks, dtype=object))
        # The oracle of each row: the marks a cell type names (None: every mark).
        rows = [[ct.marks is None or mk in ct.marks for mk in schema.marks] for ct in cell_types]
        coords["observed"] = (
            ("cell_type", "mark"),
            np.array(rows, dtype=bool),
            dict(schema_mod.OBSERVED_ATTRS),
        )
    if schema.sequence_length:
        L = schema.sequence_length
        data_vars["sequence"] = (("locus", "position"), lazy((n, L), np.uint8, (c, L)))
    ds = xr.Dataset(data_vars, coords=coords)
    # Every variable carries its CF attributes (the locus index gets them where it is made).
    for name, var in ds.variables.items():
        var.attrs.update(schema_mod.CF_ATTRS[str(name)])
    return ds


def _store_documents(store) -> dict[str, object]:
    """Every key of a zarr store: metadata parsed from JSON, chunks as bytes."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    async def read():
        out = {}
        async for key in store.list():
            raw = (await store.get(key, prototype=default_buffer_prototype())).to_bytes()
            out[key] = json.loads(raw) if key.endswith("zarr.json") else raw
        return out

    return sync(read())


@pytest.mark.parametrize(
    "shape",
    [
        dict(n_loci=50, locus_chunk=16, marks=("H3K4me3", "DNase"), value=True, sequence_length=8),
        dict(n_loci=7, marks=(), strand=False, name=False),
        dict(n_loci=9, marks=("a",), window=True, chrom_width=5, name_width=12),
        dict(n_loci=30, locus_chunk=30, marks=("a",), sequence_length=None, name=False),
    ],
)
def test_layout__same_documents_as_xarray_to_zarr(shape) -> None:
    import zarr

    from pitfall import schema as schema_mod

    schema = schema_mod.Schema(**shape)
    # E004 lacks the first mark (a missing experiment) where the cube has marks.
    cell_types = [
        CellTypeInfo("E003", "H1", "ES"),
        CellTypeInfo("E004", "H1 BMP4", "", marks=tuple(schema.marks[1:])),
    ]
    attrs = {"assembly": "hg19", "n": 3}
    ours = zarr.storage.MemoryStore()
    transaction._make_arrays(ours, schema_mod.layout(schema, cell_types), attrs)
    theirs = zarr.storage.MemoryStore()
    ds = _xarray_template(schema, cell_types).assign_attrs(attrs)
    encoding = {name: {"chunks": var.data.chunksize} for name, var in ds.variables.items()
                if hasattr(var.data, "chunksize")}  # fmt: skip
    for name in ("cell_type", "cell_type_name", "cell_type_group"):
        encoding[name] = {"chunks": (schema_mod.CELL_TYPE_COORD_CHUNK,)}
    if "sequence" in encoding:
        encoding["sequence"]["compressors"] = schema_mod.SEQUENCE_COMPRESSORS
    if "observed" in ds.coords:
        encoding["observed"] = {"chunks": (1, len(schema.marks))}
    from pitfall import _repository

    with _repository.quiet_zarr():  # fixed-width strings warn that Zarr v3 has no spec yet
        ds.to_zarr(theirs, mode="w-", compute=False, consolidated=False, encoding=encoding)
    # The locus index is an array xarray would load, not a lazy one: zarr makes it.
    zarr.open_group(theirs, mode="r+").create_array(
        "locus", shape=(schema.n_loci,), chunks=(schema.chunk,), dtype="int64",
        dimension_names=("locus",), fill_value=0, attributes=schema_mod.CF_ATTRS["locus"],
    )  # fmt: skip
    assert _store_documents(ours) == _store_documents(theirs)


def test_write_regions__several_variables_at_int_slice_and_no_cell_type(tmp_path: Path) -> None:
    import zarr

    from pitfall import schema as schema_mod

    schema = schema_mod.Schema(n_loci=50, locus_chunk=16, marks=("a", "b"), value=True,
                               sequence_length=8)  # fmt: skip
    cell_types = [CellTypeInfo(f"E{i:03d}", "", "") for i in range(4)]
    txn = transaction.begin_create(tmp_path / "c", schema, cell_types, assembly="hg19")
    rng = np.random.default_rng(0)
    label, signal = rng.random((2, 32)), rng.random((2, 32, 2))
    value, seq = rng.random(16), rng.integers(0, 5, (18, 8)).astype(np.uint8)
    fork = transaction.write_regions(txn.fork, {"label": label, "signal": signal}, 16, slice(1, 3))
    fork = transaction.write_regions(fork, {"value": value}, 0, 3)
    fork = transaction.write_regions(fork, {"sequence": seq}, 32)
    # The oracle: numpy arrays of the fill values, assigned the same regions.
    want = {
        "label": np.full((4, 50), np.nan), "signal": np.full((4, 50, 2), np.nan),
        "value": np.full((4, 50), np.nan), "sequence": np.zeros((50, 8), np.uint8),
    }  # fmt: skip
    want["label"][1:3, 16:48] = label
    want["signal"][1:3, 16:48] = signal
    want["value"][3, 0:16] = value
    want["sequence"][32:50] = seq
    for name, expected in want.items():
        got = zarr.open_array(fork.store, path=name, mode="r")[:]
        np.testing.assert_array_equal(got, expected.astype(got.dtype), err_msg=name)


def test_write_regions__all_fill_region_over_data_reads_back_fill(tmp_path: Path) -> None:
    # Regions are written without zarr's all-fill check (write_empty_chunks): a region of
    # fill values (NaN labels, A=0 codes) over earlier data must still read back as fill.
    import zarr

    from pitfall import schema as schema_mod

    schema = schema_mod.Schema(n_loci=20, locus_chunk=8, marks=("a",), sequence_length=4)
    txn = transaction.begin_create(tmp_path / "c", schema, [CellTypeInfo("E001", "", "")],
                                   assembly="hg19")  # fmt: skip
    fork = transaction.write_regions(txn.fork, {"label": np.ones(20)}, 0, 0)
    fork = transaction.write_regions(fork, {"sequence": np.full((20, 4), 3, np.uint8)}, 0)
    fork = transaction.write_regions(fork, {"label": np.full(8, np.nan)}, 8, 0)
    fork = transaction.write_regions(fork, {"sequence": np.zeros((8, 4), np.uint8)}, 0)
    label = zarr.open_array(fork.store, path="label", mode="r")[0]
    np.testing.assert_array_equal(label, np.r_[np.ones(8), np.full(8, np.nan), np.ones(4)])
    sequence = zarr.open_array(fork.store, path="sequence", mode="r")[:]
    np.testing.assert_array_equal(sequence, np.r_[np.zeros((8, 4)), np.full((12, 4), 3)])


def test_create_cube__refuses_duplicates_existing_cube_and_foreign_files(
    tmp_path: Path, s3
) -> None:
    with pytest.raises(cube.CubeError, match="already in the cube"):
        cube.create_cube(tmp_path / "a", [_slab("E003", 3), _slab("E003", 4)])
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="holds files that are not a pitfall cube"):
        cube.create_cube(tmp_path / "b", _slab("E003", 3))
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["x"]
    url = s3.url()
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}/notes.txt", Body=b"mine")
    with pytest.raises(FileExistsError, match="holds files that are not a pitfall cube"):
        cube.create_cube(url, _slab("E003", 3))
    assert list(s3.objects(url)) == [f"{prefix}/notes.txt"]
    cube.create_cube(tmp_path / "c", _slab("E003", 3))
    with pytest.raises(FileExistsError, match="already holds a cube"):
        cube.create_cube(tmp_path / "c", _slab("E004", 4))


def test_create_cube__stores_sequence(where: str) -> None:
    seq = np.random.default_rng(0).integers(0, 5, (N_LOCI, 20)).astype(np.uint8)
    cube.create_cube(where, _slab("E003", 3), sequence=seq)
    ds = cube.open_cube(where)
    np.testing.assert_array_equal(ds["sequence"].values, seq)
    assert ds["sequence"].dims == ("locus", "position")


def test_open_cube__names_a_missing_cube(tmp_path: Path, s3) -> None:
    for where in (tmp_path / "nothing", s3.url()):
        with pytest.raises(FileNotFoundError, match="not a pitfall cube"):
            cube.open_cube(where)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("ftp://host/cube", "unknown scheme 'ftp'"),
        ("https://host/cube", "unknown scheme 'https'"),
        ("s3://", "names no bucket"),
    ],
)
def test_location__unknown_scheme_is_an_error_not_a_folder(
    where: str, message: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(storage.LocationError, match=message):
        cube.create_cube(where, _slab("E003", 3))
    assert list(tmp_path.iterdir()) == []


def test_cube_info__summary(cube_path: str) -> None:
    info = cube.cube_info(cube_path)
    assert info["cell_types"] == ["E003", "E004"]
    assert info["n_loci"] == N_LOCI
    assert info["loci_per_chrom"] == {"chr1": 150, "chr2": 150}
    assert info["marks"] == MARKS
    assert info["variables"]["signal"]["chunks"] == [1, 64, 2]
    assert info["bytes_on_disk"] > 0


def test_s3_cube__credentials_are_never_stored(cube_path: str, request) -> None:
    if not cube_path.startswith("s3://"):
        pytest.skip("an object-store test")
    cube.append_cell_type(cube_path, _slab("E037", 37))
    blob = b"".join(_stored(cube_path, request).values())
    for key in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        assert os.environ[key].encode() not in blob


# --------------------------------------------------------------------------------------------
# Plain xarray: the store opens without pitfall, and an exported copy without Icechunk.


def _as_plain(ds: xr.Dataset) -> dict:
    """What both sides compare: this process's cube and the plain subprocess's (which runs
    this function's own source, :data:`PLAIN_OPEN`)."""
    ds = ds.load()
    return {
        "vars": {k: [None if v != v else v for v in ds[k].values.ravel().tolist()]
                 for k in ds.variables if ds[k].dtype.kind in "fiu"},
        "strings": {k: [str(x) for x in ds[k].values.ravel()]
                    for k in ds.variables if ds[k].dtype.kind in "OTU"},
        "dims": {k: list(ds[k].dims) for k in ds.variables},
        "indexes": sorted(ds.indexes),
        "coords": sorted(ds.coords),
    }  # fmt: skip


PLAIN_OPEN = (
    textwrap.dedent(
        """
        import json, sys
        import icechunk, xarray as xr
        """
    )
    + inspect.getsource(_as_plain)
    + textwrap.dedent(
        """
        where = sys.argv[1]
        if where.startswith("s3://"):
            import os
            bucket, _, prefix = where[5:].partition("/")
            storage = icechunk.s3_storage(bucket=bucket, prefix=prefix, from_env=True,
                endpoint_url=os.environ["AWS_ENDPOINT_URL"], allow_http=True, force_path_style=True)
        elif where.endswith(".zarr"):
            storage = None
        else:
            storage = icechunk.local_filesystem_storage(where)
        if storage is None:
            ds = xr.open_zarr(where)
        else:
            ds = xr.open_zarr(icechunk.Repository.open(storage).readonly_session("main").store,
                              consolidated=False)
        assert "pitfall" not in sys.modules
        # Strings behave as strings, and the locus index selects.
        names = [str(x) for x in ds["name"].values]
        chr1 = ds.sel(locus=(ds["chrom"] == "chr1").compute())
        out = _as_plain(ds)
        out["n_chr1"] = int(chr1.sizes["locus"])
        out["first_name"] = names[0]
        print(json.dumps(out))
        """
    )
)


def _plain(where: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_OPEN, where], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_open_cube__equals_plain_xarray_without_pitfall(cube_path: str) -> None:
    seen = _plain(cube_path)
    ours = _as_plain(cube.open_cube(cube_path))
    assert seen["n_chr1"] == 150 and seen["first_name"] == "G0"
    for key in ("vars", "strings", "dims", "indexes", "coords"):
        assert seen[key] == ours[key], key
    assert "locus" in seen["indexes"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_export_cube__plain_zarr_opens_without_pitfall(
    cube_path: str, tmp_path: Path, zarr_format: int
) -> None:
    first = cube.cube_log(cube_path)[0].snapshot
    cube.append_cell_type(cube_path, _slab("E037", 37))
    out = tmp_path / f"export-{zarr_format}.zarr"
    cube.export_cube(cube_path, out, snapshot=first, zarr_format=zarr_format)
    seen = _plain(str(out))
    ours = _as_plain(cube.open_cube(cube_path, snapshot=first))
    for key in ("vars", "strings", "dims", "indexes", "coords"):
        assert seen[key] == ours[key], key
    assert seen["strings"]["cell_type"] == ["E003", "E004"]  # the snapshot asked for
    with pytest.raises(FileExistsError, match="not empty"):
        cube.export_cube(cube_path, out)


# --------------------------------------------------------------------------------------------
# Crash safety and concurrency: real processes, killed with SIGKILL.

APPEND_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_cube import _slab
    from pitfall import cube
    cube.append_cell_type({path!r}, _slab({cell_type!r}, {seed}))
    """
)


def _start_append(path: str, cell_type: str, seed: int, env: dict[str, str] | None = None):
    script = APPEND_SCRIPT.format(tests=str(TESTS), path=path, cell_type=cell_type, seed=seed)
    return subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_paused(proc: subprocess.Popen, marker: Path) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the append never reached its pause point"
        time.sleep(0.02)


@pytest.mark.parametrize("point", ["before_write", "during_write", "after_write", "after_commit"])
def test_append_cell_type__sigkill_leaves_old_or_complete_cube(
    cube_path: str, tmp_path: Path, point: str
) -> None:
    before = cube.open_cube(cube_path).load()
    marker = tmp_path / "paused"
    proc = _start_append(
        cube_path, "E037", 37, {"PITFALL_PAUSE_AT": point, "PITFALL_PAUSE_FILE": str(marker)}
    )
    _wait_paused(proc, marker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    ds = cube.open_cube(cube_path)
    cell_types = list(ds["cell_type"].values)
    if point == "after_commit":
        assert cell_types == ["E003", "E004", "E037"]
        _assert_values(ds, "E037", 37)
    else:
        assert cell_types == ["E003", "E004"]
    xr.testing.assert_identical(
        ds.sel(cell_type=["E003", "E004"]).load().drop_attrs(), before.drop_attrs()
    )
    # Nothing of the killed writer lingers: the next append goes through.
    cube.append_cell_type(cube_path, _slab("E106", 106))
    assert list(cube.open_cube(cube_path)["cell_type"].values)[-1] == "E106"


def test_append_cell_type__writer_overtaken_by_another_retries_and_both_land(
    cube_path: str, tmp_path: Path
) -> None:
    # The first writer has written its chunks and is about to commit when a second one
    # starts, appends and commits: the first's commit then conflicts (its parent moved), and
    # it must start again at the new tip instead of failing or overwriting.
    marker, resume = tmp_path / "paused", tmp_path / "resume"
    env = {
        "PITFALL_PAUSE_AT": "after_write",
        "PITFALL_PAUSE_FILE": str(marker),
        "PITFALL_RESUME_FILE": str(resume),
    }
    first = _start_append(cube_path, "E037", 37, env)
    _wait_paused(first, marker)
    second = _start_append(cube_path, "E106", 106)
    _, err2 = second.communicate(timeout=120)
    assert second.returncode == 0, err2.decode()
    resume.write_text("go")
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1.decode()
    ds = cube.open_cube(cube_path)
    assert list(ds["cell_type"].values) == ["E003", "E004", "E106", "E037"]
    for ct, seed in (("E037", 37), ("E106", 106), ("E003", 3)):
        _assert_values(ds, ct, seed)
    assert [c.cell_types for c in cube.cube_log(cube_path)[:2]] == [["E037"], ["E106"]]


def test_append_cell_type__four_simultaneous_writers_all_land(cube_path: str) -> None:
    cts = ["E5", "E6", "E7", "E8"]
    procs = {ct: _start_append(cube_path, ct, i) for i, ct in enumerate(cts)}
    for ct, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{ct}: {err.decode()}"
    ds = cube.open_cube(cube_path)
    assert sorted(ds["cell_type"].values) == ["E003", "E004", *cts]
    for i, ct in enumerate(cts):
        _assert_values(ds, ct, i)
    assert len(cube.cube_log(cube_path)) == 1 + 1 + 4


EXPERIMENT_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_cube import MARKS, _slab
    from pitfall import cube
    full = _slab({cell_type!r}, {seed})["signal"].values[0]
    cube.append_experiments(
        {path!r}, {cell_type!r}, {{m: full[:, MARKS.index(m)] for m in {marks!r}}}
    )
    """
)


def _start_experiments(path: str, cell_type: str, seed: int, marks, env=None):
    script = EXPERIMENT_SCRIPT.format(
        tests=str(TESTS), path=path, cell_type=cell_type, seed=seed, marks=list(marks)
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def lacking_cube(where: str) -> str:
    """E003 without either mark, E004 without H3K27me3."""
    slabs = [_slab("E003", 3, observed=[]), _slab("E004", 4, observed=["H3K4me3"])]
    cube.create_cube(where, slabs, locus_chunk=64)
    return where


@pytest.mark.parametrize("point", ["before_write", "during_write", "after_write", "after_commit"])
def test_append_experiments__sigkill_leaves_old_or_complete_cube(
    lacking_cube: str, tmp_path: Path, point: str
) -> None:
    before = cube.open_cube(lacking_cube).load()
    marker = tmp_path / "paused"
    env = {"PITFALL_PAUSE_AT": point, "PITFALL_PAUSE_FILE": str(marker)}
    proc = _start_experiments(lacking_cube, "E004", 4, ["H3K27me3"], env)
    _wait_paused(proc, marker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ds = cube.open_cube(lacking_cube)
    if point == "after_commit":
        np.testing.assert_array_equal(cube.observed_matrix(ds), [[False, False], [True, True]])
        _assert_values(ds, "E004", 4)
        xr.testing.assert_identical(
            ds.sel(cell_type="E003").load().drop_attrs(), before.sel(cell_type="E003").drop_attrs()
        )
    else:
        xr.testing.assert_identical(ds.load().drop_attrs(), before.drop_attrs())
        # Nothing of the killed writer lingers: the same append goes through.
        full = _slab("E004", 4)["signal"].values[0]
        cube.append_experiments(lacking_cube, "E004", {"H3K27me3": full[:, 1]})
        _assert_values(cube.open_cube(lacking_cube), "E004", 4)


def test_append_experiments__overtaken_by_another_writer_retries_and_both_land(
    lacking_cube: str, tmp_path: Path
) -> None:
    # Paused with its chunks written, the experiment append is overtaken by a cell-type
    # append and an experiment append of another cell type (running side by side): it
    # starts again at the new tip.
    marker, resume = tmp_path / "paused", tmp_path / "resume"
    env = {
        "PITFALL_PAUSE_AT": "after_write",
        "PITFALL_PAUSE_FILE": str(marker),
        "PITFALL_RESUME_FILE": str(resume),
    }
    first = _start_experiments(lacking_cube, "E004", 4, ["H3K27me3"], env)
    _wait_paused(first, marker)
    for proc in (
        _start_append(lacking_cube, "E037", 37),
        _start_experiments(lacking_cube, "E003", 3, ["H3K4me3"]),
    ):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    resume.write_text("go")
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1.decode()
    ds = cube.open_cube(lacking_cube)
    assert list(ds["cell_type"].values) == ["E003", "E004", "E037"]
    np.testing.assert_array_equal(
        cube.observed_matrix(ds), [[True, False], [True, True], [True, True]]
    )
    _assert_values(ds, "E003", 3, {"H3K4me3"})
    _assert_values(ds, "E004", 4)
    _assert_values(ds, "E037", 37)
    log = cube.cube_log(lacking_cube)
    # The two others ran side by side (either may commit first); the paused one last.
    assert (log[0].cell_types, log[0].marks) == (["E004"], ["H3K27me3"])
    assert sorted((c.cell_types, c.marks) for c in log[1:3]) == [
        (["E003"], ["H3K4me3"]), (["E037"], [])
    ]  # fmt: skip


def test_append_experiments__two_simultaneous_writers_of_one_cell_type_both_land(
    lacking_cube: str,
) -> None:
    procs = [_start_experiments(lacking_cube, "E003", 3, [mk]) for mk in MARKS]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    ds = cube.open_cube(lacking_cube)
    _assert_values(ds, "E003", 3)
    assert bool(ds["observed"].sel(cell_type="E003").all())


# --------------------------------------------------------------------------------------------
# A stateful test: random sequences of create, append, killed writes and opens, against a
# plain in-memory model of what the cube must hold.


class _Killed(BaseException):
    """Stands for SIGKILL inside one process: raised at a pause point, caught by the test."""


@pytest.fixture
def kill_at(monkeypatch):
    """``kill_at(point)`` makes the next write die at ``point`` (None: no kill)."""
    state = {"point": None}
    original = repository.pause_point

    def pause(name: str) -> None:
        if name == state["point"]:
            state["point"] = None
            raise _Killed(name)
        original(name)

    monkeypatch.setattr(repository, "pause_point", pause)
    return state


def _run_machine(where_factory, kill_at) -> None:
    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

    points = st.sampled_from(["before_write", "during_write", "after_write", "after_commit"])
    ids = st.integers(min_value=0, max_value=9).map(lambda i: f"C{i}")
    marks = st.sampled_from(MARKS)
    # The marks a new cell type has, in the cube's order (none at all included).
    subsets = st.sets(marks).map(lambda have: [mk for mk in MARKS if mk in have])

    class CubeMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.where = where_factory()
            self.model: list[str] = []  # cell types, in cube order
            self.observed: dict[str, set[str]] = {}  # cell type -> the marks it has
            self.log: list[tuple[list[str], list[str]]] = []  # (cell types, marks) per commit
            self.commits = 0

        def _write(self, fn, *args, point=None) -> bool:
            """Run a write, killed at ``point``; True when it committed."""
            kill_at["point"] = point
            try:
                fn(*args)
            except _Killed as killed:
                return str(killed) == "after_commit"
            finally:
                kill_at["point"] = None
            return True

        @precondition(lambda self: not self.model)
        @rule(first=ids, have=subsets, point=st.none() | points)
        def create(self, first: str, have: list[str], point: str | None) -> None:
            slab = _slab(first, int(first[1:]), observed=have)
            if self._write(cube.create_cube, self.where, slab, point=point):
                self.model, self.commits = [first], 1
                self.observed = {first: set(have)}

        @precondition(lambda self: bool(self.model))
        @rule(ct=ids, have=subsets, point=st.none() | points)
        def append(self, ct: str, have: list[str], point: str | None) -> None:
            if ct in self.model:
                with pytest.raises(cube.CubeError, match="already in the cube"):
                    cube.append_cell_type(self.where, _slab(ct, 99))
                return
            slab = _slab(ct, int(ct[1:]), observed=have)
            if self._write(cube.append_cell_type, self.where, slab, point=point):
                self.model.append(ct)
                self.observed[ct] = set(have)
                self.log.append(([ct], []))
                self.commits += 1

        @precondition(lambda self: bool(self.model))
        @rule(which=st.integers(0, 9), new=st.lists(marks, min_size=1, max_size=2, unique=True),
              point=st.none() | points)  # fmt: skip
        def append_experiments(self, which: int, new: list[str], point: str | None) -> None:
            ct = self.model[which % len(self.model)]
            full = _slab(ct, int(ct[1:]))["signal"].values[0]
            signal = {mk: full[:, MARKS.index(mk)] for mk in new}
            had = [mk for mk in new if mk in self.observed[ct]]
            if had:
                message = re.escape(f"cell type {ct} already has mark {', '.join(had)} in")
                with pytest.raises(cube.CubeError, match=message):
                    cube.append_experiments(self.where, ct, signal)
                return
            if self._write(cube.append_experiments, self.where, ct, signal, point=point):
                self.observed[ct] |= set(new)
                self.log.append(([ct], list(new)))
                self.commits += 1

        @invariant()
        def cube_is_the_model(self) -> None:
            if not self.model:
                with pytest.raises(FileNotFoundError, match="not a pitfall cube|empty repository"):
                    cube.open_cube(self.where)
                return
            ds = cube.open_cube(self.where)
            assert list(ds["cell_type"].values) == self.model
            for ct in self.model:
                _assert_values(ds, ct, int(ct[1:]), self.observed[ct])
            want = np.array([[mk in self.observed[ct] for mk in MARKS] for ct in self.model])
            np.testing.assert_array_equal(cube.observed_matrix(ds), want)
            log = cube.cube_log(self.where)
            assert [(c.cell_types, c.marks) for c in log if c.cell_types][::-1][1:] == self.log
            assert len(log) == 1 + self.commits

    CubeMachine.TestCase.settings = settings(
        max_examples=8,
        stateful_step_count=7,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    CubeMachine.TestCase().runTest()


def test_cube_state_machine__local(tmp_path: Path, kill_at) -> None:
    counter = iter(range(10_000))
    _run_machine(lambda: str(tmp_path / f"cube{next(counter)}"), kill_at)


def test_cube_state_machine__s3(s3, kill_at) -> None:
    _run_machine(s3.url, kill_at)


# ------------------------------------------------------------------------- CF and intervals

#: Hand-made loci near chromosome ends: a TSS window starting before chr1, one inside it, one
#: running past the end of chr2 (1,000 bp).
EDGE_SIZES = {"chr1": 5000, "chr2": 1000}


def _edge_loci():
    return cube.make_loci(
        ["chr1", "chr1", "chr2"], [-1300, 500, 900], [700, 2500, 1100], ["+", "-", "+"],
        ["TSS_near_start", "inside", "past_end"],
    )  # fmt: skip


def _edge_cube(path: Path, *, sizes=EDGE_SIZES) -> str:
    loci = _edge_loci()
    slabs = [_slab("E003", 3, loci), _slab("E004", 4, loci)]
    seq = np.random.default_rng(0).integers(0, 5, (3, 2000)).astype(np.uint8)
    cube.create_cube(path, slabs, sequence=seq, chrom_sizes=sizes)
    return str(path)


def test_create_cube__loci_clipped_windows_kept__hand_checked(tmp_path: Path) -> None:
    path = _edge_cube(tmp_path / "c")
    ds = cube.open_cube(path)
    # [-1300, 700) starts before chr1: [0, 700); [900, 1100) ends past chr2's 1,000 bp.
    assert ds["start"].values.tolist() == [0, 500, 900]
    assert ds["end"].values.tolist() == [700, 2500, 1000]
    assert ds["window_start"].values.tolist() == [-1300, 500, 900]
    assert ds["window_end"].values.tolist() == [700, 2500, 1100]
    assert cube.chrom_sizes(ds) == EDGE_SIZES
    assert cube.cube_info(path)["chrom_sizes"] == EDGE_SIZES
    # A slab with the loci as made appends: it is clipped as the cube was.
    cube.append_cell_type(path, _slab("E037", 37, _edge_loci()))
    got = cube.open_cube(path).sel(cell_type="E037")
    want = _slab("E037", 37, _edge_loci())
    for var in ("label", "value", "signal"):
        np.testing.assert_array_equal(got[var].values, want[var].values[0])
    # A locus with nothing inside its chromosome cannot be clipped: refused, named.
    bad = cube.make_loci(["chr2"], [1200], [1300], ["+"], ["outside"])
    with pytest.raises(cube.CubeError, match=r"outside at chr2:1200-1300 \(chr2 has length 1,000"):
        cube.create_cube(tmp_path / "bad", _slab("E003", 3, bad), chrom_sizes=EDGE_SIZES)


def test_create_cube__without_sizes_clips_at_zero_and_stores_none(tmp_path: Path) -> None:
    path = _edge_cube(tmp_path / "c", sizes=None)
    ds = cube.open_cube(path)
    assert ds["start"].values.tolist() == [0, 500, 900]
    assert ds["end"].values.tolist() == [700, 2500, 1100]
    assert ds["window_start"].values.tolist() == [-1300, 500, 900]
    assert cube.chrom_sizes(ds) is None and cube.cube_info(path)["chrom_sizes"] is None
    code, out = _cli_out("cube", "info", path)
    assert code == 0 and "chromosome sizes: none stored" in out and "--chrom-sizes" in out
    code, out = _cli_out("cube", "info", _edge_cube(tmp_path / "sized"))
    assert "chromosome sizes: chr1 5,000, chr2 1,000" in out


def _cli_out(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    from pitfall import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue()


def test_open_cube__cf_attributes_on_every_variable(tmp_path: Path) -> None:
    from pitfall import kernels

    path = _edge_cube(tmp_path / "c")
    plain = xr.open_zarr(
        repository.open_repository(path).readonly_session("main").store, consolidated=False
    )
    for ds in (cube.open_cube(path), plain):
        for name, var in ds.variables.items():
            attrs = var.attrs
            assert attrs.get("long_name"), name
            if var.dtype.kind not in "OUT":  # numbers and flags: units, or flags with meanings
                flags = "flag_values" in attrs and "flag_meanings" in attrs
                assert "units" in attrs or flags, name
                if flags:
                    assert len(attrs["flag_values"]) == len(attrs["flag_meanings"].split()), name
        alphabet = ds["sequence"].attrs["alphabet"]
        # The alphabet names each code as the encoding kernel assigns it.
        codes = kernels.encode_dna(np.frombuffer(alphabet.encode(), dtype=np.uint8))
        assert codes.tolist() == list(range(len(alphabet))) == ds["sequence"].attrs["flag_values"]
        assert ds["sequence"].attrs["flag_meanings"].split() == list(alphabet)
        assert ds["label"].attrs["flag_values"] == [0.0, 1.0]


def _as_str(values) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind not in "OTU":
        return values
    return np.array([str(v) for v in values.ravel()]).reshape(values.shape)


def test_to_netcdf__cube_selection_round_trips_through_plain_xarray(tmp_path: Path) -> None:
    path = _edge_cube(tmp_path / "c")
    plain = xr.open_zarr(
        repository.open_repository(path).readonly_session("main").store, consolidated=False
    )
    for k, ds in enumerate((cube.open_cube(path), plain)):
        part = ds.sel(cell_type=["E004"]).isel(locus=[0, 2])
        out = tmp_path / f"part{k}.nc"
        part.to_netcdf(out, engine="scipy")  # netCDF3: the strictest writer of attributes
        with xr.open_dataset(out, engine="scipy") as back:
            assert set(back.variables) == set(part.variables)
            for name, var in part.variables.items():
                np.testing.assert_array_equal(
                    _as_str(back[name].values), _as_str(var.values), err_msg=str(name)
                )
                for key, value in var.attrs.items():
                    np.testing.assert_array_equal(back[name].attrs[key], value, err_msg=key)
            for key in part.attrs:
                assert cube.root_attr(back.attrs, key) == cube.root_attr(part.attrs, key), key
            assert cube.root_attr(back.attrs, "cell_type_sources")["E004"] == {
                "H3K4me3": "E004-H3K4me3.bw"
            }
            assert cube.chrom_sizes(back) == EDGE_SIZES


def test_open_cube__locus_strings_fixed_width_cell_types_still_append(tmp_path: Path) -> None:
    path = _edge_cube(tmp_path / "c")
    cube.append_cell_type(path, _slab("E037_a_much_longer_id", 37, _edge_loci()))
    cube.export_cube(path, tmp_path / "plain.zarr")
    opened = [
        cube.open_cube(path),
        xr.open_zarr(
            repository.open_repository(path).readonly_session("main").store, consolidated=False
        ),
        xr.open_zarr(tmp_path / "plain.zarr"),
    ]
    for ds in opened:
        for name in ("chrom", "strand", "name"):
            assert ds[name].dtype.kind == "U", (name, ds[name].dtype)
        assert ds["name"].values.astype(str).tolist() == ["TSS_near_start", "inside", "past_end"]
        assert ds["chrom"].dtype.itemsize == 4 * len("chr1")  # as wide as the longest
        # Variable-length on disk (they grow); str through pitfall, StringDType elsewhere.
        assert ds["cell_type"].values.tolist()[-1] == "E037_a_much_longer_id"
    assert opened[0]["cell_type"].dtype.kind == "U"
    assert opened[0]["cell_type"].values.astype(str).tolist()[0] == "E003"


def test_where__lazy_chrom_mask_with_the_documented_idiom(tmp_path: Path) -> None:
    ds = cube.open_cube(_edge_cube(tmp_path / "c"))
    want = np.flatnonzero(np.asarray(ds["chrom"].values) == "chr1")
    # The idiom of pitfall.cube's docstring: a lazy mask is computed before dropping.
    got = ds.where((ds.chrom == "chr1").compute(), drop=True)
    assert got["locus"].values.tolist() == want.tolist() == [0, 1]
    np.testing.assert_array_equal(got["label"].values, ds["label"].values[:, want])
    assert ds.sel(locus=(ds.chrom == "chr1").values)["name"].values.tolist() == [
        "TSS_near_start",
        "inside",
    ]


def _as_version_3(path: str) -> None:
    """Make ``path`` a cube as schema version 3 wrote it: nested root attributes, no CF."""
    import zarr

    session = repository.open_repository(path).writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    with repository.quiet_zarr():  # rewriting fixed-width strings' metadata warns
        for _, arr in group.arrays():
            keep = {k: v for k, v in arr.attrs.items() if k in ("coordinates", "_FillValue")}
            arr.attrs.clear()
            arr.attrs.update(keep)
    group.attrs["cell_type_sources"] = json.loads(group.attrs["cell_type_sources"])
    del group.attrs["chrom_sizes"]
    group.attrs["pitfall_schema_version"] = 3
    session.commit("as schema version 3")


def test_open_cube__version_3_cube_opens_with_cf_attributes(tmp_path: Path) -> None:
    path = _edge_cube(tmp_path / "c")
    _as_version_3(path)
    raw = xr.open_zarr(
        repository.open_repository(path).readonly_session("main").store, consolidated=False
    )
    assert "long_name" not in raw["label"].attrs
    ds = cube.open_cube(path)
    assert all(var.attrs.get("long_name") for var in ds.variables.values())
    assert cube.root_attr(ds.attrs, "cell_type_sources")["E003"] == {"H3K4me3": "E003-H3K4me3.bw"}
    assert cube.chrom_sizes(ds) is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.dictionaries(st.sampled_from(schema_mod.JSON_ROOT_ATTRS), _JSON, max_size=4))
def test_encode_root_attrs__netcdf_types_that_root_attr_reads_back(values: dict) -> None:
    encoded = schema_mod.encode_root_attrs(values)
    for value in encoded.values():
        # What every netCDF writer takes: text and plain numbers.
        assert isinstance(value, (str, int, float)) and not isinstance(value, bool)
    for key, value in values.items():
        assert cube.root_attr(encoded, key) == value
        assert cube.root_attr(values, key) == value  # a cube before version 4: as stored
