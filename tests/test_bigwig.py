"""bigWig reading on small files written with pyBigWig, both backends, and the error cases."""

import math
import struct
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from pitfall import kernels
from pitfall.sources import bigwig

BACKENDS = ["pyBigWig", "pybigtools"]
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
        bw.addEntries(
            [chrom] * len(starts), starts.tolist(), ends=ends.tolist(), values=values.tolist()
        )
    bw.close()
    return path


@pytest.fixture
def track(tmp_path: Path) -> Path:
    return write_bigwig(tmp_path / "track.bw", SIZES, RUNS)


def test_chrom_sizes__matches_header(track: Path) -> None:
    assert bigwig.chrom_sizes(track) == SIZES
    assert bigwig.chrom_sizes(track, backend="pybigtools") == SIZES


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


def test_open_bigwig__pybigtools_unknown_suffix_raises_with_hint(
    track: Path, tmp_path: Path
) -> None:
    renamed = tmp_path / "track.dat"
    renamed.write_bytes(track.read_bytes())
    np.testing.assert_array_equal(bigwig.read_runs(renamed, "chr2")[0], RUNS["chr2"][0])
    with pytest.raises(ValueError, match="track.dat.*backend='pyBigWig'"):
        bigwig.read_runs(renamed, "chr2", backend="pybigtools")


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
