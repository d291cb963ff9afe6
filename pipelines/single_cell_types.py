"""Single cell types as predictors of a target, against their similarity to it.

    python pipelines/single_cell_types.py [--cube CUBE] [--target E003] [--out DIR]

The project's own figure (not one of the paper's): each other cell type's labels, used
alone, predict the target's, against that cell type's similarity to the target, with the
average of all of them as a line (pitfall.experiments.single_cell_types).
"""

from __future__ import annotations

from _default import cubes, parser, show

from pitfall import cube
from pitfall.experiments import single_cell_types


def main() -> None:
    args = parser(__doc__).parse_args()
    ds = cube.open_cube(cubes(args)["expression"])
    show(single_cell_types.make(ds, args.target), args.out, table="cell_types")


if __name__ == "__main__":
    main()
