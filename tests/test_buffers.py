"""pitfall._buffers: per-thread buffers; pitfall._checksum, which reads files through one."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from pitfall import _buffers as buffers
from pitfall import _checksum as checksum
from pitfall.featurize.plan import file_checksum


def test_buffer__same_thread_and_name_reuses_memory() -> None:
    a = buffers.buffer("test a", 1000)
    b = buffers.buffer("test a", 10, np.float64)
    assert np.shares_memory(a, b)
    assert b.shape == (10,) and b.dtype == np.float64
    assert not np.shares_memory(a, buffers.buffer("test b", 1000))


def test_buffer__grows_to_the_size_asked() -> None:
    small = buffers.buffer("test grow", 8)
    big = buffers.buffer("test grow", (2 << 20) // 8, np.int64)
    assert big.shape == ((2 << 20) // 8,) and big.dtype == np.int64
    big[:] = np.arange(big.size)  # every item writable: the buffer really has that room
    assert not np.shares_memory(small, big)
    assert np.shares_memory(big, buffers.buffer("test grow", 8))


def test_buffer__each_thread_has_its_own() -> None:
    mine = buffers.buffer("test thread", 64)
    theirs: list[np.ndarray] = []
    t = threading.Thread(target=lambda: theirs.append(buffers.buffer("test thread", 64)))
    t.start()
    t.join()
    assert not np.shares_memory(mine, theirs[0])


def test_buffer__over_keep_bytes_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffers, "KEEP_BYTES", 1024)
    a = buffers.buffer("test big", 2048)
    assert not np.shares_memory(a, buffers.buffer("test big", 2048))
    kept = buffers.buffer("test big", 1024)
    assert np.shares_memory(kept, buffers.buffer("test big", 512))


SIZES = [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 << 20]


@pytest.mark.parametrize("size", SIZES)
def test_file_checksum__matches_hashlib_of_the_whole_file(tmp_path: Path, size: int) -> None:
    # Sizes around the 1 MiB read buffer: an empty file, a partial last read, exact fills.
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    assert file_checksum(path) == {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}
    assert checksum.sha256_of(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", SIZES)
def test_update_from_file__continues_a_running_hash(tmp_path: Path, size: int) -> None:
    # What a resumed download does: the hash of bytes already seen, then of the file.
    data = np.random.default_rng(size + 7).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "part.bin"
    path.write_bytes(data)
    h = hashlib.sha256(b"seen before")
    assert checksum.update_from_file(h, path) is h
    assert h.hexdigest() == hashlib.sha256(b"seen before" + data).hexdigest()


def test_buffer__grows_by_doubling_up_to_keep_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffers, "KEEP_BYTES", 5 << 20)
    mib = 1 << 20
    first = buffers.buffer("test doubling", mib + 1)  # exactly what was asked, over 1 MiB
    grown = buffers.buffer("test doubling", mib + 2)  # one byte more: twice the old size
    assert not np.shares_memory(first, grown)
    assert np.shares_memory(grown, buffers.buffer("test doubling", 2 * mib + 2))
    again = buffers.buffer("test doubling", 2 * mib + 3)
    assert np.shares_memory(again, buffers.buffer("test doubling", 4 * mib + 4))
    capped = buffers.buffer("test doubling", 4 * mib + 5)  # 8 MiB would pass KEEP_BYTES
    assert np.shares_memory(capped, buffers.buffer("test doubling", 5 * mib))


def test_buffer__empty_request_keeps_nothing() -> None:
    assert buffers.buffer("test empty", 0, np.float64).shape == (0,)
    assert "test empty" not in buffers._LOCAL.__dict__.get("buffers", {})
