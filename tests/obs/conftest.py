"""Real usage stores for the recorder tests: SQLite in a temporary file and, when
``LLMRELAY_TEST_POSTGRES_URL`` is set, PostgreSQL in a schema of its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmrelay.stores.database import upgrade
from llmrelay.stores.postgres_usage import PostgresUsageStore
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from llmrelay.stores.usage import UsageStore
from tests.pg_schema import fresh_pg_schema, postgres_url_or_skip


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
