"""Figure 1 d-f: AP against parameters in the three settings, gene expression.

    python pipelines/fig1_expression.py [--cube CUBE] [--size quick|demo|paper] [--out DIR]

Sweeps every input type (sequence, epigenomic, both, and the controls) over model sizes in
the cross-chromosome, cross-cell-type and hybrid settings
(pitfall.experiments.grids.model_grid), then draws pitfall.experiments.figure1.
"""

from __future__ import annotations

from _default import cubes, parser, show, train

from pitfall.experiments import figure1, grids


def main(task: str = "expression", doc: str = __doc__) -> None:
    args = parser(doc).parse_args()
    spec = grids.sweep_spec(str(cubes(args)[task]), task, args.target, args.size)
    table = train(args, spec, f"results_{task}")
    show(figure1.make(table, task), args.out)


if __name__ == "__main__":
    main()
