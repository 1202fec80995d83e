"""The SQL database's URL forms and schema: migrations, checks and upgrades.

URL forms (anything else raises ``ValueError``):

- ``sqlite:///relative/path.db`` (relative to the working directory) and
  ``sqlite:////absolute/path.db``, as in SQLAlchemy's URLs;
- ``postgresql://user@host:port/dbname?param=value`` (or ``postgres://``), a libpq
  connection URI handed to psycopg unchanged; ``?options=-csearch_path%3Dname`` puts the
  tables, and Alembic's version table, in schema ``name``.

Migrations are Alembic revisions in :mod:`llmrelay.stores.migrations`; Alembic and
SQLAlchemy are imported only by these functions (the stores use the plain drivers).
SQLite is upgraded in place by the gateway (and by the SQLite stores themselves); for
PostgreSQL the gateway calls :func:`check` and an operator runs ``llmrelay db upgrade``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

__all__ = [
    "SCHEMA_HEAD",
    "DatabaseURL",
    "SchemaError",
    "check",
    "current_and_head",
    "parse_url",
    "upgrade",
]

#: The newest revision in ``migrations/versions``; a test keeps it equal to Alembic's head.
SCHEMA_HEAD = "0005"

_MIGRATIONS = Path(__file__).parent / "migrations"
_URL_FORMS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://..."
# How long a SQLite migration waits for another process's lock (seconds).
_SQLITE_LOCK_WAIT_S = 30.0
# Alembic's commands run env.py through module-level proxies (alembic.context, alembic.op),
# so two threads of one process must not run them at once; processes are kept apart by the
# database's own lock (env.py).
_ALEMBIC_LOCK = threading.Lock()


class SchemaError(Exception):
    """The database schema is not the one this llmrelay expects."""


@dataclass(slots=True, frozen=True)
class DatabaseURL:
    """A parsed database URL: exactly one of ``sqlite_path`` and ``conninfo`` is set."""

    url: str
    sqlite_path: Path | None = None
    conninfo: str | None = None


def parse_url(url: str) -> DatabaseURL:
    """Split ``url`` by its scheme. Raises ``ValueError`` naming the accepted forms."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            return DatabaseURL(url, sqlite_path=Path(path))
    elif url.startswith(("postgresql://", "postgres://")):
        return DatabaseURL(url, conninfo=url)
    raise ValueError(f"unsupported database URL {url!r}: use {_URL_FORMS}")


@contextmanager
def _connect(db: DatabaseURL, *, exclusive: bool = False) -> Iterator[Connection]:
    """A SQLAlchemy connection for Alembic, not in a transaction yet."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import URL
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool

    if db.sqlite_path is not None:
        db.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            URL.create("sqlite", database=str(db.sqlite_path)),
            poolclass=NullPool,
            connect_args={"timeout": _SQLITE_LOCK_WAIT_S},
        )
        begin = "BEGIN EXCLUSIVE" if exclusive else "BEGIN"

        # SQLAlchemy's recipe for transactional DDL on sqlite3 ("Enabling Non-Legacy SQLite
        # Transactional Modes"): the driver does not BEGIN before DDL, so SQLAlchemy does.
        @event.listens_for(engine, "connect")
        def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

    else:
        import psycopg

        from ._pg import connect_kwargs

        conninfo = db.conninfo or ""
        kwargs = connect_kwargs(conninfo)
        # The URI goes to psycopg as it is (libpq parses it); SQLAlchemy only needs the dialect.
        engine = create_engine(
            "postgresql+psycopg://",
            poolclass=NullPool,
            creator=lambda: psycopg.connect(conninfo, **kwargs),
        )
    try:
        with engine.connect() as connection:
            yield connection
    except DBAPIError as err:
        # Callers handle the driver's errors, as with the stores, not SQLAlchemy's wrappers.
        if isinstance(err.orig, Exception):
            raise err.orig from err
        raise
    finally:
        engine.dispose()


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _current(db: DatabaseURL) -> str | None:
    """The revision in the database. Raises :class:`SchemaError` when a PostgreSQL URL
    leads to no schema at all (see :func:`_no_schema`)."""
    from alembic.runtime.migration import MigrationContext

    if db.sqlite_path is not None and not db.sqlite_path.exists():
        return None  # do not create the file just to look
    with _connect(db) as connection:
        if db.conninfo is not None:
            problem = _no_schema(connection)
            if problem is not None:
                raise SchemaError(problem)
        return MigrationContext.configure(connection).get_current_revision()


def _no_schema(connection: Connection) -> str | None:
    """What is wrong when PostgreSQL has no schema to put tables in: the ``search_path``
    (from the URL's ``options=-csearch_path=...``, or the user's default) names none that
    exists, so ``current_schema()`` is NULL and ``CREATE TABLE`` fails with "no schema has
    been selected to create in" (PostgreSQL docs, "Schema Search Path")."""
    row = connection.exec_driver_sql(
        "SELECT current_schema(), current_setting('search_path'), current_user"
    ).fetchone()
    assert row is not None
    schema, search_path, user = row
    if schema is not None:
        return None
    names = [n.strip().strip('"') for n in str(search_path).split(",") if n.strip()]
    names = [str(user) if n == "$user" else n for n in names]
    name = names[0] if len(names) == 1 else "<name>"
    return (
        f"the database has no schema for llmrelay's tables: the search_path is {search_path!r}"
        f" and no schema it names exists. Create the schema (CREATE SCHEMA {name}"
        f" AUTHORIZATION {user}), or fix the schema name in the database URL"
        " (?options=-csearch_path%3D<name>); then run `llmrelay db upgrade --config <file>`"
    )


def _may_not_create(connection: Connection) -> str | None:
    """Why the user cannot create llmrelay's tables in its current schema, or None."""
    row = connection.exec_driver_sql(
        "SELECT current_schema(), current_user, has_schema_privilege(current_schema(), 'CREATE')"
    ).fetchone()
    assert row is not None
    schema, user, allowed = row
    if allowed:
        return None
    return (
        f"database user {user!r} may not create tables in schema {schema!r}: grant it"
        f" (GRANT CREATE ON SCHEMA {schema} TO {user}) or use a schema the user owns"
    )


def _head_and_known() -> tuple[str, set[str]]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    head = script.get_current_head()
    assert head is not None
    return head, {s.revision for s in script.walk_revisions()}


def current_and_head(url: str) -> tuple[str | None, str]:
    """The schema revision found in the database (None: no llmrelay schema yet, or a file
    from the release before migrations) and the one this llmrelay expects.
    Raises ``ValueError`` for a bad URL and the driver's error (``sqlite3.Error``,
    ``psycopg.OperationalError`` after libpq's ``connect_timeout``, 5 s) when unreachable."""
    db = parse_url(url)
    head, _ = _head_and_known()
    return _current(db), head


def _unknown(current: str, head: str) -> SchemaError:
    return SchemaError(
        f"the database schema is at revision {current}, which this llmrelay does not know"
        f" (it expects {head}); the database was upgraded by a newer llmrelay: upgrade llmrelay"
    )


def check(url: str) -> None:
    """Raise :class:`SchemaError` unless the schema is at this llmrelay's head revision."""
    current, head = current_and_head(url)
    if current == head:
        return
    _, known = _head_and_known()
    if current is not None and current not in known:
        raise _unknown(current, head)
    raise SchemaError(
        f"the database schema is at revision {current or 'none'}, this llmrelay expects"
        f" {head}: run `llmrelay db upgrade --config <file>`"
    )


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; a no-op when already there. Concurrent upgrades
    of one database run it once (see ``migrations/env.py``). Raises :class:`SchemaError`
    when the database is at a revision this llmrelay does not know, or (PostgreSQL) when
    there is no schema to create the tables in or the user may not create them there."""
    from alembic import command

    db = parse_url(url)
    head, known = _head_and_known()
    current = _current(db)
    if current is not None and current not in known:
        raise _unknown(current, head)
    with _ALEMBIC_LOCK, _connect(db, exclusive=True) as connection:
        if db.conninfo is not None and current != (head if revision == "head" else revision):
            problem = _may_not_create(connection)
            # End the query's implicit transaction: the migrations begin (and commit) their own.
            connection.rollback()
            if problem is not None:
                raise SchemaError(problem)
        command.upgrade(_config(connection), revision)
