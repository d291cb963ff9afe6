"""Inputs anywhere a worker can reach: ``https://``, ``s3://``, ``gs://``, ``az://`` URLs.

Manifests may name URLs as well as local paths. Three ways to read one, by what the reader
library can take:

- :class:`RangedFile`: a seekable binary file over HTTP range requests (one request per
  block it has not seen), for readers that take file objects (pybigtools reads bigWigs
  this way: only the header, the index and the blocks the windows touch travel);
- :func:`local_copy`: the file downloaded once into a per-machine cache, for readers that
  need a path (pyfaidx, and pyBigWig, which is built here without remote support);
- :func:`read_bytes`: a small file (annotation, table, peaks) read whole.

Requests go through ``obstore`` (Rust ``object_store``, the engine under Icechunk's own
storage), with credentials and endpoints from the environment as in
:mod:`pitfall.storage`, whose :func:`~pitfall.storage.is_url` (re-exported here) tells a
URL from a local path.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from pitfall.storage import StorageError, is_url, object_store, storage_error

__all__ = ["RangedFile", "cache_dir", "head", "is_url", "local_copy", "read_bytes"]

_BLOCK = 1 << 20


def _split(url: str) -> tuple[Any, str]:
    """(store, key) of a file URL: the store is rooted at the file's folder."""
    base, _, key = url.rpartition("/")
    if not key:
        raise ValueError(f"{url}: a URL of a file, not of a folder, is needed")
    return object_store(base), key


def _not_found(url: str, err: BaseException) -> OSError:
    """The error to raise for a failed request: the file missing, or the environment's cause.

    A server that went away or a missing bucket is a :class:`~pitfall.storage.StorageError`
    (an ``OSError``, never taken for a damaged file by the readers).
    """
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "404" in text or "NotFound" in type(err).__name__ or "not found" in text.lower():
        if "NoSuchBucket" not in str(err):
            return FileNotFoundError(f"{url}: no such file on the server (check the URL)")
    classified = storage_error(err, url)
    if classified is not None:
        return classified
    return StorageError(
        f"{url}: cannot be read ({text}); check the URL, the network and credentials"
    )


def head(url: str) -> dict[str, Any]:
    """Size, ETag and modification time of a remote file (one request).

    Raises
    ------
    FileNotFoundError, OSError
        Naming the URL.
    """
    import obstore

    store, key = _split(url)
    try:
        meta = obstore.head(store, key)
    except Exception as err:
        raise _not_found(url, err) from err
    return {
        "size": int(meta["size"]),
        "etag": meta.get("e_tag"),
        "last_modified": str(meta.get("last_modified")),
    }


def read_bytes(url: str) -> bytes:
    """The whole content of a (small) remote file."""
    import obstore

    store, key = _split(url)
    try:
        return bytes(obstore.get(store, key).bytes())
    except Exception as err:
        raise _not_found(url, err) from err


def cache_dir() -> Path:
    """Where :func:`local_copy` keeps downloads: ``PITFALL_CACHE``, else the temp folder."""
    root = Path(os.environ.get("PITFALL_CACHE") or Path(tempfile.gettempdir()) / "pitfall-cache")
    root.mkdir(parents=True, exist_ok=True)
    return root


def local_copy(url: str) -> Path:
    """A local copy of a remote file, downloaded once per machine and version.

    The copy is keyed by the URL and the server's ETag and size, written to a temporary name
    and renamed when complete (a killed download never leaves a partial file under the final
    name); a file lock makes concurrent workers on one machine download it once.
    """
    import filelock
    import obstore

    meta = head(url)
    digest = hashlib.sha256(f"{url}\0{meta['etag']}\0{meta['size']}".encode()).hexdigest()[:20]
    folder = cache_dir() / digest
    folder.mkdir(exist_ok=True)
    target = folder / url.rpartition("/")[2]
    with filelock.FileLock(str(folder / ".lock")):
        if target.is_file() and target.stat().st_size == meta["size"]:
            return target
        store, key = _split(url)
        part = target.with_name(target.name + ".part")
        try:
            with open(part, "wb") as fh:
                for chunk in obstore.get(store, key).stream(min_chunk_size=8 * _BLOCK):
                    fh.write(chunk)
        except Exception as err:
            part.unlink(missing_ok=True)
            raise _not_found(url, err) from err
        part.replace(target)
    return target


class RangedFile(io.RawIOBase):
    """A read-only, seekable file over range requests, with an LRU of fixed-size blocks.

    Parameters
    ----------
    url
        ``http(s)://``, ``s3://``, ``gs://`` or ``az://`` URL of one file.
    block_size
        Bytes per range request (reads are rounded out to whole blocks).
    max_blocks
        Blocks kept in memory (the LRU's size).
    """

    def __init__(self, url: str, *, block_size: int = _BLOCK, max_blocks: int = 16) -> None:
        super().__init__()
        self.name = url
        self._store, self._key = _split(url)
        self._size = head(url)["size"]
        self._pos = 0
        self._block = block_size
        self._max = max_blocks
        self._cache: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _get(self, k: int) -> bytes:
        import obstore

        if k in self._cache:
            data = self._cache.pop(k)
        else:
            lo = k * self._block
            hi = min(self._size, lo + self._block)
            try:
                data = bytes(obstore.get_range(self._store, self._key, start=lo, end=hi))
            except Exception as err:
                raise _not_found(self.name, err) from err
            while len(self._cache) >= self._max:
                self._cache.pop(next(iter(self._cache)))
        self._cache[k] = data  # most recently used last
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self._size - self._pos))
        done = 0
        while done < want:
            k, off = divmod(self._pos + done, self._block)
            data = self._get(k)[off:]
            step = min(len(data), want - done)
            view[done : done + step] = data[:step]
            done += step
        self._pos += done
        return done

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self._size - self._pos)
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(buf[:n])
