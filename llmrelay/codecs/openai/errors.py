"""Error bodies between the two wire families.

OpenAI's envelope is ``{"error": {"message", "type", "param", "code"}}`` (``openai/_client.py``
``_make_status_error``, ``openai/_exceptions.py`` ``APIError``); OpenAI-compatible servers
vary (vLLM answers ``{"object": "error", "message", "type", "code": <status>}``, others a
bare string). Anthropic's error types follow :data:`llmrelay.errors.ANTHROPIC_ERROR_TYPES`.
"""

from __future__ import annotations

from typing import Any

from ...errors import anthropic_error_type, status_for_error_type

__all__ = [
    "error_from_openai",
    "error_to_openai",
    "error_type_from_openai",
    "status_for_error_type",
]

_CODES = {"authentication_error": "invalid_api_key", "rate_limit_error": "rate_limit_exceeded"}


def error_type_from_openai(status: int | None, error: object) -> str:
    """Anthropic ``error.type`` for an OpenAI error object and HTTP status (None mid-stream).

    The status decides when known, as Anthropic's table does; 503 ("engine overloaded")
    becomes ``overloaded_error`` so Anthropic clients back off and retry. Without a status
    the error's ``code`` (an int on vLLM), then words in ``type``/``code`` decide.
    """
    if status is None and isinstance(error, dict):
        code = error.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            status = code
    if status == 503:
        return "overloaded_error"
    if status is not None:
        return anthropic_error_type(status)
    words = f"{error.get('type')} {error.get('code')}" if isinstance(error, dict) else ""
    if "rate_limit" in words or "insufficient_quota" in words:
        return "rate_limit_error"
    if "overloaded" in words:
        return "overloaded_error"
    if "invalid_request" in words or "context_length" in words:
        return "invalid_request_error"
    return "api_error"


def _message(body: object) -> str | None:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        return body.strip() or None
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict):
        body = err
    elif isinstance(err, str) and err:
        return err
    for key in ("message", "detail"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])
    return None


def error_from_openai(status: int, body: object) -> tuple[str, str]:
    """(Anthropic error type, message) for an upstream error answer of any shape.

    ``body`` is the parsed JSON (or the raw text/bytes when it was not JSON). The message is
    the upstream's own; when there is none, it says the status.
    """
    err = body.get("error") if isinstance(body, dict) else None
    error_type = error_type_from_openai(status, err if isinstance(err, dict) else body)
    return error_type, _message(body) or f"upstream answered HTTP {status}"


def error_to_openai(
    status: int,
    error_type: str,
    message: str,
    openai_type: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The OpenAI error envelope for a gateway or upstream error.

    ``type`` follows api.openai.com by status (``invalid_request_error`` for 4xx,
    ``requests`` for 429, ``server_error`` for 5xx); ``code`` names the cause where OpenAI
    has a code for it, else the Anthropic error type, so nothing is lost. ``openai_type``
    sets both where OpenAI has a dedicated type (``insufficient_quota``); ``code`` sets only
    the code (``model_not_found``, ``unknown_url``).
    """
    if openai_type is not None:
        error = {"message": message, "type": openai_type, "param": None, "code": openai_type}
        return {"error": error}
    if status == 429:
        kind = "requests"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    return {
        "error": {
            "message": message,
            "type": kind,
            "param": None,
            "code": code or _CODES.get(error_type, error_type),
        }
    }
