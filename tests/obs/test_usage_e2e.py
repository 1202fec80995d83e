"""Through a real gateway: a request whose model is a lone surrogate (legal JSON) gets its
404 and its usage row, and the calls after it get theirs."""

from __future__ import annotations

import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ALICE_KEY, GatewayProcess, base_config

GOOD = b'{"model":"local/echo","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
# The JSON escape \ud800 written out in the bytes: a lone surrogate once decoded.
LONE_SURROGATE = b'{"model":"\\ud800","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'


def post(gw: GatewayProcess, body: bytes) -> tuple[int, str]:
    """POST /v1/messages; the status and the request id the gateway answered with."""
    req = urllib.request.Request(
        gw.url + "/v1/messages",
        data=body,
        headers={
            "x-api-key": ALICE_KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["request-id"]
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers["request-id"]


def test_a_lone_surrogate_model_gets_its_row_and_blocks_no_later_row(
    gateway_factory: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    gw = gateway_factory(
        base_config(tmp_path, {"local": {"type": "mock", "models": {"echo": "echo"}}})
    )
    answers = [post(gw, GOOD) for _ in range(3)]
    answers.append(post(gw, LONE_SURROGATE))
    answers += [post(gw, GOOD) for _ in range(5)]
    gw.stop()

    assert [status for status, _ in answers] == [200] * 3 + [404] + [200] * 5
    with sqlite3.connect(gw.usage_db) as db:
        rows = db.execute("SELECT request_id, model, status FROM usage ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [request_id for _, request_id in answers]
    assert rows[3][1:] == ("\ufffd", 404)
    assert all(r[1:] == ("local/echo", 200) for r in rows[:3] + rows[4:])
    assert "usage rows lost" not in gw.log()
