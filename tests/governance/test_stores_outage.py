"""PostgreSQL and Redis down together, killed and then blackholed, under a real gateway:
no call waits on a store past its timeout, no usage row is lost once they are back, and a
budget nearly spent before the outage stays nearly spent during it (never back to $0)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anthropic
import pytest

from tests.conftest import ALICE_KEY, BOB_KEY, GatewayProcess, start_gateway
from tests.governance.cluster import (
    ADMIN_KEY,
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

CAROL_KEY = "sk-test-carol-0123456789abcdef"
ERIN_KEY = "sk-test-erin-0123456789abcdef"
MSG: Any = [{"role": "user", "content": "hello"}]
# A call costs 10 input * $0.001 + 11 output * $0.1 = $1.11 and holds about $1.62 (its worst
# case): a $5 budget admits calls while spent <= $3.38, four calls, $4.44.
PRICE = {"echo": {"input": 1_000.0, "output": 100_000.0}}
BUDGET = {"usd": 5.0, "period": "month"}
STORE_TIMEOUT_S = 0.25
# A call may also meet Redis's own socket timeout once (the first call after it went, and
# the call that probes it each second): redis_counters' default.
REDIS_TIMEOUT_S = 0.5
# Generous, for a loaded machine: the bound is about stalls of 5-20 s, not milliseconds.
SLACK_S = 2.0


def via(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{proxy.port}" if user else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def proxy_to(url: str, default_port: int) -> Iterator[TcpProxy]:
    target = urlsplit(url)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or default_port) as proxy:
        yield proxy


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not reached within {timeout} s: {what}"
        time.sleep(0.2)


class Caller:
    """Calls through the SDK, keeping each call's status and how long it took."""

    def __init__(self, gw: GatewayProcess) -> None:
        self.clients = {
            key: anthropic.Anthropic(api_key=key, base_url=gw.url, max_retries=0)
            for key in (ALICE_KEY, BOB_KEY, CAROL_KEY, ERIN_KEY)
        }
        self.sent = 0
        self.took: list[float] = []

    def __call__(self, key: str) -> int:
        start = time.monotonic()
        self.sent += 1
        try:
            self.clients[key].messages.create(model="mock/echo", max_tokens=16, messages=MSG)
            status = 200
        except anthropic.APIStatusError as err:
            status = err.status_code
        self.took.append(time.monotonic() - start)
        return status

    def many(self, keys: list[str]) -> list[int]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(self, keys))

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def admin_create(gw: GatewayProcess, name: str) -> tuple[int, Any, float]:
    req = urllib.request.Request(
        gw.url + "/admin/keys",
        data=json.dumps({"name": name}).encode(),
        method="POST",
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), time.monotonic() - start
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read()), time.monotonic() - start


@pytest.mark.parametrize("cut", ["kill", "blackhole"])
def test_postgres_and_redis_down_together(tmp_path: Path, cut: str) -> None:
    assert PG_URL and REDIS_URL
    keys = {
        "keys": [
            {"name": "alice", "key": ALICE_KEY, "budget": BUDGET},
            {"name": "bob", "key": BOB_KEY},
            {"name": "carol", "key": CAROL_KEY, "budget": BUDGET},
            {"name": "erin", "key": ERIN_KEY, "budget": BUDGET},
        ]
    }
    governance = {
        "key_refresh_s": 0.5,
        "store_timeout_s": STORE_TIMEOUT_S,
        "admin_store_timeout_s": 2.0,
    }
    with (
        fresh_pg_schema(PG_URL) as db,
        redis_prefix() as prefix,
        proxy_to(PG_URL, 5432) as pg,
        proxy_to(REDIS_URL, 6379) as redis,
    ):
        cfg = mock_config(
            tmp_path,
            via(pg, db),
            {"url": via(redis, REDIS_URL), "prefix": prefix},
            auth=keys,
            pricing=PRICE,
            governance=governance,
        )
        db_upgrade(tmp_path, {**cfg, "database": db})
        gw = start_gateway(tmp_path, cfg, "--log-level", "info")
        call = Caller(gw)
        try:
            # Before: alice spends $3.33 of her $5 (room for one more call), carol $1.11.
            assert [call(ALICE_KEY) for _ in range(3)] == [200] * 3
            assert call.many([BOB_KEY] * 4 + [CAROL_KEY]) == [200] * 5
            wait_for(lambda: len(pg_rows(db)) == call.sent, 10, "rows written before")
            baseline = max(call.took)
            call.took.clear()

            for proxy in (pg, redis):
                proxy.stop() if cut == "kill" else proxy.blackhole()
            # Alice's first call is the one that finds Redis gone. Her budget counts on from
            # $3.33 (read and settled before), not from $0: one more call, then refused.
            alice = [call(ALICE_KEY) for _ in range(3)]
            assert alice == [200, 429, 429], alice
            # Eight at once, on keys with and without a budget, and erin's first call:
            # her budget was never read, so it is read now, for at most store_timeout_s.
            during = call.many([BOB_KEY, BOB_KEY, BOB_KEY, CAROL_KEY] * 2 + [ERIN_KEY])
            assert during == [200] * 9, during
            bound = baseline + STORE_TIMEOUT_S + REDIS_TIMEOUT_S + SLACK_S
            assert max(call.took) <= bound, (call.took, bound)
            # Admin writes wait longer, then answer 503 in the usual envelope.
            status, body, took = admin_create(gw, "during-outage")
            assert status == 503 and body["error"]["type"] == "api_error", body
            assert took <= 2.0 + SLACK_S, took

            for proxy in (pg, redis):
                proxy.start()
            # Every call's row arrives once the database is back (the writer retries).
            wait_for(lambda: len(pg_rows(db)) == call.sent, 60, "every row written after")
            rows = pg_rows(db)
            assert len({r["request_id"] for r in rows}) == call.sent
            # Back on Redis (a governed call probes it each second, and the spend settled
            # during the outage is replayed there), alice stays refused.
            wait_for(
                lambda: call(ALICE_KEY) == 429 and "counter store reachable again" in gw.log(),
                30,
                "redis back",
            )
            assert call(ALICE_KEY) == 429
            # One line says which figure budgets use; erin's alone counts from $0, loudly.
            log = gw.log()
            assert log.count("budgets counted in process from the last spend") == 1, log
            assert log.count("usage store unreachable: budgets count on") == 1, log
            assert log.count("seeded at $0") == 1 and "bg:key:cfg:erin:" in log, log
        finally:
            call.close()
            gw.stop()
