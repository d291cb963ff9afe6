"""bigWig reading on small files written with pyBigWig and pybigtools, every backend, errors."""

import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pybigtools
import pyBigWig
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitfall import kernels
from pitfall.sources import bigwig
from pitfall.sources.bigwig.backends import resolve_backend
from pitfall.sources.bigwig.format import Inflater, _libdeflate

BACKENDS = ["builtin", "pybigtools", "pyBigWig"]
FILE_OBJECT_BACKENDS = ["builtin", "pybigtools"]
SIZES = {"chr1": 1_000, "chr2": 300}
# Runs with gaps between them, a NaN-valued run, and one run touching the chromosome end.
RUNS = {
    "chr1": (
        np.array([10, 20, 50, 100, 400, 990]),
        np.array([20, 30, 60, 350, 401, 1000]),
        np.array([1.5, math.nan, 3.0, 0.25, 7.0, 2.0], dtype=np.float32),
    ),
    "chr2": (np.array([0, 150]), np.array([100, 300]), np.array([4.0, 0.5], dtype=np.float32)),
}


def write_bigwig(path: Path, sizes: dict, runs: dict) -> Path:
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()))
    for chrom, (starts, ends, values) in runs.items():
        if len(starts) == 0:
            continue  # pyBigWig refuses an empty batch; the chromosome just has no data
        bw.addEntries(
            [chrom] * len(starts), starts.tolist(), ends=ends.tolist(), values=values.tolist()
        )
    bw.close()
    return path


@pytest.fixture
def track(tmp_path: Path) -> Path:
    return write_bigwig(tmp_path / "track.bw", SIZES, RUNS)


@pytest.mark.parametrize("backend", [None, *BACKENDS])
def test_chrom_sizes__matches_header(track: Path, backend: str | None) -> None:
    assert bigwig.chrom_sizes(track, backend=backend) == SIZES


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chrom", sorted(RUNS))
def test_read_runs__whole_chromosome_matches_written(track: Path, backend: str, chrom: str) -> None:
    starts, ends, values = bigwig.read_runs(track, chrom, backend=backend)
    assert (starts.dtype, ends.dtype, values.dtype) == (np.int64, np.int64, np.float32)
    np.testing.assert_array_equal(starts, RUNS[chrom][0])
    np.testing.assert_array_equal(ends, RUNS[chrom][1])
    np.testing.assert_array_equal(values, RUNS[chrom][2])  # NaN == NaN here


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__range_is_clipped(track: Path, backend: str) -> None:
    starts, ends, values = bigwig.read_runs(track, "chr1", 15, 200, backend=backend)
    np.testing.assert_array_equal(starts, [15, 20, 50, 100])
    np.testing.assert_array_equal(ends, [20, 30, 60, 200])
    np.testing.assert_array_equal(values, RUNS["chr1"][2][:4])


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__range_without_data_and_past_end(track: Path, backend: str) -> None:
    starts, ends, values = bigwig.read_runs(track, "chr1", 600, 900, backend=backend)
    assert starts.size == ends.size == values.size == 0
    starts, _, _ = bigwig.read_runs(track, "chr1", 995, 5_000, backend=backend)
    np.testing.assert_array_equal(starts, [995])


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__chromosome_without_data_is_empty(tmp_path: Path, backend: str) -> None:
    path = write_bigwig(tmp_path / "sparse.bw", {**SIZES, "chr3": 50}, RUNS)
    starts, ends, values = bigwig.read_runs(path, "chr3", backend=backend)
    assert starts.size == ends.size == values.size == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__open_handle_is_reused_and_left_open(track: Path, backend: str) -> None:
    with bigwig.open_bigwig(track, backend) as handle:
        for chrom in RUNS:
            starts, _, _ = bigwig.read_runs(handle, chrom)
            np.testing.assert_array_equal(starts, RUNS[chrom][0])
        assert bigwig.chrom_sizes(handle) == SIZES


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chrom", sorted(RUNS))
def test_window_means__matches_naive(track: Path, backend: str, chrom: str) -> None:
    rng = np.random.default_rng(0)
    size = SIZES[chrom]
    # Windows past both ends, entirely outside, of length 1 and 0, overlapping, any order.
    win_starts = np.concatenate([rng.integers(-100, size + 100, 200), [-50, size, 0, 5]])
    win_ends = np.concatenate([win_starts[:200] + rng.integers(0, 400, 200), [-1, size + 9, 1, 5]])
    expected = kernels.naive_window_arcsinh_means(*RUNS[chrom], win_starts, win_ends, size)
    actual = bigwig.window_means(track, chrom, win_starts, win_ends, backend=backend)
    assert actual.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("max_gap", [0, 5, 10**9])
def test_window_means__read_in_separate_spans_matches_naive(
    track: Path, backend: str, max_gap: int
) -> None:
    # Short windows far apart: with a small max_gap each is read as its own span, and runs
    # cut at span edges must still add up to the naive means.
    rng = np.random.default_rng(1)
    win_starts = np.sort(rng.integers(-20, 1_020, 60))
    win_ends = win_starts + rng.integers(1, 40, 60)
    expected = kernels.naive_window_arcsinh_means(*RUNS["chr1"], win_starts, win_ends, 1_000)
    actual = bigwig.window_means(
        track, "chr1", win_starts, win_ends, backend=backend, max_gap=max_gap
    )
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_means__hand_checked(track: Path, backend: str) -> None:
    # chr2 [90, 110): 10 bases of arcsinh(4), 10 bases uncovered -> arcsinh(4) / 2.
    means = bigwig.window_means(track, "chr2", [90], [110], backend=backend)
    np.testing.assert_allclose(means, [math.asinh(4.0) / 2], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_means__no_windows(track: Path, backend: str) -> None:
    means = bigwig.window_means(track, "chr1", [], [], backend=backend)
    assert means.shape == (0,)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__missing_file_raises(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "absent.bw"
    with pytest.raises(FileNotFoundError, match="absent.bw"):
        bigwig.read_runs(path, "chr1", backend=backend)
    with pytest.raises(FileNotFoundError, match="absent.bw"):
        bigwig.chrom_sizes(path, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_bytes", [0, 100, -200])
def test_read_runs__truncated_file_raises(
    track: Path, tmp_path: Path, backend: str, n_bytes: int
) -> None:
    # Cut at the start, in the header, and just before the end (the index sits at the end).
    raw = track.read_bytes()
    broken = tmp_path / "broken.bw"
    broken.write_bytes(raw[:n_bytes] if n_bytes >= 0 else raw[: len(raw) + n_bytes])
    with pytest.raises(ValueError, match="broken.bw.*not a readable bigWig"):
        bigwig.read_runs(broken, "chr1", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__text_file_named_bw_raises(tmp_path: Path, backend: str) -> None:
    text = tmp_path / "track.bw"
    text.write_text("chr1\t0\t10\t1.0\n" * 100)
    with pytest.raises(ValueError, match="track.bw is not a readable bigWig"):
        bigwig.window_means(text, "chr1", [0], [10], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__corrupt_data_block_raises(track: Path, tmp_path: Path, backend: str) -> None:
    # Header and index intact, compressed data garbled: only reading the runs fails (pyBigWig
    # raises RuntimeError, pybigtools panics in Rust).
    raw = bytearray(track.read_bytes())
    data_offset = struct.unpack("<Q", raw[16:24])[0]  # bbi header field fullDataOffset
    raw[data_offset + 8 : data_offset + 40] = b"\xff" * 32
    corrupt = tmp_path / "corrupt.bw"
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt.bw is not a readable bigWig"):
        bigwig.read_runs(corrupt, "chr1", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["track.dat", "track.BW", "track"])
def test_open_bigwig__unusual_suffix_is_read(
    track: Path, tmp_path: Path, backend: str, name: str
) -> None:
    # pybigtools refuses local paths not ending in .bw/.bigWig; the backend hands it a file
    # object instead.
    renamed = tmp_path / name
    renamed.write_bytes(track.read_bytes())
    np.testing.assert_array_equal(
        bigwig.read_runs(renamed, "chr2", backend=backend)[0], RUNS["chr2"][0]
    )
    with bigwig.open_bigwig(renamed, backend) as handle:
        assert bigwig.chrom_sizes(handle) == SIZES


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__missing_chromosome_raises_keyerror(track: Path, backend: str) -> None:
    with pytest.raises(bigwig.MissingChromosome, match="chrX.*track.bw") as info:
        bigwig.read_runs(track, "chrX", backend=backend)
    assert isinstance(info.value, KeyError)
    assert (info.value.chrom, Path(info.value.path)) == ("chrX", track)
    with pytest.raises(KeyError, match="chrX"):
        bigwig.window_means(track, "chrX", [0], [10], backend=backend)


def test_open_bigwig__unknown_backend_raises(track: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        bigwig.open_bigwig(track, backend="bx-python")  # type: ignore[arg-type]


def test_open_bigwig__url_is_read_by_range_requests(track: Path, http_files) -> None:
    served = http_files.root / "served.bw"
    served.write_bytes(track.read_bytes())
    url = http_files.url(served)
    assert resolve_backend(url, None) == "builtin"
    win_starts, win_ends = np.array([-5, 15, 90, 995]), np.array([30, 120, 400, 1010])
    expected = kernels.naive_window_arcsinh_means(*RUNS["chr1"], win_starts, win_ends, 1000)
    np.testing.assert_array_equal(bigwig.window_means(url, "chr1", win_starts, win_ends), expected)
    assert bigwig.chrom_sizes(url) == bigwig.chrom_sizes(track)
    assert http_files.ranged["served.bw"] > 0 and http_files.whole["served.bw"] == 0


def test_open_bigwig__missing_url_is_named(http_files) -> None:
    url = f"{http_files.base}/absent.bw"
    with pytest.raises(FileNotFoundError, match="absent.bw: no such file"):
        bigwig.open_bigwig(url)


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_bigwig__bigbed_raises(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "peaks.bb"
    pybigtools.open(str(path), "w").write({"chr1": 100}, [("chr1", 0, 10, "a")])
    with pytest.raises(ValueError, match="peaks.bb is a bigBed"):
        bigwig.open_bigwig(path, backend)


# --------------------------------------------------------------------------- file objects


@pytest.mark.parametrize("backend", FILE_OBJECT_BACKENDS)
@pytest.mark.parametrize("kind", ["open", "bytesio"])
def test_file_object__reads_like_the_path(track: Path, backend: str, kind: str) -> None:
    fileobj = open(track, "rb") if kind == "open" else io.BytesIO(track.read_bytes())  # noqa: SIM115
    with fileobj:
        win_starts, win_ends = np.array([-5, 15, 90, 995]), np.array([30, 120, 400, 1010])
        expected = kernels.naive_window_arcsinh_means(*RUNS["chr1"], win_starts, win_ends, 1000)
        # Twice: the second call must not depend on where the first left the file position.
        for _ in range(2):
            assert bigwig.chrom_sizes(fileobj, backend=backend) == SIZES
            means = bigwig.window_means(fileobj, "chr1", win_starts, win_ends, backend=backend)
            np.testing.assert_allclose(means, expected, rtol=1e-6)
            starts, ends, values = bigwig.read_runs(fileobj, "chr2", backend=backend)
            np.testing.assert_array_equal(starts, RUNS["chr2"][0])
            np.testing.assert_array_equal(values, RUNS["chr2"][2])
        with bigwig.open_bigwig(fileobj, backend) as handle:
            np.testing.assert_array_equal(bigwig.read_runs(handle, "chr2")[1], RUNS["chr2"][1])
        assert not fileobj.closed  # the caller's object stays open


def test_file_object__pybigwig_refuses_with_hint(track: Path) -> None:
    with open(track, "rb") as fh, pytest.raises(ValueError, match="track.bw.*backend='builtin'"):
        bigwig.open_bigwig(fh, "pyBigWig")


def test_open_bigwig__other_objects_raise_type_error() -> None:
    with pytest.raises(TypeError, match="int"):
        bigwig.open_bigwig(3)  # type: ignore[arg-type]


def corrupt_copy(track: Path) -> bytes:
    """The track with its first data block garbled (header and index intact)."""
    raw = bytearray(track.read_bytes())
    data_offset = struct.unpack("<Q", raw[16:24])[0]  # bbi header field fullDataOffset
    raw[data_offset + 8 : data_offset + 40] = b"\xff" * 32
    return bytes(raw)


@pytest.mark.parametrize("backend", FILE_OBJECT_BACKENDS)
def test_file_object__corrupt_data_errors_name_the_object(
    track: Path, tmp_path: Path, backend: str
) -> None:
    corrupt = tmp_path / "corrupt.bw"
    corrupt.write_bytes(corrupt_copy(track))
    with open(corrupt, "rb") as fh:
        with pytest.raises(ValueError, match="corrupt.bw is not a readable bigWig"):
            bigwig.read_runs(fh, "chr1", backend=backend)
        with pytest.raises(ValueError, match="corrupt.bw is not a readable bigWig"):
            bigwig.window_means(fh, "chr1", [0], [100], backend=backend)
    with pytest.raises(ValueError, match="BytesIO.*not a readable bigWig"):
        bigwig.read_runs(io.BytesIO(corrupt.read_bytes()), "chr1", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_means__corrupt_data_block_raises(track: Path, tmp_path: Path, backend: str) -> None:
    corrupt = tmp_path / "corrupt.bw"
    corrupt.write_bytes(corrupt_copy(track))
    with pytest.raises(ValueError, match="corrupt.bw is not a readable bigWig"):
        bigwig.window_means(corrupt, "chr1", [0], [100], backend=backend)


# --------------------------------------------------------------------------- builtin reader


def test_builtin__zlib_and_libdeflate_agree(track: Path) -> None:
    rng = np.random.default_rng(3)
    win_starts = rng.integers(-50, 1_050, 300)
    win_ends = win_starts + rng.integers(0, 300, 300)
    expected = kernels.naive_window_arcsinh_means(*RUNS["chr1"], win_starts, win_ends, 1_000)
    for use_libdeflate in (False, True):
        with bigwig.open_bigwig(track, "builtin", use_libdeflate=use_libdeflate) as handle:
            means = bigwig.window_means(handle, "chr1", win_starts, win_ends)
        np.testing.assert_allclose(means, expected, rtol=1e-6)


def test_builtin__libdeflate_is_found_where_installed() -> None:
    # The python machines of this project ship libdeflate (pybigtools' own inflater); losing
    # it silently would halve the reader's speed, so say so here.
    if not Path("/usr/lib/x86_64-linux-gnu/libdeflate.so.0").exists():
        pytest.skip("libdeflate is not installed here")
    assert _libdeflate() is not None


def count_inflated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    into = Inflater.into

    def counting(self, src, a, b, out, at, cap):  # noqa: ANN001, ANN202
        calls.append(b - a)
        return into(self, src, a, b, out, at, cap)

    monkeypatch.setattr(Inflater, "into", counting)
    return calls


def test_builtin__inflates_only_the_blocks_windows_touch(
    many_blocks: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, runs, sizes = many_blocks
    calls = count_inflated(monkeypatch)
    bigwig.window_means(path, "chrA", [100], [200])
    assert len(calls) == 1  # one pyBigWig block holds ~2,700 runs, so the first covers [0, 300)
    calls.clear()
    bigwig.window_means(path, "chrA", [-50, sizes["chrA"] + 10], [-1, sizes["chrA"] + 20])
    assert calls == []
    calls.clear()
    bigwig.window_means(path, "chrA", [0], [sizes["chrA"]])
    # The whole chromosome: every block of it, libBigWig filling 32 kB blocks with 2,728
    # bedGraph items of 12 bytes after a 24-byte header.
    assert len(calls) == -(-runs["chrA"][0].size // 2_728)
    with bigwig.BigWigReader(path) as reader:
        is_leaf, _ = reader._node(reader._rtree_root)
    assert not is_leaf  # the index has two levels, so the tree walk was exercised


def test_builtin__zero_length_and_outside_windows_read_nothing(
    track: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_inflated(monkeypatch)
    means = bigwig.window_means(track, "chr1", [5, -20, 1_000], [5, -10, 1_100])
    assert np.isnan(means).all()
    assert calls == []


@pytest.fixture(scope="module")
def many_blocks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Two chromosomes of ~120,000 runs each: ~90 data blocks, a two-level R-tree index."""
    rng = np.random.default_rng(7)
    runs, sizes = {}, {}
    for chrom in ("chrA", "chrB"):
        lengths = rng.integers(1, 30, 130_000)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        keep = rng.random(starts.size) > 0.08
        values = rng.gamma(0.5, 2.0, starts.size).astype(np.float32)
        values[rng.random(values.size) < 0.01] = np.nan
        runs[chrom] = (starts[keep], ends[keep], values[keep])
        sizes[chrom] = int(ends[-1]) + 500
    path = write_bigwig(tmp_path_factory.mktemp("many") / "many.bw", sizes, runs)
    return path, runs, sizes


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_means__many_blocks_match_naive(many_blocks: tuple, backend: str) -> None:
    path, runs, sizes = many_blocks
    rng = np.random.default_rng(11)
    for chrom in ("chrA", "chrB"):
        size = sizes[chrom]
        # Sparse short windows, dense bins, and a few wider than a block.
        win_starts = np.concatenate(
            [rng.integers(-100, size, 500), np.arange(0, size, 997), rng.integers(0, size, 5)]
        )
        win_ends = win_starts + np.concatenate(
            [rng.integers(0, 2_000, 500), np.full(-(-size // 997), 997), [200_000] * 5]
        )
        expected = kernels.naive_window_arcsinh_means(*runs[chrom], win_starts, win_ends, size)
        actual = bigwig.window_means(path, chrom, win_starts, win_ends, backend=backend)
        assert_means_equal(actual, expected)


def assert_means_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same NaNs, and float32 means at most 1 ulp apart (float64 sums in another order)."""
    assert actual.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    keep = ~np.isnan(expected)
    np.testing.assert_array_max_ulp(actual[keep], expected[keep].astype(np.float32), maxulp=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__many_blocks_match_written(many_blocks: tuple, backend: str) -> None:
    path, runs, _ = many_blocks
    for chrom, (starts, ends, values) in runs.items():
        got = bigwig.read_runs(path, chrom, backend=backend)
        np.testing.assert_array_equal(got[0], starts)
        np.testing.assert_array_equal(got[1], ends)
        np.testing.assert_array_equal(got[2], values)
    # A range cutting runs at both ends: clipped, like every backend.
    got = bigwig.read_runs(path, "chrB", 10_001, 250_003, backend=backend)
    starts, ends, _ = runs["chrB"]
    inside = (ends > 10_001) & (starts < 250_003)
    np.testing.assert_array_equal(got[0], np.maximum(starts[inside], 10_001))
    np.testing.assert_array_equal(got[1], np.minimum(ends[inside], 250_003))


def write_sections(path: Path) -> tuple[dict, dict]:
    """varStep, fixedStep and bedGraph sections (with a NaN) on chromosome c0 of 600."""
    sizes = {f"c{i}": 1_000 + i for i in range(600)}  # more than one chromosome-tree node
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()))
    bw.addEntries("c0", [0, 100, 125], values=[1.0, 2.0, math.nan], span=20)
    bw.addEntries("c0", 300, values=[0.5, 4.0, 5.0], span=20, step=30)
    bw.addEntries(["c0", "c0"], [500, 990], ends=[700, 1_000], values=[7.0, 8.0])
    bw.addEntries("c599", 0, values=[1.0] * 10, span=5, step=5)
    bw.close()
    runs = {
        "c0": (
            np.array([0, 100, 125, 300, 330, 360, 500, 990]),
            np.array([20, 120, 145, 320, 350, 380, 700, 1_000]),
            np.array([1.0, 2.0, math.nan, 0.5, 4.0, 5.0, 7.0, 8.0], dtype=np.float32),
        ),
        "c599": (np.arange(0, 50, 5), np.arange(5, 55, 5), np.ones(10, dtype=np.float32)),
    }
    return sizes, runs


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__every_section_type_and_600_chromosomes(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "sections.bw"
    sizes, runs = write_sections(path)
    assert bigwig.chrom_sizes(path, backend=backend) == sizes
    for chrom, (starts, ends, values) in runs.items():
        got = bigwig.read_runs(path, chrom, backend=backend)
        np.testing.assert_array_equal(got[0], starts)
        np.testing.assert_array_equal(got[1], ends)
        np.testing.assert_array_equal(got[2], values)
        win_starts = np.arange(-10, sizes[chrom], 7)
        win_ends = win_starts + 25
        expected = kernels.naive_window_arcsinh_means(
            starts, ends, values, win_starts, win_ends, sizes[chrom]
        )
        means = bigwig.window_means(path, chrom, win_starts, win_ends, backend=backend)
        assert_means_equal(means, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_runs__file_written_by_pybigtools(tmp_path: Path, backend: str) -> None:
    # bigtools lays blocks out differently (1,024 items a block, 256-wide index nodes).
    rng = np.random.default_rng(5)
    starts = np.sort(rng.choice(np.arange(0, 400_000, 2), 5_000, replace=False))
    ends = starts + 1
    values = rng.random(5_000).astype(np.float32)
    path = tmp_path / "bigtools.bw"
    pybigtools.open(str(path), "w").write(
        {"chrZ": 400_000},
        [("chrZ", int(s), int(e), float(v)) for s, e, v in zip(starts, ends, values, strict=True)],
    )
    got = bigwig.read_runs(path, "chrZ", backend=backend)
    np.testing.assert_array_equal(got[0], starts)
    np.testing.assert_array_equal(got[2], values)
    win_starts = rng.integers(0, 400_000, 200)
    expected = kernels.naive_window_arcsinh_means(
        starts, ends, values, win_starts, win_starts + 3_000, 400_000
    )
    means = bigwig.window_means(path, "chrZ", win_starts, win_starts + 3_000, backend=backend)
    assert_means_equal(means, expected)


def uncompressed_copy(track: Path, out: Path) -> Path:
    """The track with its data blocks stored inflated (uncompressBufSize 0, as bigWig v1-2).

    Inflated blocks are appended after the original data, the index leaves repointed at them,
    and the end signature written again; zoom levels stay compressed (no backend reads them
    for full-resolution runs).
    """
    raw = bytearray(track.read_bytes())
    reader = bigwig.BigWigReader(track)
    leaves = []
    todo = [reader._rtree_root]
    while todo:
        offset = todo.pop()
        is_leaf, _ = reader._node(offset)
        if is_leaf:
            leaves.append(offset)
        else:
            todo.extend(int(c) for c in reader._node(offset)[1]["offset"])
    reader.close()
    tail = bytearray()
    base = len(raw) - 4  # drop the end signature; it is written again after the blocks
    for leaf in leaves:
        (count,) = struct.unpack_from("<H", raw, leaf + 2)
        for i in range(count):
            item = leaf + 4 + 32 * i
            offset, size = struct.unpack_from("<QQ", raw, item + 16)
            block = zlib.decompress(bytes(raw[offset : offset + size]))
            struct.pack_into("<QQ", raw, item + 16, base + len(tail), len(block))
            tail += block
    struct.pack_into("<I", raw, 52, 0)  # uncompressBufSize
    out.write_bytes(bytes(raw[:base]) + bytes(tail) + struct.pack("<I", 0x888FFC26))
    return out


@pytest.mark.parametrize("backend", ["builtin", "pyBigWig"])
def test_read_runs__uncompressed_file(many_blocks: tuple, tmp_path: Path, backend: str) -> None:
    path, runs, sizes = many_blocks
    plain = uncompressed_copy(path, tmp_path / "plain.bw")
    assert plain.stat().st_size > 2 * path.stat().st_size  # really stored inflated
    got = bigwig.read_runs(plain, "chrB", backend=backend)
    np.testing.assert_array_equal(got[0], runs["chrB"][0])
    np.testing.assert_array_equal(got[2], runs["chrB"][2])
    win_starts = np.arange(0, sizes["chrA"], 5_003)
    expected = kernels.naive_window_arcsinh_means(
        *runs["chrA"], win_starts, win_starts + 2_000, sizes["chrA"]
    )
    means = bigwig.window_means(plain, "chrA", win_starts, win_starts + 2_000, backend=backend)
    assert_means_equal(means, expected)


# --------------------------------------------------------------------------- hypothesis


@st.composite
def tracks(draw: st.DrawFn) -> tuple[dict, dict, dict]:
    """1-2 chromosomes of runs with gaps and NaN values, and windows past both ends."""
    sizes, runs, windows = {}, {}, {}
    for chrom in draw(st.sampled_from([["chr1"], ["chr1", "chrM"]])):
        size = draw(st.integers(1, 3_000))
        cuts = sorted(set(draw(st.lists(st.integers(0, size), max_size=80))))
        pairs = [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if draw(st.booleans())]
        values = draw(
            st.lists(
                st.floats(0, 1e5, width=32) | st.just(math.nan),
                min_size=len(pairs),
                max_size=len(pairs),
            )
        )
        n = draw(st.integers(0, 30))
        win_starts = draw(st.lists(st.integers(-200, size + 200), min_size=n, max_size=n))
        lengths = draw(st.lists(st.integers(0, size + 300), min_size=n, max_size=n))
        sizes[chrom] = size
        runs[chrom] = (
            np.array([a for a, _ in pairs], dtype=np.int64),
            np.array([b for _, b in pairs], dtype=np.int64),
            np.array(values, dtype=np.float32),
        )
        win_starts = np.array(win_starts, dtype=np.int64)
        windows[chrom] = (win_starts, win_starts + np.array(lengths, dtype=np.int64))
    return sizes, runs, windows


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=tracks())
def test_window_means__random_tracks_match_naive_on_every_backend(
    tmp_path: Path, case: tuple
) -> None:
    sizes, runs, windows = case
    path = write_bigwig(tmp_path / "random.bw", sizes, runs)
    for chrom, (win_starts, win_ends) in windows.items():
        expected = kernels.naive_window_arcsinh_means(
            *runs[chrom], win_starts, win_ends, sizes[chrom]
        )
        for backend in BACKENDS:
            actual = bigwig.window_means(path, chrom, win_starts, win_ends, backend=backend)
            assert_means_equal(actual, expected)
            starts, ends, values = bigwig.read_runs(path, chrom, backend=backend)
            np.testing.assert_array_equal(starts, runs[chrom][0])
            np.testing.assert_array_equal(ends, runs[chrom][1])
            np.testing.assert_array_equal(values, runs[chrom][2])
