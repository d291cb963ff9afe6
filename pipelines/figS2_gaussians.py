"""Figure S2: the pitfall with two overlapping 2-D Gaussians, AP against network size.

python pipelines/figS2_gaussians.py [--out DIR]
"""

from __future__ import annotations

from _default import parser

from pitfall import report, toy


def main() -> None:
    args = parser(__doc__).parse_args()
    sizes = (1, 4, 16, 64) if args.size == "quick" else (1, 4, 16, 64, 256, 1024)
    table = toy.size_sweep(sizes, seeds=(0, 1) if args.size != "quick" else (0,))
    path = report.save(report.toy_curves(table), args.out / "figures" / "figure_s2_toy.png")
    print(table.groupby(["setting", "size"])["ap"].mean().round(3).to_string())
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
