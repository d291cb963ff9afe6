"""TAD boundaries on real labels: build the 40 kb bin cube and score the baselines.

    python pipelines/real_tads.py ../shared/data --out out/real
    pitfall fetch tads --compendium dixon2015 --dest data/tads
    python pipelines/real_tads.py data/tads --compendium dixon2015 --out out/real

Loci: 40 kb bins of chr1-22; a bin is a boundary in a cell type when one of its domains
starts or ends in it. Two compendia (:mod:`pitfall.datasets.tads`):

- ``shared`` (default): a data folder laid out as ``../shared/data``: Dixon 2012 hESC and
  IMR90, Rao 2014 Arrowhead GM12878, HUVEC, K562, NHEK; target ``hESC``;
- ``dixon2015``: the paper's seven lines, a ``pitfall fetch tads`` folder: H1 (E003), its
  four derived lineages (E004-E007), IMR90 (E017), GM12878 (E116); target ``E003``.

The paper's TAD splits: cross-cell-type trains the other lines on chr2-3 (GM12878
validates), hybrid tests the target on chr1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pitfall import baselines, cube, datasets, featurize, tasks
from pitfall.datasets import tads

#: Per compendium: the default target and the single line scored as a predictor.
DEFAULTS = {"shared": ("hESC", "IMR90"), "dixon2015": ("E003", "E017")}


def build(data: Path, out: Path, compendium: str) -> Path:
    """The cube of a compendium (built unless already there)."""
    if compendium == "shared":
        return datasets.build_from_folder("tads", data, out)
    manifest = data / "manifest.toml"
    if not manifest.is_file():
        tads.dixon2015_manifest(data, compendium=compendium)
    store = out / "store" / f"tads_{compendium}"
    featurize.ensure_built(manifest, store, workers=1, processes=False)
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "data",
        type=Path,
        help="folder with tads/ and ctcf/ (as ../shared/data), or a `pitfall fetch tads` folder",
    )
    ap.add_argument("--compendium", choices=tuple(DEFAULTS), default="shared")
    ap.add_argument("--out", type=Path, default=Path("out/real"))
    ap.add_argument("--target", default=None, help="default: hESC (shared), E003 (dixon2015)")
    args = ap.parse_args()
    target, single = DEFAULTS[args.compendium]
    target = args.target or target
    t0 = time.perf_counter()
    ds = cube.open_cube(build(args.data, args.out, args.compendium))
    results = {}
    for setting in ("cross-cell-type", "hybrid"):
        split = tasks.get_task("tad").split(ds, setting, target)
        table = baselines.baseline_table(ds, split, single_cell_types=[single])
        print(
            f"\n{setting} (target {target}; train {', '.join(split.train_cell_types)} on "
            f"{', '.join(split.train_chroms)}; test {', '.join(split.test_chroms)}; "
            f"leakage {split.leakage(ds):.0%})"
        )
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        results[setting] = table.to_dict(orient="records")
    suffix = "" if args.compendium == "shared" else f"_{args.compendium}"
    path = args.out / "results" / f"real_tads{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(
        f"\n{ds.sizes['locus']:,} bins x {ds.sizes['cell_type']} cell types; results in {path} "
        f"({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
