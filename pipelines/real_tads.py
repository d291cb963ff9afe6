"""TAD boundaries on real labels: build the 40 kb bin cube and score the baselines for hESC.

    python pipelines/real_tads.py ../shared/data --out out/real

Loci: 40 kb bins of chr1-22; a bin is a boundary in a cell type when one of its domains
starts or ends in it (seven domain lists: Dixon 2012 hESC and IMR90, Rao 2014 Arrowhead
GM12878, HUVEC, K562, NHEK, IMR90). The paper's TAD splits: cross-cell-type trains the
other lines on chr2-3 (GM12878 validates), hybrid tests hESC on chr1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pitfall import baselines, cube, datasets, tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="folder with tads/ and ctcf/ (as ../shared/data)")
    ap.add_argument("--out", type=Path, default=Path("out/real"))
    ap.add_argument("--target", default="hESC")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = cube.open_cube(datasets.build_from_folder("tads", args.data, args.out))
    results = {}
    for setting in ("cross-cell-type", "hybrid"):
        split = tasks.get_task("tad").split(ds, setting, args.target)
        table = baselines.baseline_table(ds, split, single_cell_types=["IMR90"])
        print(
            f"\n{setting} (target {args.target}; train {', '.join(split.train_cell_types)} on "
            f"{', '.join(split.train_chroms)}; test {', '.join(split.test_chroms)}; "
            f"leakage {split.leakage(ds):.0%})"
        )
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        results[setting] = table.to_dict(orient="records")
    path = args.out / "results" / "real_tads.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(
        f"\n{ds.sizes['locus']:,} bins x {ds.sizes['cell_type']} cell types; results in {path} "
        f"({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
