"""Figure S3: partitioned evaluation, AP within groups of loci of equal activity.

    python pipelines/figS3_partitioned.py [--cube CUBE] [--size ...] [--out DIR]

Trains the Figure 1 models of the cross-cell-type setting (predictions kept), groups the
test loci by the number of training + validation cell types in which they are active,
and compares epigenomic with sequence models in each group (one-sided Mann-Whitney U).
"""

from __future__ import annotations

from _default import cubes, parser

from pitfall import cube as cubes_mod
from pitfall import paper, report, sweep, tasks


def main() -> None:
    args = parser(__doc__).parse_args()
    path = cubes(args)["expression"]
    spec = paper.sweep_spec(str(path), "expression", args.target, args.size)
    spec["settings"] = ["cross-cell-type"]
    exps = sweep.sweep_from_dict(spec, root=args.out).experiments
    results_dir = args.out / "results_partitioned"
    table = sweep.run_sweep(exps, results_dir, workers=args.workers, save_predictions=True)
    ok = table[(table["status"] == "ok") & (table["family"] != "xgboost")]
    ds = cubes_mod.open_cube(path)
    split = tasks.get_task("expression").split(ds, "cross-cell-type", args.target)
    part, tests = paper.partitioned_table(ds, split, ok, str(results_dir))
    fig = report.partitioned_boxes(part, tests, title="cross-cell-type, loci by activity")
    out = report.save(fig, args.out / "figures" / "figure_s3_partitioned.png")
    print(tests.to_string(index=False))
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
