"""Per-thread reusable buffers for the large temporaries of hot loops.

Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_`` set (its
``distributed.nanny.pre-spawn-environ``), and setting it fixes glibc's mmap threshold at
128 KiB. Every larger temporary is then a fresh ``mmap`` whose pages fault on first touch,
and an ``munmap`` when freed. Decoding a bigWig block batch, summing its runs into windows
and checksumming a file each need such a temporary once per file or per chromosome; taken
from here, a buffer's pages are touched once per thread (``benchmarks/bench_scratch.py``
measures the difference). The runs a batch decodes to are still fresh arrays, as they are
returned to the caller.

A thread keeps each named buffer, at most :data:`KEEP_BYTES`, until it exits: a bigWig
reader's thread keeps two, its inflated blocks and its window sums.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

__all__ = ["KEEP_BYTES", "buffer"]

#: A buffer up to this many bytes stays with its thread for the next call (a full batch of
#: inflated bigWig blocks fits). A larger one is handed out once and not kept: its own work
#: hides the faults, and it would stay in the thread's memory for good.
KEEP_BYTES = 32 << 20

_LOCAL = threading.local()


def buffer(name: str, n: int, dtype: npt.DTypeLike = np.uint8) -> np.ndarray:
    """A 1-D array of ``n`` items of ``dtype``, reused by the calling thread.

    Parameters
    ----------
    name : str
        What the buffer is for. Each name has its own buffer, so a caller holding one
        buffer can ask for another.
    n : int
        Items needed.
    dtype : numpy dtype
        Item type.

    Returns
    -------
    numpy.ndarray
        Shape (n,), contents undefined. It stays valid until the same thread next asks for
        ``name``: callers use it within one call and never return it.
    """
    dtype = np.dtype(dtype)
    nbytes = n * dtype.itemsize
    if nbytes == 0 or nbytes > KEEP_BYTES:
        return np.empty(n, dtype=dtype)
    kept: dict[str, np.ndarray] = _LOCAL.__dict__.setdefault("buffers", {})
    raw = kept.get(name)
    if raw is None or raw.size < nbytes:
        # At least 1 MiB and doubling, so sizes that creep up do not each grow it again.
        old = 0 if raw is None else raw.size
        size = min(max(nbytes, 2 * old, 1 << 20), KEEP_BYTES)
        raw = kept[name] = np.empty(size, dtype=np.uint8)
    return raw[:nbytes].view(dtype)
