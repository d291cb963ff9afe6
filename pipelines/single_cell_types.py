"""Single cell types as predictors of a target, against their similarity to it.

    python pipelines/single_cell_types.py [--cube CUBE] [--target E003] [--out DIR]

The project's own figure (not one of the paper's): each other cell type's labels, used
alone, predict the target's; plotted against that cell type's similarity to the target
(correlation of the signal, or of the labels on a labels-only cube), with the average of
all of them as a line. Even the most similar single cell type falls below the average.
The paper's Figure S5 (the average's AP against similarity, every cell type a target) is
``figS5_baseline_vs_similarity.py``.
"""

from __future__ import annotations

from _default import cubes, parser

from pitfall import baselines, paper, report, splits
from pitfall import cube as cubes_mod


def main() -> None:
    args = parser(__doc__).parse_args()
    ds = cubes_mod.open_cube(cubes(args)["expression"])
    on = "signal" if "signal" in ds else "label"
    table = paper.strength_vs_similarity(ds, args.target, on=on)
    others = [str(c) for c in ds.cell_type.values if str(c) != args.target]
    chroms = tuple(splits.cube_chroms(ds))
    whole = splits.Split(tuple(others), chroms, (), (), (args.target,), chroms,
                         setting="cross-cell-type")  # fmt: skip
    avg = baselines.baseline_aps(ds, whole, ["average_activity"])["ap_average_activity"]
    fig = report.scatter(
        table["similarity"].to_numpy(), table["ap"].to_numpy(),
        labels=table["cell_type"].tolist(),
        xlabel=f"similarity to {args.target} (correlation of the {on})",
        ylabel="AP of that cell type's labels alone",
        title=f"Single cell types as predictors of {args.target}",
        hline={f"average activity of all {len(others)}": avg},
    )  # fmt: skip
    path = report.save(fig, args.out / "figures" / "single_cell_types_vs_similarity.png")
    print(table.sort_values("similarity").to_string(index=False))
    print(f"average activity of all: AP {avg:.3f}; figure: {path}")


if __name__ == "__main__":
    main()
