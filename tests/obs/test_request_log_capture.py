"""Body capture for the request log, without a gateway: who captures, what is kept while a
call runs, and what the usage writer renders from it (assembled streams, redaction, the
size cap, ``errors`` mode); the writer renders bodies before a write and drops them on the
way to the spill file; the pruner deletes old bodies and leaves the bill."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.codecs import anthropic as anthropic_codec
from llmrelay.config import ConfigError, load_settings
from llmrelay.config.observability import RequestLogConfig
from llmrelay.core.events import Event, MessageDelta, StreamError
from llmrelay.core.sse import SSEDecoder
from llmrelay.obs.capture import (
    DEFAULT_REDACTIONS,
    REDACTED,
    CallBodies,
    CapturePolicy,
    Redactor,
)
from llmrelay.obs.retention import BodyPruner
from llmrelay.obs.spill import SpillFile
from llmrelay.obs.usage import UsageRecorder
from llmrelay.routing.executor import AttemptRecord
from llmrelay.stores.usage import RequestBodies, UsageRecord
from tests.obs.conftest import Backend
from tests.obs.support import good, until

WIRE = Path(__file__).parent.parent / "wire"
SECRET = "sk-ant-api03-xxxx"


def policy(**kw: Any) -> CapturePolicy:
    return CapturePolicy(RequestLogConfig(**{"bodies": "all", **kw}))


def capture(surface: str = "anthropic", **kw: Any) -> tuple[UsageRecord, CallBodies]:
    row = good(1, surface=surface)
    bodies = policy(**kw).capture(row, surface, "alice", None)
    assert bodies is not None and row.bodies is bodies
    return row, bodies


def rendered(row: UsageRecord, bodies: CallBodies) -> RequestBodies:
    out = bodies.render(row)
    assert out is not None
    return out


def response_json(row: UsageRecord, bodies: CallBodies) -> Any:
    out = rendered(row, bodies)
    assert out.response is not None
    return orjson.loads(out.response)


def test_the_key_wins_over_its_team_and_the_team_over_the_default() -> None:
    p = CapturePolicy(
        RequestLogConfig(
            bodies="errors",
            bodies_by_key={"alice": "all", "bob": "none"},
            bodies_by_team={"red": "none", "blue": "all"},
        )
    )
    assert p.mode("alice", "red") == "all"
    assert p.mode("bob", "blue") == "none"
    assert p.mode("carol", "red") == "none"
    assert p.mode("carol", "blue") == "all"
    assert p.mode("carol", None) == "errors"
    assert p.capture(good(1), "anthropic", "bob", None) is None
    assert not CapturePolicy.applies(RequestLogConfig())
    assert CapturePolicy.applies(RequestLogConfig(bodies_by_team={"red": "errors"}))


@pytest.mark.parametrize(
    "secret",
    [
        SECRET,
        "sk-proj-" + "A1b2" * 10,
        "sk-llmrelay-" + "Zz9_" * 10,
        "AKIAIOSFODNN7EXAMPLE",
        "AIza" + "B" * 35,
        "ya29.a0AfH6SMBx-token",
    ],
)
def test_shipped_patterns_redact_api_key_shapes(secret: str) -> None:
    text = f'{{"content": "my key is {secret}, thanks"}}'
    assert Redactor()(text) == '{"content": "my key is [REDACTED], thanks"}'


def test_bearer_tokens_and_configured_patterns_are_redacted() -> None:
    redact = Redactor([r"\b\d{3}-\d{2}-\d{4}\b", r"(?i)password=\S+"])
    assert redact("Authorization: Bearer abc.def-123_456") == "Authorization: [REDACTED]"
    assert redact("ssn 123-45-6789 PASSWORD=hunter2 ok") == "ssn [REDACTED] [REDACTED] ok"
    assert redact("nothing secret in sk- or AKIA here") == "nothing secret in sk- or AKIA here"


_PIECES = ["sk-", "sk-ant-", "AKIA", "ASIA", "AIza", "ya29.", "Bearer ", "bEaReR\t", "BEARER"]


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(
        st.sampled_from(_PIECES)
        | st.text(alphabet="abcdefghijkZ0123456789_-. \u0130\u212a\u017f", max_size=40),
        max_size=12,
    )
)
def test_the_anchor_prefilter_redacts_exactly_what_the_full_scan_does(parts: list[str]) -> None:
    """Skipping the shipped patterns when no anchor is in the text changes nothing."""
    text = "".join(parts)
    full = re.compile("|".join(f"(?:{p})" for p in DEFAULT_REDACTIONS))
    assert Redactor()(text) == full.sub(REDACTED, text)


def test_request_and_whole_response_are_stored_redacted() -> None:
    row, bodies = capture()
    request = {"model": "m", "messages": [{"role": "user", "content": f"key {SECRET}"}]}
    bodies.request(orjson.dumps(request))
    bodies.whole(
        b'{"type":"message","content":[{"type":"text","text":"' + SECRET.encode() + b'"}]}'
    )
    out = rendered(row, bodies)
    assert orjson.loads(out.request or "")["messages"][0]["content"] == "key [REDACTED]"
    assert orjson.loads(out.response or "")["content"][0]["text"] == "[REDACTED]"
    assert not out.request_truncated and not out.response_truncated
    assert SECRET not in (out.request or "") + (out.response or "")


def test_bodies_past_the_cap_are_cut_and_flagged_and_a_secret_across_the_cut_is_redacted() -> None:
    row, bodies = capture(max_body_kb=1)
    # The secret starts 10 bytes before the 1 KiB cut.
    raw = b'{"content": "' + b"a" * (1024 - 13 - 10) + SECRET.encode() + b'"}' + b" " * 5000
    bodies.request(raw)
    bodies.whole(b"\xe2\x82\xac" * 1000)  # 3000 bytes of euro signs
    out = rendered(row, bodies)
    assert out.request_truncated and out.response_truncated
    assert out.request is not None and len(out.request.encode()) <= 1024
    # Redacted before the cut: the secret went whole, the cut fell after its replacement.
    assert "xxxx" not in out.request and out.request.endswith("a[REDACTED]")
    assert out.response == "€" * 341  # whole characters only


def test_errors_mode_keeps_bodies_only_of_calls_that_failed() -> None:
    row, bodies = capture(bodies="errors")
    bodies.request(b'{"model": "m"}')
    bodies.whole(b"{}")
    assert bodies.render(row) is None  # 200, no error
    row.status = 529
    assert rendered(row, bodies).request == '{"model": "m"}'
    row.status, row.error_type = 200, "overloaded_error"  # a stream that failed midway
    assert bodies.render(row) is not None


def feed_file(bodies: CallBodies, path: Path, size: int = 37) -> None:
    """The file's bytes as a stream sends them, in chunks cut anywhere."""
    data = path.read_bytes()
    for i in range(0, len(data), size):
        bodies.chunk(data[i : i + size])


def test_an_anthropic_stream_is_stored_as_its_message() -> None:
    row, bodies = capture("anthropic")
    feed_file(bodies, WIRE / "anthropic" / "tool_use_stream.sse")
    msg = response_json(row, bodies)
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["content"][0] == {"type": "text", "text": "Let me check the weather."}
    assert msg["content"][1]["type"] == "tool_use"
    assert msg["content"][1]["input"] == {"location": "San Francisco, CA", "unit": "celsius"}
    assert msg["stop_reason"] == "tool_use" and msg["usage"]["output_tokens"] > 0


def test_an_anthropic_stream_with_thinking_keeps_the_thinking_and_signature() -> None:
    row, bodies = capture("anthropic")
    feed_file(bodies, WIRE / "anthropic" / "thinking_stream.sse")
    msg = response_json(row, bodies)
    thinking, text = msg["content"]
    assert thinking["thinking"] == "The user asks for 27 * 453. 27 * 453 = 12231."
    assert thinking["signature"]
    assert text["text"] == "27 * 453 = 12,231"


def test_a_stream_that_failed_midway_is_stored_as_the_message_so_far_and_the_error() -> None:
    row, bodies = capture("anthropic")
    feed_file(bodies, WIRE / "anthropic" / "error_midstream.sse")
    msg = response_json(row, bodies)
    assert msg["content"][0]["text"] == "Partial"
    assert msg["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_an_openai_stream_is_stored_as_a_chat_completion() -> None:
    row, bodies = capture("openai")
    feed_file(bodies, WIRE / "openai" / "text_stream.sse")
    done = response_json(row, bodies)
    assert done["object"] == "chat.completion"
    assert done["id"] == "chatcmpl-CkT3sT1vY5pZ2aBcD4eF7gH8iJ9kM"
    (choice,) = done["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("Hello, world! How can I")
    assert choice["finish_reason"] == "stop"


def test_openai_tool_calls_are_joined_by_index_and_usage_kept() -> None:
    row, bodies = capture("openai")
    feed_file(bodies, WIRE / "openai" / "tool_calls_stream.sse", size=101)
    done = response_json(row, bodies)
    calls = done["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert [orjson.loads(c["function"]["arguments"]) for c in calls] == [
        {"location": "Paris, France", "unit": "celsius"},
        {"timezone": "Europe/Paris"},
    ]
    assert calls[0]["id"] == "call_Wx1yZ2aB3cD4eF5gH6iJ7kL8"
    assert done["choices"][0]["finish_reason"] == "tool_calls"
    assert done["usage"]["prompt_tokens"] == 310


def test_openai_reasoning_text_is_joined() -> None:
    row, bodies = capture("openai")
    feed_file(bodies, WIRE / "openai" / "reasoning_stream.sse")
    message = response_json(row, bodies)["choices"][0]["message"]
    assert message["reasoning_content"].startswith("The user asks for 27 * 453.")


def events_of(path: Path) -> list[Event]:
    out: list[Event] = []
    for ev in SSEDecoder().feed(path.read_bytes()):
        event = anthropic_codec.decode_event(orjson.loads(ev.data))
        if event is not None:
            out.append(event)
    return out


@pytest.mark.parametrize("surface", ["anthropic", "openai"])
def test_a_translated_stream_is_stored_in_the_clients_wire(surface: str) -> None:
    row, bodies = capture(surface)
    row.model = "the-clients-name"
    for event in events_of(WIRE / "anthropic" / "text_stream.sse"):
        bodies.event(event)
    out = response_json(row, bodies)
    if surface == "anthropic":
        assert out["type"] == "message"
        assert out["content"] == [{"type": "text", "text": "Hello, world! How can I help today?"}]
    else:
        assert out["object"] == "chat.completion" and out["model"] == "the-clients-name"
        assert out["choices"][0]["message"]["content"] == "Hello, world! How can I help today?"


@pytest.mark.parametrize("surface", ["anthropic", "openai"])
def test_a_translated_stream_the_client_left_is_stored_unfinished(surface: str) -> None:
    row, bodies = capture(surface)
    row.status, row.error_type = 499, "client_disconnected"
    events = events_of(WIRE / "anthropic" / "text_stream.sse")
    assert type(events[-1]) is MessageDelta
    for event in events[:-1]:  # the client left before the message_delta
        bodies.event(event)
    out = response_json(row, bodies)
    assert "error" not in out
    if surface == "anthropic":
        assert out["stop_reason"] is None
    else:
        (choice,) = out["choices"]
        assert choice["message"]["content"] == "Hello, world! How can I help today?"
        assert choice["finish_reason"] is None


def test_a_translated_openai_stream_that_failed_has_no_finish_reason_and_the_error() -> None:
    row, bodies = capture("openai")
    for event in events_of(WIRE / "anthropic" / "error_midstream.sse"):
        bodies.event(event)
    bodies.event(StreamError(error_type="overloaded_error", message="Overloaded"))
    out = response_json(row, bodies)
    (choice,) = out["choices"]
    assert choice["message"]["content"] == "Partial" and choice["finish_reason"] is None
    assert out["error"] == {"type": "overloaded_error", "message": "Overloaded"}


def test_a_long_stream_stops_being_kept_at_its_bound_and_is_flagged() -> None:
    row, bodies = capture("anthropic", max_body_kb=1)
    data = (WIRE / "anthropic" / "text_stream.sse").read_bytes()
    head, _, rest = data.partition(b"event: content_block_delta")
    delta = b"event: content_block_delta" + rest.partition(b"\n\n")[0] + b"\n\n"
    bodies.chunk(head)
    for _ in range(2000):  # far past 8 KiB of stream bytes
        bodies.chunk(delta)
    out = rendered(row, bodies)
    assert out.response_truncated
    msg = orjson.loads(out.response or "")  # what was kept is still assembled
    assert msg["content"][0]["text"].startswith("HelloHello")


def test_bytes_that_are_not_a_stream_are_kept_as_text() -> None:
    row, bodies = capture("anthropic")
    bodies.chunk(b"event: message_start\ndata: {not json\n\nplain words")
    out = rendered(row, bodies)
    assert out.response is not None and "plain words" in out.response


def test_lone_surrogates_and_nul_never_reach_the_store() -> None:
    row, bodies = capture()
    bodies.request(b'{"a": "\\ud800"}\x00')
    out = rendered(row, bodies)
    assert out.request == '{"a": "\\ud800"}\ufffd'


def test_the_writer_renders_bodies_before_storing_them(backend: Backend) -> None:
    row, bodies = capture()
    bodies.request(f'{{"k": "{SECRET}"}}'.encode())
    bodies.whole(b"{}")

    async def main() -> None:
        recorder = UsageRecorder(
            backend.store, queue_size=100, batch_size=10, flush_interval_s=0.01
        )
        recorder.start()
        recorder.record(row)
        recorder.record(good(2))
        await until(lambda: recorder.written == 2)
        await recorder.aclose()

    asyncio.run(main())
    found = backend.store.request(row.request_id)
    assert found is not None
    assert found[1] == RequestBodies('{"k": "[REDACTED]"}', "{}", False, False)


class _Down:
    """A store that is down."""

    def write(self, rows: object) -> None:
        raise OSError("down")


def test_rows_spilled_keep_their_bill_and_lose_their_bodies(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "usage.spill.jsonl", 1 << 20)
    rows = []
    for i in range(3):
        row, bodies = capture()
        row.request_id = f"req_{i}"
        bodies.request(b"{}")
        row.attempt_log = [AttemptRecord("mock/echo", 200, None, 0.1)]
        rows.append(row)

    async def main() -> UsageRecorder:
        recorder = UsageRecorder(
            _Down(),  # type: ignore[arg-type]
            queue_size=1,
            batch_size=1,
            flush_interval_s=0.01,
            spill=spill,
            shutdown_timeout_s=0.1,
        )
        recorder.start()
        for row in rows:
            recorder.record(row)
        await until(lambda: recorder.spilled >= 2)
        await recorder.aclose()
        return recorder

    recorder = asyncio.run(main())
    assert recorder.dropped == 0
    lines = [orjson.loads(line) for line in spill.path.read_bytes().splitlines()]
    assert {line["request_id"] for line in lines} == {"req_0", "req_1", "req_2"}
    assert all(line["bodies"] is None for line in lines)
    assert lines[0]["attempt_log"][0]["target"] == "mock/echo"


def test_the_pruner_deletes_old_bodies_and_keeps_every_usage_row(backend: Backend) -> None:
    now = 1_800_000_000.0
    rows = []
    for i, age_days in enumerate([40, 31, 29, 1]):
        row = good(i, ts=now - age_days * 86400)
        row.bodies = RequestBodies("{}", "{}")
        rows.append(row)
    backend.store.write(rows)
    pruner = BodyPruner(backend.store, 30, batch=1, clock=lambda: now, pause_s=0)
    assert asyncio.run(pruner.prune_once()) == 2
    assert asyncio.run(pruner.prune_once()) == 0
    assert len(backend.store.rows()) == 4
    kept = [backend.store.request(r.request_id) for r in rows]
    assert [k is not None and k[1] is not None for k in kept] == [False, False, True, True]


def test_config_errors_name_the_key_and_unknown_key_names_are_fine(tmp_path: Path) -> None:
    base = {
        "auth": {"keys": [{"name": "alice", "key": "sk-test-0123456789abcdef"}]},
        "providers": {"mock": {"type": "mock", "models": {"echo": "echo"}}},
    }
    path = tmp_path / "llmrelay.yaml"
    request_log = {
        "bodies": "some",
        "bodies_by_key": {"a-virtual-key": "all", "other": "everything"},
        "bodies_by_team": {"red": "errors"},
        "redact": [r"ok\d+", "([unclosed"],
        "max_body_kb": 0,
    }
    path.write_text(yaml.safe_dump({**base, "observability": {"request_log": request_log}}))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    prefix = "observability.request_log."
    for key in ("bodies:", "bodies_by_key.other:", "redact[1]:", "max_body_kb:"):
        assert prefix + key in message
    assert "a-virtual-key" not in message and "bodies_by_team" not in message
    assert "redact[0]" not in message
