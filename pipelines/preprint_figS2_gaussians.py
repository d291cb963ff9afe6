"""Preprint Figure S2: two overlapping 2-D Gaussians, AP of networks of growing size.

    python pipelines/preprint_figS2_gaussians.py [--size quick|demo|paper] [--out DIR]

Why epigenomic models stay flat with size (Figure 1): the classes are two overlapping
Gaussians, so the Bayes-optimal boundary is a straight line; networks from 1 to 1,024 hidden
units (5 to ~4,100 parameters) all find it, and their AP on new points stays flat, at the
Bayes-optimal rule's. No cube, no data: everything is drawn here (deterministic seeds).
"""

from __future__ import annotations

import json

from _default import parser

from pitfall import report, toy


def main() -> None:
    args = parser(__doc__).parse_args()
    quick = args.size == "quick"
    sweep = toy.size_sweep(
        (1, 4, 16, 64, 256) if quick else (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        seeds=(0,) if quick else (0, 1, 2),
        n_test=10_000 if quick else 20_000,
    )
    fig = report.gaussians(sweep, title="Preprint Figure S2: why epigenomic models stay flat")
    path = report.save(fig, args.out / "figures" / "preprint_figure_s2_gaussians.png")
    t = sweep.table
    means = t.groupby(["size", "n_params"], as_index=False)[["ap", "ap_bayes"]].mean()
    print(means.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    spread = float(means["ap"].max() - means["ap"].min())
    gap = float((means["ap_bayes"] - means["ap"]).max())
    print(f"AP spread over sizes {spread:.4f}; largest gap below the Bayes rule {gap:.4f}")
    out = args.out / "results" / "preprint_figure_s2.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"spread": spread, "gap_to_bayes": gap,
                               "table": t.to_dict(orient="records")}, indent=2))  # fmt: skip
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
