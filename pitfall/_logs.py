"""Quiet by default: the log noise of the libraries pitfall drives, turned down in one place.

TensorFlow, Icechunk, Dask and numba each talk on their own channel: TensorFlow's C++ core
through ``TF_CPP_MIN_LOG_LEVEL`` (and, before its logger starts, straight to the process's
stderr), Icechunk through its Rust log filter, Dask and numba through Python loggers.
:func:`quiet_third_party` turns each down to errors; pitfall's own messages use the
``pitfall`` logger (the command line's ``-q`` / ``-v`` set its level).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

__all__ = ["native_stderr_silenced", "progress_bars", "quiet_tensorflow", "quiet_third_party"]

_PYTHON_LOGGERS = ("distributed", "tensorflow", "absl", "numba", "h5py", "matplotlib", "fsspec")


def quiet_tensorflow() -> None:
    """Quiet TensorFlow's C++ core unless the user set its level (``TF_CPP_MIN_LOG_LEVEL``).

    Read once, when TensorFlow is imported: the functions that import it call this first.
    Importing pitfall changes no environment variable.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def quiet_third_party(debug: bool = False) -> None:
    """Turn the libraries' logs down to errors (``debug``: leave them as they are)."""
    if debug:
        return
    quiet_tensorflow()
    for name in _PYTHON_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    from pitfall.storage import set_icechunk_logs

    set_icechunk_logs("icechunk=error")


def progress_bars(progress: bool) -> bool:
    """Whether to draw the progress bars a caller asked for: only where someone watches.

    A terminal or a Jupyter kernel shows a bar; a log file or a pipe would get one line
    per update of it.
    """
    if not progress:
        return False
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False
    return "ipykernel" in sys.modules


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence what native code writes to the process's stderr (file descriptor 2).

    TensorFlow writes its oneDNN notice to stderr at import, before its own log level is
    read; only the descriptor can be quieted. Python errors raised meanwhile still propagate
    (their traceback is printed later, by whoever handles them). ``PITFALL_DEBUG=1`` leaves
    stderr alone.
    """
    if os.environ.get("PITFALL_DEBUG", "") not in ("", "0"):
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real descriptor (e.g. captured)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
