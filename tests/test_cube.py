"""The cube: create, append, open, validation, history, crash safety and concurrent writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pitfall import cube

N_LOCI = 300
MARKS = ["H3K4me3", "H3K27me3"]


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


@pytest.fixture
def cube_path(tmp_path: Path) -> Path:
    path = tmp_path / "cube"
    cube.create_cube(path, [_slab("E003", 3), _slab("E004", 4)], locus_chunk=64)
    return path


def _assert_values(ds: xr.Dataset, cell_type: str, seed: int) -> None:
    expected = _slab(cell_type, seed)
    got = ds.sel(cell_type=cell_type)
    for var in ("label", "value", "signal"):
        np.testing.assert_array_equal(got[var].values, expected[var].values[0])
    assert str(got["cell_type_name"].values) == f"name of {cell_type}"


def test_create_cube__roundtrip_values_coords_and_chunks(cube_path: Path) -> None:
    ds = cube.open_cube(cube_path)
    assert list(ds["cell_type"].values) == ["E003", "E004"]
    assert list(ds["mark"].values) == MARKS
    assert ds["signal"].dims == ("cell_type", "locus", "mark")
    assert ds["signal"].dtype == np.float32
    assert ds["label"].chunks[0] == (1, 1)
    assert ds["label"].chunks[1][0] == 64
    loci = _loci()
    np.testing.assert_array_equal(ds["start"].values, loci["start"])
    assert list(ds["name"].values) == list(loci["name"])
    assert list(ds["strand"].values) == list(loci["strand"])
    _assert_values(ds, "E003", 3)
    _assert_values(ds, "E004", 4)
    assert ds.attrs["assembly"] == "hg19"
    assert ds.attrs["cell_type_sources"]["E004"] == {"H3K4me3": "E004-H3K4me3.bw"}


def test_append_cell_type__adds_one_commit_and_keeps_old_values(cube_path: Path) -> None:
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
    assert set(ds.attrs["cell_type_sources"]) == {"E003", "E004", "E037"}


def test_append_cell_type__writes_only_new_chunks(cube_path: Path) -> None:
    def chunk_files() -> set[Path]:
        return {p for p in (cube_path / "chunks").rglob("*") if p.is_file()}

    old = {p: p.read_bytes() for p in chunk_files()}
    cube.append_cell_type(cube_path, _slab("E037", 37))
    assert all(p.read_bytes() == b for p, b in old.items())
    # label, value: ceil(300 / 64) = 5 chunks each; signal 5; cell-type coords 3
    assert len(chunk_files()) - len(old) <= 5 * 3 + 3


def test_open_cube__earlier_snapshot_is_unchanged(cube_path: Path) -> None:
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
def test_append_cell_type__refuses_mismatch(cube_path: Path, make_bad, message: str) -> None:
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


def test_create_cube__refuses_duplicates_and_nonempty(tmp_path: Path) -> None:
    with pytest.raises(cube.CubeError, match="already in the cube"):
        cube.create_cube(tmp_path / "a", [_slab("E003", 3), _slab("E003", 4)])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        cube.create_cube(tmp_path / "b", _slab("E003", 3))


def test_create_cube__stores_sequence(tmp_path: Path) -> None:
    seq = np.random.default_rng(0).integers(0, 5, (N_LOCI, 20)).astype(np.uint8)
    cube.create_cube(tmp_path / "c", _slab("E003", 3), sequence=seq)
    ds = cube.open_cube(tmp_path / "c")
    np.testing.assert_array_equal(ds["sequence"].values, seq)
    assert ds["sequence"].dims == ("locus", "position")


def test_open_cube__names_a_missing_cube(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a pitfall cube"):
        cube.open_cube(tmp_path / "nothing")


def test_cube_info__summary(cube_path: Path) -> None:
    info = cube.cube_info(cube_path)
    assert info["cell_types"] == ["E003", "E004"]
    assert info["n_loci"] == N_LOCI
    assert info["loci_per_chrom"] == {"chr1": 150, "chr2": 150}
    assert info["marks"] == MARKS
    assert info["variables"]["signal"]["chunks"] == [1, 64, 2]
    assert info["bytes_on_disk"] > 0


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


def _start_append(path: Path, cell_type: str, seed: int, env: dict[str, str] | None = None):
    script = APPEND_SCRIPT.format(
        tests=str(Path(__file__).parent), path=str(path), cell_type=cell_type, seed=seed
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("point", ["before_write", "during_write", "after_write", "after_commit"])
def test_append_cell_type__sigkill_leaves_old_or_complete_cube(
    cube_path: Path, tmp_path: Path, point: str
) -> None:
    before = cube.open_cube(cube_path).load()
    marker = tmp_path / "paused"
    proc = _start_append(
        cube_path,
        "E037",
        37,
        {"PITFALL_PAUSE_AT": point, "PITFALL_PAUSE_FILE": str(marker)},
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the append never reached its pause point"
        time.sleep(0.02)
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
    # The killed writer's lock died with it: the next append goes through.
    cube.append_cell_type(cube_path, _slab("E106", 106))
    assert list(cube.open_cube(cube_path)["cell_type"].values)[-1] == "E106"


def test_append_cell_type__concurrent_writers_both_land(cube_path: Path, tmp_path: Path) -> None:
    # The first writer pauses while holding the lock; the second must report that it waits,
    # and only then is the first let go.
    marker, resume = tmp_path / "paused", tmp_path / "resume"
    first = _start_append(
        cube_path,
        "E037",
        37,
        {
            "PITFALL_PAUSE_AT": "during_write",
            "PITFALL_PAUSE_FILE": str(marker),
            "PITFALL_RESUME_FILE": str(resume),
        },
    )
    while not marker.exists():
        assert first.poll() is None, first.stderr.read().decode()
        time.sleep(0.02)
    second = _start_append(cube_path, "E106", 106)
    line = second.stdout.readline()
    assert b"waiting for another writer" in line
    assert second.poll() is None
    resume.write_text("go")
    out2, err2 = second.communicate(timeout=120)
    out1, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1.decode()
    assert second.returncode == 0, err2.decode()
    ds = cube.open_cube(cube_path)
    assert list(ds["cell_type"].values) == ["E003", "E004", "E037", "E106"]
    _assert_values(ds, "E037", 37)
    _assert_values(ds, "E106", 106)
    _assert_values(ds, "E003", 3)


def test_append_cell_type__many_simultaneous_writers(cube_path: Path) -> None:
    procs = {ct: _start_append(cube_path, ct, i) for i, ct in enumerate(["E5", "E6", "E7", "E8"])}
    for ct, proc in procs.items():
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{ct}: {err.decode()}"
    ds = cube.open_cube(cube_path)
    assert sorted(ds["cell_type"].values) == ["E003", "E004", "E5", "E6", "E7", "E8"]
    for i, ct in enumerate(["E5", "E6", "E7", "E8"]):
        _assert_values(ds, ct, i)
    assert len(cube.cube_log(cube_path)) == 1 + 1 + 4
