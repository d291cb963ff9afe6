"""Finding a data set's files in a local folder laid out as ``../shared/data`` (its README)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pitfall._atomic import atomic_write_text
from pitfall.manifest import dumps_manifest, load_manifest

__all__ = ["require_file", "write_manifest_file"]


def require_file(path: Path) -> Path:
    """``path`` made absolute, or a FileNotFoundError that says which folder layout is meant."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; the data folder must hold the files listed in its README "
            "(roadmap/, tads/, ctcf/), e.g. ../shared/data"
        )
    return path.resolve()


def write_manifest_file(data: dict[str, Any], path: str | os.PathLike, header: str = "") -> Path:
    """Write a manifest atomically (:func:`pitfall._atomic.atomic_write_text`) and check that
    it loads.

    An interrupted run never leaves half a manifest that ``pitfall build`` would read.
    """
    path = atomic_write_text(path, header + dumps_manifest(data))
    load_manifest(path)
    return path
