"""Figure S5: the average-activity baseline's AP against the target's similarity to the others.

    python pipelines/figS5_baseline_vs_similarity.py ../shared/data [--out out/real] [--on label]
    python pipelines/figS5_baseline_vs_similarity.py --cube CUBE [--task expression]

No training. On the real Roadmap labels (the data folder's roadmap/) every epigenome is the
target in turn: the baseline averages the labels of the others and is scored on the
target's genes of the hybrid split's test chromosome; the target's similarity to each other
epigenome is the Pearson correlation of their labels (--on value: log RPKM) over the
training chromosomes' genes only (pitfall.experiments.figure_s5).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _default import show

from pitfall import cube, datasets
from pitfall.experiments import figure_s5


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("data", type=Path, nargs="?", help="folder with roadmap/ (../shared/data)")
    ap.add_argument("--cube", default=None, help="any cube instead of the Roadmap one")
    ap.add_argument("--task", default="expression", help="whose hybrid split's chromosomes")
    ap.add_argument(
        "--on",
        default="label",
        choices=["label", "value", "signal"],
        help="what the similarity correlates",
    )
    ap.add_argument("--out", type=Path, default=Path("out/real"))
    args = ap.parse_args()
    if args.cube is None and args.data is None:
        ap.error("give the data folder (as ../shared/data) or --cube")
    path = args.cube or datasets.build_from_folder("roadmap", args.data, args.out)
    exp = figure_s5.make(cube.open_cube(path), task=args.task, on=args.on)
    show(exp, args.out, table="targets")


if __name__ == "__main__":
    main()
