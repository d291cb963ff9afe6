"""Checksums of local files: one loop, read through a reused buffer.

Downloads verify files against their recorded sha256 (and resume a hash over a partial
file); builds record the sha256 of every input of a cell type. Each reads files of up to
gigabytes, so the reads go through one per-thread buffer (:mod:`pitfall._buffers`) instead of
a fresh ``bytes`` object per read: under Dask's ``MALLOC_TRIM_THRESHOLD_`` each fresh
buffer faults in new pages.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from pitfall import _buffers as buffers

__all__ = ["READ_BYTES", "sha256_of", "update_from_file"]

#: Bytes per read.
READ_BYTES = 1 << 20


def update_from_file(h: Any, path: str | os.PathLike[str]) -> Any:
    """Feed the bytes of ``path`` to the ``hashlib`` object ``h``; return ``h``."""
    buf = buffers.buffer("checksum", READ_BYTES).data
    with open(path, "rb") as fh:
        while n := fh.readinto(buf):
            h.update(buf[:n])
    return h


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of the file at ``path``."""
    return str(update_from_file(hashlib.sha256(), path).hexdigest())
