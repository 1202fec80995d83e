"""The virtual-key store protocol and the records it holds.

A virtual key is a caller identity with its own policy (team, allowed models, rate limits,
budget, expiry). Its secret is never stored: only the SHA-256 digest of each secret, in
:class:`KeySecret` rows, so rotation can keep the old secret valid for a grace period.

Every write (create, edit, revoke, rotate) bumps a store-wide revision number; instances
refresh their in-process cache with :meth:`KeyStore.changed_since`, so the hot path never
queries the store.

**Names are unique among keys that are not revoked** (active or expired): usage reports
and routing rules go by a key's name, so two live keys of one name would merge. Revoking a
key frees its name. The store checks it inside the write's transaction, after taking the
revision counter's lock that every key write takes first, so two concurrent creates of one
name cannot both pass (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the counter row's lock).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "KEEP",
    "BudgetMode",
    "BudgetPeriod",
    "BudgetSpec",
    "Keep",
    "KeyChanges",
    "KeyEdit",
    "KeyNameTaken",
    "KeyRevoked",
    "KeySecret",
    "KeyStore",
    "Limits",
    "VirtualKey",
]

BudgetPeriod = Literal["day", "week", "month"]
BudgetMode = Literal["enforce", "audit"]


@dataclass(slots=True, frozen=True)
class Limits:
    """Rate limits; ``None`` means unlimited. Requests and tokens per minute, hour, day."""

    rpm: int | None = None
    rph: int | None = None
    rpd: int | None = None
    tpm: int | None = None
    tph: int | None = None
    tpd: int | None = None

    def is_empty(self) -> bool:
        return (
            self.rpm is None
            and self.rph is None
            and self.rpd is None
            and self.tpm is None
            and self.tph is None
            and self.tpd is None
        )


@dataclass(slots=True, frozen=True)
class BudgetSpec:
    """A spending cap in USD per calendar period (UTC); ``audit`` logs instead of blocking."""

    usd: float
    period: BudgetPeriod = "month"
    mode: BudgetMode = "enforce"


@dataclass(slots=True, frozen=True)
class VirtualKey:
    """A key's identity and policy. Times are Unix seconds; ``models`` empty means all."""

    id: str
    name: str
    team: str | None = None
    models: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    budget: BudgetSpec | None = None
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    #: Provider accounts the native passthrough may reach; None: those of ``models``
    #: (every account when ``models`` is empty).
    allowed_accounts: tuple[str, ...] | None = None


@dataclass(slots=True, frozen=True)
class KeySecret:
    """One valid secret of a key, by its SHA-256 digest; ``expires_at`` (Unix seconds) is set
    on a rotated-out secret's grace end, else ``None``."""

    digest: bytes
    key_id: str
    expires_at: float | None = None


@dataclass(slots=True, frozen=True)
class KeyChanges:
    """What changed after a revision: whole keys (with all their secrets) and the new
    revision to ask from next time."""

    keys: Sequence[VirtualKey]
    secrets: Sequence[KeySecret]
    revision: int


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


#: A :class:`KeyEdit` field left as it is.
KEEP = Keep.KEEP


@dataclass(slots=True, frozen=True)
class KeyEdit:
    """A change to a key's policy; each field :data:`KEEP` (unchanged) or its new value.

    ``limits`` merges: each of its fields that is not ``None`` replaces that limit, and a
    name in ``clear_limits`` removes it (unlimited). ``budget`` and the others replace the
    whole value (``None``: no budget, no team, every model of the key's models). A key's
    name, id, secrets, creation and expiry times are not editable.
    """

    team: str | Keep | None = KEEP
    models: tuple[str, ...] | Keep = KEEP
    allowed_accounts: tuple[str, ...] | Keep | None = KEEP
    limits: Limits = field(default_factory=Limits)
    clear_limits: frozenset[str] = frozenset()
    budget: BudgetSpec | Keep | None = KEEP

    def apply(self, key: VirtualKey) -> VirtualKey:
        """``key`` with this edit made (a pure function; the store calls it inside its
        write's transaction, so concurrent edits of different fields both stay)."""
        limits = {
            f.name: None if f.name in self.clear_limits else getattr(key.limits, f.name)
            for f in dataclasses.fields(Limits)
        }
        for name in limits:
            if getattr(self.limits, name) is not None:
                limits[name] = getattr(self.limits, name)
        return dataclasses.replace(
            key,
            team=key.team if isinstance(self.team, Keep) else self.team,
            models=key.models if isinstance(self.models, Keep) else self.models,
            allowed_accounts=(
                key.allowed_accounts
                if isinstance(self.allowed_accounts, Keep)
                else self.allowed_accounts
            ),
            limits=Limits(**limits),
            budget=key.budget if isinstance(self.budget, Keep) else self.budget,
        )


class KeyRevoked(Exception):
    """An edit of a revoked key (``key_id``): revoked keys are kept as they were."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"key {key_id!r} is revoked and can no longer be edited")


class KeyNameTaken(ValueError):
    """A key that is not revoked already has this name (``key_id`` names it, or is None
    for a key of the config file)."""

    def __init__(self, name: str, key_id: str | None) -> None:
        self.name = name
        self.key_id = key_id
        if key_id is None:
            text = (
                f"a key named {name!r} is in the config file (auth.keys); virtual key names"
                " may not repeat them: pick another name"
            )
        else:
            text = (
                f"a virtual key named {name!r} already exists ({key_id}); names are unique"
                f" among keys that are not revoked: pick another name, or revoke {key_id}"
                " first"
            )
        super().__init__(text)


class KeyStore(Protocol):
    """Where virtual keys live. Methods block; callers run them in a worker thread.

    Raises the driver's error (``sqlite3.Error``, ``psycopg.Error``) or ``OSError`` when the
    store is unreachable.
    """

    def create(self, key: VirtualKey, secret: KeySecret) -> None:
        """Insert a new key with its first secret. Raises :class:`KeyNameTaken` if a key
        that is not revoked has its name, ``ValueError`` if the id (or the secret's
        digest) exists or ``secret.key_id`` is not ``key.id``."""
        ...

    def get(self, key_id: str) -> VirtualKey | None: ...

    def list(self) -> list[VirtualKey]:
        """Every key, revoked and expired ones included, oldest first."""
        ...

    def revoke(self, key_id: str, at: float) -> bool:
        """Mark a key revoked at ``at``; False if there is no such key."""
        ...

    def rotate(self, key_id: str, new_secret: KeySecret, old_valid_until: float) -> bool:
        """Add ``new_secret``; the key's other secrets stay valid until ``old_valid_until``
        (Unix seconds; an earlier expiry is kept). False if there is no such key;
        ``ValueError`` if the digest exists or ``new_secret.key_id`` is not ``key_id``."""
        ...

    def update(self, key_id: str, edit: KeyEdit) -> VirtualKey | None:
        """Make ``edit`` to a key, read and written in one transaction, and bump its
        revision so every instance's key cache picks the change up: the key as it is now,
        or None if there is no such key. Raises :class:`KeyRevoked` for a revoked key
        (nothing written)."""
        ...

    def changed_since(self, revision: int) -> KeyChanges:
        """Keys written after ``revision`` (0: all), each with all of its secrets, read from
        one snapshot. A ``revision`` past the store's own (a new or restored database) is
        read as 0, so a cache that outlived its database reloads everything."""
        ...

    def close(self) -> None: ...
