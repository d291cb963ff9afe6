"""CTCF binding on real labels: the 14.4-million-bin cube and a baseline per held-out line.

    python pipelines/real_ctcf.py ../shared/data --out out/real [--workers 2]

Loci: 200 bp bins of chr1-22 (14,405,178); a bin is bound when a conservative IDR peak
summit falls in it, in seven ENCODE cell lines. The files hold no peaks on chr1, chr8 and
chr21 (held out by the ENCODE-DREAM challenge they come from), so those bins are NaN.
For every line held out in turn: AP of the average of the other six, of each other line
alone, and of random (a most-similar line would have to be chosen by the held-out line's
own labels, which no model sees: this cube has no signal to compare lines on). Everything
is reduced chunk by chunk from the cube.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import pandas as pd

from pitfall import baselines, cube, datasets, splits
from pitfall.genome import AUTOSOMES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="folder with ctcf/ (as ../shared/data)")
    ap.add_argument("--out", type=Path, default=Path("out/real"))
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = cube.open_cube(
        datasets.build_from_folder("ctcf", args.data, args.out, workers=args.workers)
    )
    t_build = time.perf_counter() - t0
    lines = [str(c) for c in ds.cell_type.values]
    chroms = AUTOSOMES
    tables = []
    for target in lines:
        others = tuple(c for c in lines if c != target)
        split = splits.Split(others, chroms, (), (), (target,), chroms, setting="cross-cell-type")
        table = baselines.baseline_table(ds, split, single_cell_types=others)
        tables.append(table)
        avg = table.loc[table.predictor == "average activity", "ap"].iloc[0]
        singles = table.loc[table.predictor.str.endswith(" alone"), "ap"]
        print(
            f"{target:>8}: average of others {avg:.3f}; single lines "
            f"{singles.min():.3f}-{singles.max():.3f}",
            flush=True,
        )
    table = pd.concat(tables, ignore_index=True)
    wide = table.pivot_table(index="predictor", columns="cell_type", values="ap")
    print("\nAP per held-out cell line (columns) and predictor (rows)")
    print(wide.to_string(float_format=lambda x: f"{x:.3f}", na_rep=""))
    path = args.out / "results" / "real_ctcf.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"\n{ds.sizes['locus']:,} bins x {len(lines)} lines; build/open {t_build:.0f} s, total "
        f"{time.perf_counter() - t0:.0f} s, peak RSS of this process {peak:.1f} GiB; {path}"
    )


if __name__ == "__main__":
    main()
