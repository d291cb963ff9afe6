"""Figure S1: PCA of the epigenomic signal of a cell type, coloured by activity.

python pipelines/figS1_pca.py [--cube CUBE] [--target E003] [--out DIR]
"""

from __future__ import annotations

from _default import cubes, parser

from pitfall import cube as cubes_mod
from pitfall import paper, report


def main() -> None:
    args = parser(__doc__).parse_args()
    ds = cubes_mod.open_cube(cubes(args)["expression"])
    pcs = paper.pca_of_signal(ds, args.target)
    fig = report.pca_scatter(pcs, f"epigenomic signal of {args.target}")
    path = report.save(fig, args.out / "figures" / "figure_s1_pca.png")
    ev = pcs.attrs["explained"]
    print(f"PC1 {ev[0]:.1%}, PC2 {ev[1]:.1%} of the variance; figure: {path}")


if __name__ == "__main__":
    main()
