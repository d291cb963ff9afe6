"""The paper's scale on the synthetic compendium: synthesize and build, time and peak memory.

    python benchmarks/bench_paper_scale.py [--cell-types 56] [--workers 2] [--dir /tmp/paper]

17,951 genes x 5 marks x N cell types on hg19-sized chromosomes (chr1-22): writes the
compendium (FASTA of 2.9 Gbp, 5 N bigWigs), then ``pitfall build`` of the expression cube
(signal, labels, 2 kbp sequence). Prints wall time, peak RSS of this process and of the
largest Dask worker, and the cube's size on disk.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

from pitfall import cube, featurize, synth


def _peak_gib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell-types", type=int, default=56)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/pitfall-paper-scale"))
    ap.add_argument("--keep", action="store_true", help="keep the compendium and cube")
    args = ap.parse_args()
    if args.dir.exists():
        shutil.rmtree(args.dir)
    t0 = time.perf_counter()
    comp = synth.synthesize(args.dir / "comp", "paper", n_cell_types=args.cell_types,
                            workers=args.workers)  # fmt: skip
    t_synth = time.perf_counter() - t0
    disk = sum(f.stat().st_size for f in (args.dir / "comp").rglob("*") if f.is_file())
    print(f"synthesize: {t_synth:.0f} s, {comp.params.n_genes:,} genes x "
          f"{len(comp.cell_types)} cell types x {len(comp.marks)} marks, "
          f"{cube.human_bytes(disk)} on disk")  # fmt: skip
    t0 = time.perf_counter()
    summary = featurize.build(comp.manifest, args.dir / "cube", workers=args.workers,
                              progress=False)  # fmt: skip
    t_build = time.perf_counter() - t0
    info = cube.cube_info(args.dir / "cube")
    print(f"build: {t_build:.0f} s with {args.workers} workers; cube "
          f"{cube.human_bytes(info['bytes_on_disk'])} on disk; {summary.n_loci:,} loci")  # fmt: skip
    print(f"peak RSS: this process {_peak_gib(resource.RUSAGE_SELF):.2f} GiB, largest "
          f"worker {_peak_gib(resource.RUSAGE_CHILDREN):.2f} GiB")  # fmt: skip
    if not args.keep:
        shutil.rmtree(args.dir)


if __name__ == "__main__":
    main()
