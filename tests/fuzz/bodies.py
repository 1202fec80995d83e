"""Request bodies: SDK-shaped requests for each endpoint, mutated, then put on the wire.

A body is drawn as a JSON-like document (the shapes ``anthropic.messages.create``,
``messages.count_tokens`` and ``openai.chat.completions.create`` send), then mutated at
random places: a wrong type for the field, the field removed, an unknown field added, a
huge string, a lone surrogate or NUL in a string, nesting near and past
``server.max_json_depth``. It is serialised with or without ASCII escapes (a lone
surrogate unescaped is invalid UTF-8), and some bodies are replaced by raw shapes: empty,
non-object JSON, invalid JSON, invalid UTF-8, larger than ``server.max_request_body_mb``.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from .env import ALL_MODELS, MAX_BODY, MAX_DEPTH

__all__ = [
    "Body",
    "admin_spec",
    "anthropic_count",
    "anthropic_message",
    "bodies",
    "chance",
    "openai_chat",
]


def chance(k: int, n: int) -> st.SearchStrategy[bool]:
    """True ``k`` times in ``n``. Hypothesis favours the ends of an integer range (and
    shrinks toward its start), so ``integers(0, n) == 0`` is far likelier than 1 in n;
    ``sampled_from`` with the common answer first keeps the odds and shrinks to it."""
    return st.sampled_from([False] * (n - k) + [True] * k)


# Placeholders replaced in the serialised text: what json.dumps cannot write.
_DEEP = "\x00__fuzz_deep_{}__"
_BAD_UTF8 = "\x00__fuzz_bad_utf8__"


@dataclass(frozen=True)
class Body:
    """A body as bytes, with the model it names (when it is an object naming one)."""

    data: bytes
    model: object = None
    #: ``stream`` of the document (None when absent or not an object).
    stream: object = None
    kind: str = "json"


MODELS = st.one_of(
    st.sampled_from(ALL_MODELS),
    st.sampled_from(ALL_MODELS),
    st.sampled_from(ALL_MODELS),
    st.sampled_from(
        [
            "nope/model",
            "local/none",
            "smartx",
            "",
            " local/echo",
            "LOCAL/ECHO",
            "local/echo\x00",
            "\ud800",
            "local/\ud800echo",
            "ant/claude\u200b",
            "a" * 257,
            "m" * 8192,
            "local/" + "e" * 300,
            "ολα/μοντέλο",
        ]
    ),
)

SHORT_TEXT = st.one_of(
    st.sampled_from(["hi", "Hello", "get_weather in Paris", "", " ", "\u2028", "👋🏽"]),
    st.text(max_size=40),
)

WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1.5, 1e308, -0.0, 2**63, 2**64 + 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    SHORT_TEXT,
    st.sampled_from(["\ud800", "a\x00b", "\udfff\ud800", "\ufeff", "null", "{}", "[]"]),
    st.lists(st.integers(), max_size=3),
    st.builds(dict),  # a new one each time: a later mutation may add to it
    st.builds(list),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)

TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
    },
}


@st.composite
def _anthropic_content(draw: st.DrawFn) -> object:
    text = draw(SHORT_TEXT)
    kind = draw(st.sampled_from(["str", "blocks", "image", "tool_result"]))
    if kind == "str":
        return text
    if kind == "blocks":
        return [{"type": "text", "text": text}]
    if kind == "image":
        source = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
        return [{"type": "image", "source": source}, {"type": "text", "text": text}]
    return [{"type": "tool_result", "tool_use_id": "toolu_01", "content": text}]


@st.composite
def anthropic_message(draw: st.DrawFn, count: bool = False) -> dict[str, Any]:
    """``POST /v1/messages`` (or ``count_tokens``) as the Anthropic SDK sends it."""
    doc: dict[str, Any] = {"model": draw(MODELS)}
    if not count:
        doc["max_tokens"] = draw(
            st.sampled_from([64, 64, 64, 64, 64, 1, 1024, 2**63, 10**30])
            if draw(chance(4, 5))
            else st.sampled_from([-1, 0, 10**9, 1.5, "64", None, True])
        )
    content = draw(_anthropic_content())
    messages: list[Any] = [{"role": "user", "content": content}]
    if isinstance(content, list) and content[0].get("type") == "tool_result":
        use = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}
        messages = [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [use]},
        ]
        messages.append({"role": "user", "content": content})
    doc["messages"] = messages
    if draw(st.booleans()):
        doc["system"] = draw(
            st.one_of(
                SHORT_TEXT,
                st.builds(
                    lambda t: [{"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}],
                    SHORT_TEXT,
                ),
            )
        )
    if draw(st.booleans()):
        doc["tools"] = [TOOL]
        choice = draw(st.sampled_from(["auto", "any", "tool", "none", None]))
        if choice is not None:
            doc["tool_choice"] = {"type": choice} | (
                {"name": "get_weather"} if choice == "tool" else {}
            )
    if not count:
        stream = draw(st.sampled_from([None, True, False, True, None, "yes", 1, True, None]))
        if stream is not None:
            doc["stream"] = stream
        if draw(st.booleans()):
            doc["temperature"] = draw(st.sampled_from([0, 0.5, 1, 2]))
        if draw(st.booleans()):
            doc["stop_sequences"] = ["STOP"]
        if draw(st.booleans()):
            doc["metadata"] = {"user_id": "u-1"}
        if draw(st.booleans()):
            doc["thinking"] = draw(
                st.sampled_from([{"type": "enabled", "budget_tokens": 1024}, {"type": "disabled"}])
            )
    return doc


def anthropic_count() -> st.SearchStrategy[dict[str, Any]]:
    return anthropic_message(count=True)


@st.composite
def openai_chat(draw: st.DrawFn) -> dict[str, Any]:
    """``POST /v1/chat/completions`` as the OpenAI SDK sends it."""
    text = draw(SHORT_TEXT)
    user: Any = text
    if draw(st.booleans()):
        user = [{"type": "text", "text": text}]
        if draw(st.booleans()):
            user.append({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}})
    messages: list[Any] = [{"role": "user", "content": user}]
    if draw(st.booleans()):
        messages.insert(0, {"role": "system", "content": draw(SHORT_TEXT)})
    if draw(st.booleans()):
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"},
        }
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
    doc: dict[str, Any] = {"model": draw(MODELS), "messages": messages}
    tokens = draw(st.sampled_from([None, 64, None, 64, 64, -1, 0, 1.5, 10**9, "64"]))
    if tokens is not None:
        doc[draw(st.sampled_from(["max_tokens", "max_completion_tokens"]))] = tokens
    stream = draw(st.sampled_from([None, True, False, True, None, "yes"]))
    if stream is not None:
        doc["stream"] = stream
        if draw(st.booleans()):
            doc["stream_options"] = {"include_usage": draw(st.booleans())}
    if draw(st.booleans()):
        fn = {"name": "get_weather", "description": "Weather", "parameters": TOOL["input_schema"]}
        doc["tools"] = [{"type": "function", "function": fn}]
        doc["tool_choice"] = draw(
            st.sampled_from(
                [
                    "auto",
                    "none",
                    "required",
                    {"type": "function", "function": {"name": "get_weather"}},
                ]
            )
        )
    for name, values in (
        ("temperature", [0, 1, 2.5]),
        ("n", [1, 2]),
        ("response_format", [{"type": "json_object"}, {"type": "text"}]),
        ("user", ["u-1"]),
        ("seed", [7]),
    ):
        if draw(chance(1, 4)):
            doc[name] = draw(st.sampled_from(values))
    return doc


@st.composite
def admin_spec(draw: st.DrawFn) -> dict[str, Any]:
    """``POST /admin/keys`` (a virtual key spec)."""
    doc: dict[str, Any] = {"name": draw(st.sampled_from(["fuzz-a", "fuzz-b", "x" * 300, " "]))}
    if draw(st.booleans()):
        doc["models"] = draw(st.sampled_from([["local/echo"], "local/echo,oai/gpt", []]))
    if draw(st.booleans()):
        doc["rpm"] = draw(st.sampled_from([10, 0, -1, "5"]))
    if draw(st.booleans()):
        doc["budget_usd"] = draw(st.sampled_from([1, 0.5, -1, 1e308]))
    if draw(st.booleans()):
        doc["expires_in"] = draw(st.sampled_from(["30d", "1h", "x", "99999999999d"]))
    return doc


@st.composite
def admin_edit(draw: st.DrawFn) -> dict[str, Any]:
    """``PATCH /admin/keys/{id}`` (a key edit; null removes a field)."""
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["models"] = draw(st.sampled_from([["local/echo"], "local/echo,oai/gpt", [], None]))
    if draw(st.booleans()):
        doc["rpm"] = draw(st.sampled_from([10, 0, -1, "5", None]))
    if draw(st.booleans()):
        doc["limits"] = draw(st.sampled_from([{"tpm": 100}, {"tpm": None}, None, [1]]))
    if draw(st.booleans()):
        doc["budget_usd"] = draw(st.sampled_from([1, 0.5, -1, 1e308, None]))
    if draw(st.booleans()):
        doc["team"] = draw(st.sampled_from(["ml", "", None, "\x00"]))
    if draw(st.booleans()):
        doc["name"] = "renamed"
    return doc


# -- mutations --------------------------------------------------------------------------------


def _nodes(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _nodes(v, (*path, i))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


@st.composite
def _mutate(draw: st.DrawFn, doc: Any) -> Any:
    nodes = _nodes(doc)
    path = nodes[draw(st.integers(0, len(nodes) - 1))]
    node = _get(doc, path)
    op = draw(
        st.sampled_from(
            ["wrong", "wrong", "delete", "unknown", "huge", "surrogate", "nul", "deep", "bad_utf8"]
        )
    )
    if op == "delete" and path:
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
        return doc
    if op == "unknown" and isinstance(node, dict):
        key = draw(
            st.sampled_from(["x_unknown", "", "\ud800", "model\x00", "__proto__", "k" * 500])
        )
        node[key] = draw(WRONG)
        return doc
    if op == "huge":
        size = draw(st.sampled_from([1000, 70_000, MAX_BODY - 200, MAX_BODY + 10]))
        return _set(doc, path, "x" * size)
    if op in ("surrogate", "nul") and isinstance(node, str):
        mark = "\ud800" if op == "surrogate" else "\x00"
        at = draw(st.integers(0, len(node)))
        return _set(doc, path, node[:at] + mark + node[at:])
    if op == "deep":
        depth = draw(
            st.sampled_from([MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 1000, 60_000])
        )
        return _set(doc, path, _DEEP.format(depth))
    if op == "bad_utf8":
        return _set(doc, path, _BAD_UTF8)
    return _set(doc, path, draw(WRONG))


_DEEP_RE = re.compile(rb'"\\u0000__fuzz_deep_(\d+)__"')


def serialise(doc: Any, ascii_only: bool) -> bytes:
    """``doc`` as JSON bytes; placeholders become deep nesting and invalid UTF-8 (a
    placeholder a later mutation cut into stays a string)."""
    text = json.dumps(doc, ensure_ascii=ascii_only)
    data = text.encode("utf-8", "surrogatepass")
    data = _DEEP_RE.sub(lambda m: b"[" * int(m[1]) + b"]" * int(m[1]), data)
    return data.replace(b'"\\u0000__fuzz_bad_utf8__"', b'"\xff\xfe\xc3(\xed\xa0\x80"')


RAW = st.sampled_from(
    [
        b"",
        b"null",
        b"[]",
        b"1",
        b'"model"',
        b"true",
        b"{",
        b'{"model":',
        b"{'model': 'local/echo'}",
        b'{"model":"local/echo",}',
        b'{"model":NaN}',
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{}",
        b'{"model":"local/echo"} trailing',
        b'{"model":"m' + b"\xc3(" + b'"}',
        b"[" * 100_000,
        b'{"a":' * 40 + b"1" + b"}" * 40,
        b'{"model":"local/echo","max_tokens":64,"messages":[{"role":"user","content":"hi"}],'
        b'"model":"' + b"m" * 8192 + b'"}',
        b'{"model":' + b"1" * 40 + b"}",
        b" " * (MAX_BODY + 1),
    ]
)


@st.composite
def bodies(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Body:
    """A body built on ``base`` (mutated or not), or a raw shape."""
    if draw(chance(1, 20)):
        return Body(draw(RAW), kind="raw")
    doc = copy.deepcopy(draw(base))  # mutations must not reach shared parts (TOOL)
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]))):
        doc = draw(_mutate(doc))
    data = serialise(doc, ascii_only=draw(st.booleans()))
    if isinstance(doc, dict):
        return Body(data, doc.get("model"), doc.get("stream"))
    return Body(data, kind="mutated")
