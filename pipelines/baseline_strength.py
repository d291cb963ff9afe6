"""Baseline strength against cell-type similarity: each cell type alone as a predictor.

python pipelines/baseline_strength.py [--cube CUBE] [--target E003] [--out DIR]
"""

from __future__ import annotations

from _default import cubes, parser

from pitfall import cube as cubes_mod
from pitfall import paper, report


def main() -> None:
    args = parser(__doc__).parse_args()
    ds = cubes_mod.open_cube(cubes(args)["expression"])
    table = paper.strength_vs_similarity(ds, args.target, on=None if "signal" in ds else "label")
    fig = report.scatter(
        table["similarity"].to_numpy(), table["ap"].to_numpy(),
        labels=table["cell_type"].tolist(),
        xlabel=f"similarity to {args.target}", ylabel="AP of its labels alone",
        title=f"single cell types as predictors of {args.target}",
    )  # fmt: skip
    path = report.save(fig, args.out / "figures" / "strength_vs_similarity.png")
    print(table.sort_values("similarity").to_string(index=False))
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
