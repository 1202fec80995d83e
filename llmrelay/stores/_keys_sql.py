"""SQL for virtual keys, shared by the SQLite and PostgreSQL key stores.

Each operation takes a DB-API cursor already inside the transaction the store opened, so
the stores differ only in how they connect, lock and begin. A write first bumps the
one-row revision counter (``UPDATE ... RETURNING``): on PostgreSQL that row lock is held
until commit, so writes commit in revision order and :func:`changed_since`, reading one
snapshot, never returns a revision while an earlier one is still to come.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from .keys import (
    BudgetSpec,
    KeyChanges,
    KeyEdit,
    KeyNameTaken,
    KeyRevoked,
    KeySecret,
    Limits,
    VirtualKey,
)

__all__ = ["POSTGRES", "SQLITE", "Cursor", "KeySQL", "MissingKey", "duplicate_message"]

_KEY_COLUMNS = (
    "id, name, team, models, rpm, rph, rpd, tpm, tph, tpd,"
    " budget_usd, budget_period, budget_mode, created_at, expires_at, revoked_at,"
    " allowed_accounts"
)


class Cursor(Protocol):
    """What the operations need of a cursor; sqlite3's and psycopg's both fit."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class MissingKey(Exception):
    """Raised inside a write's transaction so the store rolls it back and returns False."""


def _key_params(key: VirtualKey, revision: int) -> tuple[Any, ...]:
    lim, budget = key.limits, key.budget
    return (
        key.id,
        key.name,
        key.team,
        orjson.dumps(list(key.models)).decode(),
        lim.rpm,
        lim.rph,
        lim.rpd,
        lim.tpm,
        lim.tph,
        lim.tpd,
        None if budget is None else budget.usd,
        None if budget is None else budget.period,
        None if budget is None else budget.mode,
        key.created_at,
        key.expires_at,
        key.revoked_at,
        None if key.allowed_accounts is None else orjson.dumps(list(key.allowed_accounts)).decode(),
        revision,
    )


def _key(row: Sequence[Any]) -> VirtualKey:
    (id_, name, team, models, rpm, rph, rpd, tpm, tph, tpd, usd, period, mode) = row[:13]
    return VirtualKey(
        id=id_,
        name=name,
        team=team,
        models=tuple(orjson.loads(models)),
        limits=Limits(rpm=rpm, rph=rph, rpd=rpd, tpm=tpm, tph=tph, tpd=tpd),
        budget=None if usd is None else BudgetSpec(usd=float(usd), period=period, mode=mode),
        created_at=float(row[13]),
        expires_at=None if row[14] is None else float(row[14]),
        revoked_at=None if row[15] is None else float(row[15]),
        allowed_accounts=None if row[16] is None else tuple(orjson.loads(row[16])),
    )


def _secret(row: Sequence[Any]) -> KeySecret:
    return KeySecret(
        digest=bytes(row[0]),
        key_id=row[1],
        expires_at=None if row[2] is None else float(row[2]),
    )


class KeySQL:
    """The key operations in one driver's parameter style (``?`` or ``%s``)."""

    __slots__ = ("_param",)

    def __init__(self, param: str) -> None:
        self._param = param

    def _q(self, sql: str) -> str:
        return sql if self._param == "?" else sql.replace("?", self._param)

    def _bump(self, cur: Cursor) -> int:
        cur.execute(
            "UPDATE key_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision"
        )
        return int(cur.fetchone()[0])

    def create(self, cur: Cursor, key: VirtualKey, secret: KeySecret) -> None:
        """Insert a key and its first secret; the driver's integrity error if either exists,
        :class:`KeyNameTaken` if a key that is not revoked has the name. The name is looked
        up after the revision bump, whose row lock serialises key writes (see
        :mod:`llmrelay.stores.keys`)."""
        if secret.key_id != key.id:
            raise ValueError(f"secret is for key {secret.key_id!r}, not {key.id!r}")
        revision = self._bump(cur)
        cur.execute(
            self._q(
                "SELECT id FROM virtual_keys WHERE name = ? AND revoked_at IS NULL"
                " ORDER BY created_at, id LIMIT 1"
            ),
            (key.name,),
        )
        taken = cur.fetchone()
        if taken is not None:
            raise KeyNameTaken(key.name, taken[0])
        marks = ", ".join("?" * 18)
        cur.execute(
            self._q(f"INSERT INTO virtual_keys ({_KEY_COLUMNS}, revision) VALUES ({marks})"),
            _key_params(key, revision),
        )
        self._insert_secret(cur, secret)

    def _insert_secret(self, cur: Cursor, secret: KeySecret) -> None:
        cur.execute(
            self._q("INSERT INTO key_secrets (digest, key_id, expires_at) VALUES (?, ?, ?)"),
            (secret.digest, secret.key_id, secret.expires_at),
        )

    def get(self, cur: Cursor, key_id: str) -> VirtualKey | None:
        cur.execute(self._q(f"SELECT {_KEY_COLUMNS} FROM virtual_keys WHERE id = ?"), (key_id,))
        row = cur.fetchone()
        return None if row is None else _key(row)

    def all(self, cur: Cursor) -> list[VirtualKey]:
        cur.execute(f"SELECT {_KEY_COLUMNS} FROM virtual_keys ORDER BY created_at, id")
        return [_key(row) for row in cur.fetchall()]

    def revoke(self, cur: Cursor, key_id: str, at: float) -> None:
        """Revoke (keeping the first revocation time). Raises :class:`MissingKey`."""
        revision = self._bump(cur)
        cur.execute(
            self._q(
                "UPDATE virtual_keys SET revoked_at = COALESCE(revoked_at, ?), revision = ?"
                " WHERE id = ?"
            ),
            (at, revision, key_id),
        )
        if cur.rowcount == 0:
            raise MissingKey(key_id)

    def update(self, cur: Cursor, key_id: str, edit: KeyEdit) -> VirtualKey:
        """Make ``edit`` to the key after the revision bump (whose lock serialises key
        writes, so the key read here is the one written over). Raises :class:`MissingKey`,
        :class:`~llmrelay.stores.keys.KeyRevoked`."""
        revision = self._bump(cur)
        key = self.get(cur, key_id)
        if key is None:
            raise MissingKey(key_id)
        if key.revoked_at is not None:
            raise KeyRevoked(key_id)
        new = edit.apply(key)
        # The columns _key_params writes, without id/name/created_at/expires_at/revoked_at.
        params = _key_params(new, revision)
        cur.execute(
            self._q(
                "UPDATE virtual_keys SET team = ?, models = ?, rpm = ?, rph = ?, rpd = ?,"
                " tpm = ?, tph = ?, tpd = ?, budget_usd = ?, budget_period = ?,"
                " budget_mode = ?, allowed_accounts = ?, revision = ? WHERE id = ?"
            ),
            (*params[2:13], params[16], revision, key_id),
        )
        return new

    def rotate(self, cur: Cursor, key_id: str, new: KeySecret, old_valid_until: float) -> None:
        """Cap the key's other secrets at ``old_valid_until`` and add ``new``. Raises
        :class:`MissingKey`; the driver's integrity error if ``new`` exists."""
        if new.key_id != key_id:
            raise ValueError(f"secret is for key {new.key_id!r}, not {key_id!r}")
        revision = self._bump(cur)
        bump_key = self._q("UPDATE virtual_keys SET revision = ? WHERE id = ?")
        cur.execute(bump_key, (revision, key_id))
        if cur.rowcount == 0:
            raise MissingKey(key_id)
        cur.execute(
            self._q(
                "UPDATE key_secrets SET expires_at = ?"
                " WHERE key_id = ? AND (expires_at IS NULL OR expires_at > ?)"
            ),
            (old_valid_until, key_id, old_valid_until),
        )
        self._insert_secret(cur, new)

    def changed_since(self, cur: Cursor, revision: int) -> KeyChanges:
        """Keys written after ``revision`` with all their secrets, from one snapshot (the
        caller's transaction). A ``revision`` past the store's (a new or restored database)
        is read as 0, so a cache pointed at it reloads everything."""
        cur.execute("SELECT revision FROM key_revision WHERE id = 1")
        current = int(cur.fetchone()[0])
        since = 0 if revision > current else revision
        cur.execute(
            self._q(
                f"SELECT {_KEY_COLUMNS} FROM virtual_keys WHERE revision > ?"
                " ORDER BY created_at, id"
            ),
            (since,),
        )
        keys = [_key(row) for row in cur.fetchall()]
        cur.execute(
            self._q(
                "SELECT s.digest, s.key_id, s.expires_at FROM key_secrets s"
                " JOIN virtual_keys k ON k.id = s.key_id WHERE k.revision > ?"
                " ORDER BY s.key_id, s.digest"
            ),
            (since,),
        )
        return KeyChanges(keys, [_secret(row) for row in cur.fetchall()], current)


def duplicate_message(key_id: str, error: Exception) -> str:
    """The ``ValueError`` text for an integrity error on create or rotate."""
    if "key_secrets" in str(error):
        return f"that secret is already in use (key {key_id!r})"
    return f"virtual key {key_id!r} already exists"


SQLITE = KeySQL("?")
POSTGRES = KeySQL("%s")
