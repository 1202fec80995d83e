"""Alembic's entry point: run the migrations on the connection llmrelay passes in.

:mod:`llmrelay.stores.schema` opens the connection (with SQLite's transaction control
handed to SQLAlchemy, so DDL is transactional) and puts it in
``config.attributes["connection"]``, as in the Alembic cookbook recipe "Sharing a Connection
across one or more programmatic migration commands". The whole upgrade runs in one
transaction: on SQLite under ``BEGIN EXCLUSIVE``, on PostgreSQL behind a transaction-level
advisory lock, so two instances upgrading at once run it once and the second finds it done.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

# pg_advisory_xact_lock key: "llmrelay" in ASCII, as a bigint.
_LOCK_KEY = 0x6C6C6D72656C6179


def _run(connection: Connection) -> None:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("llmrelay's migrations run online only: use `llmrelay db upgrade`")
_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("run llmrelay's migrations with `llmrelay db upgrade`, not `alembic`")
_run(_connection)
