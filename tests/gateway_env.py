"""A fake Anthropic upstream with an llmrelay gateway in front of it, shared by a test module."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, free_port, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic

UPSTREAM_KEY = "sk-ant-upstream-secret-42"
PROVIDER_MODEL = "claude-sonnet-4-6"


@dataclass
class Env:
    fake: FakeAnthropic
    gw: GatewayProcess

    def client(self, key: str = ALICE_KEY, **kw: Any) -> anthropic.Anthropic:
        kw.setdefault("max_retries", 0)
        kw.setdefault("base_url", self.gw.url)
        return anthropic.Anthropic(api_key=key, **kw)

    def usage_rows(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The last ``n`` usage rows, waiting until at least ``n`` exist."""
        deadline = time.monotonic() + timeout
        while True:
            rows: list[dict[str, Any]] = []
            if self.gw.usage_db.exists():
                db = sqlite3.connect(self.gw.usage_db)
                db.row_factory = sqlite3.Row
                try:
                    rows = [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]
                except sqlite3.OperationalError:
                    rows = []
                finally:
                    db.close()
            if len(rows) >= n or time.monotonic() > deadline:
                return rows[-n:]
            time.sleep(0.05)

    def usage_row(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            db = sqlite3.connect(self.gw.usage_db)
            db.row_factory = sqlite3.Row
            try:
                found = db.execute("SELECT * FROM usage WHERE request_id = ?", (request_id,))
                row = found.fetchone()
            except sqlite3.OperationalError:
                row = None
            finally:
                db.close()
            if row is not None:
                return dict(row)
            time.sleep(0.05)
        raise AssertionError(f"no usage row for {request_id}")


def providers_for(fake: FakeAnthropic) -> dict[str, Any]:
    return {
        "anthropic": {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": UPSTREAM_KEY,
            "models": {"claude-3-5": PROVIDER_MODEL},
            "timeouts": {"read_s": 10},
        },
        "slow": {
            "type": "anthropic",
            "base_url": fake.url,
            "api_key": UPSTREAM_KEY,
            "models": {"claude": PROVIDER_MODEL},
            "timeouts": {"read_s": 0.5},
        },
        "dead": {
            "type": "anthropic",
            "base_url": f"http://127.0.0.1:{free_port()}",
            "api_key": UPSTREAM_KEY,
            "models": {"claude": PROVIDER_MODEL},
        },
        "local": {"type": "mock", "models": {"echo": "echo"}},
    }


def make_env(tmp: Path, **overrides: Any) -> Iterator[Env]:
    fake = FakeAnthropic()
    fake.start()
    try:
        gw = start_gateway(
            tmp, base_config(tmp, providers_for(fake), **overrides), "--log-level", "debug"
        )
        try:
            yield Env(fake, gw)
        finally:
            gw.stop()
    finally:
        fake.stop()


def raw_request(
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP request (no SDK): status, lower-cased headers, body."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
