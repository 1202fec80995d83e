"""A fake OpenAI-compatible upstream (Chat Completions) for llmrelay's tests.

Same machinery and test API as :mod:`tests.fakes.anthropic_upstream` (it subclasses
``FakeAnthropic`` and reuses its ``Reply`` and ``*_reply`` helpers)::

    with FakeOpenAI() as fake:
        fake.enqueue(fixture_reply("text_stream.sse"))
        ...point the gateway (or an SDK) at fake.url + "/v1"...
        assert fake.requests[0].json()["model"] == "..."

Chat Completions are served on ``POST <any prefix>/chat/completions`` (``/v1/...`` for
OpenAI, ``/openai/deployments/{deployment}/chat/completions?api-version=...`` for Azure);
path and query are recorded. Wire shapes follow the official SDK (openai/openai-python):

* ``chat.completion``: ``types/chat/chat_completion.py``, ``chat_completion_message.py``,
  ``chat_completion_message_function_tool_call.py``, ``types/completion_usage.py``.
* ``chat.completion.chunk`` stream: ``data: {...}`` lines only (no ``event:``), ``data: [DONE]``
  last; role in the first delta; tool-call deltas keyed by ``index``; the usage chunk with
  ``choices: []`` only with ``stream_options.include_usage`` (then ``"usage": null`` on every
  other chunk) (``types/chat/chat_completion_chunk.py``, ``_streaming.py``,
  ``lib/streaming/chat/_completions.py``, ``lib/streaming/_deltas.py``, live captures in
  ``.inline-snapshot/external/*.bin``).
* Errors: ``{"error": {"message", "type", "param", "code"}}`` (``_client.py``
  ``_make_status_error``, ``_exceptions.py`` ``APIError``).
* Models: ``{"object": "list", "data": [...]}`` (``types/model.py``, ``pagination.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from .anthropic_upstream import (
    FakeAnthropic,
    RecordedRequest,
    Reply,
    _last_user_text,
    count_tokens_for,
    hang_reply,
    json_reply,
    slow_reply,
    sse_reply,
)

__all__ = [
    "CREATED",
    "DEFAULT_MODEL",
    "WIRE_DIR",
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "chunks_reply",
    "chunks_sse",
    "count_tokens_for",
    "error_body",
    "error_reply",
    "fixture_reply",
    "hang_reply",
    "json_reply",
    "openai_api_key",
    "slow_reply",
    "sse_reply",
]

WIRE_DIR = Path(__file__).resolve().parent.parent / "wire" / "openai"
DEFAULT_MODEL = "gpt-4o-mini"
CREATED = 1767225600  # the fake's fixed ``created`` timestamp (2026-01-01T00:00:00Z)
SYSTEM_FINGERPRINT = "fp_fake0000"
# status -> (error.type, error.code) as api.openai.com sends them
_STATUS_TO_ERROR: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_RESPONSE_HEADERS = {
    "openai-organization": "org-fake",
    "openai-processing-ms": "42",
    "openai-version": "2020-10-01",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-limit-tokens": "30000000",
    "x-ratelimit-remaining-tokens": "29999000",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "2ms",
}
_MODELS = (
    ("gpt-4o-mini", 1721172741, "system"),
    ("gpt-4o", 1715367049, "system"),
    ("o3-mini", 1737146383, "system"),
)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def openai_api_key(headers: Mapping[str, str]) -> str | None:
    """The caller's key: Azure's ``api-key`` header, else the token of ``authorization: Bearer``.

    ``headers`` must have lower-cased names (as ``RecordedRequest.headers`` has).
    """
    if "api-key" in headers:
        return headers["api-key"]
    auth = headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def error_body(
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """An OpenAI error envelope; ``type``/``code`` default to what OpenAI sends for ``status``."""
    default_type, default_code = _STATUS_TO_ERROR.get(
        status, ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    )
    return {
        "error": {
            "message": message,
            "type": type or default_type,
            "param": param,
            "code": code if code is not None else default_code,
        }
    }


def error_reply(
    status: int,
    message: str = "fake error",
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """``json_reply(error_body(...), status)``."""
    body = error_body(status, message, type=type, param=param, code=code)
    return json_reply(body, status, headers)


def chunks_sse(chunks: Iterable[Any], *, done: bool = True) -> str:
    """Render chunk objects as data-only SSE text (``data: {...}`` + blank line each).

    ``done`` appends the final ``data: [DONE]``. A ``str`` chunk is sent verbatim as the data.
    """
    lines = [f"data: {c if isinstance(c, str) else _dumps(c)}\n\n" for c in chunks]
    return "".join(lines) + ("data: [DONE]\n\n" if done else "")


def chunks_reply(
    chunks: Iterable[Any],
    *,
    done: bool = True,
    delay_s: float = 0.0,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    hang_after: bool = False,
) -> Reply:
    """An OpenAI-style SSE reply built from chunk objects (see ``chunks_sse``)."""
    text = chunks_sse(chunks, done=done)
    return sse_reply(text, delay_s=delay_s, status=status, headers=headers, hang_after=hang_after)


def fixture_reply(name: str, **kw: Any) -> Reply:
    """Load ``tests/wire/openai/<name>``: ``.sse`` -> sse_reply, ``.json`` -> json_reply.

    ``error_NNN.json`` is served with status NNN. ``kw`` goes to the underlying helper.
    """
    text = (WIRE_DIR / name).read_text(encoding="utf-8")
    if name.endswith(".sse"):
        return sse_reply(text, **kw)
    stem = name.removesuffix(".json")
    if stem.startswith("error_") and stem[6:].isdigit():
        kw.setdefault("status", int(stem[6:]))
    return json_reply(json.loads(text), **kw)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class FakeOpenAI(FakeAnthropic):
    """A fake ``api.openai.com`` / Azure OpenAI (see the module docstring). ``url`` has no ``/v1``.

    Inherited: ``start``/``stop``, ``requests``, ``expected_api_key``, ``default_stream_delay_s``,
    ``active_streams``, ``max_concurrent_streams``, ``disconnects``, ``wait_for_disconnect``,
    ``requests_to``.
    """

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def enqueue(self, *replies: Reply) -> None:
        """Replies for ``POST <prefix>/chat/completions`` (any query), consumed FIFO."""
        super().enqueue(*replies)

    def chat_requests(self) -> list[RecordedRequest]:
        """The recorded ``POST .../chat/completions`` requests, oldest first."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- server side ------------------------------------------------------------------------
    def _request_id(self) -> str:
        return f"req_{next(self._ids):032x}"

    def _error(self, status: int, message: str, **kw: str | None) -> Reply:
        return json_reply(error_body(status, message, **kw), status)

    def _route(self, request: web.Request, headers: dict[str, str], body: bytes) -> Reply:
        method, path = request.method, request.path
        if method == "HEAD" and path == "/":
            return Reply(headers={"content-type": "text/plain"}, body=b"")
        if self.expected_api_key is not None:
            key = openai_api_key(headers)
            if not key:
                err = error_body(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                )
                err["error"]["code"] = None  # as OpenAI sends it
                return json_reply(err, 401)
            if key != self.expected_api_key:
                masked = f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}"
                return self._error(
                    401,
                    f"Incorrect API key provided: {masked}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                )
        if method == "POST" and path.endswith("/chat/completions"):
            if self._messages_q:
                return self._messages_q.popleft()
            return self._default_reply(path, body)
        if method == "GET" and path.endswith("/models"):
            return json_reply(self._models_page())
        return self._error(404, f"Invalid URL ({method} {path})")

    def _models_page(self) -> dict[str, Any]:
        data = [{"id": i, "object": "model", "created": c, "owned_by": o} for i, c, o in _MODELS]
        return {"object": "list", "data": data}

    def _default_reply(self, path: str, raw: bytes) -> Reply:
        """Deterministic echo: content is "echo: " + the last user message's text."""
        try:
            req = json.loads(raw)
        except ValueError:
            return self._error(
                400,
                "We could not parse the JSON body of your request. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.",
            )
        if not isinstance(req, dict):
            return self._error(400, "Invalid type for body: expected an object.")
        parts = path.split("/")
        deployment = parts[parts.index("deployments") + 1] if "deployments" in parts[:-1] else None
        model = req.get("model") or deployment
        if not model:
            return self._error(400, "you must provide a model parameter")
        if not isinstance(req.get("messages"), list):
            return self._error(
                400,
                "Missing required parameter: 'messages'.",
                param="messages",
                code="missing_required_parameter",
            )
        if req.get("stream_options") is not None and not req.get("stream"):
            return self._error(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
                code="invalid_value",
            )
        text = "echo: " + _last_user_text(req)
        usage = _usage(count_tokens_for(raw), len(text) // 4 + 1)
        head = {
            "id": f"chatcmpl-fake{next(self._ids):020d}",
            "object": "chat.completion" if not req.get("stream") else "chat.completion.chunk",
            "created": CREATED,
            "model": model,
        }
        if not req.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text,
                "refusal": None,
                "annotations": [],
            }
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            return json_reply(
                {
                    **head,
                    "choices": [choice],
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                }
            )
        opts = req.get("stream_options")
        opts = opts if isinstance(opts, dict) else {}
        include_usage = bool(opts.get("include_usage"))
        head = {**head, "service_tier": "default", "system_fingerprint": SYSTEM_FINGERPRINT}
        step = max(1, -(-len(text) // 3))  # three-ish deltas
        deltas: list[tuple[dict[str, Any], str | None]] = [
            ({"role": "assistant", "content": "", "refusal": None}, None),
            *[({"content": text[i : i + step]}, None) for i in range(0, len(text), step)],
            ({}, "stop"),
        ]
        chunks: list[dict[str, Any]] = []
        for delta, finish in deltas:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            chunks.append({**head, "choices": [choice]})
        if include_usage:
            chunks = [{**c, "usage": None} for c in chunks]
            chunks.append({**head, "choices": [], "usage": usage})
        if opts.get("include_obfuscation", True):
            chunks = [{**c, "obfuscation": "fake"[: 1 + n % 4]} for n, c in enumerate(chunks)]
        return chunks_reply(chunks, delay_s=self.default_stream_delay_s)

    def _response_headers(self, reply: Reply) -> dict[str, str]:
        return {"x-request-id": self._request_id(), **_RESPONSE_HEADERS, **reply.headers}
