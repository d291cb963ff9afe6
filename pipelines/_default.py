"""Shared argument handling of the figure pipelines: the synthetic default or a user's cube."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from pitfall import demo, sweep  # noqa: E402
from pitfall.experiments import Result  # noqa: E402


def parser(doc: str) -> argparse.ArgumentParser:
    """Arguments every figure pipeline takes."""
    ap = argparse.ArgumentParser(
        description=doc.strip().splitlines()[0],
        epilog=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, default=Path("out/pipelines"), help="output folder")
    ap.add_argument(
        "--cube",
        default=None,
        help="a cube (folder or s3:// gs:// az:// URL) instead of the synthetic default",
    )
    ap.add_argument("--target", default="E003", help="target cell type")
    ap.add_argument(
        "--size", default="demo", choices=["quick", "demo", "paper"], help="model grid and recipe"
    )
    ap.add_argument("--workers", type=int, default=None, help="local Dask workers")
    return ap


def cubes(args: argparse.Namespace) -> dict[str, Path | str]:
    """The user's cube (as every task's cube) or the synthetic default's cubes."""
    if args.cube is not None:
        return {"expression": args.cube, "tad": args.cube, "imputation": args.cube}
    return demo.build_cubes(args.out, args.workers)


def train(
    args: argparse.Namespace, spec: dict[str, Any], folder: str, *, save_predictions: bool = False
) -> pd.DataFrame:
    """Run a sweep spec into ``args.out / folder``; its results table."""
    exps = sweep.sweep_from_dict(spec, root=args.out).experiments
    return sweep.run_sweep(
        exps, args.out / folder, workers=args.workers, save_predictions=save_predictions
    )


def show(exp: Result, out: Path, table: str | None = None) -> None:
    """Save an experiment under ``out`` and print its findings, one table and its files."""
    paths = exp.save(out)
    print(exp.title)
    for line in exp.sentences:
        print(f"  {line}")
    if table is not None:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(exp.tables[table].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    for what, path in paths.items():
        print(f"{what}: {path}")
