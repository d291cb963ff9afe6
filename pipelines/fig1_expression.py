"""Figure 1 d-f: AP against parameters in the three settings, gene expression.

    python pipelines/fig1_expression.py [--cube CUBE] [--size quick|demo|paper] [--out DIR]

Sweeps every input type (sequence, epigenomic, both, and the controls) over model sizes in
the cross-chromosome, cross-cell-type and hybrid settings; draws the figure with the
average-activity and random baselines as lines.
"""

from __future__ import annotations

import json

from _default import cubes, parser

from pitfall import baselines, paper, report, sweep


def main(task: str = "expression", figure: str = "figure1_def_expression") -> None:
    args = parser(__doc__).parse_args()
    cube = cubes(args)[task]
    spec = paper.sweep_spec(str(cube), task, args.target, args.size)
    exps = sweep.sweep_from_dict(spec, root=args.out).experiments
    table = sweep.run_sweep(exps, args.out / f"results_{task}", workers=args.workers)
    ok = table[table["status"] == "ok"]
    path = report.save(
        report.ap_vs_params(
            ok, title=f"{task}, target {args.target}", baselines=baselines.figure_styles()
        ),
        args.out / "figures" / f"{figure}.png",
    )
    found = paper.findings(ok, task)
    print("\n".join(paper.describe(found, task)))
    (args.out / f"findings_{task}.json").write_text(json.dumps(found, indent=2, default=float))
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
