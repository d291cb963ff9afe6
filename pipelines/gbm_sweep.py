"""Gradient-boosted trees: AP against trees x leaves in the three settings.

python pipelines/gbm_sweep.py [--cube CUBE] [--size ...] [--out DIR]
"""

from __future__ import annotations

from _default import cubes, parser

from pitfall import baselines, paper, report, sweep


def main() -> None:
    args = parser(__doc__).parse_args()
    cube = cubes(args)["expression"]
    spec = paper.sweep_spec(str(cube), "expression", args.target, args.size, gbm=True)
    exps = sweep.sweep_from_dict(spec, root=args.out).experiments
    table = sweep.run_sweep(exps, args.out / "results_gbm", workers=args.workers)
    ok = table[table["status"] == "ok"]
    path = report.save(
        report.ap_vs_params(
            ok,
            title="gradient-boosted trees",
            xlabel="trees x leaves",
            baselines=baselines.figure_styles(),
        ),
        args.out / "figures" / "gbm_sweep.png",
    )
    cols = ["setting", "inputs", "label", "n_params", "ap", "ap_average_activity"]
    print(ok[cols].sort_values(["setting", "inputs", "n_params"]).to_string(index=False))
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
