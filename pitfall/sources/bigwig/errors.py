"""How bigWig reading fails: a missing chromosome, and an unreadable file named in the message."""

from __future__ import annotations

import os
import struct
import zlib

from pitfall.storage import StorageError

__all__ = ["READ_ERRORS", "MissingChromosome", "is_read_error", "label_of", "unreadable"]

#: What reading a damaged file raises besides ValueError (the libraries add their own).
READ_ERRORS = (OSError, EOFError, struct.error, zlib.error)


class MissingChromosome(KeyError):
    """A chromosome is absent from a bigWig (the featurizer writes NaN for it, with a warning)."""

    def __init__(self, path: str, chrom: str) -> None:
        super().__init__(f"chromosome {chrom!r} is not in bigWig {path}")
        self.path = path
        self.chrom = chrom

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, adding quotes.
        return str(self.args[0])


def label_of(fileobj: object) -> str:
    """The name of a file object for messages: its ``name``, else its repr."""
    name = getattr(fileobj, "name", None)
    return os.fspath(name) if isinstance(name, (str, os.PathLike)) else repr(fileobj)


def unreadable(path: str, err: BaseException | str) -> ValueError:
    """The error that says ``path`` is not a readable bigWig, and why (``err``)."""
    why = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return ValueError(
        f"{path} is not a readable bigWig ({why}); check that it is a complete bigWig file "
        "(e.g. with bigWigInfo) and download or convert it again"
    )


def is_read_error(err: BaseException) -> bool:
    """Whether ``err`` is how a backend reports an unreadable file (vs. a bug or Ctrl-C)."""
    # pyBigWig raises bare RuntimeErrors; pybigtools raises BBIReadError, or on corrupt data
    # blocks a Rust panic surfacing as pyo3's PanicException, which derives from
    # BaseException (not Exception) and has no importable name. A URL whose server went
    # away (a StorageError) is the network's failure, not the file's.
    if isinstance(err, StorageError):
        return False
    names = {c.__name__ for c in type(err).__mro__}
    return isinstance(err, (RuntimeError, *READ_ERRORS)) or bool(
        names & {"BBIReadError", "PanicException"}
    )
