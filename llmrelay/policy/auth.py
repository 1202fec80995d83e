"""Gateway keys: who is calling.

The key arrives as ``x-api-key`` or ``Authorization: Bearer`` (the Anthropic SDK's
``api_key=`` and ``auth_token=``, ``anthropic/_client.py``); both may be sent if they agree.
Keys are looked up by their SHA-256 digest, never compared as plain text: timing can at
most tell how much of a guess's digest matched, which says nothing about the key (the
same reasoning as comparing MACs). Two presented keys are compared with
:func:`hmac.compare_digest`.
No message here ever contains a key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import AuthenticationError

__all__ = ["Caller", "KeyRing"]


@dataclass(slots=True, frozen=True)
class Caller:
    """An authenticated caller; ``name`` is what logs and usage rows show."""

    name: str


def _digest(key: str) -> bytes:
    # Header values arrive as surrogate-escaped text when they are not valid UTF-8.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class KeyRing:
    """The gateway keys this instance accepts."""

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        """``keys``: (name, secret) pairs."""
        self._by_digest = {_digest(secret): Caller(name) for name, secret in keys}

    def authenticate(self, headers: Mapping[str, str]) -> Caller:
        """The caller for a request's headers.

        Raises:
            AuthenticationError: no key, an unknown key, or two different keys.
        """
        api_key = headers.get("x-api-key")
        auth = headers.get("authorization")
        bearer = None
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("Authorization header must be 'Bearer <gateway key>'")
            bearer = token.strip()
        if api_key is None and bearer is None:
            raise AuthenticationError(
                "missing gateway key: send it as the x-api-key header or as Authorization: Bearer"
            )
        if (
            api_key is not None
            and bearer is not None
            and not hmac.compare_digest(_digest(api_key), _digest(bearer))
        ):
            raise AuthenticationError("x-api-key and Authorization: Bearer carry different keys")
        digest = _digest(api_key if api_key is not None else bearer or "")
        caller = self._by_digest.get(digest)
        if caller is None:
            raise AuthenticationError("invalid gateway key")
        return caller
