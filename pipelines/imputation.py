"""Imputation across cell types: MSE and correlation against parameters, per family.

    python pipelines/imputation.py [--cube CUBE] [--target E003] [--mark H3K4me3]
                                   [--size quick|demo|paper] [--out DIR]

Issue 26's figure in Figure 1's layout: one (cell type, mark) track of the cube imputed by
dense networks on the target cell type's other marks, their locus-constant random control,
an Avocado-style factorization (embeddings of cell type, mark and position) and XGBoost,
across cell types and in the hybrid setting, beside the Average, the most similar cell
type and zero (pitfall.experiments.imputation). The default cube is the synthetic
compendium's imputation cube (missing experiments included).
"""

from __future__ import annotations

from _default import cubes, parser, show

from pitfall import cube
from pitfall.experiments import imputation


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--mark", default="H3K4me3", help="the target mark")
    ap.add_argument(
        "--test-chroms",
        nargs="+",
        default=["chr1"],
        help="the hybrid setting's held-out chromosomes",
    )
    args = ap.parse_args()
    ds = cube.open_cube(cubes(args)["imputation"])
    result = imputation.make(
        ds,
        cell_type=args.target,
        mark=args.mark,
        size=args.size,
        test_chroms=args.test_chroms,
        say=lambda line: print(f"  {line}", flush=True),
    )
    show(result, args.out, table="models")


if __name__ == "__main__":
    main()
