"""Nothing lost, nothing hangs: a property-based fuzz of the gateway's whole ingress.

Hypothesis draws requests over every route and prefix, every method, header sets (no key,
the right key in ``x-api-key`` or ``Authorization: Bearer``, both agreeing or not, wrong,
near-miss and admin keys, junk values a client library would refuse), content types and
encodings, framings, and bodies (SDK-shaped requests mutated field by field, raw shapes,
oversized, deeply nested, invalid UTF-8), and queues upstream faults on the fakes. Each is
sent over a raw socket to one real ``llmrelay serve`` and its answer checked
(``tests/fuzz/checks.py``). At the end the gateway is stopped and its log and usage rows
are checked: no secret, no traceback, no ``internal error``, one row per authenticated call.

It runs for ``LLMRELAY_FUZZ_SECONDS`` (default 45) in batches of examples; to fuzz longer::

    LLMRELAY_FUZZ_SECONDS=600 python -m pytest -q tests/test_fuzz_ingress.py

``LLMRELAY_FUZZ_SHRINK=0`` reports a failing request as it was drawn, unshrunk.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings

from tests.conftest import GatewayProcess, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fuzz import faults
from tests.fuzz.cases import RECENT, Case, cases
from tests.fuzz.checks import Ledger, problems, secret_in
from tests.fuzz.env import MAX_CONNECTIONS, config
from tests.fuzz.wire import Answer, exchange

#: The request that follows a case on the same connection (``Case.follow``).
HEALTH = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"

FUZZ_SECONDS = float(os.environ.get("LLMRELAY_FUZZ_SECONDS", "45"))
#: ``LLMRELAY_FUZZ_SHRINK=0``: report a failing request as drawn, without shrinking it
#: (shrinking a case that waits for a timeout takes a while).
SHRINK = os.environ.get("LLMRELAY_FUZZ_SHRINK", "1") != "0"
#: Examples per Hypothesis run; runs repeat until the time is up.
BATCH = 50


@dataclass
class FuzzEnv:
    ant: FakeAnthropic
    oai: FakeOpenAI
    gw: GatewayProcess

    @property
    def port(self) -> int:
        return int(self.gw.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzEnv]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with FakeAnthropic() as ant, FakeOpenAI() as oai:
        gw = start_gateway(tmp, config(tmp, ant, oai), "--log-level", "debug")
        try:
            yield FuzzEnv(ant, oai, gw)
        finally:
            gw.stop()


def send(env: FuzzEnv, case: Case, recent: str | None) -> Answer:
    """Queue the case's upstream fault (if any), send it, forget what the fakes kept.
    ``recent``: a request id that has a usage row, for ``/admin/requests/{id}``."""
    if recent is not None and RECENT.encode() in case.target:
        case.target = case.target.replace(RECENT.encode(), recent.encode())
    if case.fault is not None:
        stream = b'"stream":true' in case.body or b'"stream": true' in case.body
        reply = faults.anthropic_reply(case.fault.name, stream)
        env.ant.enqueue(reply)
        env.ant.enqueue_count_tokens(reply)
        if case.model != "duo":  # duo falls back from ant to oai: let oai answer
            env.oai.enqueue(faults.openai_reply(case.fault.name, stream))
    crowd = [crowd_connection(env.port) for _ in range(MAX_CONNECTIONS if case.crowd else 0)]
    try:
        # A body whose framing is junk may never end: the server waits for it a while.
        whole = case.framing in ("length", "chunked") and not case.raw_junk
        return exchange(
            env.port,
            case.wire(),
            method=case.method,
            drain_head=whole,
            then=HEALTH if case.follow else None,
            pipelined=case.follow == "pipelined",
        )
    finally:
        for fake in (env.ant, env.oai):
            fake.clear_replies()
            fake.requests.clear()
        if crowd:
            for sock in crowd:
                sock.close()
            served(env.port)


def crowd_connection(port: int) -> socket.socket:
    """An open connection that sends nothing (the header timeout closes it after 1 s).
    The server accepts connections in the order they came: these count before the case's."""
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def served(port: int) -> None:
    """Wait until a new connection is served again (the server counts closed ones as it
    sees them go)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = exchange(port, HEALTH, method="GET")
        if answer.status == 200:
            return
        time.sleep(0.02)
    raise AssertionError("the gateway serves no new connection after the crowd left")


def describe(case: Case, answer: Answer, found: list[str]) -> str:
    headers = [(k, v[:80] + (b"..." if len(v) > 80 else b"")) for k, v in case.headers]
    return "\n".join(
        [
            *found,
            f"request: {case.method} {case.target[:200]!r} {case.version.decode()}"
            f" framing={case.framing} fault={case.fault and case.fault.name}"
            f" follow={case.follow}",
            f"headers: {headers}",
            f"body ({len(case.body)} bytes): {case.body[:400]!r}",
            f"answer: {answer.status} {answer.error or ''} {answer.headers}",
            f"answer body: {answer.body[:600]!r}",
        ]
    )


def log_problems(log: str) -> list[str]:
    """Log lines with a secret, a traceback, an ``internal error`` or at level error."""
    out = []
    for line in log.splitlines():
        if secret_in(line.encode("utf-8", "surrogateescape")) is not None:
            out.append(f"a secret in the log: {line[:300]}")
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            if "Traceback" in line or "Error" in line:
                out.append(f"not a JSON log line: {line[:300]}")
            continue
        bad_level = entry.get("level") in ("error", "critical")
        if "exc" in entry or entry.get("msg") == "internal error" or bad_level:
            out.append(f"{entry.get('msg')}: {line[:1500]}")
    return out


def usage_request_ids(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT request_id FROM usage")]
    finally:
        con.close()


def test_every_request_is_answered_in_its_envelope_without_secrets_and_every_call_is_billed(
    env: FuzzEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = Ledger()

    @settings(
        max_examples=BATCH,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        phases=[p for p in Phase if SHRINK or p is not Phase.shrink],
    )
    @given(case=cases())
    def one(case: Case) -> None:
        answer = send(env, case, next(reversed(ledger.billed), None))
        ledger.record(case, answer)
        found = problems(case, answer)
        note(describe(case, answer, found))
        assert not found, describe(case, answer, found)

    started = time.monotonic()
    while time.monotonic() - started < FUZZ_SECONDS:
        one()
    took = time.monotonic() - started
    env.gw.stop()  # the usage writer flushes on the way out

    found = log_problems(env.gw.log())
    rows = usage_request_ids(env.gw.usage_db)
    billed = set(ledger.billed)
    missing = billed - set(rows)
    extra = len(rows) - len(billed)
    with capsys.disabled():
        print(f"\n{ledger.summary()}\n  ({took:.0f} s, {ledger.sent / took:.0f} requests/s)")
    assert not found, "\n".join(found[:20])
    assert len(set(rows)) == len(rows), "two usage rows for one request id"
    assert not missing, f"{len(missing)} authenticated calls without a usage row:\n" + "\n".join(
        f"{rid}: {ledger.billed[rid]}" for rid in sorted(missing)[:10]
    )
    assert 0 <= extra <= ledger.unanswered, f"{extra} usage rows for calls not billed"
