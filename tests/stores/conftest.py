"""Database fixtures: each store test runs on SQLite and, when
``LLMRELAY_TEST_POSTGRES_URL`` is set, on PostgreSQL in a schema of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrelay.stores.database import Stores, open_stores, upgrade
from tests.pg_schema import fresh_pg_schema, postgres_url_or_skip


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no llmrelay schema yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'llmrelay.db'}"
        return
    with fresh_pg_schema(postgres_url_or_skip()) as url:
        yield url


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A database at the head revision."""
    upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture
def stores(db_url: str) -> Iterator[Stores]:
    opened = open_stores(db_url)
    yield opened
    opened.close()
