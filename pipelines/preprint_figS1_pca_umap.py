"""Preprint Figure S1: PCA and UMAP of a cell type's epigenomic signal, coloured by activity.

    python pipelines/preprint_figS1_pca_umap.py [--cube CUBE] [--target E003] [--out DIR]

UMAP needs the optional umap extra (pip install -e '.[umap]'); without it the figure
shows PCA alone and says so (pitfall.experiments.preprint_s1).
"""

from __future__ import annotations

from _default import cubes, parser, show

from pitfall import cube
from pitfall.experiments import preprint_s1


def main() -> None:
    args = parser(__doc__).parse_args()
    ds = cube.open_cube(cubes(args)["expression"])
    show(preprint_s1.make(ds, args.target, umap=args.size != "quick"), args.out)


if __name__ == "__main__":
    main()
