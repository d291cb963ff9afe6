"""Batches through a worker's ring of shared-memory slots: unpickled they equal the arrays
sent, a slot comes back only when nothing views it, a full ring falls back to plain tensors,
and real DataLoader workers deliver every batch intact, even to a consumer that keeps them."""

from __future__ import annotations

import gc
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

torch = pytest.importorskip("torch")

from pitfall import open_cube  # noqa: E402
from pitfall.loaders import Loader, PairDataset, slots  # noqa: E402

DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint8, np.bool_])


def arrays() -> st.SearchStrategy[np.ndarray]:
    return DTYPES.flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, max_side=7))
    )


def through_pickle(record: object) -> object:
    """What the receiving process gets: the record pickled as a worker's queue does."""
    return pickle.loads(pickle.dumps(record))


def assert_batch_equal(got, want) -> None:
    """``got`` (tensors, lists) equals ``want`` (numpy, tuples) as torch's default_convert
    would have converted it: arrays to tensors of the same dtype, tuples to lists."""
    if isinstance(want, np.ndarray):
        assert isinstance(got, torch.Tensor)
        assert got.numpy().dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want)
        for k in want:
            assert_batch_equal(got[k], want[k])
    elif isinstance(want, (tuple, list)):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_batch_equal(g, w)
    else:
        assert got == want


@settings(max_examples=60, deadline=None)
@given(
    leaves=st.lists(arrays(), min_size=1, max_size=4),
    names=st.lists(st.text(max_size=4), max_size=3),
)
def test_slot_batch__unpickles_to_the_arrays_sent(leaves, names) -> None:
    batch = ({f"k{i}": a for i, a in enumerate(leaves[1:])}, leaves[0], {"name": names})
    ring = slots.SlotRing(slots.batch_bytes(batch), n_slots=2)
    record = ring.put(batch)
    assert record is not None
    got = through_pickle(record)
    assert_batch_equal(got, batch)
    # Each array is its own tensor: writing one leaves the others and the sent arrays alone.
    before = [a.copy() for a in leaves]
    for t in [got[1], *got[0].values()]:
        if t.numel():
            t.view(-1)[0] = not bool(t.view(-1)[0]) if t.dtype == torch.bool else t.view(-1)[0] + 1
    for a, b in zip(leaves, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_slot__freed_only_when_no_tensor_views_it() -> None:
    batch = ({"sequence": np.arange(24, dtype=np.float32).reshape(2, 3, 4)}, np.ones(2, np.float32))
    ring = slots.SlotRing(slots.batch_bytes(batch), n_slots=1)
    got = through_pickle(ring.put(batch))
    assert ring.flags.tolist() == [1]
    assert ring.put(batch) is None  # the only slot is held
    view = got[0]["sequence"][1, :, 2:]  # a view of one tensor keeps the whole slot
    as_numpy = got[1].numpy()
    del got
    gc.collect()
    assert ring.flags.tolist() == [1]
    del view
    gc.collect()
    assert ring.flags.tolist() == [1]  # the numpy view of y still holds it
    np.testing.assert_array_equal(as_numpy, batch[1])
    del as_numpy
    gc.collect()
    assert ring.flags.tolist() == [0]
    assert ring.put(batch) is not None


def test_slot__alloc_writes_in_place_and_seal_copies_the_rest() -> None:
    ring = slots.SlotRing(4 * 64, n_slots=1)
    slot = ring.claim()
    a = slot.alloc((8,), np.dtype(np.float32))  # 32 bytes, in the slot
    a[:] = np.arange(8)
    b = np.full(3, 7, np.int64)  # made elsewhere: copied in by seal
    got = through_pickle(slot.seal([a, b, "x"]))
    assert_batch_equal(got, [np.arange(8, dtype=np.float32), b, "x"])
    assert np.shares_memory(a, ring.bytes)


def test_slot__batch_too_large_leaves_the_slot_with_copies() -> None:
    ring = slots.SlotRing(128, n_slots=1)
    slot = ring.claim()
    a = slot.alloc((16,), np.dtype(np.float32))  # half the slot
    y = slot.alloc((16,), np.dtype(np.float32))  # the other half
    a[:], y[:] = 1.0, 2.0
    big = ({"a": a, "b": np.zeros(100, np.float32)}, y)  # cannot fit with a and y
    assert slot.seal(big) is None
    assert ring.flags.tolist() == [1]  # still the worker's until released
    sent = slot.release(big)
    assert ring.flags.tolist() == [0]
    # Moved out before the slot is reused, in a dict and straight in the tuple alike.
    assert type(sent) is tuple and sent[0]["b"] is big[0]["b"]
    assert not np.shares_memory(sent[0]["a"], ring.bytes)
    assert not np.shares_memory(sent[1], ring.bytes)
    again = ring.claim()
    again.alloc((32,), np.dtype(np.float32))[:] = 5.0
    np.testing.assert_array_equal(sent[0]["a"], np.ones(16, np.float32))
    np.testing.assert_array_equal(sent[1], np.full(16, 2.0, np.float32))


def test_send__outside_a_worker_is_default_convert() -> None:
    batch = ({"x": np.ones((2, 3), np.float32)}, np.zeros(2, np.float32))
    got = slots.send(object(), batch)
    assert_batch_equal(got, batch)
    assert got[1].numpy().base is not None or np.shares_memory(got[1].numpy(), batch[1])


# ------------------------------------------------------------------------------ real workers


@pytest.fixture(scope="module")
def loader(chunked_cube_path, hybrid_split) -> Loader:
    cube = open_cube(chunked_cube_path)
    return Loader(cube, hybrid_split.train(cube), inputs="both", balanced=False,
                  batch_size=8, store=chunked_cube_path, ids=True, seed=3)  # fmt: skip


def _shm_names() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("torch_*")}


needs_dev_shm = pytest.mark.skipif(
    not Path("/dev/shm").is_dir(), reason="shared memory is not a folder here (Linux only)"
)


def test_dataloader__a_consumer_keeping_every_batch_gets_them_intact(loader) -> None:
    """More batches held than the ring has slots: the workers fall back to plain tensors,
    and no batch already delivered is overwritten."""
    want = list(loader.with_options(layout="NCL").epoch(0))
    ds = loader.to_torch()
    ds.set_epoch(0)
    dl = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                     multiprocessing_context="spawn", prefetch_factor=4)  # fmt: skip
    kept = list(dl)
    assert len(kept) == len(want) > 2 * 4
    n_views = sum(b[1]._base is not None for b in kept)
    assert 0 < n_views < len(kept)  # some in slots, the rest sent plainly once the ring filled
    for got, w in zip(kept, want, strict=True):
        assert_batch_equal(got, w)


def test_dataloader__pair_batches_through_slots_equal_the_dataset(
    chunked_cube_path, hybrid_split
) -> None:
    cube = open_cube(chunked_cube_path)
    data = PairDataset(cube, hybrid_split.train(cube), inputs="both", store=chunked_cube_path)
    sampler = torch.utils.data.BatchSampler(range(len(data)), 16, drop_last=False)
    dl = torch.utils.data.DataLoader(data, batch_size=None, sampler=sampler, num_workers=2,
                                     multiprocessing_context="spawn")  # fmt: skip
    for indices, got in zip(sampler, dl, strict=True):
        want = data[indices]
        assert got[1]._base is not None  # rebuilt from a slot
        assert_batch_equal(got, want)


def _wait_gone(names: set[str], seconds: float = 30) -> set[str]:
    deadline = time.monotonic() + seconds
    while _shm_names() & names and time.monotonic() < deadline:
        time.sleep(0.2)
    return _shm_names() & names


@needs_dev_shm
def test_dataloader__rings_leave_shared_memory_with_their_batches(loader) -> None:
    before = _shm_names()
    dl = torch.utils.data.DataLoader(loader.to_torch(), batch_size=None, num_workers=2,
                                     multiprocessing_context="spawn", persistent_workers=True)  # fmt: skip
    batches = list(dl)
    rings = _shm_names() - before
    assert len(rings) == 2 and batches[0][1]._base is not None  # one ring per worker
    del dl  # the workers stop; the batches in hand keep their rings
    time.sleep(3)
    assert _shm_names() & rings
    del batches
    gc.collect()
    assert not _wait_gone(rings)


KILL = """
import os, signal, sys
from pathlib import Path
import torch
from pitfall import open_cube
from pitfall.loaders import Loader

if __name__ == "__main__":
    cube = open_cube(sys.argv[1])
    loader = Loader(cube, cube.isel(cell_type=slice(0, 2)), inputs="both", balanced=False,
                    batch_size=8, store=sys.argv[1])
    dl = torch.utils.data.DataLoader(loader.to_torch(), batch_size=None, num_workers=2,
                                     multiprocessing_context="spawn")
    before = {p.name for p in Path("/dev/shm").glob("torch_*")}
    it = iter(dl)
    batch = next(it)
    batch = next(it)
    print("rings:", *sorted({p.name for p in Path("/dev/shm").glob("torch_*")} - before))
    os.kill(it._workers[0].pid, signal.SIGKILL)
    try:
        for _ in it:
            pass
    except RuntimeError as err:
        print("worker died:", err)
"""


@needs_dev_shm
def test_dataloader__killed_worker_leaves_no_shared_memory_once_main_exits(
    chunked_cube_path, tmp_path
) -> None:
    """A killed worker cannot let its ring go: its name stays until the main process exits,
    then torch's shared-memory manager removes it (as for torch's own file_system sharing)."""
    script = tmp_path / "kill.py"
    script.write_text(KILL)
    run = subprocess.run([sys.executable, str(script), str(chunked_cube_path)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "worker died" in run.stdout
    rings = set(run.stdout.split("rings:")[1].splitlines()[0].split())
    assert len(rings) == 2
    assert not _wait_gone(rings)


def _plain_collate(batch):
    """A user's collate function: sees each example as the tuple ``(x, y, meta)``."""
    assert all(isinstance(e, tuple) and len(e) == 3 for e in batch)
    return torch.utils.data.default_collate([(x, y, meta) for x, y, meta in batch])


@pytest.mark.parametrize("collate", [None, _plain_collate])
def test_dataloader__per_example_batches_equal_the_dataset(
    chunked_cube_path, hybrid_split, collate
) -> None:
    """``DataLoader(data, batch_size=7, shuffle=True)`` with 2 workers: the default collation
    sends each batch whole through a slot, a user's collate_fn sees plain tuples; both equal
    the examples collated one by one in this process."""
    cube = open_cube(chunked_cube_path)
    data = PairDataset(cube, hybrid_split.train(cube), inputs="both", store=chunked_cube_path)
    kw = {} if collate is None else {"collate_fn": collate}
    dl = torch.utils.data.DataLoader(data, batch_size=7, shuffle=True, num_workers=2,
                                     multiprocessing_context="spawn", **kw)  # fmt: skip
    seen = []
    for got in dl:
        indices = got[2]["index"].tolist()
        seen.extend(indices)
        want = torch.utils.data.default_collate([data[i] for i in indices])
        assert (got[1]._base is not None) == (collate is None)  # from a slot, or not
        assert list(got[2]) == list(want[2])
        for g, w in [(got[0][k], want[0][k]) for k in want[0]] + [(got[1], want[1])]:
            assert g.dtype == w.dtype and torch.equal(g, w)
        for k in want[2]:
            if isinstance(want[2][k], list):
                assert got[2][k] == want[2][k]
            else:
                assert got[2][k].dtype == want[2][k].dtype and torch.equal(got[2][k], want[2][k])
    assert sorted(seen) == list(range(len(data)))
