"""Nothing lost, nothing hangs (issue 11): every fault of the catalogue, in every provider
wire, from both client surfaces, JSON and stream, against one gateway.

Each cell checks what the client gets (``expected.py`` says what, per cell) and the usage
row: exactly one per call, its status, error type and tokens (never negative), never a 499
for a provider fault; the access log line bills the same tokens; the call ends within
``timeouts.total_s`` and some slack; and the gateway logs no traceback (a provider fault is
not a bug: an ``internal error`` line would mean the pipeline took it for one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from .catalogue import FAULTS, INPUT_TOKENS, JSON_FAULTS, WIRES, in_one_read
from .env import TOTAL_S, FaultEnv, Observed, fault_env
from .expected import EXPECTED_TABLE, XFAIL

DOCS = Path(__file__).resolve().parents[2] / "docs" / "faults.md"
#: Slack over ``timeouts.total_s`` for a call to end (a loaded machine, the SDK's own time).
SLACK_S = 5.0


@dataclass(frozen=True)
class Cell:
    """One row of ``EXPECTED_TABLE``."""

    fault: str
    mode: str
    wire: str
    surface: str
    client: str  # "answer", "<status> <type>", "stream error <type>", "SDK JSON error"
    row: str  # "<status> <error type or -> <input>/<output>"
    says: str

    @property
    def stream(self) -> bool:
        return self.mode == "stream"

    @property
    def id(self) -> str:
        return f"{self.fault}-{self.mode}-{self.wire}-via-{self.surface}"


def parse_table(table: str) -> list[Cell]:
    lines = [ln.strip() for ln in table.strip().splitlines()]
    cells = []
    for line in lines[2:]:  # after the header and its rule
        cols = [c.strip() for c in line.strip("|").split("|")]
        cells.append(Cell(*cols))
    return cells


CELLS = parse_table(EXPECTED_TABLE)


def _params() -> list[Any]:
    out = []
    for cell in CELLS:
        key = (cell.fault, cell.mode, cell.wire, cell.surface)
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[key])] if key in XFAIL else []
        out.append(pytest.param(cell, id=cell.id, marks=marks))
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultEnv]:
    with fault_env(tmp_path_factory.mktemp("faults")) as e:
        yield e


def test_the_table_covers_every_cell_once() -> None:
    keys = [(c.fault, c.mode, c.wire, c.surface) for c in CELLS]
    want = [
        (fault, mode, wire, surface)
        for fault in FAULTS
        for mode in ("json", "stream")
        if mode == "stream" or fault in JSON_FAULTS
        for wire in WIRES
        for surface in ("anthropic", "openai")
    ]
    assert keys == want
    assert set(XFAIL) <= set(keys)


def test_docs_show_the_table() -> None:
    assert EXPECTED_TABLE.strip() in DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize("cell", _params())
def test_fault(env: FaultEnv, cell: Cell) -> None:
    env.enqueue(cell.wire, FAULTS[cell.fault](cell.wire, cell.stream))  # type: ignore[arg-type]
    began = time.monotonic()
    seen = env.call(cell.surface, cell.wire, cell.stream)  # type: ignore[arg-type]
    took = time.monotonic() - began
    rows = env.rows(seen.request_id)
    access = _access_line(env, seen.request_id)
    log = env.new_log()
    problems = [
        *_client_problems(cell, seen),
        *_row_problems(cell, rows, access),
        *_log_problems(log),
    ]
    if took > TOTAL_S + SLACK_S:
        problems.append(f"the call took {took:.1f}s")
    if not env.fakes_idle():
        problems.append("the fault never reached its fake provider")
    if env.row_count() != env.calls:
        problems.append(f"{env.row_count()} usage rows after {env.calls} calls")
    assert not problems, "\n".join([*problems, f"client saw: {seen!r}", f"ending {seen.tail!r}"])


_SAME_READ_LOST = (
    "{where} raises as soon as it meets the fault in a read and drops the events it had "
    "already decoded from that read, message_start's usage with them: the row bills 0 input "
    "tokens for a stream whose start said {n}"
)


@pytest.mark.parametrize(
    ("fault", "surface"),
    [
        ("garbage_data", "anthropic"),
        ("garbage_data", "openai"),
        ("never_ending", "anthropic"),
        ("never_ending", "openai"),
    ],
)
def test_usage_read_with_the_fault_in_one_read_is_billed(
    env: FaultEnv, fault: str, surface: str
) -> None:
    # The matrix sends a fault's parts apart; a provider may send them in one write. The
    # usage its stream carried before the fault is billed either way.
    env.enqueue("anthropic", in_one_read(FAULTS[fault]("anthropic", True)))
    seen = env.call(surface, "anthropic", True)  # type: ignore[arg-type]
    rows = env.rows(seen.request_id)
    env.new_log()
    assert [(r["status"], r["input_tokens"]) for r in rows] == [(200, INPUT_TOKENS)]
    assert seen.status == 200 and seen.error is not None


def test_an_openai_stream_whose_client_asked_for_usage_ends_between_events(
    env: FaultEnv,
) -> None:
    # With include_usage the passthrough relays the provider's bytes as they come (no usage
    # chunk to hold back): an event that never ends still leaves the client none of it.
    env.enqueue("openai", FAULTS["never_ending"]("openai", True))
    seen = env.call("openai", "openai", True, stream_options={"include_usage": True})
    env.rows(seen.request_id)
    env.new_log()
    assert isinstance(seen.error, openai.APIError), seen
    assert "provider 'openai' sent an SSE event larger than" in seen.message
    assert seen.body.endswith(b"data: [DONE]\n\n")


def _client_problems(cell: Cell, seen: Observed) -> list[str]:
    """What the client got that the cell does not expect."""
    out: list[str] = []
    err = seen.error
    sdk_status_error = (
        anthropic.APIStatusError if cell.surface == "anthropic" else openai.APIStatusError
    )
    if cell.client == "answer":
        if err is not None or seen.status != 200:
            out.append(f"expected an answer, got {seen.status} {type(err).__name__}: {err}")
        if cell.stream:
            out += _stream_end_problems(cell, seen)
        return out
    if cell.client == "SDK JSON error":
        if seen.status != 200 or not isinstance(err, json.JSONDecodeError):
            out.append(f"expected the SDK's JSON error, got {seen.status} {err!r}")
        return out + _stream_end_problems(cell, seen)
    if cell.client.startswith("stream error "):
        error_type = cell.client.removeprefix("stream error ")
        if seen.status != 200 or not seen.content_type.startswith("text/event-stream"):
            out.append(f"expected a 200 stream, got {seen.status} {seen.content_type}")
        if cell.surface == "anthropic":
            if not (isinstance(err, anthropic.APIStatusError) and b"event: error\n" in seen.body):
                out.append(f"expected the SDK to raise an `event: error`, got {err!r}")
        elif not isinstance(err, openai.APIError) or isinstance(err, openai.APIStatusError):
            out.append(f"expected the SDK to raise an error chunk, got {err!r}")
        out += _stream_end_problems(cell, seen)
    else:
        status, error_type = cell.client.split()
        if seen.status != int(status) or not isinstance(err, sdk_status_error):
            out.append(f"expected HTTP {status}, got {seen.status} {err!r}")
        if not seen.content_type.startswith("application/json"):
            out.append(f"an error body of content-type {seen.content_type!r}")
    if seen.error_type != error_type:
        out.append(f"error type {seen.error_type!r}, expected {error_type!r}")
    if f"'{cell.wire}'" not in seen.message:
        out.append(f"the message does not name the account {cell.wire!r}: {seen.message!r}")
    if cell.says not in seen.message:
        out.append(f"the message does not say {cell.says!r}: {seen.message!r}")
    return out


def _stream_end_problems(cell: Cell, seen: Observed) -> list[str]:
    """A stream the client got must end the way its wire ends one."""
    if not cell.stream or seen.status != 200:
        return []
    if cell.surface == "openai" and not seen.body.endswith(b"data: [DONE]\n\n"):
        return [f"the OpenAI stream does not end with [DONE]: {seen.body[-120:]!r}"]
    return []


def _row_problems(
    cell: Cell, rows: list[dict[str, Any]], access: dict[str, Any] | None
) -> list[str]:
    if len(rows) != 1:
        return [f"{len(rows)} usage rows for the call"]
    row = rows[0]
    status, error_type, tokens = cell.row.split()
    inp, outp = (int(n) for n in tokens.split("/"))
    got = (row["status"], row["error_type"] or "-", row["input_tokens"], row["output_tokens"])
    out = []
    if got != (int(status), error_type, inp, outp):
        out.append(f"usage row {got}, expected {(int(status), error_type, inp, outp)}")
    if row["status"] == 499:
        out.append("a provider fault recorded as a client disconnect (499)")
    if row["provider"] != cell.wire:
        out.append(f"usage row names provider {row['provider']!r}")
    counts = (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    )
    if any(row[c] < 0 for c in counts):
        out.append(f"negative tokens in the row: {row}")
    if access is None:
        out.append("no access log line for the call")
    elif any(access[c] != row[c] for c in counts):
        billed = {c: access[c] for c in counts}
        out.append(f"the access log bills {billed}, the row {[row[c] for c in counts]}")
    return out


def _log_problems(log: str) -> list[str]:
    bad = [
        line[:400]
        for line in log.splitlines()
        if '"msg":"internal error"' in line or '"exc":' in line or "Traceback" in line
    ]
    return [f"the gateway logged a bug: {line}" for line in bad]


def _access_line(env: FaultEnv, request_id: str) -> dict[str, Any] | None:
    """The call's access log line (written as the call ends, the row may come first)."""
    deadline = time.monotonic() + 5
    while True:
        for line in env.gw.log().splitlines():
            if request_id in line and '"logger":"llmrelay.access"' in line:
                entry: dict[str, Any] = json.loads(line)
                return entry
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)
