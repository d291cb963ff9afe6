"""Figure S4 (preprint S3): partitioned evaluation, AP within groups of loci of equal activity.

    python pipelines/figS4_partitioned.py [--cube CUBE] [--size ...] [--out DIR]

Trains the Figure 1 models of the cross-cell-type setting (predictions kept), groups the
test loci by the number of training + validation cell types in which they are active, and
in each group compares the APs of the epigenomic-only models with those of the sequence-only
models by a one-sided Mann-Whitney U test over the models' APs (the paper's test); the
controls get their own boxes and tests (pitfall.experiments.figure_s4).
"""

from __future__ import annotations

from _default import cubes, parser, show, train

from pitfall import cube
from pitfall.experiments import figure_s4, grids


def main() -> None:
    args = parser(__doc__).parse_args()
    path = cubes(args)["expression"]
    spec = grids.sweep_spec(str(path), "expression", args.target, args.size)
    spec["settings"] = ["cross-cell-type"]
    table = train(args, spec, "results_partitioned", save_predictions=True)
    exp = figure_s4.make(
        cube.open_cube(path), table, str(args.out / "results_partitioned"), target=args.target
    )
    show(exp, args.out, table="tests")


if __name__ == "__main__":
    main()
