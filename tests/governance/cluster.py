"""Several ``llmrelay serve`` processes sharing one PostgreSQL schema and one Redis prefix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import GatewayProcess, base_config, start_gateway

PG_URL = os.environ.get("LLMRELAY_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("LLMRELAY_TEST_REDIS_URL")
ADMIN_KEY = "sk-admin-0123456789abcdef0123"

needs_services = pytest.mark.skipif(
    not (PG_URL and REDIS_URL),
    reason="set LLMRELAY_TEST_POSTGRES_URL and LLMRELAY_TEST_REDIS_URL (.ci/run sets both)",
)


def mock_config(
    tmp: Path, database: str, redis: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
    cfg = base_config(
        tmp,
        {"mock": {"type": "mock", "models": {"echo": "echo"}}},
        database=database,
        admin={"key": ADMIN_KEY},
        governance={"key_refresh_s": 0.5},
    )
    if redis is not None:
        cfg["redis"] = redis
    cfg.update(extra)
    return cfg


def db_upgrade(tmp: Path, config: dict[str, Any]) -> None:
    path = tmp / f"upgrade-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(config))
    subprocess.run(
        [sys.executable, "-m", "llmrelay", "db", "upgrade", "--config", str(path)],
        check=True,
        capture_output=True,
    )


@contextmanager
def redis_prefix() -> Iterator[str]:
    import redis

    prefix = f"llmrelay-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL or "")
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def cluster(
    tmp: Path, n: int, pg_url: str, redis_url: str, prefix: str, **extra: Any
) -> Iterator[list[GatewayProcess]]:
    cfg = mock_config(tmp, pg_url, {"url": redis_url, "prefix": prefix}, **extra)
    db_upgrade(tmp, cfg)
    gws: list[GatewayProcess] = []
    try:
        for _ in range(n):
            gws.append(start_gateway(tmp, cfg, "--log-level", "info"))
        yield gws
    finally:
        for gw in gws:
            gw.stop()


def pg_rows(url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute("SELECT * FROM usage ORDER BY id"))


def admin_post(gw: GatewayProcess, path: str, body: Any = None) -> Any:
    import urllib.request

    req = urllib.request.Request(
        gw.url + path,
        data=json.dumps(body or {}).encode(),
        method="POST",
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())
