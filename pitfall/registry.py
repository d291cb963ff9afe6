"""One registry type for everything users extend: tasks, baselines, model families, label kinds.

A :class:`Registry` maps names to objects that carry their own ``name``; ``register`` takes
one such object, ``get`` looks one up and, for an unknown name, raises a
:class:`RegistryError` that names the closest registered name and every known one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, ItemsView, Iterator, KeysView, ValuesView
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "RegistryError", "closest"]

T = TypeVar("T")


class RegistryError(KeyError, ValueError):
    """An unknown name, or a name registered twice.

    A :class:`KeyError` (a failed lookup) and a :class:`ValueError` (a bad argument), so
    either ``except`` catches it; its message is printed as written.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def closest(word: str, choices: Any) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``.

    Examples
    --------
    >>> closest("hybird", ["cross-cell-type", "hybrid"])
    " (did you mean 'hybrid'?)"
    >>> closest("zzz", ["hybrid"])
    ''
    """
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Registry(Generic[T]):
    """Named objects of one kind, in registration order.

    Iterates over the names; ``registry[name]`` and :meth:`get` both raise
    :class:`RegistryError` for an unknown name.

    Parameters
    ----------
    what : str
        What the objects are, for messages (``"task"``, ``"baseline"``).
    check : callable, optional
        Called with each object before it is registered; raises on a bad one.
    error : type of RegistryError
        The exception raised (a subclass, for callers that catch a narrower type).

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Thing:
    ...     name: str
    >>> things = Registry[Thing]("thing")
    >>> things.register(Thing("hybrid")).name
    'hybrid'
    >>> list(things)
    ['hybrid']
    >>> things.get("hybird")
    Traceback (most recent call last):
    ...
    pitfall.registry.RegistryError: unknown thing 'hybird' (did you mean 'hybrid'?); known: hybrid
    """

    def __init__(
        self,
        what: str,
        *,
        check: Callable[[T], None] | None = None,
        error: type[RegistryError] = RegistryError,
    ) -> None:
        self.what = what
        self._check = check
        self._error = error
        self._items: dict[str, T] = {}

    def register(self, item: T, *, replace: bool = False) -> T:
        """Add ``item`` under ``item.name``; return it.

        Raises
        ------
        RegistryError
            The name is taken (unless ``replace``), or ``check`` refuses the item.
        """
        name = str(item.name)  # type: ignore[attr-defined]
        if name in self._items and not replace:
            raise self._error(f"{self.what} {name!r} is already registered")
        if self._check is not None:
            self._check(item)
        self._items[name] = item
        return item

    def unregister(self, name: str) -> T:
        """Remove and return the object registered as ``name``."""
        item = self.get(name)
        del self._items[name]
        return item

    def get(self, name: Any) -> T:
        """The object registered as ``name`` (an object of the registry is returned as is).

        Raises
        ------
        RegistryError
            ``name`` is not registered (naming the closest and the known names).
        """
        if not isinstance(name, str):
            if any(item is name for item in self._items.values()):
                return name
            name = str(name)
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise self._error(
                f"unknown {self.what} {name!r}{closest(name, self._items)}; known: {known}"
            ) from None

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def keys(self) -> KeysView[str]:
        return self._items.keys()

    def values(self) -> ValuesView[T]:
        return self._items.values()

    def items(self) -> ItemsView[str, T]:
        return self._items.items()

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._items)})"
