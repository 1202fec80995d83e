"""Gateway keys: who is calling, and with which policy.

The key arrives as ``x-api-key`` or ``Authorization: Bearer`` (the Anthropic SDK's
``api_key=`` and ``auth_token=``, ``anthropic/_client.py``); both may be sent if they agree,
and either may be repeated only with the same value. A caller that sends its own provider
credential (subscription passthrough: Claude Code's OAuth token in ``Authorization``) puts
the gateway key in :data:`GATEWAY_KEY_HEADER` instead; then that header alone is the key
and ``x-api-key``/``Authorization`` are the caller's, never read as a gateway key.
Keys are looked up by their SHA-256 digest, never compared as plain text: timing can at
most tell how much of a guess's digest matched, which says nothing about the key (the
same reasoning as comparing MACs). Two presented keys are compared with
:func:`hmac.compare_digest`. No message here ever contains a key.

Two kinds of keys share one lookup table: keys from the config file (fixed for the
process) and virtual keys from the database, applied by :meth:`KeyRing.apply` from the
key cache's refreshes (:mod:`llmrelay.policy.keycache`), so the hot path never queries a
store.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import AuthenticationError
from ..stores.keys import BudgetSpec, KeyChanges, Limits, VirtualKey
from .overrides import OverrideAllowance

__all__ = [
    "GATEWAY_KEY_HEADER",
    "Caller",
    "KeyRing",
    "Principal",
    "caller_credential",
    "digest",
    "header_values",
]

#: The header that carries the gateway key when ``Authorization`` carries the caller's own
#: provider credential (Claude Code: ``ANTHROPIC_CUSTOM_HEADERS="x-llmrelay-key: ..."``).
GATEWAY_KEY_HEADER = "x-llmrelay-key"


@dataclass(slots=True, frozen=True)
class Principal:
    """An authenticated caller and its policy. ``key_id`` is ``vk_...`` for a virtual key,
    ``cfg:<name>`` for a config key; ``models`` None allows every model; ``expires_at`` is
    Unix seconds. ``accounts`` are the provider accounts the native passthrough may reach
    (``allowed_accounts``); None derives them from ``models`` (see
    :func:`llmrelay.policy.accounts.may_use`)."""

    name: str
    key_id: str = ""
    team: str | None = None
    models: frozenset[str] | None = None
    limits: Limits = field(default_factory=Limits)
    budget: BudgetSpec | None = None
    expires_at: float | None = None
    revoked: bool = False
    #: What the key's requests may override per request (``policy/overrides.py``); virtual
    #: keys have the defaults.
    overrides: OverrideAllowance = field(default_factory=OverrideAllowance)
    accounts: frozenset[str] | None = None

    @classmethod
    def of(cls, key: VirtualKey) -> Principal:
        return cls(
            name=key.name,
            key_id=key.id,
            team=key.team,
            models=frozenset(key.models) if key.models else None,
            limits=key.limits,
            budget=key.budget,
            expires_at=key.expires_at,
            revoked=key.revoked_at is not None,
            accounts=(
                frozenset(key.allowed_accounts) if key.allowed_accounts is not None else None
            ),
        )


#: Kept for callers that only need the name.
Caller = Principal


def digest(key: str) -> bytes:
    """SHA-256 of a key as presented. Header values arrive as surrogate-escaped text when
    they are not valid UTF-8."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of header ``name`` (a request's headers are a multidict; a plain
    mapping has one at most)."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, ()))
    value = headers.get(name)
    return [] if value is None else [value]


def _differ(values: list[str]) -> bool:
    """Whether a header given more than once carries different values (compared by
    digest, as keys are)."""
    return len(values) > 1 and len({digest(v) for v in values}) > 1


def caller_credential(headers: Mapping[str, str], keys: KeyRing | None = None) -> str | None:
    """The caller's own ``Authorization`` value (``Bearer <token>``), for an account with
    ``auth: passthrough``: only when the gateway key came in :data:`GATEWAY_KEY_HEADER`
    (otherwise ``Authorization`` may be the gateway key itself, which never goes upstream),
    and never a token that is a gateway key of ``keys`` (a client that put its gateway key
    in both headers, e.g. Claude Code with ``ANTHROPIC_AUTH_TOKEN`` set to it): None then,
    and the account answers 401 naming what to send. Never logged or stored by the gateway."""
    if GATEWAY_KEY_HEADER not in headers:
        return None
    auth = headers.get("authorization")
    if auth is None:
        return None
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    if keys is not None and keys.knows(token):
        return None
    return f"Bearer {token}"


class KeyRing:
    """The gateway keys this instance accepts: digest -> (principal, secret expiry)."""

    def __init__(self, keys: Iterable[tuple[str, Principal]]) -> None:
        """``keys``: (secret, principal) pairs from the config file."""
        self._by_digest: dict[bytes, tuple[Principal, float | None]] = {}
        self._config: list[bytes] = []
        self._digests_of: dict[str, list[bytes]] = {}
        self.replace_config(keys)

    def replace_config(self, keys: Iterable[tuple[str, Principal]]) -> None:
        """Replace the config file's keys by ``keys`` ((secret, principal) pairs) at once, as a
        config reload does; virtual keys stay."""
        for d in self._config:
            self._by_digest.pop(d, None)
        self._config = []
        for secret, p in keys:
            d = digest(secret)
            self._by_digest[d] = (p, None)
            self._config.append(d)

    def apply(self, changes: KeyChanges) -> None:
        """Replace the entries of every changed virtual key with its current secrets."""
        secrets: dict[str, list[tuple[bytes, float | None]]] = {}
        for s in changes.secrets:
            secrets.setdefault(s.key_id, []).append((s.digest, s.expires_at))
        for key in changes.keys:
            for d in self._digests_of.pop(key.id, ()):
                self._by_digest.pop(d, None)
            principal = Principal.of(key)
            mine = secrets.get(key.id, [])
            for d, expires_at in mine:
                self._by_digest[d] = (principal, expires_at)
            self._digests_of[key.id] = [d for d, _ in mine]

    def knows(self, token: str) -> bool:
        """Whether ``token`` is a gateway key of this ring (any state: revoked and expired
        keys too)."""
        return digest(token) in self._by_digest

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller for a request's headers.

        Raises:
            AuthenticationError: no key, an unknown, revoked or expired key, or two
                different keys (``x-api-key`` and Bearer, or a header given twice).
        """
        gateway_keys = header_values(headers, GATEWAY_KEY_HEADER)
        if gateway_keys:
            if _differ(gateway_keys):
                raise AuthenticationError(f"several different {GATEWAY_KEY_HEADER} headers")
            return self._lookup(gateway_keys[0].strip())
        api_keys = header_values(headers, "x-api-key")
        auths = header_values(headers, "authorization")
        if _differ(api_keys) or _differ(auths):
            # Which one would count is a guess (a proxy may have added one): none does.
            raise AuthenticationError("several different x-api-key or Authorization headers")
        api_key = api_keys[0] if api_keys else None
        auth = auths[0] if auths else None
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
        presented = digest(api_key if api_key is not None else bearer or "")
        if (
            api_key is not None
            and bearer is not None
            and not hmac.compare_digest(presented, digest(bearer))
        ):
            raise AuthenticationError("x-api-key and Authorization: Bearer carry different keys")
        return self._lookup(presented)

    def _lookup(self, presented: str | bytes) -> Principal:
        """The live principal of a presented key or its digest (unknown, revoked or
        expired: 401)."""
        entry = self._by_digest.get(
            presented if isinstance(presented, bytes) else digest(presented)
        )
        if entry is None:
            raise AuthenticationError("invalid gateway key")
        principal, secret_expires_at = entry
        if principal.revoked:
            raise AuthenticationError(f"gateway key {principal.name!r} has been revoked")
        if principal.expires_at is not None or secret_expires_at is not None:
            now = time.time()
            if principal.expires_at is not None and now >= principal.expires_at:
                raise AuthenticationError(f"gateway key {principal.name!r} has expired")
            if secret_expires_at is not None and now >= secret_expires_at:
                raise AuthenticationError(
                    f"this secret of gateway key {principal.name!r} was rotated out"
                )
        return principal
