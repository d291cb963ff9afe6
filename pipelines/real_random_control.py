"""Memorisation on real labels: the locus-constant random control over model size.

    python pipelines/real_random_control.py ../shared/data --task roadmap|tads [--out DIR]

The real cubes have no signal or sequence here, but the paper's own control needs neither:
random inputs identical for a locus in every cell type. Swept over network size in the
cross-cell-type and hybrid settings, it climbs toward the average-activity baseline only
where the test loci were seen in training: memorisation on real labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _real import build_cube

from pitfall import baselines, paper, report, sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--task", choices=["roadmap", "tads"], default="roadmap")
    ap.add_argument("--out", type=Path, default=Path("out/real"))
    ap.add_argument("--size", default="demo", choices=["quick", "demo", "paper"])
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    if args.task == "roadmap":
        cube, task, target = build_cube("roadmap", args.data, args.out), "expression", "E003"
    else:
        cube, task, target = build_cube("tads", args.data, args.out), "tad", "hESC"
    spec = paper.sweep_spec(str(cube), task, target, args.size)
    if task == "tad":
        spec["valid_cell_types"] = ["GM12878"]
    widths = [[1], [16], [256], [1024, 1024]] if args.size != "quick" else [[1], [64]]
    spec["models"] = [{"family": "dense", "inputs": "random", "units": widths}]
    spec["settings"] = ["cross-cell-type", "hybrid"]
    exps = sweep.sweep_from_dict(spec, root=args.out).experiments
    table = sweep.run_sweep(exps, args.out / f"results_random_{args.task}", workers=args.workers)
    ok = table[table["status"] == "ok"]
    cols = ["setting", "label", "n_params", "ap", "ap_average_activity", "ap_random"]
    print(ok[cols].sort_values(["setting", "n_params"]).to_string(index=False))
    path = report.save(
        report.ap_vs_params(ok, settings=["cross-cell-type", "hybrid"],
                            title=f"locus-constant random inputs, real {args.task} labels", baselines=baselines.figure_styles()),
        args.out / "figures" / f"real_random_control_{args.task}.png",
    )  # fmt: skip
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
