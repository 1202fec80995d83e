"""Redis and PostgreSQL going away while the gateway serves: fail-open (or closed) for
counters, retried usage writes, and recovery without a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anthropic
import pytest

from tests.conftest import ALICE_KEY, BOB_KEY, base_config, start_gateway
from tests.governance.cluster import (
    PG_URL,
    REDIS_URL,
    db_upgrade,
    mock_config,
    needs_services,
    pg_rows,
    redis_prefix,
)
from tests.pg_schema import fresh_pg_schema
from tests.tcp_proxy import TcpProxy

pytestmark = needs_services

MSG: Any = [{"role": "user", "content": "hello"}]


def call(url: str, key: str = ALICE_KEY) -> int:
    with anthropic.Anthropic(api_key=key, base_url=url, max_retries=0) as client:
        try:
            client.messages.create(model="mock/echo", max_tokens=16, messages=MSG)
        except anthropic.APIStatusError as err:
            return err.status_code
    return 200


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def via(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)
    auth = host[0] + "@" if len(host) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{proxy.port}"))


def redis_port() -> int:
    return urlsplit(REDIS_URL or "").port or 6379


def test_redis_down_fails_open_then_limits_hold_again(tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", redis_port())
    proxy.start()
    keys = {
        "keys": [
            {"name": "alice", "key": ALICE_KEY, "limits": {"rpm": 5}},
            {"name": "bob", "key": BOB_KEY},
        ]
    }
    try:
        with redis_prefix() as prefix:
            cfg = mock_config(
                tmp_path,
                f"sqlite:///{tmp_path / 'gw.db'}",
                {"url": via(proxy, REDIS_URL or ""), "prefix": prefix},
                auth=keys,
            )
            gw = start_gateway(tmp_path, cfg, "--log-level", "info")
            try:
                assert [call(gw.url) for _ in range(3)] == [200] * 3
                proxy.stop()
                # Fail-open: in-process counters take over (fresh, so two more pass), and
                # no request fails because Redis is gone.
                assert [call(gw.url) for _ in range(2)] == [200, 200]
                assert call(gw.url, BOB_KEY) == 200
                proxy.start()
                # The next call after a second probes Redis and goes back to it: 3 were
                # counted there before the outage, so 2 more fit.
                time.sleep(1.2)
                results = [call(gw.url) for _ in range(4)]
                assert results == [200, 200, 429, 429], results
                wait_for(lambda: "counter store reachable again" in gw.log())
                log = gw.log()
                assert log.count("counter store unreachable") == 1
            finally:
                gw.stop()
    finally:
        proxy.close()


def test_redis_down_with_fail_closed_refuses_with_503(tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", redis_port())
    proxy.start()
    keys = {"keys": [{"name": "alice", "key": ALICE_KEY, "limits": {"rpm": 100}}]}
    try:
        with redis_prefix() as prefix:
            cfg = mock_config(
                tmp_path,
                f"sqlite:///{tmp_path / 'gw.db'}",
                {"url": via(proxy, REDIS_URL or ""), "prefix": prefix},
                auth=keys,
                governance={"fail_closed": True, "key_refresh_s": 0.5},
            )
            gw = start_gateway(tmp_path, cfg)
            try:
                assert call(gw.url) == 200
                proxy.stop()
                client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)
                with client, pytest.raises(anthropic.InternalServerError) as e:
                    client.messages.create(model="mock/echo", max_tokens=16, messages=MSG)
                assert e.value.status_code == 503
                assert "fail_closed" in e.value.message
                proxy.start()
                wait_for(lambda: call(gw.url) == 200)
            finally:
                gw.stop()
    finally:
        proxy.close()


def test_postgres_unreachable_at_a_flush_loses_no_usage_row(tmp_path: Path) -> None:
    assert PG_URL
    pg_port = urlsplit(PG_URL).port or 5432
    proxy = TcpProxy("127.0.0.1", pg_port)
    proxy.start()
    try:
        with fresh_pg_schema(PG_URL) as db:
            cfg = base_config(
                tmp_path,
                {"mock": {"type": "mock", "models": {"echo": "echo"}}},
                database=via(proxy, db),
                governance={"key_refresh_s": 0.5},
            )
            db_upgrade(tmp_path, {**cfg, "database": db})
            gw = start_gateway(tmp_path, cfg, "--log-level", "info")
            try:
                assert [call(gw.url) for _ in range(3)] == [200] * 3
                wait_for(lambda: len(pg_rows(db)) == 3)
                proxy.stop()
                # Keys are cached and calls go on while the database is away.
                assert [call(gw.url) for _ in range(5)] == [200] * 5
                wait_for(lambda: "usage write failed, will retry" in gw.log())
                assert len(pg_rows(db)) == 3
                proxy.start()
                wait_for(lambda: len(pg_rows(db)) == 8, timeout=40)
                rows = pg_rows(db)
                assert len({r["request_id"] for r in rows}) == 8
                assert all(r["status"] == 200 for r in rows)
            finally:
                gw.stop()
            assert len(pg_rows(db)) == 8
    finally:
        proxy.close()
