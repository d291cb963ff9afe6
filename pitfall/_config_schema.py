"""Declared schemas of pitfall's TOML configuration files, checked before any work starts.

A schema is a :class:`Table` of :class:`Key` s (and nested tables). :func:`check` walks a
parsed TOML document against it and raises :class:`ConfigError` on the first problem, with
the file, the section and the key in the message:

- an unknown key, with the closest valid one (``threshhold`` -> ``threshold``);
- a value of the wrong type (a string where a list is expected is an error, never a list
  of characters; ``true`` is not an integer);
- a number out of its range (a chunk size of 0, a NaN threshold, a sequence length of
  100 Mbp);
- a required key that is missing.

The manifest (:mod:`pitfall.manifest`) and the sweep spec (:mod:`pitfall.sweep`) declare
their schemas with these pieces. The layout of a cube (its variables, dims and attributes)
is another schema, :mod:`pitfall.schema`.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pitfall.registry import closest

__all__ = ["ConfigError", "Key", "Table", "check"]


class ConfigError(ValueError):
    """A configuration file that does not follow its schema; names file, section and key."""


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


@dataclass(frozen=True)
class Key:
    """One key of a table.

    Attributes
    ----------
    type
        ``str``, ``int``, ``float`` (ints accepted), ``bool``, ``list`` or ``dict``.
    required
        Whether the key must be present.
    items
        For lists: the type of each item (``str``, ``int``...), or ``(type, ...)`` for
        alternatives; a list of lists is ``list`` with ``items=list``.
    low, high
        Inclusive bounds of a number (and of each numeric item of a list).
    choices
        The allowed values (strings), checked with a "did you mean".
    unique
        For lists: items must be distinct.
    each
        For a list of tables (TOML ``[[name]]``): the schema of each table.
    help
        What the key means (for messages).
    """

    type: builtins.type | tuple[builtins.type, ...]
    required: bool = False
    # ``builtins.type``: the field ``type`` above shadows the builtin inside this class body.
    items: builtins.type | tuple[builtins.type, ...] | None = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | Callable[[], Any] | None = None
    unique: bool = False
    each: Table | None = None
    help: str = ""


@dataclass(frozen=True)
class Table:
    """A table (section) of keys; ``any_key`` types the entries of a free-form table."""

    keys: Mapping[str, Key | Table] = field(default_factory=dict)
    required: bool = False
    any_key: Key | Table | None = None
    help: str = ""


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k is bool:
            if isinstance(value, bool):
                return True
        elif k is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif k is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
        elif isinstance(value, k):
            return True
    return False


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_number(value: Any, key: Key, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value}")
    if key.low is not None and value < key.low:
        raise ConfigError(f"{where} must be at least {key.low:g}, got {_show(value)}")
    if key.high is not None and value > key.high:
        raise ConfigError(f"{where} must be at most {key.high:g}, got {_show(value)}")


def _check_key(value: Any, key: Key, where: str) -> None:
    if not _is(value, key.type):
        raise ConfigError(f"{where} must be {_names(key.type)}, got {_show(value)}")
    if _is(value, (int, float)) and not isinstance(value, bool):
        _check_number(value, key, where)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if key.items is not None and not _is(item, key.items):
                raise ConfigError(
                    f"{where}[{i}] must be {_names(key.items)}, got {_show(item)} (in "
                    f"{_show(value)})"
                )
            if _is(item, (int, float)) and not isinstance(item, bool):
                _check_number(item, key, f"{where}[{i}]")
        if key.unique:
            dup = sorted({str(v) for v in value if value.count(v) > 1})
            if dup:
                raise ConfigError(f"{where} lists {dup} more than once")
    if key.choices is not None:
        choices = tuple(key.choices() if callable(key.choices) else key.choices)
        for v in value if isinstance(value, list) else [value]:
            if v not in choices:
                raise ConfigError(
                    f"{where}: {v!r} is not one of {', '.join(map(str, choices))}"
                    f"{closest(v, choices)}"
                )


def check(raw: Mapping[str, Any], schema: Table, path: Any, section: str = "") -> None:
    """Check a parsed document (or one of its tables) against ``schema``.

    Raises
    ------
    ConfigError
        On the first problem, naming ``path``, the section and the key.
    """
    prefix = f"{path}: " + (f"[{section}] " if section else "")
    for name, value in raw.items():
        where = f"{prefix}{name}"
        spec = schema.keys.get(name, schema.any_key)
        if spec is None:
            known = list(schema.keys)
            raise ConfigError(
                f"{prefix}unknown key {name!r}{closest(name, known)}; known keys: "
                f"{', '.join(known) or 'none'}"
            )
        if isinstance(spec, Table):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{where} must be a table ([{_join(section, name)}]), got {_show(value)}"
                )
            check(value, spec, path, _join(section, name))
        else:
            _check_key(value, spec, where)
            if spec.each is not None:
                for i, item in enumerate(value):
                    if not isinstance(item, dict):
                        raise ConfigError(
                            f"{where}[{i}] must be a table ([[{_join(section, name)}]]), got "
                            f"{_show(item)}"
                        )
                    check(item, spec.each, path, f"{_join(section, name)} number {i + 1}")
    for name, spec in schema.keys.items():
        if spec.required and name not in raw:
            what = f"table {_join(section, name)!r}" if isinstance(spec, Table) else f"key {name!r}"
            raise ConfigError(
                f"{prefix}missing required {what}" + (f" ({spec.help})" if spec.help else "")
            )


def _join(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name
