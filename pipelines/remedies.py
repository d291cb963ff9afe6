"""The paper's two remedies: the average activity as an input, and the residual target.

    python pipelines/remedies.py [--cube CUBE] [--size quick|demo|paper] [--out DIR]

Trains an epigenomic and a sequence-only model plain, with the locus's average activity over
the cell types they saw as one more input, on the residual from that average, and both,
across cell types and in the hybrid setting, and scores each against the average-activity
baseline on the same loci, overall and within activity groups
(pitfall.experiments.remedies).
"""

from __future__ import annotations

from _default import cubes, parser, show

from pitfall.experiments import remedies


def main() -> None:
    ap = parser(__doc__)
    ap.set_defaults(size="quick")
    ap.add_argument("--task", default="expression", choices=["expression", "tad"])
    args = ap.parse_args()
    exp = remedies.make(
        cubes(args)[args.task],
        args.out / "results_remedies",
        task=args.task,
        target=args.target,
        size=args.size,
        workers=args.workers,
    )
    show(exp, args.out, table="summary")


if __name__ == "__main__":
    main()
