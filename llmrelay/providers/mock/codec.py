"""The mock provider's answers: deterministic Anthropic Messages, built from the request.

Pure functions, no I/O. The shapes follow ``anthropic/types/message.py`` and the stream
event types in ``anthropic/types/raw_message_stream_event.py``.

Behaviour:
- Text: ``"mock echo: <last user text>"``: the text of the last ``role: "user"`` turn, without
  ``<system-reminder>`` blocks (Claude Code appends those, and ``role: "system"`` turns).
- Tools: a ``tool_use`` block when ``tool_choice`` is ``any`` or ``tool``, or when that text
  names a tool as a whole word (``auto``); its input fills the schema's required properties.
- A last user turn holding ``tool_result`` blocks gets a text answer quoting the result.
- ``thinking`` enabled or adaptive: a thinking block with a signature comes first.
- ``stop_sequences`` and ``max_tokens`` cut the text as the real API does.
- Tokens are estimated as one per four characters (at least one).
- Lone UTF-16 surrogates in what is echoed (legal in JSON, not in UTF-8) come back as U+FFFD.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import orjson

from ...core import wirejson

__all__ = ["RequestError", "count_tokens", "message_events", "reply_message"]

_WORD = re.compile(r"\S+\s*|\s+")


class RequestError(ValueError):
    """The request is invalid in the way the real API would answer with a 400."""


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def count_tokens(body: dict[str, Any]) -> int:
    """Input tokens of a request: system, messages and tools, one per four characters of JSON."""
    parts = [body.get("system"), body.get("messages"), body.get("tools")]
    return _tokens(wirejson.dumps([p for p in parts if p]).decode())


def _validate(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: field required (a non-empty list)")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise RequestError("max_tokens: field required (a positive integer)")


def _result_text(content: Any) -> str:
    """The text inside the ``tool_result`` blocks of a user turn."""
    out: list[str] = []
    for b in content if isinstance(content, list) else []:
        if isinstance(b, dict) and b.get("type") == "tool_result":
            inner = b.get("content")
            out.append(inner if isinstance(inner, str) else _user_text(inner))
    return " ".join(out)


def _schema_value(schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(schema, dict) and "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    return {
        "string": "mock",
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": {},
    }.get(kind if isinstance(kind, str) else "string", "mock")


def _tool_input(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("input_schema")
    schema = schema if isinstance(schema, dict) else {}
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = schema.get("required")
    names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
    return {name: _schema_value(props.get(name)) for name in names}


def _user_text(content: Any) -> str:
    """What the user typed: text blocks, minus ``<system-reminder>`` blocks clients add."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = [
        str(b.get("text", ""))
        for b in content
        if isinstance(b, dict)
        and b.get("type") == "text"
        and not str(b.get("text", "")).lstrip().startswith("<system-reminder>")
    ]
    return " ".join(p for p in parts if p)


def _pick_tool(body: dict[str, Any], last_text: str) -> dict[str, Any] | None:
    declared = body.get("tools")
    tools = [
        t
        for t in (declared if isinstance(declared, list) else [])
        if isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"]
    ]
    choice = body.get("tool_choice") or {}
    kind = choice.get("type", "auto") if isinstance(choice, dict) else "auto"
    if not tools or kind == "none":
        return None
    if kind == "tool":
        return next((t for t in tools if t["name"] == choice.get("name")), None)
    if kind == "any":
        return tools[0]
    words = set(re.findall(r"[\w.-]+", last_text))
    return next((t for t in tools if t["name"] in words), None)


def _stable_json(value: Any) -> bytes:
    """Sorted-key JSON for ids; exact for integers beyond 64 bits too."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, sort_keys=True).encode()


def _signature(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def reply_message(body: dict[str, Any]) -> dict[str, Any]:
    """The full ``Message`` the mock answers ``body`` with.

    Raises:
        RequestError: ``messages`` or ``max_tokens`` missing or invalid.
    """
    _validate(body)
    messages = body["messages"]
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    last_content = users[-1].get("content") if users else None
    last_text = _user_text(last_content)
    has_result = isinstance(last_content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last_content
    )
    content: list[dict[str, Any]] = []
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        thought = f"The user wrote {len(last_text)} characters."
        content.append({"type": "thinking", "thinking": thought, "signature": _signature(thought)})

    tool = None if has_result else _pick_tool(body, last_text)
    stop_reason, stop_sequence = "end_turn", None
    if tool is not None:
        content.append({"type": "text", "text": f"Calling {tool['name']}."})
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_mock_" + hashlib.sha256(_stable_json(messages)).hexdigest()[:20],
                "name": tool["name"],
                "input": _tool_input(tool),
            }
        )
        stop_reason = "tool_use"
    else:
        if has_result:
            text = "mock got tool result: " + _result_text(last_content)
        else:
            text = "mock echo: " + last_text
        sequences = body.get("stop_sequences")
        for seq in sequences if isinstance(sequences, list) else []:
            if isinstance(seq, str) and seq and seq in text:
                text = text[: text.index(seq)]
                stop_reason, stop_sequence = "stop_sequence", seq
                break
        words = _WORD.findall(text)
        if len(words) > body["max_tokens"]:
            text = "".join(words[: body["max_tokens"]])
            stop_reason, stop_sequence = "max_tokens", None
        content.append({"type": "text", "text": text})

    # What is echoed comes from the request, which may hold lone surrogates ("\ud800" is
    # legal JSON); the answer is written as UTF-8, so they become U+FFFD.
    content = wirejson.without_surrogates(content)
    output = sum(_tokens(orjson.dumps(b).decode()) for b in content)
    # The same request answers with the same id whether it was streamed or not.
    key = {k: v for k, v in body.items() if k != "stream"}
    digest = hashlib.sha256(_stable_json(key)).hexdigest()
    return {
        "id": "msg_mock_" + digest[:24],
        "type": "message",
        "role": "assistant",
        "model": wirejson.replace_surrogates(str(body.get("model"))),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence and wirejson.replace_surrogates(stop_sequence),
        "usage": {
            "input_tokens": count_tokens(body),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output,
        },
    }


def _fragments(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    kind = block["type"]
    if kind == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": w} for w in _WORD.findall(block["text"])]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [
            {"type": "thinking_delta", "thinking": w} for w in _WORD.findall(block["thinking"])
        ]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        raw = orjson.dumps(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": f} for f in _fragments(raw, 8)]
    events: list[dict[str, Any]] = [
        {"type": "content_block_start", "index": index, "content_block": start}
    ]
    if index == 0:
        events.append({"type": "ping"})
    events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
    events.append({"type": "content_block_stop", "index": index})
    return events


def message_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream events that accumulate to ``message``, in the order the real API sends them."""
    usage = message["usage"]
    start = dict(
        message,
        content=[],
        stop_reason=None,
        stop_sequence=None,
        usage=dict(usage, output_tokens=1),
    )
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(message["content"]):
        events += _block_events(i, block)
    events.append(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": message["stop_reason"],
                "stop_sequence": message["stop_sequence"],
            },
            "usage": usage,
        }
    )
    events.append({"type": "message_stop"})
    return events
