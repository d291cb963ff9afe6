"""CTCF binding on real labels: the 14.4-million-bin cube and a baseline per held-out line.

    python pipelines/real_ctcf.py ../shared/data --out out/real [--labels summit|overlap|dream]
        [--workers 2]

Loci: 200 bp bins of chr1-22 (14,405,178); a bin is bound when a conservative IDR peak
summit falls in it (``--labels summit``, the default) or a peak overlaps it (``overlap``),
in seven ENCODE cell lines. ``--labels dream``: the ENCODE-DREAM challenge's conventions,
200 bp bins every 50 bp (57,620,610), bound where a conservative peak overlaps the bin,
NaN where only a relaxed peak does or the blacklist overlaps it
(:func:`pitfall.datasets.ctcf.dream_manifest`). The files hold no peaks on chr1, chr8 and
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

from pitfall import baselines, cube, datasets, featurize, splits
from pitfall.datasets import ctcf
from pitfall.genome import AUTOSOMES

#: Manifest writers of the non-default labellings, by ``--labels``.
LABELS = {
    "overlap": lambda data, out: ctcf.manifest_from_folder(data, out, rule="overlap"),
    "dream": ctcf.dream_manifest,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="folder with ctcf/ (as ../shared/data)")
    ap.add_argument("--out", type=Path, default=Path("out/real"))
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--labels", choices=["summit", *LABELS], default="summit")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.labels == "summit":
        store = datasets.build_from_folder("ctcf", args.data, args.out, workers=args.workers)
    else:
        name = f"ctcf_{args.labels}"
        store = args.out / "store" / name
        featurize.ensure_built(
            lambda: LABELS[args.labels](args.data, args.out / "manifests" / name),
            store,
            workers=args.workers,
        )
    ds = cube.open_cube(store)
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
    suffix = "" if args.labels == "summit" else f"_{args.labels}"
    path = args.out / "results" / f"real_ctcf{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"\n{ds.sizes['locus']:,} bins x {len(lines)} lines; build/open {t_build:.0f} s, total "
        f"{time.perf_counter() - t0:.0f} s, peak RSS of this process {peak:.1f} GiB; {path}"
    )


if __name__ == "__main__":
    main()
