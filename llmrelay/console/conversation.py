"""A captured request and response rendered as a conversation: system, turns, tool calls,
tool results, thinking; the raw JSON one click away (``<details>``).

Reads Anthropic Messages bodies (``system``, ``messages[].content`` blocks; a response's
``content``) and OpenAI Chat Completions bodies (``messages[]`` with ``tool_calls``; a
response's ``choices[].message``). Anything else, or text that is not JSON (a body cut at
``max_body_kb``), is shown as its raw text. Every value is escaped.
"""

from __future__ import annotations

from typing import Any

import orjson

from .html import esc

__all__ = ["conversation"]

#: Largest text of one block shown inline, in characters (the raw JSON has it all).
BLOCK_CHARS = 20_000


def _pre(text: object) -> str:
    s = text if isinstance(text, str) else orjson.dumps(text).decode()
    if len(s) > BLOCK_CHARS:
        s = s[:BLOCK_CHARS] + "\n… (cut; see the raw JSON)"
    return f"<pre>{esc(s)}</pre>"


def _turn(role: str, inner: str, kind: str = "") -> str:
    return (
        f'<div class="turn role-{esc(role)} {esc(kind)}"><div class="who">{esc(role)}'
        f"{' · ' + esc(kind) if kind else ''}</div>{inner}</div>"
    )


def _block(role: str, block: Any) -> str:
    if isinstance(block, str):
        return _turn(role, _pre(block))
    if not isinstance(block, dict):
        return _turn(role, _pre(block))
    kind = str(block.get("type", ""))
    if kind == "text":
        return _turn(role, _pre(block.get("text", "")))
    if kind == "thinking":
        return _turn(role, _pre(block.get("thinking", "")), "thinking")
    if kind == "redacted_thinking":
        return _turn(role, "<p><em>redacted thinking</em></p>", "thinking")
    if kind == "tool_use":
        head = f"<p>calls <code>{esc(block.get('name'))}</code></p>"
        return _turn(role, head + _pre(block.get("input")), "tool call")
    if kind == "tool_result":
        content = block.get("content")
        inner = "".join(
            _pre(c.get("text", c)) if isinstance(c, dict) else _pre(c)
            for c in (content if isinstance(content, list) else [content])
        )
        return _turn(role, inner, "tool result")
    return _turn(role, _pre(block), kind or "block")


def _content(role: str, content: Any) -> str:
    if isinstance(content, list):
        return "".join(_block(role, b) for b in content)
    return _block(role, content) if content is not None else ""


def _openai_message(msg: dict[str, Any]) -> str:
    role = str(msg.get("role", "?"))
    out = _content(role, msg.get("content"))
    for call in msg.get("tool_calls") or []:
        fn = call.get("function", {}) if isinstance(call, dict) else {}
        head = f"<p>calls <code>{esc(fn.get('name'))}</code></p>"
        out += _turn(role, head + _pre(fn.get("arguments", "")), "tool call")
    return out


def _request(body: Any) -> str:
    out = ""
    system = body.get("system")
    if system:
        out += _content("system", system)
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        if "tool_calls" in msg or msg.get("role") in ("tool", "system", "developer"):
            out += _openai_message(msg)
        else:
            out += _content(str(msg.get("role", "?")), msg.get("content"))
    return out


def _response(body: Any) -> str:
    if isinstance(body.get("content"), list):
        return _content("assistant", body["content"])
    out = ""
    for choice in body.get("choices") or []:
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            out += _openai_message(choice["message"])
    return out


def conversation(request: str | None, response: str | None) -> str:
    """HTML for a call's captured bodies (text as stored, either may be None)."""
    parts = []
    for label, text, render in (("Request", request, _request), ("Response", response, _response)):
        if text is None:
            parts.append(f"<h3>{label}</h3><p>not captured</p>")
            continue
        try:
            body = orjson.loads(text)
            rendered = render(body) if isinstance(body, dict) else ""
        except orjson.JSONDecodeError:
            rendered = ""
        if not rendered:
            rendered = _pre(text)
        raw = f"<details><summary>Raw JSON</summary><pre>{esc(text)}</pre></details>"
        parts.append(f'<h3>{label}</h3><div class="conversation">{rendered}</div>{raw}')
    return "".join(parts)
