"""Preprint Figure S2: two overlapping 2-D Gaussians, AP of networks of growing size.

    python pipelines/preprint_figS2_gaussians.py [--size quick|demo|paper] [--out DIR]

No cube, no data: everything is drawn here, with fixed seeds; the networks per size are
pitfall.experiments.grids.GAUSSIAN_SIZES (pitfall.experiments.preprint_s2).
"""

from __future__ import annotations

from _default import parser, show

from pitfall.experiments import preprint_s2


def main() -> None:
    args = parser(__doc__).parse_args()
    show(preprint_s2.make(args.size), args.out)


if __name__ == "__main__":
    main()
