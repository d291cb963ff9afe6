"""The bigWig block decoder against its naive twin and hand-made blocks (hypothesis)."""

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitfall.sources.bigwig.blocks import decode_bigwig_blocks, naive_decode_bigwig_blocks


@st.composite
def bigwig_blocks(draw: st.DrawFn) -> tuple:
    """Uncompressed bigWig data blocks of every section type, in either byte order.

    Returns the concatenated bytes, the block byte ranges, the chromosome to decode, spans,
    the byte order, and the runs of that chromosome meeting a span (the hand-made oracle).
    """
    big_endian = draw(st.booleans())
    order = ">" if big_endian else "<"
    chrom = draw(st.integers(0, 2))
    position = draw(st.integers(0, 100))
    data = bytearray()
    ranges = []
    expected = []
    spans_raw = sorted(draw(st.lists(st.integers(0, 3000), max_size=12, unique=True)))
    span_starts = np.array(spans_raw[0::2][: len(spans_raw) // 2], dtype=np.int64)
    span_ends = np.array(spans_raw[1::2], dtype=np.int64)
    for _ in range(draw(st.integers(0, 5))):
        block_chrom = draw(st.sampled_from([chrom, chrom, chrom + 1]))
        kind = draw(st.sampled_from([1, 2, 3]))
        count = draw(st.integers(0, 30))
        step = draw(st.integers(1, 20))
        span = draw(st.integers(1, step))
        gaps = draw(st.lists(st.integers(0, 30), min_size=count, max_size=count))
        lengths = draw(st.lists(st.integers(1, 40), min_size=count, max_size=count))
        values = draw(
            st.lists(
                st.floats(-1e6, 1e6, width=32) | st.just(math.nan), min_size=count, max_size=count
            )
        )
        items, runs = [], []
        first = position
        for i in range(count):
            if kind == 1:
                s = position + gaps[i]
                e = s + lengths[i]
                items.append(struct.pack(order + "2If", s, e, values[i]))
            elif kind == 2:
                s = position + gaps[i] + (span if i else 0)
                e = s + span
                items.append(struct.pack(order + "If", s, values[i]))
            else:
                s = first + i * step
                e = s + span
                items.append(struct.pack(order + "f", values[i]))
            runs.append((s, e, values[i]))
            position = e
        header = struct.pack(
            order + "5I2BH", block_chrom, first, position, step, span, kind, 0, count
        )
        ranges.append((len(data), len(data) + 24 + len(b"".join(items))))
        data += header + b"".join(items)
        data += b"\0" * (-len(data) % 4)  # blocks start on word boundaries
        position += draw(st.integers(0, 50))
        if block_chrom == chrom:
            expected += [
                r
                for r in runs
                if any(a < r[1] and r[0] < b for a, b in zip(span_starts, span_ends, strict=True))
            ]
    block_starts = np.array([a for a, _ in ranges], dtype=np.int64)
    block_ends = np.array([b for _, b in ranges], dtype=np.int64)
    return (
        np.frombuffer(bytes(data), dtype=np.uint8),
        block_starts,
        block_ends,
        chrom,
        span_starts,
        span_ends,
        big_endian,
        expected,
    )


@settings(max_examples=300, deadline=None)
@given(bigwig_blocks())
def test_decode_bigwig_blocks__matches_naive_and_hand_made_runs(case: tuple) -> None:
    *args, expected = case
    starts, ends, values = decode_bigwig_blocks(*args)
    assert (starts.dtype, ends.dtype, values.dtype) == (np.int64, np.int64, np.float32)
    naive = naive_decode_bigwig_blocks(*args)
    for got, want in zip((starts, ends, values), naive, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(starts, [r[0] for r in expected])
    np.testing.assert_array_equal(ends, [r[1] for r in expected])
    np.testing.assert_array_equal(values, np.array([r[2] for r in expected], dtype=np.float32))


def test_decode_bigwig_blocks__hand_checked_sections() -> None:
    # One block of each type on chromosome 0; spans [0, 12) and [40, 1000).
    blocks = [
        struct.pack("<5I2BH", 0, 0, 30, 0, 0, 1, 0, 2) + struct.pack("<2If2If", 0, 5, 1, 10, 30, 2),
        struct.pack("<5I2BH", 0, 30, 60, 0, 10, 2, 0, 2) + struct.pack("<IfIf", 30, 3, 45, 4),
        struct.pack("<5I2BH", 0, 60, 80, 10, 5, 3, 0, 2) + struct.pack("<2f", 5, 6),
    ]
    data = np.frombuffer(b"".join(blocks), dtype=np.uint8)
    bounds = np.cumsum([0] + [len(b) for b in blocks])
    starts, ends, values = decode_bigwig_blocks(
        data, bounds[:-1], bounds[1:], 0, np.array([0, 40]), np.array([12, 1000])
    )
    np.testing.assert_array_equal(starts, [0, 10, 45, 60, 70])
    np.testing.assert_array_equal(ends, [5, 30, 55, 65, 75])
    np.testing.assert_array_equal(values, [1, 2, 4, 5, 6])


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (struct.pack("<5I2BH", 0, 0, 10, 0, 0, 7, 0, 0), "section type"),
        (struct.pack("<5I2BH", 0, 0, 10, 0, 0, 1, 0, 99), "shorter"),
        (b"\0" * 12, "shorter"),
    ],
    ids=["unknown-type", "count-past-end", "no-header"],
)
def test_decode_bigwig_blocks__corrupt_block_raises(header: bytes, match: str) -> None:
    data = np.frombuffer(header, dtype=np.uint8)
    with pytest.raises(ValueError, match=match):
        decode_bigwig_blocks(
            data, np.array([0]), np.array([len(header)]), 0, np.array([0]), np.array([10])
        )
