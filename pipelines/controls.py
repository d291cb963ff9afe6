"""Controls: permuted sequence and locus-constant random inputs, over model size.

    python pipelines/controls.py [--cube CUBE] [--size ...] [--out DIR]

Both controls carry no biology a model could learn, only each locus's identity (the same
values for a locus in every cell type). If they climb with size in the cross-cell-type
setting and not in the hybrid one, what climbs is memorisation
(pitfall.experiments.controls).
"""

from __future__ import annotations

from _default import cubes, parser, show, train

from pitfall.experiments import controls


def main() -> None:
    args = parser(__doc__).parse_args()
    spec = controls.spec(str(cubes(args)["expression"]), "expression", args.target, args.size)
    table = train(args, spec, "results_controls")
    show(controls.make(table, "expression"), args.out)


if __name__ == "__main__":
    main()
