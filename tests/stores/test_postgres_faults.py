"""PostgreSQL going away: operations raise within a bounded time and work again after.

The stores sit behind a :class:`~tests.tcp_proxy.TcpProxy`; stopping it closes every
connection and refuses new ones, as a stopped server would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
import pytest

from llmrelay.stores.database import upgrade
from llmrelay.stores.keys import KeySecret, VirtualKey
from llmrelay.stores.postgres_keys import PostgresKeyStore
from llmrelay.stores.postgres_usage import PostgresUsageStore
from llmrelay.stores.usage import UsageRecord
from tests.pg_schema import fresh_pg_schema, postgres_url_or_skip, with_host_port
from tests.tcp_proxy import TcpProxy

T = TypeVar("T")
TIMEOUT_S = 1.0
# Generous: the point is that a call returns at all, not how fast.
RETURNS_WITHIN_S = 30.0


def row(i: int) -> UsageRecord:
    return UsageRecord(
        ts=float(i),
        request_id=f"req_{i}",
        key_name="k",
        model="m",
        provider="p",
        provider_model="pm",
        endpoint="messages",
        stream=False,
        status=200,
    )


def outcome(fn: Callable[[], T]) -> T | BaseException:
    """Run ``fn`` in a thread; its result or error, failing the test if it hangs."""
    result: list[T | BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as err:
            result.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(RETURNS_WITHIN_S)
    assert result, f"call still blocked after {RETURNS_WITHIN_S} s"
    return result[0]


def eventually(fn: Callable[[], T]) -> T:
    """``fn()`` once it stops raising (the pool reconnects in the background)."""
    deadline = time.monotonic() + RETURNS_WITHIN_S
    while True:
        try:
            return fn()
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_schema(postgres_url_or_skip()) as url:
        upgrade(url)
        yield url


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    target = psycopg.conninfo.conninfo_to_dict(pg_url)
    with TcpProxy(str(target.get("host", "127.0.0.1")), int(target.get("port", 5432))) as p:
        yield p


def test_a_server_that_is_not_there_fails_the_write(pg_url: str) -> None:
    store = PostgresUsageStore.open(with_host_port(pg_url, "127.0.0.1", 1), timeout_s=TIMEOUT_S)
    try:
        assert isinstance(outcome(lambda: store.write([row(1)])), psycopg.OperationalError)
    finally:
        store.close()


def test_usage_writes_fail_while_down_and_resume_after(pg_url: str, proxy: TcpProxy) -> None:
    store = PostgresUsageStore.open(
        with_host_port(pg_url, "127.0.0.1", proxy.port), timeout_s=TIMEOUT_S
    )
    try:
        store.write([row(1)])
        proxy.stop()
        assert isinstance(outcome(lambda: store.write([row(2)])), psycopg.OperationalError)
        proxy.start()
        eventually(lambda: store.write([row(3), row(4)]))
        # The failed batch left nothing behind; the next one went in whole.
        assert [r.request_id for r in store.rows()] == ["req_1", "req_3", "req_4"]
    finally:
        store.close()


def test_key_reads_fail_while_down_and_resume_after(pg_url: str, proxy: TcpProxy) -> None:
    store = PostgresKeyStore.open(
        with_host_port(pg_url, "127.0.0.1", proxy.port), timeout_s=TIMEOUT_S
    )
    try:
        store.create(VirtualKey("vk_1", "one"), KeySecret(b"1" * 32, "vk_1"))
        proxy.stop()
        assert isinstance(outcome(lambda: store.changed_since(0)), psycopg.OperationalError)
        proxy.start()
        assert [k.id for k in eventually(lambda: store.changed_since(0)).keys] == ["vk_1"]
    finally:
        store.close()


def test_usage_writes_fail_while_stalled_and_resume_after(pg_url: str, proxy: TcpProxy) -> None:
    """A server that keeps the connection up but never answers (a blackholed proxy, a hung
    PgBouncer): the pool's connection check gives up after the store's timeout instead of
    waiting forever, and so does the new connection that replaces it."""
    store = PostgresUsageStore.open(
        with_host_port(pg_url, "127.0.0.1", proxy.port), timeout_s=TIMEOUT_S
    )
    try:
        store.write([row(1)])
        proxy.blackhole()
        start = time.monotonic()
        assert isinstance(outcome(lambda: store.write([row(2)])), psycopg.OperationalError)
        # The check (TIMEOUT_S), then a new connection (connect_timeout, libpq's minimum 2 s)
        # within the pool's wait (TIMEOUT_S): a few seconds, not forever.
        assert time.monotonic() - start < 4 * TIMEOUT_S + 2, time.monotonic() - start
        proxy.start()
        eventually(lambda: store.write([row(3)]))
        assert [r.request_id for r in store.rows()] == ["req_1", "req_3"]
    finally:
        store.close()
