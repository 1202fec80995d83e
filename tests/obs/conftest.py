"""Real usage stores for the recorder tests: SQLite in a temporary file and, when
``LLMRELAY_TEST_POSTGRES_URL`` is set, PostgreSQL in a schema of its own; and the same
stores with an outage to switch on and off."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from llmrelay.stores.database import upgrade
from llmrelay.stores.postgres_usage import PostgresUsageStore
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from llmrelay.stores.usage import UsageRecord, UsageStore
from tests.pg_schema import fresh_pg_schema, postgres_url_or_skip, with_host_port
from tests.tcp_proxy import TcpProxy


@dataclass
class Backend:
    """A store on a fresh database; ``url`` opens another connection to the same one."""

    name: str
    url: str
    store: UsageStore


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "usage.db"
        store: UsageStore = SQLiteUsageStore(path)
        yield Backend("sqlite", f"sqlite:///{path}", store)
        store.close()
        return
    with fresh_pg_schema(postgres_url_or_skip()) as url:
        upgrade(url)
        store = PostgresUsageStore.open(url)
        yield Backend("postgres", url, store)
        store.close()


@dataclass
class Outage:
    """A store whose database can be made unreachable (PostgreSQL: a TCP proxy in between
    is stopped) or locked (SQLite: another connection holds an exclusive lock) and back.
    ``rows()`` reads the table through a connection of its own, once the store is up."""

    name: str
    store: UsageStore
    down: Callable[[], None]
    up: Callable[[], None]
    rows: Callable[[], list[UsageRecord]]


@pytest.fixture(params=["sqlite", "postgres"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "sqlite":
        yield from _sqlite_outage(tmp_path / "usage.db")
    else:
        yield from _postgres_outage(postgres_url_or_skip())


def _sqlite_outage(path: Path) -> Iterator[Outage]:
    # A short busy wait: each write attempt fails fast with "database is locked".
    store = SQLiteUsageStore(path, busy_timeout_s=0.05)
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    reader = SQLiteUsageStore(path)

    def down() -> None:
        holder.execute("BEGIN EXCLUSIVE")

    def up() -> None:
        holder.execute("ROLLBACK")

    try:
        yield Outage("sqlite", store, down, up, reader.rows)
    finally:
        if holder.in_transaction:
            up()
        holder.close()
        reader.close()
        store.close()


def _postgres_outage(base_url: str) -> Iterator[Outage]:
    with fresh_pg_schema(base_url) as url:
        upgrade(url)
        target = urlsplit(url)
        with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
            store = PostgresUsageStore.open(
                with_host_port(url, proxy.host, proxy.port), timeout_s=1.0
            )
            reader = PostgresUsageStore.open(url)
            # Wait for the pool's first connection: one still being set up through the proxy
            # when it stops would survive the stop.
            store.rows()
            try:
                yield Outage("postgres", store, proxy.stop, proxy.start, reader.rows)
            finally:
                reader.close()
                store.close()
