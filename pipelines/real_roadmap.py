"""Roadmap expression on real labels: build the cube and score the baselines for H1 (E003).

    python pipelines/real_roadmap.py ../shared/data --out out/real

Loci: 2 kbp upstream of each GENCODE v10 TSS on chr1-22 that the RPKM table quantifies;
labels RPKM > 0.5 in the 56 epigenomes other than E000; no signal or sequence. Scores, for
target E003: the average activity of the other epigenomes, E047 (CD8 naive) alone, random.
(No most-similar epigenome: choosing it by E003's own RPKM would read what a hybrid model
never sees, and this cube has no signal to compare epigenomes on.)

With ``--impute MARK`` on a folder ``pitfall fetch roadmap`` filled, it builds instead the
imputation cube of the fetched consolidated signal (``--bin-size`` bins over ``--chroms``,
default the last two fetched chromosomes) and imputes MARK of the target across cell types
and on the first of those chromosomes (hybrid)::

    python pipelines/real_roadmap.py DEST --impute H3K4me3 --chroms chr21 chr22 --size quick
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pitfall import baselines, cube, datasets, featurize, splits, tasks
from pitfall.datasets import roadmap
from pitfall.genome import AUTOSOMES


def impute(args: argparse.Namespace) -> None:
    """The imputation figure of a fetched folder's consolidated signal."""
    from pitfall.experiments import imputation
    from pitfall.manifest import load_manifest

    fetched = args.data / roadmap.FETCHED_MANIFEST
    if not fetched.is_file():
        raise SystemExit(f"{fetched}: missing; run `pitfall fetch roadmap --dest {args.data}`")
    chroms = args.chroms or (load_manifest(fetched).chroms or list(AUTOSOMES))[-2:]
    manifest = roadmap.imputation_manifest(
        args.data, args.out / "manifests" / "imputation", chroms=chroms, bin_size=args.bin_size
    )
    store = args.out / "store" / "imputation_fetched"
    featurize.ensure_built(manifest, store, workers=args.workers)
    ds = cube.open_cube(store)
    exp = imputation.make(
        ds, cell_type=args.target, mark=args.impute, size=args.size, test_chroms=chroms[:1],
        say=print,
    )  # fmt: skip
    exp.save(args.out)
    print("\n".join(exp.sentences))
    print(f"{ds.sizes['locus']:,} bins of {args.bin_size} bp on {', '.join(chroms)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="folder with roadmap/ (as ../shared/data)")
    ap.add_argument("--out", type=Path, default=Path("out/real"))
    ap.add_argument("--target", default="E003")
    ap.add_argument(
        "--impute",
        metavar="MARK",
        default=None,
        help="impute MARK of the target from a fetched folder's consolidated signal",
    )
    ap.add_argument(
        "--chroms",
        nargs="+",
        default=None,
        help="chromosomes of the imputation cube (default the last two fetched)",
    )
    ap.add_argument(
        "--bin-size", type=int, default=roadmap.IMPUTATION_BIN, help="imputation bins (bp)"
    )
    ap.add_argument(
        "--size",
        choices=("quick", "demo", "paper"),
        default="quick",
        help="imputation grid and recipe",
    )
    ap.add_argument("--workers", type=int, default=None, help="build workers; 0 = in-process")
    args = ap.parse_args()
    if args.impute:
        impute(args)
        return
    t0 = time.perf_counter()
    ds = cube.open_cube(datasets.build_from_folder("roadmap", args.data, args.out))
    chroms = AUTOSOMES
    others = [str(c) for c in ds.cell_type.values if str(c) != args.target]
    expression = tasks.get_task("expression")
    valid = [c for c in expression.valid_cell_types if c != args.target]
    # Cross-cell-type over every autosome: the data README's setting for its figures.
    whole = splits.Split(
        tuple(c for c in others if c not in valid),
        chroms,
        tuple(valid),
        chroms,
        (args.target,),
        chroms,
        setting="cross-cell-type",
    )
    hybrid = expression.split(ds, "hybrid", args.target)
    tables = {
        "cross-cell-type, chr1-22": baselines.baseline_table(ds, whole, single_cell_types=["E047"]),
        "hybrid, test chr1": baselines.baseline_table(ds, hybrid, single_cell_types=["E047"]),
    }
    leakage = {name: s.leakage(ds) for name, s in zip(tables, (whole, hybrid), strict=True)}
    results = {}
    for name, table in tables.items():
        print(f"\n{name} (target {args.target}, leakage {leakage[name]:.0%})")
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        results[name] = table.to_dict(orient="records")
    path = args.out / "results" / "real_roadmap.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(
        f"\n{ds.sizes['locus']:,} genes x {ds.sizes['cell_type']} epigenomes; "
        f"results in {path} ({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
