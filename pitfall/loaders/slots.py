"""Whole batches out of a torch ``DataLoader`` worker through a ring of shared-memory slots.

A tensor a worker hands a ``DataLoader`` crosses to the main process on its own: torch moves
its storage to shared memory and passes a file descriptor over a new socket connection, which
costs the main process more than reading and encoding the batch did. A worker here writes
each batch into one slot of a ring of shared memory allocated once, and sends a small record:
the ring's shared-memory name, the slot, and each array's offset, dtype and shape. The main
process maps the ring once and rebuilds the batch as tensors viewing the slot; the slot goes
back to the worker when the last of those tensors (or of anything viewing them) is freed.

A worker that finds no free slot, because the consumer keeps its batches, or a batch larger
than a slot, sends plain tensors: keeping batches never blocks a worker, and never sees its
data overwritten. The ring is named through torch's ``file_system`` sharing (its manager
process removes the name when the worker exits, killed or not); the worker's global sharing
strategy is left as it is. A worker killed (not stopped) leaves its ring's name behind
until the main process exits, as torch's own ``file_system`` sharing does.

Imports torch: :mod:`pitfall.loaders.to_torch` and :class:`~pitfall.loaders.pairs.
PairDataset` use it only inside a torch worker.
"""

from __future__ import annotations

import multiprocessing.util
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate, default_convert, get_worker_info
from torch.utils.data._utils.collate import default_collate_fn_map

__all__ = [
    "RING_BYTES",
    "Slot",
    "SlotBatch",
    "SlotRing",
    "batch_bytes",
    "claim",
    "examples",
    "send",
]

RING_BYTES = 64 << 20
"""Room a worker's ring takes at most: as many slots as fit (4 to 32), so that a
``DataLoader``'s batches in flight (``prefetch_factor`` per worker, 2 by default) and those the
consumer holds find a slot."""

_ALIGN = 64  # every array starts on a cache line, so any dtype's view of the bytes is aligned


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _plan(
    batch: Any, at: dict[int, int], arrays: list[tuple[np.ndarray, int]], end: list[int]
) -> Any:
    """The layout of ``batch`` in a slot: each numeric array becomes ``("a", offset, dtype,
    shape)``, at the offset ``at`` already gives it (written there by :meth:`Slot.alloc`) or
    appended after ``end[0]`` (then listed in ``arrays`` to copy); anything else is inline."""
    if isinstance(batch, np.ndarray) and batch.dtype.str in _TORCH_DTYPES:
        offset = at.get(id(batch))
        if offset is None:
            offset = end[0]
            end[0] = _aligned(offset + batch.nbytes)
            arrays.append((batch, offset))
        return ("a", offset, batch.nbytes, batch.dtype.str, batch.shape)
    if isinstance(batch, Mapping):
        return ("d", [(k, _plan(v, at, arrays, end)) for k, v in batch.items()])
    if isinstance(batch, (tuple, list)) and not hasattr(batch, "_fields"):
        # A list, as torch's default_convert makes of a tuple: what the DataLoader would
        # have given without the slot. One of plain values (names) is sent as it is.
        if not any(isinstance(v, (np.ndarray, Mapping, tuple, list)) for v in batch):
            return ("v", list(batch))
        return ("l", [_plan(v, at, arrays, end) for v in batch])
    return ("v", batch)


def batch_bytes(batch: Any) -> int:
    """Bytes ``batch``'s numeric arrays take in a slot."""
    end = [0]
    _plan(batch, {}, [], end)
    return end[0]


class SlotRing:
    """A worker's ring of ``n_slots`` slots of ``slot_bytes`` each, in shared memory.

    Parameters
    ----------
    slot_bytes
        Room per slot (rounded up to 64 bytes): a batch larger than this is sent as plain
        tensors.
    n_slots
        How many batches can be in flight or held by the consumer at once (at most 64);
        default: as many as fit in :data:`RING_BYTES`, 4 to 32.

    Notes
    -----
    The ring's first 64 bytes are the slots' flags (1: the batch in it is being written, in
    flight or held); the worker sets a flag when it claims the slot, the main process clears
    it when the batch's last tensor is freed.
    """

    def __init__(self, slot_bytes: int, n_slots: int | None = None) -> None:
        self.slot_bytes = _aligned(max(int(slot_bytes), 1))
        if n_slots is None:
            n_slots = min(max(RING_BYTES // self.slot_bytes, 4), 32)
        if not 1 <= n_slots <= _ALIGN:
            raise ValueError(f"n_slots must be 1-{_ALIGN}, got {n_slots}")
        self.n_slots = n_slots
        self.storage = torch.UntypedStorage(_ALIGN + n_slots * self.slot_bytes)
        self.storage._share_filename_cpu_()
        self.bytes = torch.empty(0, dtype=torch.uint8).set_(self.storage).numpy()
        self.flags = self.bytes[:n_slots]
        self.flags[:] = 0

    def claim(self) -> Slot | None:
        """A free slot, now marked taken; None when every slot is taken."""
        free = np.flatnonzero(self.flags == 0)
        if free.size == 0:
            return None
        slot = int(free[0])
        self.flags[slot] = 1
        return Slot(self, slot)

    def put(self, batch: Any) -> SlotBatch | None:
        """``batch`` copied into a free slot, as the record the main process rebuilds; None
        when no slot is free or the batch does not fit."""
        slot = self.claim()
        return None if slot is None else slot.seal(batch)


class Slot:
    """One claimed slot of a :class:`SlotRing`: arrays are made in it (:meth:`alloc`), then
    the batch is sealed into the record to send (:meth:`seal`)."""

    def __init__(self, ring: SlotRing, slot: int) -> None:
        self.ring, self.slot = ring, slot
        self.start = _ALIGN + slot * ring.slot_bytes
        self.end = 0
        self.made: dict[int, int] = {}  # id(array made here) -> its offset

    def alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An empty array in this slot (a new one elsewhere when the slot is full)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if self.end + nbytes > self.ring.slot_bytes:
            return np.empty(shape, dtype)
        at = self.start + self.end
        out = self.ring.bytes[at : at + nbytes].view(dtype).reshape(shape)
        self.made[id(out)] = self.end
        self.end = _aligned(self.end + nbytes)
        return out

    def seal(self, batch: Any) -> SlotBatch | None:
        """``batch`` (its arrays made by :meth:`alloc` or not: those are copied in) as the
        record to send; None when it does not fit (then :meth:`release` the slot)."""
        arrays: list[tuple[np.ndarray, int]] = []
        end = [self.end]
        spec = _plan(batch, self.made, arrays, end)
        if end[0] > self.ring.slot_bytes:
            return None
        for a, offset in arrays:
            at = self.start + offset
            self.ring.bytes[at : at + a.nbytes].view(a.dtype).reshape(a.shape)[...] = a
        return SlotBatch(self, end[0], spec)

    def release(self, batch: Any) -> Any:
        """Free the slot unsent: ``batch`` with a copy of each array :meth:`alloc` made in
        the slot (whatever dicts, lists or tuples hold it), since the slot is reused next."""
        self.ring.flags[self.slot] = 0
        return self._moved_out(batch)

    def _moved_out(self, batch: Any) -> Any:
        if isinstance(batch, np.ndarray):
            return batch.copy() if id(batch) in self.made else batch
        if isinstance(batch, Mapping):
            return {k: self._moved_out(v) for k, v in batch.items()}
        if isinstance(batch, (tuple, list)) and not hasattr(batch, "_fields"):
            return type(batch)(self._moved_out(v) for v in batch)
        return batch


class SlotBatch:
    """A batch in a slot of a :class:`SlotRing`; unpickled, it is the batch itself (tensors
    viewing the slot in the receiving process)."""

    __slots__ = ("nbytes", "slot", "spec")

    def __init__(self, slot: Slot, nbytes: int, spec: Any) -> None:
        self.slot, self.nbytes, self.spec = slot, nbytes, spec

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Unlike torch's file_system reduction, no reference travels with the record: the
        # worker holds its ring as long as it lives, and a record left unread when the
        # DataLoader shuts down would otherwise keep the ring's name in shared memory.
        slot = self.slot
        manager, handle, size = slot.ring.storage._share_filename_cpu_()
        args = (manager, handle, size, slot.slot, slot.start, self.nbytes, self.spec)
        return (_rebuild, args)


# The main process's view of each ring: name -> (storage, bytes, last use). Held strongly so
# that a ring is mapped once, not once per batch (the workers' batches alternate, so a
# batch in hand rarely holds the ring of the next one). A sweeper thread, alive only while
# some ring is held, lets a ring go after two idle seconds: a batch still held keeps its
# own reference, a later batch maps the ring again by name, and the ring of a finished or
# killed worker leaves shared memory once its batches are gone.
_RINGS: dict[bytes, tuple[Any, np.ndarray, float]] = {}
_RINGS_LOCK = threading.Lock()
_IDLE_SECONDS = 2.0
_SWEEPER: list[int] = []  # the pid whose sweeper runs, if one does


def _sweep() -> None:
    while True:
        time.sleep(_IDLE_SECONDS / 2)
        with _RINGS_LOCK:
            now = time.monotonic()
            for name in [n for n, e in _RINGS.items() if now - e[2] > _IDLE_SECONDS]:
                del _RINGS[name]
            if not _RINGS:
                _SWEEPER.clear()
                return


def _ring_bytes(manager: bytes, handle: bytes, size: int) -> np.ndarray:
    with _RINGS_LOCK:
        entry = _RINGS.get(handle)
        if entry is not None:
            storage, ring = entry[0], entry[1]
        else:
            storage = torch.UntypedStorage._new_shared_filename_cpu(manager, handle, size)
            ring = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
        _RINGS[handle] = (storage, ring, time.monotonic())
        if _SWEEPER != [os.getpid()]:  # none yet, or one inherited through a fork
            _SWEEPER[:] = [os.getpid()]
            threading.Thread(target=_sweep, name="pitfall-slot-sweeper", daemon=True).start()
    return ring


def _release(ring: np.ndarray, slot: int) -> None:
    ring[slot] = 0


def _rebuild(
    manager: bytes, handle: bytes, size: int, slot: int, start: int, nbytes: int, spec: Any
) -> Any:
    ring = _ring_bytes(manager, handle, size)
    # Every tensor of the batch views one torch storage that owns this numpy slice: the
    # slice is freed, and the slot released, only when no tensor of the batch is left.
    owner = ring[start : start + max(nbytes, 1)]
    weakref.finalize(owner, _release, ring, slot)
    return _build(spec, torch.from_numpy(owner))


def _build(spec: Any, base: torch.Tensor) -> Any:
    kind, *rest = spec
    if kind == "a":
        offset, nbytes, dtype, shape = rest
        return base[offset : offset + nbytes].view(_TORCH_DTYPES[dtype]).view(shape)
    if kind == "d":
        return {k: _build(v, base) for k, v in rest[0]}
    if kind == "l":
        return [_build(v, base) for v in rest[0]]
    return rest[0]


_TORCH_DTYPES = {  # numpy's dtype string (as sent) -> torch's dtype
    np.dtype(t).str: torch.from_numpy(np.zeros(0, t)).dtype
    for t in (
        np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64,
        np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64,
    )
}  # fmt: skip


# This worker's rings, one per dataset that sends through them: id(dataset) -> ring.
_WORKER_RINGS: dict[int, SlotRing] = {}


def claim(owner: object) -> Slot | None:
    """A free slot of the ring this torch worker keeps for dataset ``owner``, to make the
    next batch in (:meth:`Slot.alloc`); None outside a worker, before the first batch has
    sized the ring, or when every slot is taken."""
    ring = _WORKER_RINGS.get(id(owner))
    return None if ring is None else ring.claim()


def send(owner: object, batch: Any, slot: Slot | None = None) -> Any:
    """What dataset ``owner`` returns for ``batch`` (numpy arrays, in dicts, tuples and
    lists): inside a torch worker, the batch in a slot of the worker's ring (``slot`` when
    one was claimed for it), else the batch with tensors wrapping its arrays."""
    if slot is None and get_worker_info() is not None:
        ring = _WORKER_RINGS.get(id(owner))
        if ring is None:
            if not _WORKER_RINGS:
                # A worker leaving (when its DataLoader ends or shuts down) lets its rings
                # go: the last process to unmap one removes its name from shared memory.
                multiprocessing.util.Finalize(None, _WORKER_RINGS.clear, exitpriority=10)
            ring = _WORKER_RINGS[id(owner)] = SlotRing(batch_bytes(batch))
            # A dataset freed in a persistent worker frees its ring with it.
            weakref.finalize(owner, _WORKER_RINGS.pop, id(owner), None)
        slot = ring.claim()
    if slot is not None:
        sealed = slot.seal(batch)
        if sealed is not None:
            return sealed
        batch = slot.release(batch)
    return default_convert(batch)


class _Example(tuple):
    """One ``(x, y, meta)`` example of a batch made whole in a worker: a plain tuple to any
    collate function and to pickle; torch's default collation, through the handler
    :func:`examples` registers for this type, sends the whole batch instead."""

    whole: Any
    row: int

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (tuple, (tuple(self),))


def _collate_examples(batch: list[Any], *, collate_fn_map: Any = None) -> Any:
    ref = batch[0].whole  # (dataset, whole batch, its length)
    if len(batch) == ref[2] and all(
        type(e) is _Example and e.whole is ref and e.row == r for r, e in enumerate(batch)
    ):
        return send(ref[0], ref[1])
    # Examples mixed or reordered by a custom sampler or collate: collate them one by one.
    return default_collate([tuple(e) for e in batch])


def examples(owner: object, rows: list[tuple[Any, ...]], whole: Any) -> list[_Example]:
    """``rows`` (one tuple per example) of dataset ``owner``, each knowing ``whole`` (the
    same examples as one batch, as the ``DataLoader`` would collate them): torch's default
    collation of exactly these examples, in this order, then sends ``whole`` through a slot
    of this worker's ring (:func:`send`).

    Registers the handler in torch's ``default_collate_fn_map`` (the extension point its
    documentation shows) for this module's own example type: in the worker only, where the
    collation runs.
    """
    if _Example not in default_collate_fn_map:
        default_collate_fn_map[_Example] = _collate_examples
    ref = (owner, whole, len(rows))
    out = []
    for r, row in enumerate(rows):
        example = _Example(row)
        example.whole, example.row = ref, r
        out.append(example)
    return out
