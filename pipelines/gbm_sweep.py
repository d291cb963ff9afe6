"""Figure S1: gradient-boosted trees, AP against trees x leaves in the three settings.

    python pipelines/gbm_sweep.py [--cube CUBE] [--size ...] [--out DIR]

Grid: pitfall.experiments.grids.gbm_grid; figure: pitfall.experiments.figure_s1.
"""

from __future__ import annotations

from _default import cubes, parser, show, train

from pitfall.experiments import figure_s1, grids


def main() -> None:
    args = parser(__doc__).parse_args()
    spec = grids.sweep_spec(
        str(cubes(args)["expression"]), "expression", args.target, args.size, gbm=True
    )
    table = train(args, spec, "results_gbm")
    show(figure_s1.make(table, "expression"), args.out, table="models")


if __name__ == "__main__":
    main()
