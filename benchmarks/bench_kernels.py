"""Benchmark the kernels against the usual alternatives; ratios are measured in one run.

Run: ``.venv/bin/python benchmarks/bench_kernels.py``

1. One-hot: ``pitfall.kernels.one_hot_dna`` (text straight to rows, one fused kernel) vs a
   tangermeme-style Numba loop (the anchor) vs a numpy lookup table, for float32 and int8,
   end to end (text -> one-hot); and codes -> one-hot alone.
2. Window means over a 50 Mbp bigWig (dense: 18,000 windows cover most of it):
   ``pitfall.sources.bigwig.window_means`` (reading included) with each backend vs pyBigWig
   exact per-window stats vs pybigtools ``average_over_bed`` (the anchor), then where the
   builtin reader's time goes.
3. FASTA windows: ``pitfall.sources.fasta.window_codes`` (the file's bytes in place, one
   kernel walking the lines) vs pyfaidx slices, reverse-complemented by pyfaidx on the minus
   strand, then ``encode_dna`` (the anchor): 20,000 windows of 2 kbp, random strands, on a
   20 Mbp record in 60-letter lines with lowercase and N runs.

The machine load (``os.getloadavg``) is printed first: on a shared machine, compare ratios
measured in one run, not seconds across runs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import pybigtools
import pyBigWig

from pitfall import kernels
from pitfall.sources import bigwig
from pitfall.sources.bigwig.blocks import decode_bigwig_blocks
from pitfall.sources.bigwig.format import Inflater
from pitfall.sources.bigwig.windows import covering_spans

REPEATS = 5


def median_seconds(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Median wall time of ``repeats`` calls, after one warm-up call (JIT, file cache)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int = REPEATS
) -> dict[str, float]:
    """Median seconds of each function, calls interleaved so load drift hits all alike."""
    for fn in fns.values():
        fn()  # warm-up: JIT, page cache
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def report(title: str, timings: dict[str, float], ratios: bool = True) -> None:
    """Print timings; the first entry is ours and the others get the ratio ours/this."""
    ours_name = next(iter(timings))
    ours = timings[ours_name]
    print(f"\n{title}")
    for name, seconds in timings.items():
        show = ratios and name != ours_name
        ratio = f"   ours/this = {ours / seconds:6.3f}" if show else ""
        print(f"  {name:44s} {seconds * 1e3:10.2f} ms{ratio}")


# --------------------------------------------------------------------------- one-hot


@numba.njit("void(int8[:, :], int8[:], int8[:])", cache=True)
def _tangermeme_fast_one_hot_encode(x_ohe, seq, mapping):  # pragma: no cover - benchmark
    # Modelled on tangermeme.utils._fast_one_hot_encode: a per-character lookup of ord values,
    # -1 = ignored (all-zero row), -2 = unknown character.
    for i in range(len(seq)):
        idx = mapping[seq[i]]
        if idx == -1:
            continue
        if idx == -2:
            raise ValueError("Encountered character that is not in `alphabet` or in `ignore`.")
        x_ohe[i, idx] = 1


_TANGERMEME_MAPPING = np.full(256, -1, dtype=np.int8)  # ignore everything but ACGT, like N
for _i, _c in enumerate("ACGT"):
    _TANGERMEME_MAPPING[ord(_c)] = _i


def tangermeme_one_hot(sequence: str, dtype: type = np.float32) -> np.ndarray:
    """tangermeme's ``one_hot_encode`` minus torch: (L, 4) int8, then cast to ``dtype``."""
    seq_idxs = np.frombuffer(bytearray(sequence, "utf8"), dtype=np.int8)
    one_hot = np.zeros((len(sequence), 4), dtype=np.int8)
    _tangermeme_fast_one_hot_encode(one_hot, seq_idxs, _TANGERMEME_MAPPING)
    return one_hot if dtype == np.int8 else one_hot.astype(dtype)


_EYE = np.eye(5, 4, dtype=np.float32)
_ASCII_LUT = np.full(256, 4, dtype=np.uint8)
for _i, _c in enumerate("ACGT"):
    _ASCII_LUT[ord(_c)] = _ASCII_LUT[ord(_c.lower())] = _i


def numpy_one_hot_from_text(sequence: str) -> np.ndarray:
    return _EYE[_ASCII_LUT[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]]


def ours_one_hot_from_text(sequence: str) -> np.ndarray:
    return kernels.one_hot_dna(sequence)


def two_step_one_hot_from_text(sequence: str, dtype: type = np.float32) -> np.ndarray:
    return kernels.one_hot(kernels.encode_dna(sequence), dtype)


def bench_one_hot() -> None:
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    p = [0.2475, 0.2475, 0.2475, 0.2475, 0.01]
    batch_codes = rng.choice(5, size=(1_000, 2_000), p=p).astype(np.uint8)
    batch_text = [letters[row].tobytes().decode() for row in batch_codes]
    long_codes = rng.choice(5, size=10_000_000, p=p).astype(np.uint8)
    long_text = letters[long_codes].tobytes().decode()

    # They must agree before their speed means anything.
    for text in (batch_text[0], long_text[:100_000]):
        ours = ours_one_hot_from_text(text)
        assert np.array_equal(ours, tangermeme_one_hot(text))
        assert np.array_equal(ours, numpy_one_hot_from_text(text))
        assert np.array_equal(ours, two_step_one_hot_from_text(text))
        assert np.array_equal(kernels.one_hot_dna(text, np.int8), tangermeme_one_hot(text, np.int8))

    report(
        "one-hot, text -> float32 (L, 4), 1,000 x 2,000 bp, one call per sequence",
        {
            "pitfall one_hot_dna (fused)": median_seconds(
                lambda: [ours_one_hot_from_text(s) for s in batch_text]
            ),
            "tangermeme-style numba (int8 -> float32)": median_seconds(
                lambda: [tangermeme_one_hot(s) for s in batch_text]
            ),
            "pitfall encode_dna + one_hot (two steps)": median_seconds(
                lambda: [two_step_one_hot_from_text(s) for s in batch_text]
            ),
            "numpy lookup eye(5, 4)[codes]": median_seconds(
                lambda: [numpy_one_hot_from_text(s) for s in batch_text]
            ),
        },
    )
    report(
        "one-hot, text -> int8 (L, 4), 1,000 x 2,000 bp (tangermeme's native dtype)",
        {
            "pitfall one_hot_dna(int8) (fused)": median_seconds(
                lambda: [kernels.one_hot_dna(s, np.int8) for s in batch_text]
            ),
            "tangermeme-style numba (int8)": median_seconds(
                lambda: [tangermeme_one_hot(s, np.int8) for s in batch_text]
            ),
            "pitfall encode_dna + one_hot(int8) (two steps)": median_seconds(
                lambda: [two_step_one_hot_from_text(s, np.int8) for s in batch_text]
            ),
        },
    )
    report(
        "one-hot, text -> float32 (L, 4), one 10 Mbp sequence",
        {
            "pitfall one_hot_dna (fused)": median_seconds(
                lambda: ours_one_hot_from_text(long_text)
            ),
            "tangermeme-style numba (int8 -> float32)": median_seconds(
                lambda: tangermeme_one_hot(long_text)
            ),
            "pitfall encode_dna + one_hot (two steps)": median_seconds(
                lambda: two_step_one_hot_from_text(long_text)
            ),
            "numpy lookup eye(5, 4)[codes]": median_seconds(
                lambda: numpy_one_hot_from_text(long_text)
            ),
        },
    )
    report(
        "one-hot, text -> int8 (L, 4), one 10 Mbp sequence",
        {
            "pitfall one_hot_dna(int8) (fused)": median_seconds(
                lambda: kernels.one_hot_dna(long_text, np.int8)
            ),
            "tangermeme-style numba (int8)": median_seconds(
                lambda: tangermeme_one_hot(long_text, np.int8)
            ),
        },
    )
    out = np.empty((*batch_codes.shape, 4), dtype=np.float32)
    report(
        "one-hot, codes -> float32, batch (1,000, 2,000) uint8 in one call",
        {
            "pitfall one_hot": median_seconds(lambda: kernels.one_hot(batch_codes)),
            "pitfall one_hot(out=buffer)": median_seconds(
                lambda: kernels.one_hot(batch_codes, out=out)
            ),
            "numpy lookup eye(5, 4)[codes]": median_seconds(lambda: _EYE[batch_codes]),
            "naive_one_hot (codes == arange(4))": median_seconds(
                lambda: kernels.naive_one_hot(batch_codes)
            ),
        },
    )
    report(
        "one-hot, codes -> float32, one 10 Mbp sequence",
        {
            "pitfall one_hot": median_seconds(lambda: kernels.one_hot(long_codes)),
            "numpy lookup eye(5, 4)[codes]": median_seconds(lambda: _EYE[long_codes]),
        },
    )
    report(
        "reverse complement, codes, batch (1,000, 2,000) uint8",
        {
            "pitfall reverse_complement": median_seconds(
                lambda: kernels.reverse_complement(batch_codes)
            ),
            "naive_reverse_complement (numpy)": median_seconds(
                lambda: kernels.naive_reverse_complement(batch_codes)
            ),
        },
    )


# --------------------------------------------------------------------------- window means

CHROM, CHROM_SIZE = "chr1", 50_000_000
N_WINDOWS, WINDOW = 18_000, 2_000


def write_track(path: Path, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """A p-value-like track: runs of 20-200 bp, ~10% of them left out as gaps."""
    lengths = rng.integers(20, 201, CHROM_SIZE // 50)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    keep = (ends <= CHROM_SIZE) & (rng.random(starts.size) > 0.1)
    starts, ends = starts[keep], ends[keep]
    values = rng.exponential(1.0, starts.size).astype(np.float32)
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(CHROM, CHROM_SIZE)])
    bw.addEntries(
        [CHROM] * starts.size, starts.tolist(), ends=ends.tolist(), values=values.tolist()
    )
    bw.close()
    return starts, ends, values


def builtin_stages(
    path: Path, chrom: str, win_starts: np.ndarray, win_ends: np.ndarray
) -> dict[str, Callable[[], object]]:
    """The builtin reader's pipeline split into stages, each timed on its own."""
    reader = bigwig.BigWigReader(path)
    size = reader.chroms()[chrom]
    lo, hi = kernels.clip_windows(win_starts, win_ends, size)
    span_starts, span_ends = covering_spans(lo, hi)
    cid = reader.chrom_ids[chrom]
    offsets, sizes = reader.blocks(cid, span_starts, span_ends)
    cap = (reader.uncompress_buf_size + 3) // 4 * 4
    data = np.empty(offsets.size * cap, dtype=np.uint8)
    block_starts = np.arange(offsets.size, dtype=np.int64) * cap
    block_ends = block_starts.copy()

    def inflate(use_libdeflate: bool) -> Callable[[], object]:
        def run() -> None:
            src = reader._bytes_at(0, reader.file_size)
            inflater = Inflater(use_libdeflate)
            for i, (o, n) in enumerate(zip(offsets.tolist(), sizes.tolist(), strict=True)):
                at = int(block_starts[i])
                block_ends[i] = at + inflater.into(src, o, o + n, data, at, cap)
            inflater.close()

        return run

    inflate(True)()
    runs = decode_bigwig_blocks(data, block_starts, block_ends, cid, span_starts, span_ends)

    def sums() -> None:
        out = np.zeros(lo.size)
        kernels.add_window_arcsinh_sums(*runs, lo, hi, out)

    return {
        f"index walk ({offsets.size} of the chromosome's blocks)": lambda: reader.blocks(
            cid, span_starts, span_ends
        ),
        "read + inflate, libdeflate": inflate(True),
        "read + inflate, zlib": inflate(False),
        f"decode blocks, keep runs in windows ({runs[0].size:,})": lambda: decode_bigwig_blocks(
            data, block_starts, block_ends, cid, span_starts, span_ends
        ),
        "arcsinh window sums": sums,
    }


def bench_window_means() -> None:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "track.bw"
        starts, ends, values = write_track(path, rng)
        win_starts = np.sort(rng.integers(0, CHROM_SIZE - WINDOW, N_WINDOWS))
        win_ends = win_starts + WINDOW
        bed = Path(tmp) / "windows.bed"
        bed.write_text(
            "".join(f"{CHROM}\t{s}\t{e}\n" for s, e in zip(win_starts, win_ends, strict=True))
        )
        print(
            f"\nwindow means: {CHROM_SIZE / 1e6:.0f} Mbp bigWig, {starts.size:,} runs, "
            f"{N_WINDOWS:,} windows of {WINDOW} bp"
        )

        naive = kernels.naive_window_arcsinh_means(
            starts, ends, values, win_starts, win_ends, CHROM_SIZE
        )
        for backend in bigwig.BACKENDS:
            ours = bigwig.window_means(path, CHROM, win_starts, win_ends, backend=backend)
            print(
                f"  {backend:10s} vs naive per-base arcsinh mean: max abs error "
                f"{np.abs(ours - naive).max():.3g}, max rel error "
                f"{(np.abs(ours - naive) / np.maximum(np.abs(naive), 1e-30)).max():.3g}"
            )

        def pybigwig_exact_stats() -> list:
            with pyBigWig.open(str(path)) as bw:
                return [
                    bw.stats(CHROM, int(s), int(e), type="mean", exact=True)[0]
                    for s, e in zip(win_starts, win_ends, strict=True)
                ]

        def pybigtools_average_over_bed() -> list:
            with pybigtools.open(str(path)) as bw:
                return list(bw.average_over_bed(str(bed), stats="mean0"))

        def ours(backend: str, **kw: object) -> Callable[[], object]:
            def run() -> object:
                with bigwig.open_bigwig(path, backend, **kw) as handle:
                    return bigwig.window_means(handle, CHROM, win_starts, win_ends)

            return run

        report(
            "window means (reading included; the two baselines give raw means, not arcsinh; "
            "interleaved)",
            interleaved_medians(
                {
                    "pitfall window_means (builtin reader)": ours("builtin"),
                    "pybigtools average_over_bed (mean0)": pybigtools_average_over_bed,
                    "pitfall window_means (builtin, zlib)": ours("builtin", use_libdeflate=False),
                    "pitfall window_means (pybigtools reader)": ours("pybigtools"),
                    "pitfall window_means (pyBigWig reader)": ours("pyBigWig"),
                }
            ),
        )
        report(
            "window means, reference (not interleaved: one slow call per window)",
            {
                "pitfall window_means (builtin reader)": median_seconds(ours("builtin")),
                "pyBigWig stats(exact=True) per window": median_seconds(pybigwig_exact_stats),
            },
        )
        # Tiling bins: every base of the track in exactly one window.
        bins = np.arange(0, CHROM_SIZE, WINDOW)
        bins_bed = Path(tmp) / "bins.bed"
        bins_bed.write_text("".join(f"{CHROM}\t{s}\t{s + WINDOW}\n" for s in bins))
        naive_bins = kernels.naive_window_arcsinh_means(
            starts, ends, values, bins, bins + WINDOW, CHROM_SIZE
        )
        ours_bins = bigwig.window_means(path, CHROM, bins, bins + WINDOW)
        print(
            f"\ntiling bins: {bins.size:,} bins of {WINDOW} bp; builtin vs naive: max abs error "
            f"{np.abs(ours_bins - naive_bins).max():.3g}"
        )

        def bins_anchor() -> list:
            with pybigtools.open(str(path)) as bw:
                return list(bw.average_over_bed(str(bins_bed), stats="mean0"))

        report(
            "window means over tiling bins (interleaved)",
            interleaved_medians(
                {
                    "pitfall window_means (builtin reader)": lambda: bigwig.window_means(
                        path, CHROM, bins, bins + WINDOW
                    ),
                    "pybigtools average_over_bed (mean0)": bins_anchor,
                }
            ),
        )
        report(
            "where the builtin reader's time goes",
            {
                name: median_seconds(fn)
                for name, fn in builtin_stages(path, CHROM, win_starts, win_ends).items()
            },
            ratios=False,
        )


def bench_fasta_windows() -> None:
    import pyfaidx

    from pitfall.sources import fasta

    rng = np.random.default_rng(2)
    size, n, length = 20_000_000, 20_000, 2_000
    seq = np.frombuffer(b"ACGTacgtN", np.uint8)[rng.integers(0, 9, size)].tobytes().decode()
    path = Path(tempfile.mkdtemp(prefix="bench-fasta-")) / "genome.fa"
    path.write_text(">chr1\n" + "\n".join(seq[i : i + 60] for i in range(0, size, 60)) + "\n")
    starts = np.sort(rng.integers(-100, size - length + 100, n))
    strands = rng.choice(np.array(["+", "-"], dtype=object), n)

    def ours() -> np.ndarray:
        return fasta.window_codes(path, "chr1", starts, starts + length, strands)

    def pyfaidx_slices() -> np.ndarray:
        fa = pyfaidx.Fasta(str(path), sequence_always_upper=False)
        rec, out = fa["chr1"], np.full((n, length), kernels.CODE_N, np.uint8)
        for i, (s, strand) in enumerate(zip(starts.tolist(), strands, strict=True)):
            a, b = max(s, 0), min(s + length, size)
            part = rec[a:b]
            text = (-part).seq if strand == "-" else part.seq  # -: reverse complement
            at = (s + length - b) if strand == "-" else (a - s)
            out[i, at : at + len(text)] = kernels.encode_dna(text)
        fa.close()
        return out

    assert np.array_equal(ours(), pyfaidx_slices())
    report(
        f"FASTA windows: {n:,} x {length:,} bp on a {size // 1_000_000} Mbp record",
        interleaved_medians(
            {"pitfall fasta.window_codes": ours, "pyfaidx + encode_dna": pyfaidx_slices}
        ),
    )


if __name__ == "__main__":
    print(f"medians of {REPEATS} repeats after one warm-up; 'ours/this' < 1 means ours is faster")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    bench_one_hot()
    bench_window_means()
    bench_fasta_windows()
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
