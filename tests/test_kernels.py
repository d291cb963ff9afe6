"""Kernels against their naive twins (hypothesis) and a few hand-checked values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pitfall import kernels
from pitfall.kernels import dna

# Letters a real FASTA can hold (soft-masked lowercase, IUPAC, gaps) plus arbitrary text.
DNA_LETTERS = "ACGTNacgtnRYKMSWBDHVryk-.*"
dna_text = st.text(alphabet=DNA_LETTERS, max_size=200) | st.text(max_size=50)
# Codes weighted towards the real ones, with occasional out-of-table values (treated as N).
codes_elements = st.integers(0, 4) | st.integers(0, 255)
codes_1d = hnp.arrays(np.uint8, st.integers(0, 300), elements=codes_elements)
# No deadline: the first example of each test pays the one-off Numba compile or cache load.
no_deadline = settings(deadline=None)
codes_2d = hnp.arrays(
    np.uint8, st.tuples(st.integers(0, 8), st.integers(0, 60)), elements=codes_elements
)


def string_reverse_complement(seq: str) -> str:
    """Reverse complement of an ACGTN string, independent of the integer codes."""
    return seq.translate(str.maketrans("ACGTN", "TGCAN"))[::-1]


# --------------------------------------------------------------------------- encode_dna


@no_deadline
@given(dna_text)
def test_encode_dna__str_matches_naive(seq: str) -> None:
    np.testing.assert_array_equal(kernels.encode_dna(seq), kernels.naive_encode_dna(seq))


@no_deadline
@given(st.binary(max_size=300))
def test_encode_dna__bytes_and_uint8_array_match_naive(raw: bytes) -> None:
    expected = kernels.naive_encode_dna(raw)
    np.testing.assert_array_equal(kernels.encode_dna(raw), expected)
    np.testing.assert_array_equal(kernels.encode_dna(np.frombuffer(raw, np.uint8)), expected)


@pytest.mark.parametrize("as_type", [str, bytes])
def test_encode_dna__long_sequence_matches_naive(as_type: type) -> None:
    # Longer than the bytes.translate fast path: exercises the Numba kernel.
    rng = np.random.default_rng(0)
    letters = np.frombuffer(DNA_LETTERS.encode(), dtype=np.uint8)
    raw = letters[rng.integers(0, letters.size, 3 * dna._TRANSLATE_MAX_LEN)].tobytes()
    seq = raw.decode() if as_type is str else raw
    codes = kernels.encode_dna(seq)
    np.testing.assert_array_equal(codes, kernels.naive_encode_dna(seq))
    assert codes.flags.writeable


def test_encode_dna__2d_uint8_array_keeps_shape() -> None:
    raw = np.frombuffer(b"ACGTNacgtn", dtype=np.uint8).reshape(2, 5)
    np.testing.assert_array_equal(kernels.encode_dna(raw), [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]])


def test_encode_dna__hand_checked_codes() -> None:
    codes = kernels.encode_dna("ACGTNacgtnRY-xé")
    expected = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4]
    assert codes.dtype == np.uint8
    assert codes.flags.writeable
    np.testing.assert_array_equal(codes, expected)
    assert "".join(kernels.BASES[c] for c in codes[:5]) == "ACGTN"


def test_encode_dna__empty_sequence() -> None:
    for empty in ("", b"", np.empty(0, np.uint8)):
        codes = kernels.encode_dna(empty)
        assert codes.shape == (0,)
        assert codes.dtype == np.uint8


def test_encode_dna__rejects_non_uint8_array() -> None:
    with pytest.raises(TypeError, match="uint8"):
        kernels.encode_dna(np.array([65, 67], dtype=np.int64))


# --------------------------------------------------------------------------- one_hot


@no_deadline
@given(codes_1d, st.sampled_from([np.float32, np.float64, np.int8, np.uint8]))
def test_one_hot__1d_matches_naive(codes: np.ndarray, dtype: type) -> None:
    result = kernels.one_hot(codes, dtype=dtype)
    assert result.shape == (*codes.shape, 4)
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, kernels.naive_one_hot(codes, dtype=dtype))


@no_deadline
@given(codes_2d)
def test_one_hot__2d_matches_naive(codes: np.ndarray) -> None:
    np.testing.assert_array_equal(kernels.one_hot(codes), kernels.naive_one_hot(codes))


@no_deadline
@given(codes_2d)
def test_one_hot__out_buffer_is_filled_and_returned(codes: np.ndarray) -> None:
    # A dirty buffer: the kernel must overwrite every element, not only the hot ones.
    out = np.full((*codes.shape, 4), 7.0, dtype=np.float32)
    result = kernels.one_hot(codes, out=out)
    assert result is out
    np.testing.assert_array_equal(out, kernels.naive_one_hot(codes))


def test_one_hot__hand_checked_rows() -> None:
    result = kernels.one_hot(kernels.encode_dna("ACGTNa"))
    expected = np.vstack([np.eye(4), np.zeros(4), [1, 0, 0, 0]]).astype(np.float32)
    np.testing.assert_array_equal(result, expected)


def test_one_hot__non_contiguous_input() -> None:
    codes = np.arange(40, dtype=np.int64).reshape(4, 10) % 5
    view = codes[:, ::2]
    np.testing.assert_array_equal(kernels.one_hot(view), kernels.naive_one_hot(view))


def test_one_hot__wrong_out_shape_raises() -> None:
    with pytest.raises(ValueError, match="shape"):
        kernels.one_hot(np.zeros(5, np.uint8), out=np.empty((5, 3), np.float32))


def test_one_hot__float_codes_raise() -> None:
    with pytest.raises(TypeError, match="integer"):
        kernels.one_hot(np.zeros(5, np.float32))


# --------------------------------------------------------------------------- one_hot_dna

ONE_HOT_DTYPES = st.sampled_from([np.float32, np.int8, np.float64, np.uint8])


@no_deadline
@given(dna_text, ONE_HOT_DTYPES)
def test_one_hot_dna__str_matches_naive(seq: str, dtype: type) -> None:
    result = kernels.one_hot_dna(seq, dtype=dtype)
    assert result.shape == (len(seq.encode("ascii", errors="replace")), 4)
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, kernels.naive_one_hot_dna(seq, dtype=dtype))


@no_deadline
@given(st.binary(max_size=300), ONE_HOT_DTYPES)
def test_one_hot_dna__bytes_and_uint8_array_match_naive(raw: bytes, dtype: type) -> None:
    expected = kernels.naive_one_hot_dna(raw, dtype=dtype)
    np.testing.assert_array_equal(kernels.one_hot_dna(raw, dtype), expected)
    np.testing.assert_array_equal(
        kernels.one_hot_dna(np.frombuffer(raw, np.uint8), dtype), expected
    )


@no_deadline
@given(hnp.arrays(np.uint8, st.tuples(st.integers(0, 6), st.integers(0, 50))))
def test_one_hot_dna__2d_array_into_dirty_buffer(ascii_codes: np.ndarray) -> None:
    out = np.full((*ascii_codes.shape, 4), 7, dtype=np.int8)
    result = kernels.one_hot_dna(ascii_codes, np.int8, out=out)
    assert result is out
    expected = kernels.naive_one_hot(kernels.naive_encode_dna(ascii_codes.reshape(-1)), np.int8)
    np.testing.assert_array_equal(out.reshape(-1, 4), expected)


def test_one_hot_dna__hand_checked_rows() -> None:
    result = kernels.one_hot_dna("ACGTNacgtn-é", np.int8)
    expected = np.vstack([np.eye(4), np.zeros(4), np.eye(4), np.zeros((3, 4))]).astype(np.int8)
    np.testing.assert_array_equal(result, expected)


def test_one_hot_dna__wrong_out_raises() -> None:
    with pytest.raises(ValueError, match="out"):
        kernels.one_hot_dna("ACGT", np.float32, out=np.empty((4, 4), np.int8))
    with pytest.raises(ValueError, match="out"):
        kernels.one_hot_dna("ACGT", np.float32, out=np.empty((5, 4), np.float32))


def test_one_hot_dna__non_uint8_array_raises() -> None:
    with pytest.raises(TypeError, match="uint8"):
        kernels.one_hot_dna(np.array([65, 67], dtype=np.int64))


# --------------------------------------------------------------------------- reverse_complement


@no_deadline
@given(codes_1d | codes_2d)
def test_reverse_complement__matches_naive(codes: np.ndarray) -> None:
    result = kernels.reverse_complement(codes)
    assert result.dtype == codes.dtype
    np.testing.assert_array_equal(result, kernels.naive_reverse_complement(codes))


@no_deadline
@given(hnp.arrays(np.uint8, st.integers(0, 300), elements=st.integers(0, 4)))
def test_reverse_complement__twice_is_identity(codes: np.ndarray) -> None:
    twice = kernels.reverse_complement(kernels.reverse_complement(codes))
    np.testing.assert_array_equal(twice, codes)


@no_deadline
@given(st.lists(st.text(alphabet="ACGTN", min_size=20, max_size=20), min_size=1, max_size=5))
def test_reverse_complement__matches_string_reverse_complement(seqs: list[str]) -> None:
    codes = np.stack([kernels.encode_dna(s) for s in seqs])
    expected = np.stack([kernels.encode_dna(string_reverse_complement(s)) for s in seqs])
    np.testing.assert_array_equal(kernels.reverse_complement(codes), expected)


def test_reverse_complement__other_codes_become_n() -> None:
    np.testing.assert_array_equal(
        kernels.reverse_complement(np.array([9, 0, 255], np.uint8)), [4, 3, 4]
    )


# --------------------------------------------------------------------------- FASTA windows


def _fasta_bytes(records: list[tuple[str, str]], width: int, newline: str) -> bytes:
    """A FASTA file's bytes: each record's sequence in lines of ``width`` letters."""
    out = []
    for name, seq in records:
        out.append(f">{name} some description{newline}")
        out += [seq[i : i + width] + newline for i in range(0, len(seq), width)]
    return "".join(out).encode()


@st.composite
def fasta_windows(draw: st.DrawFn) -> tuple:
    letters = st.text(alphabet=DNA_LETTERS, min_size=1, max_size=150)
    seqs = draw(st.lists(letters, min_size=1, max_size=3))
    width = draw(st.integers(1, 70))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    k = draw(st.integers(0, len(seqs) - 1))
    length = draw(st.integers(0, 40))
    size = len(seqs[k])
    starts = draw(st.lists(st.integers(-length - 5, size + 5), max_size=12))
    minus = draw(st.lists(st.booleans(), min_size=len(starts), max_size=len(starts)))
    return seqs, width, newline, k, np.array(starts, np.int64), length, np.array(minus, bool)


@no_deadline
@given(fasta_windows())
def test_fasta_window_codes__matches_naive(case: tuple) -> None:
    # Windows past either end of the record, lowercase, IUPAC, \r\n lines, a record that
    # is not the first, minus-strand windows, zero-length windows.
    seqs, width, newline, k, starts, length, minus = case
    text = _fasta_bytes([(f"r{i}", s) for i, s in enumerate(seqs)], width, newline)
    # The record's first base: after the header lines and sequence lines of those before it.
    before = _fasta_bytes([(f"r{i}", s) for i, s in enumerate(seqs[:k])], width, newline)
    offset = len(before) + len(f">r{k} some description{newline}")
    got = kernels.fasta_window_codes(
        np.frombuffer(text, np.uint8),
        offset,
        width,
        width + len(newline),
        len(seqs[k]),
        starts,
        length,
        minus,
    )
    want = kernels.naive_fasta_window_codes(seqs[k], starts, length, minus)
    assert got.shape == (len(starts), length)
    np.testing.assert_array_equal(got, want)


def test_fasta_window_codes__hand_checked() -> None:
    text = np.frombuffer(b">a\nACg\ntNa\n", np.uint8)
    got = kernels.fasta_window_codes(
        text, 3, 3, 4, 6, np.array([-1, 2, 4]), 3, np.array([False, True, False])
    )
    # [-1, 2): N A C; [2, 5) = g t N reversed and complemented = N A C; [4, 7) = N a N.
    np.testing.assert_array_equal(got, [[4, 0, 1], [4, 0, 1], [4, 0, 4]])


def test_fasta_window_codes__truncated_file_raises() -> None:
    text = np.frombuffer(b">a\nACGT\nAC", np.uint8)  # the index says 8 bases
    with pytest.raises(ValueError, match="truncated"):
        kernels.fasta_window_codes(text, 3, 4, 5, 8, np.array([4]), 4, np.array([False]))


# --------------------------------------------------------------------------- window means


@st.composite
def runs_and_windows(draw: st.DrawFn, max_size: int = 300) -> tuple:
    """Sorted runs with gaps (some NaN-valued) on a chromosome, and windows past its ends."""
    chrom_size = draw(st.integers(1, max_size))
    cuts = sorted(set(draw(st.lists(st.integers(0, chrom_size), max_size=60))))
    pairs = [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if draw(st.booleans())]
    values = draw(
        st.lists(
            st.floats(-1e4, 1e4, width=32) | st.just(math.nan),
            min_size=len(pairs),
            max_size=len(pairs),
        )
    )
    n_windows = draw(st.integers(0, 20))
    win_starts = draw(
        st.lists(st.integers(-50, chrom_size + 50), min_size=n_windows, max_size=n_windows)
    )
    lengths = draw(
        st.lists(st.integers(0, chrom_size + 100), min_size=n_windows, max_size=n_windows)
    )
    return (
        np.array([a for a, _ in pairs], dtype=np.int64),
        np.array([b for _, b in pairs], dtype=np.int64),
        np.array(values, dtype=np.float32),
        np.array(win_starts, dtype=np.int64),
        np.array(win_starts, dtype=np.int64) + np.array(lengths, dtype=np.int64),
        chrom_size,
    )


def assert_means_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    # atol only absorbs float32 rounding of results that cancel to ~0 (mixed-sign values).
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=300, deadline=None)
@given(runs_and_windows())
def test_window_arcsinh_means__matches_naive(case: tuple) -> None:
    assert_means_close(
        kernels.window_arcsinh_means(*case), kernels.naive_window_arcsinh_means(*case)
    )


@no_deadline
@given(st.integers(0, 2**32 - 1))
def test_window_arcsinh_means__many_runs_wide_windows_match_naive(seed: int) -> None:
    # Thousands of short runs so windows cover many segment-tree levels.
    rng = np.random.default_rng(seed)
    chrom_size = 20_000
    cuts = np.unique(rng.integers(0, chrom_size + 1, 6000))
    keep = rng.random(cuts.size - 1) > 0.2
    starts, ends = cuts[:-1][keep], cuts[1:][keep]
    values = rng.exponential(2.0, starts.size).astype(np.float32)
    values[rng.random(values.size) < 0.05] = np.nan
    win_starts = rng.integers(-500, chrom_size + 500, 50)
    win_ends = win_starts + rng.integers(0, chrom_size, 50)
    case = (starts, ends, values, win_starts, win_ends, chrom_size)
    assert_means_close(
        kernels.window_arcsinh_means(*case), kernels.naive_window_arcsinh_means(*case)
    )


def test_window_arcsinh_means__half_covered_window_hand_checked() -> None:
    # arcsinh(sinh(2)) = 2 over 5 of 10 bases -> 1.0; the uncovered half counts as 0.
    means = kernels.window_arcsinh_means([0], [5], [math.sinh(2.0)], [0], [10], 100)
    np.testing.assert_allclose(means, [1.0], rtol=1e-6)


def test_window_arcsinh_means__divisor_is_clipped_length() -> None:
    # Window [-5, 5) on a chromosome fully covered by value sinh(3): 5 bases inside, mean 3.
    means = kernels.window_arcsinh_means([0], [10], [math.sinh(3.0)], [-5, 5, 8], [5, 15, 8], 10)
    np.testing.assert_allclose(means[:2], [3.0, 3.0], rtol=1e-6)
    assert np.isnan(means[2])  # empty window


def test_window_arcsinh_means__windows_outside_are_nan() -> None:
    means = kernels.window_arcsinh_means([0], [10], [1.0], [-20, 10, 50], [-5, 20, 60], 10)
    assert np.isnan(means).all()


def test_window_arcsinh_means__nan_runs_and_gaps_count_as_zero() -> None:
    # Bases 0-1: sinh(4); 2-3: NaN; 4-5: gap; 6-7: sinh(2) -> (2*4 + 2*2) / 8.
    means = kernels.window_arcsinh_means(
        [0, 2, 6], [2, 4, 8], [math.sinh(4.0), math.nan, math.sinh(2.0)], [0], [8], 8
    )
    np.testing.assert_allclose(means, [1.5], rtol=1e-6)


def test_window_arcsinh_means__length_one_windows() -> None:
    values = np.array([0.5, -1.0, 3.0], np.float32)
    means = kernels.window_arcsinh_means(
        [0, 1, 2], [1, 2, 3], values, [0, 1, 2, 3], [1, 2, 3, 4], 4
    )
    np.testing.assert_allclose(means, [*np.arcsinh(values.astype(np.float64)), 0.0], rtol=1e-6)


def test_window_arcsinh_means__zero_runs() -> None:
    empty = np.empty(0, np.int64)
    means = kernels.window_arcsinh_means(empty, empty, np.empty(0), [0, -3, 20], [5, 0, 30], 10)
    np.testing.assert_array_equal(means, [0.0, np.nan, np.nan])


def test_window_arcsinh_means__zero_windows() -> None:
    means = kernels.window_arcsinh_means([0], [5], [1.0], [], [], 10)
    assert means.shape == (0,)
    assert means.dtype == np.float32


@pytest.mark.parametrize(
    ("starts", "ends"),
    [([5, 0], [10, 5]), ([0, 3], [5, 8]), ([0], [0])],
    ids=["unsorted", "overlapping", "empty-run"],
)
def test_window_arcsinh_means__bad_runs_raise(starts: list, ends: list) -> None:
    with pytest.raises(ValueError, match="runs"):
        kernels.window_arcsinh_means(starts, ends, np.ones(len(starts)), [0], [5], 10)


def test_window_arcsinh_means__window_end_before_start_raises() -> None:
    with pytest.raises(ValueError, match="window"):
        kernels.window_arcsinh_means([0], [5], [1.0], [5], [4], 10)


@no_deadline
@given(runs_and_windows(), st.integers(1, 5), st.booleans())
def test_add_window_arcsinh_sums__chunked_runs_match_naive(
    case: tuple, n_chunks: int, reuse_work: bool
) -> None:
    # Runs added chunk by chunk (as the bigWig reader does, block batch by block batch) sum
    # to the same means as the naive per-base expansion; with reuse_work, every chunk gets
    # the same work buffer, left dirty (NaN, then the last chunk's values), as the reader's
    # reused scratch buffer is.
    starts, ends, values, win_starts, win_ends, chrom_size = case
    lo, hi = kernels.clip_windows(win_starts, win_ends, chrom_size)
    sums = np.zeros(lo.size, dtype=np.float64)
    work = np.full(3 * starts.size + 7, np.nan) if reuse_work else None
    for part in np.array_split(np.arange(starts.size), n_chunks):
        kernels.add_window_arcsinh_sums(starts[part], ends[part], values[part], lo, hi, sums, work)
    assert_means_close(
        kernels.means_from_sums(sums, lo, hi), kernels.naive_window_arcsinh_means(*case)
    )


def test_add_window_arcsinh_sums__wrong_sums_buffer_raises() -> None:
    lo, hi = kernels.clip_windows(np.array([0]), np.array([5]), 10)
    with pytest.raises(ValueError, match="sums"):
        kernels.add_window_arcsinh_sums([0], [5], [1.0], lo, hi, np.zeros(1, np.float32))


@pytest.mark.parametrize(
    "work", [np.zeros(2), np.zeros(3, np.float32), np.zeros((3, 1))], ids=["short", "f32", "2d"]
)
def test_add_window_arcsinh_sums__wrong_work_buffer_raises(work: np.ndarray) -> None:
    lo, hi = kernels.clip_windows(np.array([0]), np.array([5]), 10)
    with pytest.raises(ValueError, match="work"):
        kernels.add_window_arcsinh_sums([0], [5], [1.0], lo, hi, np.zeros(1), work)
