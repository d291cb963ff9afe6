"""Figure S3: the average-activity baseline against ENCODE-DREAM challenge submissions.

    python pipelines/figS3_encode_dream.py DATA SUBMISSION [SUBMISSION ...] --target LINE
        [--name NAME ...] [--out out/figS3] [--workers 2]

DATA is a folder with ``ctcf/`` laid out as ``../shared/data`` (see its README); its CTCF
cube is built once with the challenge's conventions (200 bp bins every 50 bp over chr1-22,
bound where a conservative peak overlaps the bin, ambiguous where only a relaxed one does,
the blacklist excluded: :func:`pitfall.datasets.ctcf.dream_manifest`). Each SUBMISSION is
one participant's predictions for the target line in the challenge's format (``chr start
stop probability``, tab separated, gzipped, no header). Every other line of the cube is a
training line: each participant's AP on loci bound in at least one of them and on the
rest, beside the average activity (:mod:`pitfall.experiments.figure_s3`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pitfall import cube, featurize
from pitfall.datasets import ctcf
from pitfall.experiments import figure_s3


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("data", type=Path, help="folder with ctcf/ (as ../shared/data)")
    ap.add_argument("submissions", type=Path, nargs="+", help="one submission per participant")
    ap.add_argument("--target", required=True, help="the cell line the submissions predict")
    ap.add_argument(
        "--name",
        action="append",
        default=None,
        help="a participant's name, once per submission in order (default: the file names)",
    )
    ap.add_argument("--out", type=Path, default=Path("out/figS3"))
    ap.add_argument("--workers", type=int, default=None, help="local Dask workers")
    args = ap.parse_args()
    names = args.name or [p.name.split(".tab")[0] for p in args.submissions]
    if len(names) != len(args.submissions):
        ap.error(f"{len(names)} --name for {len(args.submissions)} submissions: one each")
    if len(set(names)) != len(names):
        ap.error(f"participants' names repeat ({names}): give each a --name")
    store = args.out / "store" / "ctcf_dream"
    featurize.ensure_built(
        lambda: ctcf.dream_manifest(args.data, args.out / "manifests" / "ctcf_dream"),
        store,
        workers=args.workers,
        progress=False,
    )
    ds = cube.open_cube(store)
    result = figure_s3.make(ds, args.target, dict(zip(names, args.submissions, strict=True)))
    paths = result.save(args.out)
    print(result.title)
    for line in result.sentences:
        print("  " + line)
    print(result.tables["ap"].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    for key, path in paths.items():
        print(f"{key}: {path}")


if __name__ == "__main__":
    main()
