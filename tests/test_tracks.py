"""pitfall.tracks: predictions written as bigWig / bedGraph, and read back per locus window."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyBigWig
import pytest
import xarray as xr

from pitfall import tracks
from pitfall.sources import bigwig

SIZES = {"chr1": 30_000, "chr2": 12_345}


def random_bigwig(path: Path, seed: int = 0, nan: bool = False) -> Path:
    """Runs of random values with gaps (no data), and a NaN run if asked, on two chromosomes."""
    rng = np.random.default_rng(seed)
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(SIZES.items()))
    for chrom, size in SIZES.items():
        edges = np.unique(np.r_[0, np.sort(rng.integers(1, size, 80)), size])
        starts, ends = edges[:-1], edges[1:]
        keep = rng.random(starts.size) > 0.25
        values = rng.normal(0, 3, starts.size)
        if nan:
            values[3] = np.nan
        bw.addEntries(
            [chrom] * int(keep.sum()),
            starts[keep].tolist(),
            ends=ends[keep].tolist(),
            values=values[keep].tolist(),
        )
    bw.close()
    return path


def random_windows(size: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    starts = rng.integers(-500, size + 200, n)
    return starts, starts + rng.integers(0, 3000, n)


# ------------------------------------------------------------------------- reading


def test_window_means__equal_pybigwig_exact_stats(tmp_path: Path) -> None:
    # Without NaN runs: pyBigWig's exact mean is NaN over them (this module reads them as 0).
    path = random_bigwig(tmp_path / "t.bw")
    bw = pyBigWig.open(str(path))
    for chrom, size in SIZES.items():
        starts, ends = random_windows(size, 300, seed=len(chrom) + size)
        means, covered = tracks.window_means(path, chrom, starts, ends, return_coverage=True)
        for s, e, m, c in zip(starts, ends, means, covered, strict=True):
            lo, hi = max(s, 0), min(e, size)
            if hi <= lo:
                assert np.isnan(m) and c == 0
                continue
            mean = bw.stats(chrom, int(lo), int(hi), type="mean", exact=True)[0]
            frac = bw.stats(chrom, int(lo), int(hi), type="coverage", exact=True)[0] or 0.0
            # pyBigWig averages over covered bases; uncovered bases count as 0 here.
            want = 0.0 if mean is None else mean * frac
            assert m == pytest.approx(want, rel=1e-9, abs=1e-9)
            assert c == round(frac * (hi - lo))
    bw.close()


def test_window_means__arcsinh_transform_is_the_signal_kernel(tmp_path: Path) -> None:
    path = random_bigwig(tmp_path / "t.bw", seed=3, nan=True)
    for chrom, size in SIZES.items():
        starts, ends = random_windows(size, 200, seed=7)
        ours = tracks.window_means(path, chrom, starts, ends, transform=np.arcsinh)
        kernel = bigwig.window_means(path, chrom, starts, ends)
        np.testing.assert_allclose(ours, kernel, rtol=2e-6, atol=1e-6, equal_nan=True)


def test_window_means__clipping_gaps_and_nan_hand_checked(tmp_path: Path) -> None:
    path = tmp_path / "h.bw"
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chr1", 100)])
    bw.addEntries(["chr1"] * 3, [0, 60, 90], ends=[40, 90, 100], values=[2.0, 5.0, np.nan])
    bw.close()
    starts = np.array([-50, 80, 150, 20, 40, 45])
    ends = np.array([50, 150, 200, 80, 60, 45])
    means, covered = tracks.window_means(path, "chr1", starts, ends, return_coverage=True)
    # [0,50): 40 bases of 2, 10 without data; [80,100): 10 of 5, 10 NaN (as no data);
    # outside; [20,80): (20*2 + 20*5)/60; [40,60): no data, mean 0; an empty window.
    np.testing.assert_allclose(means[:5], [1.6, 2.5, np.nan, 140 / 60, 0.0], rtol=1e-15)
    np.testing.assert_array_equal(covered, [40, 10, 0, 40, 0, 0])
    assert np.isnan(means[5])
    assert tracks.window_means(path, "chrX", starts, ends, return_coverage=True)[1].sum() == 0


def test_read_runs__bedgraph_overlaps_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.bedGraph"
    path.write_text("track type=bedGraph\nchr1\t0\t100\t1\nchr1\t50\t150\t2\n")
    with pytest.raises(ValueError, match=r"o\.bedGraph: intervals on chr1 are empty or overlap"):
        tracks.read_runs(path, "chr1")
    path.write_text("chr1\t0\tten\t1\n")
    with pytest.raises(ValueError, match=r"not a bedGraph \(chrom, start, end, value\)"):
        tracks.read_runs(path, "chr1")


def test_track_format__by_suffix() -> None:
    assert tracks.track_format("a/x.bw") == tracks.track_format("x.bigWig") == "bigwig"
    assert tracks.track_format("x.bedGraph") == tracks.track_format("x.bg.gz") == "bedgraph"
    assert tracks.track_format("x.tsv") is None


# ------------------------------------------------------------------------- overlaps


def test_resolve_overlaps__hand_checked() -> None:
    s, e, v = np.array([500, 100, 250]), np.array([600, 300, 400]), np.array([2.0, 1.0, 3.0])
    with pytest.raises(ValueError, match=r"1 locus windows on chr1 overlap.*chr1:100-300 and "
                       r"chr1:250-400.*overlaps='max', 'min' or 'mean'"):  # fmt: skip
        tracks.resolve_overlaps(s, e, v, chrom="chr1")
    expected = {
        "max": [1.0, 3.0, 3.0, 2.0],
        "min": [1.0, 1.0, 3.0, 2.0],
        "mean": [1.0, 2.0, 3.0, 2.0],
    }
    for rule, values in expected.items():
        rs, re_, rv = tracks.resolve_overlaps(s, e, v, rule)
        np.testing.assert_array_equal(rs, [100, 250, 300, 500])
        np.testing.assert_array_equal(re_, [250, 300, 400, 600])
        np.testing.assert_array_equal(rv, values)
    # no overlap: the windows themselves, sorted; empty windows dropped
    rs, re_, rv = tracks.resolve_overlaps(np.array([9, 0, 5]), np.array([12, 5, 5]), v)
    np.testing.assert_array_equal(np.c_[rs, re_, rv], [[0, 5, 1.0], [9, 12, 2.0]])
    with pytest.raises(ValueError, match=r"overlap an earlier one"):  # identical windows
        tracks.resolve_overlaps(np.array([0, 0]), np.array([5, 5]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"overlaps must be one of"):
        tracks.resolve_overlaps(s, e, v, "first")  # type: ignore[arg-type]


# ------------------------------------------------------------------------- writing


#: The chromosome sizes :func:`small_cube` stores (as a cube stores them: a JSON root attribute).
SMALL_SIZES = {"chr1": 600, "chr2": 50, "chr10": 20}


def small_cube() -> xr.Dataset:
    """Five loci: two overlapping windows on chr1, one on chr2 and one on chr10."""
    chrom = np.array(["chr1", "chr1", "chr1", "chr2", "chr10"], dtype=object)
    return xr.Dataset(
        {"label": (("cell_type", "locus"), np.zeros((2, 5)))},
        coords={
            "cell_type": ["A", "B"],
            "locus": np.arange(5),
            "chrom": ("locus", chrom),
            "start": ("locus", np.array([100, 250, 500, 0, 10])),
            "end": ("locus", np.array([300, 400, 600, 50, 20])),
            "name": ("locus", np.array(["g1", "g2", "g3", "g4", "g5"], dtype=object)),
        },
        attrs={"chrom_sizes": json.dumps(SMALL_SIZES)},
    )


def small_scores(ds: xr.Dataset) -> xr.DataArray:
    values = np.array([[1.0, 3.0, 2.0, np.nan, 5.0], [0.1, 0.2, 0.3, 0.4, 0.5]])
    return xr.DataArray(
        values,
        dims=("cell_type", "locus"),
        coords={"cell_type": ["A", "B"], "locus": ds["locus"].values},
    )


def test_write_track__overlaps_refused_then_resolved(tmp_path: Path) -> None:
    ds, scores = small_cube(), small_scores(ds=small_cube())
    with pytest.raises(ValueError, match=r"overlap an earlier one \(e\.g\. g1 chr1:100-300 and "
                       r"g2 chr1:250-400\).*--overlaps"):  # fmt: skip
        tracks.write_track(scores, ds, tmp_path / "a.bw", cell_type="A")
    path = tracks.write_track(scores, ds, tmp_path / "a.bw", cell_type="A", overlaps="max")
    bw = pyBigWig.open(str(path))
    assert bw.chroms() == {"chr1": 600, "chr2": 50, "chr10": 20}
    assert bw.intervals("chr1") == ((100, 250, 1.0), (250, 300, 3.0), (300, 400, 3.0),
                                    (500, 600, 2.0))  # fmt: skip
    assert bw.intervals("chr2") is None  # its only locus has a NaN score
    assert bw.intervals("chr10") == ((10, 20, 5.0),)
    bw.close()
    means, covered, length = tracks.read_track(path, ds)
    np.testing.assert_array_equal(means, [(150 * 1 + 50 * 3) / 200, 3.0, 2.0, np.nan, 5.0])
    np.testing.assert_array_equal(covered, [200, 150, 100, 0, 10])
    np.testing.assert_array_equal(length, [200, 150, 100, 50, 10])


def test_write_track__bedgraph_text_hand_checked(tmp_path: Path) -> None:
    ds = small_cube()
    path = tracks.write_track(
        small_scores(ds), ds, tmp_path / "b.bedGraph.gz", cell_type="B", overlaps="mean"
    )
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert lines == [
        'track type=bedGraph name="b"',
        "chr1\t100\t250\t0.1",
        "chr1\t250\t300\t0.15000000000000002",  # (0.1 + 0.2) / 2 in float64
        "chr1\t300\t400\t0.2",
        "chr1\t500\t600\t0.3",
        "chr2\t0\t50\t0.4",
        "chr10\t10\t20\t0.5",
    ]
    means = tracks.read_track(path, ds)[0]
    assert means[2:].tolist() == [0.3, 0.4, 0.5]  # float64 scores come back exactly


def test_write_track__bedgraph_float32_at_its_own_precision(tmp_path: Path) -> None:
    ds = small_cube()
    scores = small_scores(ds).astype(np.float32)
    path = tracks.write_track(scores, ds, tmp_path / "b.bedGraph", cell_type="B", overlaps="mean")
    values = [line.split("\t")[3] for line in path.read_text().splitlines()[1:]]
    f32 = scores.sel(cell_type="B").values
    mean = np.float32((np.float64(f32[0]) + np.float64(f32[1])) / 2)
    expected = [f32[0], mean, f32[1], f32[2], f32[3], f32[4]]
    # numpy prints a float32 as its shortest round-trip decimal (0.1, not 0.10000000149...).
    assert values == [str(v) for v in expected]
    assert [np.float32(float(v)) for v in values] == expected


def test_write_track__refuses_what_it_cannot_place(tmp_path: Path) -> None:
    ds, scores = small_cube(), small_scores(small_cube())
    with pytest.raises(ValueError, match=r"hold 2 cell types.*cell_type="):
        tracks.write_track(scores, ds, tmp_path / "x.bw", overlaps="max")
    with pytest.raises(ValueError, match=r"no cell type 'C'"):
        tracks.write_track(scores, ds, tmp_path / "x.bw", cell_type="C", overlaps="max")
    with pytest.raises(ValueError, match=r"x\.txt: cannot tell the track format"):
        tracks.write_track(scores, ds, tmp_path / "x.txt", cell_type="A")
    named = scores.assign_coords(locus=["g1", "g2", "g3", "g4", "g5"])
    with pytest.raises(ValueError, match=r"need the cube's integer 'locus' coordinate"):
        tracks.write_track(named, ds, tmp_path / "x.bw", cell_type="A")
    small = {"chr1": 450, "chr2": 50, "chr10": 20}
    with pytest.raises(ValueError, match=r"1 loci on chr1 start at or past its size 450"):
        tracks.write_track(scores, ds, tmp_path / "x.bw", cell_type="A", overlaps="max",
                           chrom_sizes=small)  # fmt: skip
    with pytest.raises(ValueError, match=r"chrom_sizes lacks the cube's chromosome\(s\) \['chr10'"):
        tracks.write_track(scores, ds, tmp_path / "x.bw", cell_type="A", overlaps="max",
                           chrom_sizes={"chr1": 1000, "chr2": 50})  # fmt: skip
    with pytest.raises(ValueError, match=r"no finite score"):
        tracks.write_track(scores * np.nan, ds, tmp_path / "x.bw", cell_type="A")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_write_track__chrom_sizes_file_and_clipped_windows(tmp_path: Path) -> None:
    ds = small_cube().assign_coords(start=("locus", np.array([-40, 250, 500, 0, 10])))
    (tmp_path / "s.sizes").write_text("chr1\t550\nchr2\t50\nchr10\t20\nchrM\t16571\n")
    one = small_scores(ds).sel(cell_type="A").drop_vars("cell_type")
    path = tracks.write_track(one, ds, tmp_path / "c.bw", chrom_sizes=tmp_path / "s.sizes",
                              overlaps="min")  # fmt: skip
    bw = pyBigWig.open(str(path))
    assert bw.chroms() == {"chr1": 550, "chr2": 50, "chr10": 20}
    # [-40, 300) is clipped at 0; [500, 600) at the chromosome's 550.
    assert bw.intervals("chr1") == ((0, 250, 1.0), (250, 300, 1.0), (300, 400, 3.0),
                                    (500, 550, 2.0))  # fmt: skip
    bw.close()


# ------------------------------------------------------------------------- exports and stored sizes


def _sized_cube(path: Path, sizes: dict[str, int] | None) -> Path:
    """A cube of three loci (one TSS window before chr1's start) storing ``sizes``."""
    from pitfall import cube

    loci = cube.make_loci(["chr1", "chr1", "chr2"], [-1300, 2000, 100], [700, 2600, 400],
                          ["+", "-", "+"], ["a", "b", "c"])  # fmt: skip
    slab = cube.make_slab("E003", loci, label=np.array([1.0, 0.0, 1.0]), assembly="test")
    cube.create_cube(path, slab, chrom_sizes=sizes)
    return path


def test_write_track__every_export_header_equals_the_stored_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from pitfall import cli, cube

    sizes = {"chr1": 15_000, "chr2": 11_503}  # not the last locus ends (2,600 and 400)
    store = _sized_cube(tmp_path / "cube", sizes)
    ds = cube.open_cube(store)
    assert cube.chrom_sizes(ds) == sizes
    scores = xr.DataArray([0.5, 0.25, 2.0], dims="locus", coords={"locus": [0, 1, 2]})
    tracks.write_track(scores, ds, tmp_path / "api.bw")
    pred = tmp_path / "pred.tsv"
    pred.write_text("cell_type\tlocus\tscore\nE003\ta\t0.5\nE003\tb\t0.25\nE003\tc\t2.0\n")
    argv = ["export-predictions", str(pred), str(store), "--cell-type", "E003"]
    assert cli.main([*argv, "--out", str(tmp_path / "cli.bw")]) == 0
    for name in ("api.bw", "cli.bw"):
        bw = pyBigWig.open(str(tmp_path / name))
        assert bw.chroms() == sizes, name
        # The locus [-1300, 700) is written clipped to the chromosome: [0, 700).
        assert bw.intervals("chr1") == ((0, 700, 0.5), (2000, 2600, 0.25)), name
        bw.close()
    capsys.readouterr()
    # A cube storing no sizes says so and takes them given.
    bare = cube.open_cube(_sized_cube(tmp_path / "bare", None))
    with pytest.raises(ValueError, match=r"stores no chromosome sizes.*--chrom-sizes"):
        tracks.write_track(scores, bare, tmp_path / "x.bw")
    assert cli.main([*argv[:2], str(tmp_path / "bare"), *argv[3:], "--out", "x.bw"]) == 2
    assert "--chrom-sizes" in capsys.readouterr().err
    tracks.write_track(scores, bare, tmp_path / "y.bw", chrom_sizes=sizes)
    bw = pyBigWig.open(str(tmp_path / "y.bw"))
    assert bw.chroms() == sizes
    bw.close()
