"""Benchmark the kernels against the usual alternatives; ratios are measured in one run.

Run: ``/work/venv/bin/python benchmarks/bench_kernels.py``

1. One-hot: ``pitfall.kernels`` vs a tangermeme-style Numba loop vs a numpy lookup table,
   end to end (text -> one-hot) and codes -> one-hot alone.
2. Window means over a 50 Mbp bigWig: ``pitfall.sources.bigwig.window_means`` (reading
   included) vs pyBigWig exact per-window stats vs pybigtools ``average_over_bed``.
"""

from __future__ import annotations

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
    return kernels.one_hot(kernels.encode_dna(sequence))


def bench_one_hot() -> None:
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    p = [0.2475, 0.2475, 0.2475, 0.2475, 0.01]
    batch_codes = rng.choice(5, size=(1_000, 2_000), p=p).astype(np.uint8)
    batch_text = [letters[row].tobytes().decode() for row in batch_codes]
    long_codes = rng.choice(5, size=10_000_000, p=p).astype(np.uint8)
    long_text = letters[long_codes].tobytes().decode()

    # The three must agree before their speed means anything.
    for text in (batch_text[0], long_text[:100_000]):
        ours = ours_one_hot_from_text(text)
        assert np.array_equal(ours, tangermeme_one_hot(text))
        assert np.array_equal(ours, numpy_one_hot_from_text(text))

    report(
        "one-hot, text -> float32 (L, 4), 1,000 x 2,000 bp, one call per sequence",
        {
            "pitfall encode_dna + one_hot": median_seconds(
                lambda: [ours_one_hot_from_text(s) for s in batch_text]
            ),
            "tangermeme-style numba (int8 -> float32)": median_seconds(
                lambda: [tangermeme_one_hot(s) for s in batch_text]
            ),
            "numpy lookup eye(5, 4)[codes]": median_seconds(
                lambda: [numpy_one_hot_from_text(s) for s in batch_text]
            ),
        },
    )
    report(
        "one-hot, text -> int8 (L, 4), 1,000 x 2,000 bp (tangermeme's native dtype)",
        {
            "pitfall encode_dna + one_hot(int8)": median_seconds(
                lambda: [kernels.one_hot(kernels.encode_dna(s), np.int8) for s in batch_text]
            ),
            "tangermeme-style numba (int8)": median_seconds(
                lambda: [tangermeme_one_hot(s, np.int8) for s in batch_text]
            ),
        },
    )
    report(
        "one-hot, text -> float32 (L, 4), one 10 Mbp sequence",
        {
            "pitfall encode_dna + one_hot": median_seconds(
                lambda: ours_one_hot_from_text(long_text)
            ),
            "tangermeme-style numba (int8 -> float32)": median_seconds(
                lambda: tangermeme_one_hot(long_text)
            ),
            "numpy lookup eye(5, 4)[codes]": median_seconds(
                lambda: numpy_one_hot_from_text(long_text)
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

        ours = bigwig.window_means(path, CHROM, win_starts, win_ends)
        naive = kernels.naive_window_arcsinh_means(
            starts, ends, values, win_starts, win_ends, CHROM_SIZE
        )
        rel = np.abs(ours - naive) / np.maximum(np.abs(naive), 1e-30)
        print(
            f"  ours vs naive per-base arcsinh mean: max abs error {np.abs(ours - naive).max():.3g}"
        )
        print(f"                                       max rel error {rel.max():.3g}")
        ours_pbt = bigwig.window_means(path, CHROM, win_starts, win_ends, backend="pybigtools")
        print(f"  backend pyBigWig == pybigtools: {np.array_equal(ours, ours_pbt)}")

        def pybigwig_exact_stats() -> list:
            with pyBigWig.open(str(path)) as bw:
                return [
                    bw.stats(CHROM, int(s), int(e), type="mean", exact=True)[0]
                    for s, e in zip(win_starts, win_ends, strict=True)
                ]

        def pybigtools_average_over_bed() -> list:
            with pybigtools.open(str(path)) as bw:
                return list(bw.average_over_bed(str(bed), stats="mean0"))

        def read_only(backend: str) -> Callable[[], object]:
            return lambda: bigwig.read_runs(
                path, CHROM, int(win_starts.min()), int(win_ends.max()), backend=backend
            )

        report(
            "window means (reading included; the two baselines give raw means, not arcsinh)",
            {
                "pitfall window_means (pyBigWig reader)": median_seconds(
                    lambda: bigwig.window_means(path, CHROM, win_starts, win_ends)
                ),
                "pitfall window_means (pybigtools reader)": median_seconds(
                    lambda: bigwig.window_means(
                        path, CHROM, win_starts, win_ends, backend="pybigtools"
                    )
                ),
                "pyBigWig stats(exact=True) per window": median_seconds(pybigwig_exact_stats),
                "pybigtools average_over_bed (mean0)": median_seconds(pybigtools_average_over_bed),
            },
        )
        report(
            "where the time goes",
            {
                "read_runs, pyBigWig (whole chromosome)": median_seconds(read_only("pyBigWig")),
                "read_runs, pybigtools (whole chromosome)": median_seconds(read_only("pybigtools")),
                "window_arcsinh_means kernel alone": median_seconds(
                    lambda: kernels.window_arcsinh_means(
                        starts, ends, values, win_starts, win_ends, CHROM_SIZE
                    )
                ),
            },
            ratios=False,
        )


if __name__ == "__main__":
    print(f"medians of {REPEATS} repeats after one warm-up; 'ours/this' < 1 means ours is faster")
    bench_one_hot()
    bench_window_means()
