"""The codec of the cube's ``sequence``: zarr's default (the anchor) against pitfall's.

Run: ``python benchmarks/bench_sequence_codec.py``

The demo preset's sequence (3,000 loci x 2,000 bp of codes A=0 C=1 G=2 T=3 N=4, from the
synthetic genome, read as a build reads it) is written to and read from an in-memory zarr
array of one chunk, as a build's sequence task writes it and a loader reads it: with zarr's
default compressor (zstd, the anchor) and with :data:`pitfall.schema.SEQUENCE_COMPRESSORS`
(Blosc-zstd over bit-shuffled bytes), and with that codec written as
:func:`pitfall._transaction.write_regions` writes, without zarr's check that a chunk is all
fill value (``write_empty_chunks``). Medians of ``REPEATS``; the machine load is printed
first: compare ratios measured in one run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.storage

sys.path.insert(0, str(Path(__file__).parent))
from bench_kernels import median_seconds  # noqa: E402

REPEATS = 9


def demo_sequence(work: Path) -> np.ndarray:
    """Codes of the demo preset's loci, shape (loci, bp), read as a build reads them."""
    from pitfall import synth
    from pitfall.featurize import jobs, load, plan

    comp = synth.synthesize(work / "demo", "demo", n_cell_types=1, workers=0)
    m = load(comp.manifest)
    loci, _ = plan.plan_loci(m)
    return jobs.sequence_codes(m.fasta, loci.block(0, len(loci)), plan.sequence_length(m))


def measure(codes: np.ndarray, compressors: Any, skip_fill_check: bool = False) -> dict[str, float]:
    def array() -> zarr.Array:
        return zarr.create_array(zarr.storage.MemoryStore(), shape=codes.shape,
                                 chunks=codes.shape, dtype=np.uint8, fill_value=0,
                                 compressors=compressors,
                                 config={"write_empty_chunks": skip_fill_check})  # fmt: skip

    arr = array()
    arr[:] = codes
    assert np.array_equal(arr[:], codes)
    stored = sum(
        len(v.to_bytes()) for k, v in arr.store._store_dict.items() if not k.endswith(".json")
    )
    fresh = [array() for _ in range(REPEATS + 1)]

    def write() -> None:
        fresh.pop()[:] = codes

    return {
        "write": median_seconds(write, REPEATS),
        "read": median_seconds(lambda: arr[:], REPEATS),
        "bytes": stored,
    }


def main() -> None:
    warnings.simplefilter("ignore")
    from pitfall.schema import SEQUENCE_COMPRESSORS

    print(f"machine load: {os.getloadavg()}")
    codes = demo_sequence(Path(tempfile.mkdtemp(prefix="bench-sequence-codec-")))
    print(
        f"sequence: {codes.shape[0]:,} loci x {codes.shape[1]:,} bp ({codes.nbytes / 1e6:.1f} MB)"
    )
    anchor = measure(codes, "auto")
    ours = measure(codes, SEQUENCE_COMPRESSORS)
    build = measure(codes, SEQUENCE_COMPRESSORS, skip_fill_check=True)
    print(f"  {'':<34} {'write':>9} {'read':>9} {'stored':>12}")
    for name, r in (
        ("zarr default (zstd; anchor)", anchor),
        ("pitfall (blosc-zstd, bitshuffle)", ours),
        ("  + no all-fill check, as builds", build),
    ):
        print(
            f"  {name:<34} {r['write'] * 1e3:7.1f}ms {r['read'] * 1e3:7.1f}ms {r['bytes']:>10,} B"
        )
    print(
        f"  pitfall / anchor: write x{ours['write'] / anchor['write']:.2f}, "
        f"read x{ours['read'] / anchor['read']:.2f}, bytes x{ours['bytes'] / anchor['bytes']:.2f}"
    )
    print(f"  as builds write it / anchor: write x{build['write'] / anchor['write']:.2f}")


if __name__ == "__main__":
    main()
