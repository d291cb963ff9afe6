"""Robustness: the demo's findings at three levels of locus artefacts and of noise.

    python pipelines/robustness.py [--out DIR] [--artefact 0 0.5 1.5] [--noise 0.5 1 2]
                                   [--noise-param chromatin_noise] [--design grid|diagonal]
                                   [--seed 0] [--workers N]

Re-synthesizes the demo compendium with the artefact strength and a noise parameter
changed, trains the quick sweep on each variant and prints, per variant, the findings the
demo asserts (pitfall.experiments.robustness). A rerun reuses what is there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _default import show

from pitfall.experiments import robustness


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, default=Path("out/robustness"), help="output folder")
    ap.add_argument(
        "--artefact",
        type=float,
        nargs="+",
        default=None,
        help="artefact_strength levels (default: 0, the preset's, 3x the preset's)",
    )
    ap.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=[0.5, 1.0, 2.0],
        help="noise levels, as multipliers of the preset's value",
    )
    ap.add_argument(
        "--noise-param",
        default="chromatin_noise",
        choices=["chromatin_noise", "cell_noise", "mark_noise"],
        help="the noise parameter --noise scales",
    )
    ap.add_argument("--design", choices=["grid", "diagonal"], default="grid")
    ap.add_argument("--seed", type=int, default=robustness.PRESET.seed, help="synthesis seed")
    ap.add_argument("--target", default="E003", help="target cell type")
    ap.add_argument("--workers", type=int, default=None, help="local Dask workers")
    args = ap.parse_args()
    try:
        exp = robustness.make(
            args.out,
            artefact=args.artefact,
            noise=args.noise,
            noise_param=args.noise_param,
            design=args.design,
            seed=args.seed,
            target=args.target,
            workers=args.workers,
        )
    except ValueError as err:
        ap.error(str(err))
    show(exp, args.out, table="variants")


if __name__ == "__main__":
    main()
