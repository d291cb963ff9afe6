"""Controls: permuted sequence and locus-constant random inputs, over model size.

    python pipelines/controls.py [--cube CUBE] [--size ...] [--out DIR]

Both controls carry no biology a model could learn, only each locus's identity (the same
values for a locus in every cell type). If they climb with size in the cross-cell-type
setting and not in the hybrid one, what climbs is memorisation.
"""

from __future__ import annotations

from _default import cubes, parser

from pitfall import baselines, paper, report, sweep


def main() -> None:
    args = parser(__doc__).parse_args()
    cube = cubes(args)["expression"]
    spec = paper.sweep_spec(str(cube), "expression", args.target, args.size)
    spec["models"] = [m for m in spec["models"]
                      if m.get("inputs") == "random" or m.get("permuted")]  # fmt: skip
    spec["settings"] = ["cross-cell-type", "hybrid"]
    exps = sweep.sweep_from_dict(spec, root=args.out).experiments
    table = sweep.run_sweep(exps, args.out / "results_controls", workers=args.workers)
    ok = table[table["status"] == "ok"]
    path = report.save(
        report.ap_vs_params(ok, settings=["cross-cell-type", "hybrid"],
                            title="controls: inputs that only identify the locus", baselines=baselines.figure_styles()),
        args.out / "figures" / "controls.png",
    )  # fmt: skip
    for setting in ("cross-cell-type", "hybrid"):
        for inputs in ("random", "permuted"):
            t = paper.trend(ok, setting, [inputs])
            if t["n"] < 2:
                continue
            print(f"{setting:>16} {inputs:>9}: AP {t.get('ap_smallest', float('nan')):.3f} "
                  f"(smallest) -> {t.get('ap_largest', float('nan')):.3f} (largest)")  # fmt: skip
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
