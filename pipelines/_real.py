"""Shared by the real-data pipelines: build a real cube once, from the data folder."""

from __future__ import annotations

from pathlib import Path

from pitfall import featurize
from pitfall.datasets import FOLDER_MANIFESTS


def build_cube(kind: str, data: Path, out: Path, workers: int | None = None) -> Path:
    """The cube ``out/store/<kind>``, built from ``data`` (as ``../shared/data``) if absent.

    Small cubes build in this process; the CTCF cube (14.4 M loci) on a local cluster.
    """
    store = out / "store" / kind
    if not store.exists():
        manifest = FOLDER_MANIFESTS[kind](data, out / "manifests" / kind)
        local = kind != "ctcf"
        summary = featurize.build(
            manifest, store, workers=1 if local else workers, processes=not local
        )
        print(summary)
    return store
