"""Figure S4 (preprint S3): partitioned evaluation, AP within groups of loci of equal activity.

    python pipelines/figS4_partitioned.py [--cube CUBE] [--size ...] [--out DIR]

Trains the Figure 1 models of the cross-cell-type setting (predictions kept), groups the
test loci by the number of training + validation cell types in which they are active, and
in each group compares the APs of the epigenomic-only models with those of the sequence-only
models by a one-sided Mann-Whitney U test over the models' APs (the paper's test). The
controls (permuted sequence, locus-constant random inputs) get their own boxes and their
own tests against the epigenomic models, never pooled with the sequence models.
"""

from __future__ import annotations

import json

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
    fig = report.partitioned_boxes(
        part, tests, title=f"Figure S4: cross-cell-type, {args.target}, loci grouped by activity"
    )
    out = report.save(fig, args.out / "figures" / "figure_s4_partitioned.png")
    print(tests.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    summary = paper.partitioned_summary(tests)
    for name, s in summary.items():
        print(f"{name}: p < 0.05 in {s['significant']} of {s['groups']} groups, every model "
              f"of the first side above every one of the second in {s['at_floor']} "
              f"({s['n_a']} vs {s['n_b']} models; smallest attainable p {s['p_floor']:.3g})")  # fmt: skip
    (args.out / "results").mkdir(parents=True, exist_ok=True)
    (args.out / "results" / "figure_s4_tests.json").write_text(
        json.dumps({"summary": summary, "tests": tests.to_dict(orient="records")}, indent=2)
    )
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
