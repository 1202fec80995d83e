"""Shape checks for decoding wire JSON, shared by the codecs.

Each takes a value and ``where`` (its path in the body, for the message) and returns it
typed, or raises :class:`CodecError` saying which field and what was expected. Lenient
where a value can be read without guessing: an absent or null optional field is its
default, an integral float is an integer; strict where the canonical model cannot hold it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CodecError", "count", "index", "obj", "opt_obj", "opt_str", "seq", "string"]


class CodecError(ValueError):
    """A body that does not have the shape the wire format requires; says which field."""


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CodecError(f"{where}: expected an object")
    return value


def opt_obj(value: Any, where: str) -> dict[str, Any] | None:
    return None if value is None else obj(value, where)


def seq(value: Any, where: str) -> list[Any]:
    """A list; null or absent is an empty one."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise CodecError(f"{where}: expected a list")
    return value


def string(value: Any, where: str, default: str = "") -> str:
    """A string; null or absent is ``default``."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise CodecError(f"{where}: expected a string")
    return value


def opt_str(value: Any, where: str) -> str | None:
    return None if value is None else string(value, where)


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def index(value: Any, where: str) -> int:
    """A stream event's block index: an integer, 0 or more."""
    n = _integer(value)
    if n is None or n < 0:
        raise CodecError(f"{where}: expected an integer index")
    return n


def count(value: Any, where: str) -> int | None:
    """A token count: None when null or absent; a negative count (a provider bug) is 0."""
    if value is None:
        return None
    n = _integer(value)
    if n is None:
        raise CodecError(f"{where}: expected an integer token count")
    return max(n, 0)
