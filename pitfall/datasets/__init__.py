"""Public data sets: one module per source, each writing the manifest of its cube.

- :mod:`pitfall.datasets.roadmap`: Roadmap Epigenomics expression (downloaded with
  ``pitfall fetch roadmap``, or from a local folder);
- :mod:`pitfall.datasets.tads`: TAD boundaries of seven cell lines;
- :mod:`pitfall.datasets.ctcf`: CTCF peaks of seven ENCODE cell lines.

:data:`FOLDER_MANIFESTS` maps each name to its ``manifest_from_folder(data_dir, out_dir)``,
which reads a data folder laid out as ``../shared/data`` (see its README).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pitfall.datasets import ctcf, roadmap, tads

__all__ = ["FOLDER_MANIFESTS", "ctcf", "roadmap", "tads"]

FOLDER_MANIFESTS: dict[str, Callable[..., Path]] = {
    "roadmap": roadmap.manifest_from_folder,
    "tads": tads.manifest_from_folder,
    "ctcf": ctcf.manifest_from_folder,
}


def build_from_folder(
    kind: str, data: str | Path, out: str | Path, *, workers: int | None = None
) -> Path:
    """The cube ``out/store/<kind>``, built from a data folder (as ``../shared/data``) unless
    it is there already; its manifest goes to ``out/manifests/<kind>``.

    The label-only cubes (``roadmap``, ``tads``) build in this process; the CTCF cube (14.4 M
    loci) on a local cluster of ``workers`` processes.
    """
    from pitfall import featurize

    if kind not in FOLDER_MANIFESTS:
        raise ValueError(f"unknown data set {kind!r}; known: {', '.join(FOLDER_MANIFESTS)}")
    out = Path(out)
    store = out / "store" / kind
    local = kind != "ctcf"
    featurize.ensure_built(
        lambda: FOLDER_MANIFESTS[kind](Path(data), out / "manifests" / kind),
        store, workers=1 if local else workers, processes=not local,
    )  # fmt: skip
    return store
