"""The gateway's error tree, and its rendering per client surface.

Every error the gateway itself raises is a :class:`GatewayError` carrying an HTTP status,
a human message (never a key) and extra response headers. A surface renders it once, in
its own envelope. Anthropic's envelope and status table follow
https://platform.claude.com/docs/en/api/errors and ``anthropic/types/shared/*_error.py``::

    {"type": "error", "error": {"type": "<error type>", "message": "..."}, "request_id": "req_..."}

Hierarchy::

    GatewayError
      InvalidRequestError   400 invalid_request_error
      AuthenticationError   401 authentication_error
      PermissionDeniedError 403 permission_error
      NotFoundError         404 not_found_error
      RequestTimeoutError   408 timeout_error        (the client's body did not arrive in time)
      RequestTooLargeError  413 request_too_large
      RateLimitedError      429 rate_limit_error     (a gateway rate limit; retry-after set)
      BudgetExceededError   429 rate_limit_error     (a spent budget; x-should-retry: false;
                                                      OpenAI surface: insufficient_quota)
      ServiceUnavailable    503 api_error            (governance state unreachable, fail-closed)
      InternalError         500 api_error            (a bug: an unexpected exception, logged once)
      UpstreamUnreachable   502 api_error            (provider could not be reached)
      UpstreamProtocolError 502 api_error            (provider answered something its wire does
                                                      not allow: wrong-shaped JSON, a 200 that is
                                                      neither JSON nor SSE, an oversized event)
      UpstreamTimeout       504 timeout_error        (provider did not answer in time)
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

__all__ = [
    "ANTHROPIC_ERROR_TYPES",
    "AuthenticationError",
    "BrokenFramingError",
    "BudgetExceededError",
    "GatewayError",
    "InternalError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "ServiceUnavailable",
    "UnknownURLError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "anthropic_error_body",
    "anthropic_error_type",
    "status_for_error_type",
]

#: HTTP status -> Anthropic ``error.type``.
ANTHROPIC_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """Anthropic ``error.type`` for a status; other 4xx are invalid requests, 5xx api errors."""
    known = ANTHROPIC_ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if status < 500 else "api_error"


def status_for_error_type(error_type: str) -> int:
    """The HTTP status Anthropic pairs with an error type (500 when unknown)."""
    for status, name in ANTHROPIC_ERROR_TYPES.items():
        if name == error_type:
            return status
    return 500


class GatewayError(Exception):
    """An error the gateway answers itself, before or instead of a provider's answer.

    ``openai_type`` overrides the OpenAI envelope's ``type``/``code`` where OpenAI has a
    dedicated one (a spent budget is OpenAI's ``insufficient_quota``); ``openai_code`` sets
    only its ``code`` (an unknown model is ``model_not_found``, an unserved path
    ``unknown_url``, as api.openai.com answers them).
    """

    status: int = 500
    openai_type: str | None = None
    openai_code: str | None = None
    #: The request left its connection unusable (its body was not read to its end): the
    #: answer says ``connection: close`` and the connection is closed after it.
    closes_connection: bool = False

    def __init__(
        self, message: str, *, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def error_type(self) -> str:
        return anthropic_error_type(self.status)


class InvalidRequestError(GatewayError):
    status = 400


class AuthenticationError(GatewayError):
    status = 401


class PermissionDeniedError(GatewayError):
    status = 403


class NotFoundError(GatewayError):
    status = 404


class ModelNotFoundError(NotFoundError):
    """A model name the gateway does not route (OpenAI's code: ``model_not_found``)."""

    openai_code = "model_not_found"


class UnknownURLError(NotFoundError):
    """A path no surface serves (OpenAI's code: ``unknown_url``)."""

    openai_code = "unknown_url"


class BrokenFramingError(InvalidRequestError):
    """A request body whose framing or content-encoding does not decode."""

    closes_connection = True


class RequestTimeoutError(GatewayError):
    """A request body that did not arrive in time (RFC 9110 15.5.9: close the connection)."""

    status = 408
    closes_connection = True

    @property
    def error_type(self) -> str:
        return "timeout_error"


class RequestTooLargeError(GatewayError):
    status = 413


class RateLimitedError(GatewayError):
    """A gateway rate limit has no room; ``scope`` is whose limit: ``key``, ``team`` or
    ``model``."""

    status = 429
    scope: str = ""


class BudgetExceededError(GatewayError):
    """A budget is spent: retrying will not help until its period resets."""

    status = 429
    openai_type = "insufficient_quota"

    def __init__(self, message: str, scope: str = "") -> None:
        super().__init__(message, headers={"x-should-retry": "false"})
        #: Whose budget: ``key`` or ``team``.
        self.scope = scope


class ServiceUnavailable(GatewayError):
    status = 503


class InternalError(GatewayError):
    """An unexpected exception inside the gateway, answered as a 500 ``api_error``."""

    status = 500


class UpstreamUnreachable(GatewayError):
    status = 502


class UpstreamProtocolError(GatewayError):
    """A provider's answer breaks its own wire format; the message names the provider
    account and what was wrong. A fallback trigger like any 502."""

    status = 502


class UpstreamTimeout(GatewayError):
    status = 504


def anthropic_error_body(error_type: str, message: str, request_id: str | None) -> bytes:
    """The Anthropic error envelope as JSON bytes."""
    body: dict[str, object] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)
