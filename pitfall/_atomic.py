"""One rule for every file pitfall writes: complete under its final name, or not there.

A file (a track, a report, a results table, a JSON summary) or a folder (an exported Zarr
store) is written under a temporary name in the same folder and renamed onto its final
name only when the writer finished without an error. A failure of any kind (a full disk,
Ctrl-C, a bug) removes the temporary and leaves whatever was at the final name untouched;
a reader never sees half a file, and a rerun finds the place as it was.

::

    from pitfall._atomic import atomic_path, atomic_write_text

    with atomic_path("out/x.bw") as tmp:   # tmp: out/.x.bw.<random>.part, created empty
        write_bigwig(tmp)                  # any writer that takes a path
    atomic_write_text("out/findings.json", text)

The temporary is created before the writer runs, so an unwritable place (a read-only disk,
``/proc``, a missing permission) fails with Python's ``OSError`` for that place, before
any native library gets to open it. A final name that is a folder (for a file) or a file
(for a folder) is refused with :class:`FileExistsError`, naming it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "UnwritablePlace",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "temporary_name",
]

log = logging.getLogger(__name__)


class UnwritablePlace(OSError):
    """No file can be created where a file was to be written (read-only, no permission,
    a pseudo file system such as ``/proc``); ``filename`` is the file asked for."""


def temporary_name(final: str | os.PathLike[str]) -> Path:
    """A fresh hidden name beside ``final``: ``<folder>/.<name>.<random>.part``."""
    final = Path(final)
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")


def _refuse_other_kind(final: Path, folder: bool) -> None:
    if folder and final.exists() and not final.is_dir():
        raise FileExistsError(f"{final} is a file; name a new folder")
    if folder and final.is_dir() and any(final.iterdir()):
        raise FileExistsError(f"{final} is a folder that is not empty; name a new folder")
    if not folder and final.is_dir():
        raise FileExistsError(f"{final} is a folder; name a file to write")


def _create(tmp: Path, folder: bool) -> None:
    if folder:
        tmp.mkdir()
        return
    # O_EXCL: never adopt someone else's file; mode 0o666 less the umask, as open() makes.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _create_or_refuse(tmp: Path, final: Path, folder: bool, parents: bool) -> None:
    try:
        if parents:
            tmp.parent.mkdir(parents=True, exist_ok=True)
        _create(tmp, folder)
    except OSError as err:
        # The error names the file asked for, not the temporary the user never chose.
        raise UnwritablePlace(
            err.errno, f"cannot write here ({err.strerror or err})", str(final)
        ) from err


def _remove(tmp: Path, folder: bool) -> None:
    """Remove a temporary; never raises (the writer's own error is the one to report)."""
    try:
        if folder:
            shutil.rmtree(tmp)
        else:
            tmp.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning("could not remove the unfinished %s: %s", tmp, err)


def _publish(tmp: Path, final: Path, folder: bool) -> None:
    if not folder:
        os.replace(tmp, final)
        return
    try:
        # rename(2) replaces an empty folder and refuses a non-empty one.
        os.rename(tmp, final)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(f"{final} appeared while writing and is not empty") from err
        raise


@contextlib.contextmanager
def atomic_path(
    final: str | os.PathLike[str], *, folder: bool = False, parents: bool = True
) -> Iterator[Path]:
    """A temporary path to write ``final`` under; renamed onto ``final`` when the block ends.

    Parameters
    ----------
    final : str or os.PathLike
        The file (or, with ``folder``, the folder) to write.
    folder : bool
        Write a folder (e.g. a Zarr store): the temporary is an empty folder, and the final
        name must be absent or an empty folder (checked before and at the rename).
    parents : bool
        Create the missing folders above ``final`` first.

    Yields
    ------
    pathlib.Path
        ``<folder of final>/.<name of final>.<random>.part``, already created (an empty file,
        or an empty folder): the writer may open it by name and truncate it.

    Raises
    ------
    FileExistsError
        ``final`` is a folder (writing a file), or a file or a folder that is not empty
        (writing a folder).
    UnwritablePlace
        The temporary cannot be created there (read-only, no permission, a place without
        files); an ``OSError`` naming ``final``, with the system's errno.
    OSError
        From the writer, or from the rename; the temporary is gone then.
    """
    final = Path(final)
    _refuse_other_kind(final, folder)
    tmp = temporary_name(final)
    _create_or_refuse(tmp, final, folder, parents)
    try:
        yield tmp
        _publish(tmp, final, folder)
    except BaseException as err:
        _remove(tmp, folder)
        if isinstance(err, OSError):
            _name_final(err, tmp, final)
        raise


#: Errnos of a failed write that Python may raise without a file name (a full disk shows
#: when buffered data are flushed).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def _name_final(err: OSError, tmp: Path, final: Path) -> None:
    # A full disk names the file asked for, not a temporary name the user never saw.
    if err.filename is None:
        if err.errno in _WRITE_ERRNOS:
            err.filename = str(final)
        return
    name = str(err.filename)
    if name == str(tmp) or name.startswith(f"{tmp}{os.sep}"):
        err.filename = str(final)


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``final`` by :func:`atomic_path` (flushed to disk before the rename)."""
    final = Path(final)
    with atomic_path(final) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return final


def atomic_write_text(final: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``final`` by :func:`atomic_path`; returns ``final`` as a Path."""
    return atomic_write_bytes(final, text.encode(encoding))
