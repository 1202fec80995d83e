"""JSON for bodies that must keep their meaning exactly on the way through.

orjson is the fast path. It turns integers beyond 64 bits into floats and refuses lone
UTF-16 surrogates (``"\\ud800"``), both legal JSON; for those rare bodies the standard
library takes over, which keeps both exactly.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["InvalidJSON", "dumps", "loads"]

# 20+ digits in a row may be an integer orjson cannot hold (2**64 has 20 digits). Mapping
# digits to "1" and the rest to "0", then one find, costs ~1 us per KB; a regex costs ~9.
_DIGITS = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))
_RUN = b"1" * 20


def _has_long_digit_run(raw: bytes) -> bool:
    return raw.translate(_DIGITS).find(_RUN) >= 0


class InvalidJSON(ValueError):
    """The bytes are not JSON; ``str()`` says where."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes) -> Any:
    """Parse JSON bytes (UTF-8).

    Raises:
        InvalidJSON: not valid JSON (NaN and Infinity literals included).
    """
    first: Exception | None = None
    if not _has_long_digit_run(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            first = err
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as err:
        raise InvalidJSON(str(first or err)) from None


def dumps(value: Any) -> bytes:
    """Compact JSON bytes; exact for big integers and lone surrogates."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode()
