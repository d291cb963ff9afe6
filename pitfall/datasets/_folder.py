"""Finding a data set's files in a local folder laid out as ``../shared/data`` (its README)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pitfall.manifest import dumps_manifest, load_manifest


def require_file(path: Path) -> Path:
    """``path`` made absolute, or a FileNotFoundError that says which folder layout is meant."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; the data folder must hold the files listed in its README "
            "(roadmap/, tads/, ctcf/), e.g. ../shared/data"
        )
    return path.resolve()


def write_manifest_file(data: dict[str, Any], path: str | os.PathLike, header: str = "") -> Path:
    """Write a manifest atomically (``path.tmp`` then a rename) and check that it loads.

    An interrupted run never leaves half a manifest that ``pitfall build`` would read.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + dumps_manifest(data))
    os.replace(tmp, path)
    load_manifest(path)
    return path
