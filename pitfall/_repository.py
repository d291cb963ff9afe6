"""Icechunk repository plumbing of a cube: open, create, remove, and test hooks.

A repository is where a cube's snapshots live (:mod:`pitfall.storage` says where). Creating
one refuses any location that already holds something (a cube, or files pitfall did not
write); an empty repository left by a build killed before its first commit is reused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import icechunk
import numpy as np
import zarr

from pitfall.storage import (
    Location,
    StorageError,
    check_credentials,
    innermost_cause,
    parse_location,
    storage,
    storage_error,
)

__all__ = [
    "cell_types_of",
    "create_repository",
    "has_foreign_files",
    "json_attrs",
    "native_errors",
    "open_repository",
    "os_error_of",
    "pause_point",
    "quiet_zarr",
    "remove_new_repository",
    "remove_objects",
    "root_attrs",
    "stored_bytes",
    "zarr_array",
]

_OS_ERROR = re.compile(r"\(os error (\d+)\)")

log = logging.getLogger(__name__)


def os_error_of(err: BaseException) -> OSError | None:
    """The operating-system error inside a native library's error text, as an ``OSError``.

    Icechunk reports a full or read-only disk as an ``IcechunkError`` (or, opening a store,
    as a Rust panic) whose text ends in ``(os error 28)``; this gives it back its errno.
    """
    match = _OS_ERROR.search(str(err))
    if match is None:
        return None
    code = int(match.group(1))
    return OSError(code, os.strerror(code))


def _is_native(err: BaseException) -> bool:
    """An error of Icechunk or obstore (or a Rust panic surfacing through pyo3)."""
    names = {c.__name__ for c in type(err).__mro__}
    return isinstance(err, icechunk.IcechunkError) or bool(names & {"PanicException", "BaseError"})


@contextlib.contextmanager
def native_errors(where: Any) -> Iterator[None]:
    """Classify storage errors where they happen: an ``OSError`` naming ``where`` and the cause.

    Icechunk's and obstore's errors (and Icechunk's panics) about a disk become an
    ``OSError`` with the disk's errno; a missing bucket, absent or refused credentials and
    an unreachable server a :class:`~pitfall.storage.StorageError` saying so
    (:func:`pitfall.storage.storage_error`). Anything else goes through unchanged.
    """
    try:
        yield
    except BaseException as err:
        if not _is_native(err):
            raise
        classified = storage_error(err, where)
        if classified is None:
            raise
        raise classified from err


def has_foreign_files(loc: Location, **options: Any) -> bool:
    """Whether a folder or an object-store prefix holds anything."""
    if loc.is_local:
        return loc.path.exists() and any(loc.path.iterdir())
    from pitfall.storage import list_objects

    with native_errors(loc):
        return next(iter(list_objects(loc, **options)), None) is not None


def remove_objects(loc: Location, **options: Any) -> bool:
    """Delete every object under an object-store prefix (or a local folder); True if done.

    For clean-up after a failure: it never raises (the failure is the error to report, and
    a storage that just failed may fail again here); what it could not remove it logs.
    """
    try:
        if loc.is_local:
            import shutil

            shutil.rmtree(loc.path)
            return True
        import obstore

        from pitfall.storage import object_store

        store = object_store(loc, **options)
        for batch in obstore.list(store):
            obstore.delete(store, [meta["path"] for meta in batch])
        return True
    except FileNotFoundError:
        return True
    except Exception as err:
        # Said only with -v: the failure that led here is the error the user sees.
        log.info("could not remove what was written at %s: %s", loc, innermost_cause(err))
        return False


def open_repository(
    location: str | os.PathLike[str] | Location, **storage_options: Any
) -> icechunk.Repository:
    """Open the Icechunk repository of an existing cube.

    Raises
    ------
    FileNotFoundError
        When no cube exists at ``location`` (the message says how to make one).
    """
    loc = parse_location(location)
    if loc.is_local and not loc.path.is_dir():
        raise FileNotFoundError(_no_cube(loc))
    st = storage(loc, **storage_options)
    check_credentials(loc, anonymous=storage_options.get("anonymous"))
    try:
        with native_errors(loc):
            exists = icechunk.Repository.exists(st)
            if exists:
                return icechunk.Repository.open(st)
    except icechunk.IcechunkError as err:
        raise StorageError(
            f"{loc}: cannot read the store ({innermost_cause(err)}); check the location, the "
            "endpoint (AWS_ENDPOINT_URL or --endpoint-url) and the credentials in the "
            "environment (or --anonymous for a public bucket)"
        ) from err
    raise FileNotFoundError(_no_cube(loc))


def _no_cube(loc: Location) -> str:
    return (
        f"{loc} is not a pitfall cube (no Icechunk repository there); create one with "
        "`pitfall build MANIFEST --store LOCATION` or `pitfall demo`"
    )


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _is_empty_repository(repo: icechunk.Repository) -> bool:
    """A repository with only Icechunk's initial commit (a build killed before its first)."""
    return len(list(repo.ancestry(branch="main"))) <= 1


def create_repository(
    location: str | os.PathLike[str] | Location, **storage_options: Any
) -> tuple[icechunk.Repository, bool]:
    """A new, empty repository at ``location``, and whether this call created it.

    An empty repository left by a build killed before its first commit is reused; anything
    else already there (a cube, or files pitfall did not write) is refused.
    """
    loc = parse_location(location)
    st = storage(loc, **storage_options)
    check_credentials(loc, anonymous=storage_options.get("anonymous"))
    # Two builds racing to one local folder: only the one holding this lock checks and
    # creates, so exactly one is the creator (the only one that may remove it on failure).
    # Object stores settle the race themselves (Icechunk creates with a conditional write).
    with _creation_lock(loc):
        with native_errors(loc):
            exists = icechunk.Repository.exists(st)
        if exists:
            repo = icechunk.Repository.open(st)
            if _is_empty_repository(repo):
                return repo, False
            raise FileExistsError(
                f"{loc} already holds a cube; add cell types with `pitfall append {loc} "
                "MANIFEST --cell-type ID`, or choose a new --store"
            )
        if has_foreign_files(loc):
            raise FileExistsError(
                f"{loc} exists and holds files that are not a pitfall cube; choose a new "
                "--store (pitfall never writes over files it did not make)"
            )
        if loc.is_local:
            loc.path.mkdir(parents=True, exist_ok=True)
        try:
            with native_errors(loc):
                return icechunk.Repository.create(st), True
        except icechunk.IcechunkError as err:
            # Another writer (another machine, on object storage) created it first.
            raise FileExistsError(
                f"{loc}: another writer is creating a cube there ({_first_line(err)})"
            ) from err


@contextlib.contextmanager
def _creation_lock(loc: Location) -> Iterator[None]:
    if not loc.is_local:
        yield
        return
    import hashlib
    import tempfile

    import filelock

    # Outside the folder: Icechunk creates repositories only in empty ones.
    folder = Path(tempfile.gettempdir()) / "pitfall-locks"
    folder.mkdir(exist_ok=True)
    key = hashlib.sha256(str(loc.path).encode()).hexdigest()[:24]
    with filelock.FileLock(str(folder / f"{key}.lock")):
        yield


def remove_new_repository(
    location: str | os.PathLike[str] | Location, *, writer: str = "", **options: Any
) -> bool:
    """Delete a repository that this process created (a build that failed); True if it did.

    Only for a location that held nothing before the build (:func:`create_repository` made
    sure), and only while every commit in it is this writer's (``writer``, recorded in each
    commit's metadata): a second build that reused the new repository and committed first
    keeps its cube. Never raises (:func:`remove_objects`): the build's own error is the one
    to report.
    """
    loc = parse_location(location)
    try:
        repo = icechunk.Repository.open(storage(loc, **options))
        history = list(repo.ancestry(branch="main"))[:-1]  # less Icechunk's initial commit
    except Exception:
        history = []
    if any((info.metadata or {}).get("writer") != writer for info in history):
        return False
    return remove_objects(loc, **options)


def root_attrs(repo: icechunk.Repository, branch: str = "main") -> dict[str, Any]:
    """The cube's root attributes at the tip of ``branch`` (reads one small object)."""
    with quiet_zarr():
        try:
            return dict(zarr.open_group(repo.readonly_session(branch).store, mode="r").attrs)
        except FileNotFoundError:  # an empty repository: no commit made the root group
            return {}


def zarr_array(group: zarr.Group, name: str) -> zarr.Array:
    """``group[name]``, which must be an array (zarr types it as an array or a group)."""
    arr = group[name]
    if not isinstance(arr, zarr.Array):
        raise TypeError(f"{name!r} in the cube is a zarr group, not an array")
    return arr


def cell_types_of(repo: icechunk.Repository, branch: str = "main") -> list[str]:
    """The cell types of the cube at the tip of ``branch``."""
    try:
        group = zarr.open_group(repo.readonly_session(branch).store, mode="r")
    except FileNotFoundError:  # an empty repository
        return []
    return (
        [str(c) for c in np.asarray(zarr_array(group, "cell_type")[:])]
        if "cell_type" in group
        else []
    )


def pause_point(name: str) -> None:
    """Let tests stop a writer at a named point (to kill it there); a no-op otherwise.

    The writer announces the pause by writing ``PITFALL_PAUSE_FILE`` and waits until the
    file ``PITFALL_RESUME_FILE`` exists (or 120 s pass).
    """
    if os.environ.get("PITFALL_PAUSE_AT") == name:
        Path(os.environ["PITFALL_PAUSE_FILE"]).write_text(name)
        resume = Path(os.environ.get("PITFALL_RESUME_FILE", "/nonexistent"))
        deadline = time.monotonic() + 120
        while not resume.exists() and time.monotonic() < deadline:
            time.sleep(0.02)


def json_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    # Zarr attributes must be JSON; a round trip turns numpy scalars and tuples into plain types.
    return json.loads(json.dumps(dict(attrs), default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in cube attributes")


@contextlib.contextmanager
def quiet_zarr() -> Iterator[None]:
    # Writing vlen strings in Zarr v3 warns that the extension dtype may change; the cube
    # pins zarr's version range, and readers are unaffected.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        yield


def stored_bytes(repo: icechunk.Repository) -> int:
    stats = repo.chunk_storage_stats()
    return int(stats.native_bytes + getattr(stats, "inlined_bytes", 0))
