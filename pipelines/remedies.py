"""The paper's two remedies: the average activity as an input, and the residual target.

    python pipelines/remedies.py [--cube CUBE] [--size quick|demo|paper] [--out DIR]

Trains an epigenomic and a sequence-only model plain, with the locus's average activity over
the cell types they saw as one more input (never a pair's own label; as Nair et al. 2019),
on the residual from that average, and both, across cell types and in the hybrid setting.
Prints, per model and remedy, the AP on the test loci next to the average-activity
baseline's on the same loci (with the interval of the difference), the audit's
within-group gain (AP over a random ranking within groups of loci active in the same
number of other cell types, where the baseline ties), and the APs per group.
"""

from __future__ import annotations

import pandas as pd
from _default import cubes, parser

from pitfall import paper


def main() -> None:
    ap = parser(__doc__)
    ap.set_defaults(size="quick")
    ap.add_argument("--task", default="expression", choices=["expression", "tad"])
    args = ap.parse_args()
    path = cubes(args)[args.task]
    rep = paper.remedies(path, args.out / "results_remedies", task=args.task,
                         target=args.target, size=args.size, workers=args.workers)  # fmt: skip
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.float_format", "{:.3f}".format):  # fmt: skip
        print(rep.table.drop(columns=["inputs", "leakage"]).to_string(index=False))
        for setting in ("hybrid", "cross-cell-type"):
            part = rep.groups[rep.groups["setting"] == setting]
            if part.empty:
                continue
            print(f"\n{setting}: AP per activity group (group g: loci active in g of the "
                  "training + validation cell types)")  # fmt: skip
            wide = part.pivot_table(index=["model", "remedy"], columns="group",
                                    values="ap_model", sort=False)  # fmt: skip
            groups = part.drop_duplicates("group").set_index("group")
            wide.loc[("random ranking", "(expected AP)"), :] = groups["ap_random_expected"]
            print(wide.to_string())
            print("loci, positives per group: " + ", ".join(
                f"{g}: {n}, {k}" for g, n, k in
                zip(groups.index, groups["n_loci"], groups["n_positive"], strict=True)))  # fmt: skip
    print()
    for line in rep.sentences:
        print(line)


if __name__ == "__main__":
    main()
