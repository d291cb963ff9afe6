"""Shared argument handling of the figure pipelines: the synthetic default or a user's cube."""

from __future__ import annotations

import argparse
from pathlib import Path

from pitfall import demo


def parser(doc: str) -> argparse.ArgumentParser:
    """Arguments every figure pipeline takes."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/pipelines"), help="output folder")
    ap.add_argument("--cube", default=None,
                    help="a cube (folder or s3:// gs:// az:// URL) instead of the synthetic default")  # fmt: skip
    ap.add_argument("--target", default="E003", help="target cell type")
    ap.add_argument("--size", default="demo", choices=["quick", "demo", "paper"],
                    help="model grid and training recipe")  # fmt: skip
    ap.add_argument("--workers", type=int, default=None, help="local Dask workers")
    return ap


def cubes(args: argparse.Namespace) -> dict[str, Path | str]:
    """The user's cube (as both tasks' cube) or the synthetic default's two cubes."""
    if args.cube is not None:
        return {"expression": args.cube, "tad": args.cube}
    return demo.build_cubes(args.out, args.workers)
