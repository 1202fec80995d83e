"""Upstream faults: what the fake Anthropic and OpenAI upstreams answer one request with.

A fault is queued on both fakes before a request and the queues are cleared after it, so
it meets whichever fake the request reaches (if any). Some faults echo the upstream key in
an error, which the gateway must mask before it reaches the client or the log.
"""

from __future__ import annotations

from typing import Any

from tests.fakes import anthropic_upstream as ant
from tests.fakes import openai_upstream as oai

from .env import ANT_UPSTREAM_KEY, OAI_UPSTREAM_KEY

__all__ = ["anthropic_reply", "openai_reply"]

_MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_fuzz",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    },
}
_BLOCK_START = {
    "type": "content_block_start",
    "index": 0,
    "content_block": {"type": "text", "text": ""},
}
_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}
_BAD_USAGE = {
    "input_tokens": "many",
    "output_tokens": -5,
    "cache_read_input_tokens": 1e308,
    "cache_creation_input_tokens": [1],
}


def _status_of(name: str) -> int:
    return int(name.split("_")[1])


def anthropic_reply(name: str, stream: bool) -> ant.Reply:
    """The fake Anthropic upstream's answer for fault ``name``."""
    if name == "status_401_echo_key":
        return ant.json_reply(ant.error_body(401, f"invalid x-api-key: {ANT_UPSTREAM_KEY}"), 401)
    if name.startswith("status_"):
        status = _status_of(name)
        return ant.json_reply(ant.error_body(status, "fuzz fault"), status)
    if name == "not_json_200":
        return ant.Reply(200, {"content-type": "application/json"}, b"<html>oops</html>")
    if name == "html_502":
        return ant.Reply(502, {"content-type": "text/html"}, b"<html>bad gateway</html>")
    if name == "bad_usage":
        if stream:
            start: dict[str, Any] = {**_MESSAGE_START}
            start["message"] = {**_MESSAGE_START["message"], "usage": _BAD_USAGE}  # type: ignore[dict-item]
            return ant.sse_reply(
                [
                    ("message_start", start),
                    ("content_block_start", _BLOCK_START),
                    ("content_block_delta", _DELTA),
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    (
                        "message_delta",
                        {
                            "type": "message_delta",
                            "delta": {"stop_reason": "end_turn"},
                            "usage": {"output_tokens": "x"},
                        },
                    ),
                    ("message_stop", {"type": "message_stop"}),
                ]
            )
        msg = {
            **_MESSAGE_START["message"],  # type: ignore[dict-item]
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "usage": _BAD_USAGE,
        }
        return ant.json_reply(msg)
    if name == "stream_cut":
        return ant.sse_reply(
            [
                ("message_start", _MESSAGE_START),
                ("content_block_start", _BLOCK_START),
                ("content_block_delta", _DELTA),
            ]
        )
    if name == "stream_error_echo_key":
        return ant.stream_error_reply(529, f"Overloaded (key {ANT_UPSTREAM_KEY})")
    assert name == "slow", name
    return ant.slow_reply(2.0, ant.json_reply({"type": "message", "content": []}))


def openai_reply(name: str, stream: bool) -> ant.Reply:
    """The fake OpenAI upstream's answer for fault ``name``."""
    if name == "status_401_echo_key":
        return oai.error_reply(401, f"Incorrect API key provided: {OAI_UPSTREAM_KEY}.")
    if name.startswith("status_"):
        return oai.error_reply(_status_of(name), "fuzz fault")
    if name == "not_json_200":
        return ant.Reply(200, {"content-type": "application/json"}, b"<html>oops</html>")
    if name == "html_502":
        return ant.Reply(502, {"content-type": "text/html"}, b"<html>bad gateway</html>")
    head = {"id": "chatcmpl-fuzz", "created": 1, "model": "gpt-4o-mini"}
    if name == "bad_usage":
        usage = {"prompt_tokens": "x", "completion_tokens": -1, "total_tokens": 1e308}
        if stream:
            delta = {
                "index": 0,
                "delta": {"role": "assistant", "content": "hi"},
                "finish_reason": None,
            }
            stop = {"index": 0, "delta": {}, "finish_reason": "stop"}
            return oai.chunks_reply(
                [
                    {**head, "object": "chat.completion.chunk", "choices": [delta]},
                    {**head, "object": "chat.completion.chunk", "choices": [stop]},
                    {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage},
                ]
            )
        message = {"role": "assistant", "content": "hi"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return ant.json_reply(
            {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        )
    if name == "stream_cut":
        delta = {"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}
        return oai.chunks_reply(
            [{**head, "object": "chat.completion.chunk", "choices": [delta]}], done=False
        )
    if name == "stream_error_echo_key":
        error = {
            "error": {"message": f"overloaded, key {OAI_UPSTREAM_KEY}", "type": "server_error"}
        }
        return oai.chunks_reply([error], done=False)
    assert name == "slow", name
    return ant.slow_reply(2.0, ant.json_reply({"object": "chat.completion", "choices": []}))
