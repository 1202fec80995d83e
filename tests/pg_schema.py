"""A throwaway PostgreSQL schema per test, so tests on one database never see each other.

``fresh_pg_schema(base_url)`` creates ``llmrelay_t_<random>``, yields ``base_url`` with the
libpq ``options`` parameter setting ``search_path`` to it (so the stores' tables and
Alembic's version table land there), and drops it with everything in it afterwards.
``with_host_port`` points such a URL at another address, e.g. a :class:`~tests.tcp_proxy.
TcpProxy` in front of the server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

__all__ = ["ENV_VAR", "fresh_pg_schema", "postgres_url_or_skip", "with_host_port"]

ENV_VAR = "LLMRELAY_TEST_POSTGRES_URL"


def postgres_url_or_skip() -> str:
    """The test server's URL from ``LLMRELAY_TEST_POSTGRES_URL``, or skip the test."""
    url = os.environ.get(ENV_VAR)
    if not url:
        pytest.skip(f"{ENV_VAR} is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    return url


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextmanager
def fresh_pg_schema(base_url: str) -> Iterator[str]:
    """A new empty schema on ``base_url``'s database; yields a URL whose connections use it."""
    schema = f"llmrelay_t_{secrets.token_hex(6)}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    options = dict(parse_qsl(urlsplit(base_url).query)).get("options", "")
    url = _with_query(base_url, options=f"{options} -csearch_path={schema}".strip())
    try:
        yield url
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def with_host_port(url: str, host: str, port: int) -> str:
    """``url`` with its host and port replaced (user, database and parameters kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@{host}:{port}" if user else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))
