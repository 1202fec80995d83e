"""Anthropic Messages <-> Claude on Bedrock's InvokeModel wire. Pure functions.

Follows the Anthropic SDK's Bedrock client (``anthropic/lib/bedrock/_client.py``): the body
loses ``model`` and ``stream``, gains ``anthropic_version: "bedrock-2023-05-31"``, and the
``anthropic-beta`` header values move into ``anthropic_beta`` (a list); the model id goes
into the path, URL-quoted with ``:`` kept. Errors follow botocore's service model for
``bedrock-runtime`` (``x-amzn-ErrorType`` header, ``{"message": ...}`` body).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import orjson

from ...core import wirejson
from ...errors import anthropic_error_body

__all__ = [
    "ANTHROPIC_VERSION",
    "count_tokens_body",
    "error_from_bedrock",
    "invoke_body",
    "model_path",
]

ANTHROPIC_VERSION = "bedrock-2023-05-31"

#: Bedrock exception name -> (status the client sees, Anthropic error type).
_ERRORS: dict[str, tuple[int, str]] = {
    "ValidationException": (400, "invalid_request_error"),
    "AccessDeniedException": (403, "permission_error"),
    "UnrecognizedClientException": (403, "permission_error"),
    "InvalidSignatureException": (403, "permission_error"),
    "ExpiredTokenException": (403, "permission_error"),
    "ResourceNotFoundException": (404, "not_found_error"),
    "ThrottlingException": (429, "rate_limit_error"),
    "ServiceQuotaExceededException": (429, "rate_limit_error"),
    "ModelNotReadyException": (529, "overloaded_error"),
    "ServiceUnavailableException": (503, "api_error"),
    "ModelTimeoutException": (504, "timeout_error"),
    "InternalServerException": (500, "api_error"),
    "ModelErrorException": (500, "api_error"),
    "ModelStreamErrorException": (500, "api_error"),
}


def model_path(model_id: str) -> str:
    """The model id as a path segment (ARNs keep ``:`` and quote ``/``, as the SDK does)."""
    return quote(model_id, safe=":")


def invoke_body(body: dict[str, Any], betas: list[str]) -> dict[str, Any]:
    """The InvokeModel body for an Anthropic Messages request body."""
    out = {k: v for k, v in body.items() if k not in ("model", "stream")}
    out["anthropic_version"] = ANTHROPIC_VERSION  # the platform's value, whatever a client sent
    if betas:
        out["anthropic_beta"] = betas
    return out


def count_tokens_body(body: dict[str, Any], betas: list[str]) -> bytes:
    """The CountTokens body: the InvokeModel body, base64-encoded, under ``input.invokeModel``
    (``bedrock-runtime`` service model, ``CountTokensInput``)."""
    invoke = invoke_body(body, betas)
    invoke.setdefault("max_tokens", 1)  # InvokeModel requires it; it does not change the count
    encoded = base64.b64encode(wirejson.dumps(invoke)).decode()
    return orjson.dumps({"input": {"invokeModel": {"body": encoded}}})


def error_from_bedrock(
    status: int, error_type: str | None, body: bytes, request_id: str | None
) -> tuple[int, bytes]:
    """A Bedrock HTTP error -> (status, Anthropic error envelope)."""
    name = (error_type or "").split(":", 1)[0]
    message = ""
    try:
        data = orjson.loads(body)
        if isinstance(data, dict):
            message = str(data.get("message") or data.get("Message") or "")
    except orjson.JSONDecodeError:
        message = body.decode("utf-8", "replace")[:500]
    mapped = _ERRORS.get(name)
    if mapped is None:
        mapped = (status, "api_error" if status >= 500 else "invalid_request_error")
    text = f"{name}: {message}" if name else message or f"Bedrock answered {status}"
    return mapped[0], anthropic_error_body(mapped[1], text, request_id)


def exception_event(name: str, message: str) -> dict[str, Any]:
    """An event-stream exception frame as an Anthropic ``error`` event."""
    error_type = _ERRORS.get(name, (500, "api_error"))[1]
    return {"type": "error", "error": {"type": error_type, "message": f"{name}: {message}"}}


def exception_status(name: str) -> int:
    return _ERRORS.get(name, (500, "api_error"))[0]
