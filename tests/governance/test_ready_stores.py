"""``GET /ready`` and the stores: under ``governance.fail_closed`` (calls are refused while a
store is down) it answers 503 while Redis or PostgreSQL does not answer, and 200 again once
they do; fail-open it stays 200 (calls go on). The stores are cut with a TCP proxy in front
of the real servers; ``/health`` (liveness) stays 200 throughout."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_gateway
from tests.governance.cluster import (
    PG_URL,
    REDIS_URL,
    db_upgrade,
    mock_config,
    needs_services,
    redis_prefix,
)
from tests.pg_schema import fresh_pg_schema, with_host_port
from tests.tcp_proxy import TcpProxy

pytestmark = needs_services


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def _ready_becomes(url: str, want: tuple[int, dict[str, Any]], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    got = _get(url + "/ready")
    while got != want:
        assert time.monotonic() < deadline, f"/ready is {got}, not {want}"
        time.sleep(0.1)
        got = _get(url + "/ready")


@pytest.mark.parametrize("fail_closed", [True, False])
def test_ready_follows_redis_under_fail_closed_only(tmp_path: Path, fail_closed: bool) -> None:
    assert PG_URL and REDIS_URL
    with (
        fresh_pg_schema(PG_URL) as pg,
        redis_prefix() as prefix,
        TcpProxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])) as proxy,
    ):
        redis_url = f"redis://127.0.0.1:{proxy.port}/0"
        cfg = mock_config(tmp_path, pg, {"url": redis_url, "prefix": prefix})
        cfg["governance"] = {"key_refresh_s": 0.5, "fail_closed": fail_closed}
        db_upgrade(tmp_path, cfg)
        gw = start_gateway(tmp_path, cfg)
        try:
            _ready_becomes(gw.url, (200, {"status": "ready"}))
            proxy.stop()
            if fail_closed:
                down = {"status": "unavailable", "reason": "counter store (redis) unreachable"}
                _ready_becomes(gw.url, (503, down))
            else:
                assert _get(gw.url + "/ready") == (200, {"status": "ready"})
            assert _get(gw.url + "/health") == (200, {"status": "ok"})
            proxy.start()
            _ready_becomes(gw.url, (200, {"status": "ready"}))
        finally:
            gw.stop()


def test_ready_follows_postgresql_under_fail_closed(tmp_path: Path) -> None:
    assert PG_URL
    with fresh_pg_schema(PG_URL) as pg:
        target = pg.split("@", 1)[1].split("/", 1)[0]
        host, _, port = target.partition(":")
        with TcpProxy(host, int(port or 5432)) as proxy:
            cfg = mock_config(tmp_path, with_host_port(pg, "127.0.0.1", proxy.port), None)
            cfg["governance"] = {"key_refresh_s": 0.2, "fail_closed": True}
            db_upgrade(tmp_path, cfg)
            gw = start_gateway(tmp_path, cfg)
            try:
                _ready_becomes(gw.url, (200, {"status": "ready"}))
                proxy.stop()
                down = {"status": "unavailable", "reason": "database unreachable"}
                _ready_becomes(gw.url, (503, down))
                assert _get(gw.url + "/health") == (200, {"status": "ok"})
                proxy.start()
                _ready_becomes(gw.url, (200, {"status": "ready"}))
            finally:
                gw.stop()
