"""Public data sets: one module per source, each writing the manifest of its cube.

- :mod:`pitfall.datasets.roadmap`: Roadmap Epigenomics expression (downloaded with
  ``pitfall fetch roadmap``, or from a local folder);
- :mod:`pitfall.datasets.tads`: TAD boundaries of seven cell lines;
- :mod:`pitfall.datasets.ctcf`: CTCF peaks of seven ENCODE cell lines.

:data:`FOLDER_MANIFESTS` maps each name to its ``manifest_from_folder(data_dir, out_dir)``,
which reads a data folder laid out as ``../shared/data`` (see its README).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pitfall.datasets import ctcf, roadmap, tads

__all__ = [
    "FOLDER_MANIFESTS",
    "build_all_from_folder",
    "build_from_folder",
    "ctcf",
    "roadmap",
    "tads",
]

FOLDER_MANIFESTS: dict[str, Callable[..., Path]] = {
    "roadmap": roadmap.manifest_from_folder,
    "tads": tads.manifest_from_folder,
    "ctcf": ctcf.manifest_from_folder,
}


def _check_kind(kind: str) -> None:
    if kind not in FOLDER_MANIFESTS:
        raise ValueError(f"unknown data set {kind!r}; known: {', '.join(FOLDER_MANIFESTS)}")


def _is_built(store: Path) -> bool:
    from pitfall.cube import CubeError, open_cube

    try:
        open_cube(store)
    except (CubeError, FileNotFoundError):
        return False
    return True


def build_from_folder(
    kind: str,
    data: str | Path,
    out: str | Path,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """The cube ``out/store/<kind>``, built from a data folder (as ``../shared/data``) unless
    it is there already; its manifest goes to ``out/manifests/<kind>``.

    The label-only cubes (``roadmap``, ``tads``) build in this process; the CTCF cube (14.4 M
    loci) on a local cluster of ``workers`` processes. ``progress`` draws the build's bar
    (where a terminal shows it).
    """
    from pitfall import featurize

    _check_kind(kind)
    out = Path(out)
    store = out / "store" / kind
    local = kind != "ctcf"
    featurize.ensure_built(
        lambda: FOLDER_MANIFESTS[kind](Path(data), out / "manifests" / kind),
        store,
        workers=1 if local else workers,
        processes=not local,
        progress=progress,
    )
    return store


def build_all_from_folder(
    kinds: Sequence[str],
    data: str | Path,
    out: str | Path,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """:func:`build_from_folder` for several data sets, every input checked before any build.

    The manifest of each cube still to build is written first, which finds each of its
    files, so a file missing for the last cube stops the run before the first is built.

    Raises
    ------
    FileNotFoundError
        Naming the first missing file.
    """
    out = Path(out)
    for kind in kinds:
        _check_kind(kind)
        if not _is_built(out / "store" / kind):
            FOLDER_MANIFESTS[kind](Path(data), out / "manifests" / kind)
    return {
        kind: build_from_folder(kind, data, out, workers=workers, progress=progress)
        for kind in kinds
    }
