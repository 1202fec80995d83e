"""Which surface answers a request that two surfaces share or that no surface serves.

``GET /v1/models`` and ``GET /v1/models/{id}`` are both APIs' paths: Anthropic's SDK always
sends ``anthropic-version`` (``anthropic/_client.py`` ``default_headers``), OpenAI's never
does (it sends only ``Authorization: Bearer``), so that header decides, as it does for the
model list. A path no route serves is answered in the envelope of the client that sent it:
:func:`surface_for` reads the path's prefix, the header and the OpenAI SDK's resource names
(``openai/resources/*``: ``POST /v1/embeddings`` from ``client.embeddings.create`` is an
OpenAI client's call). A path that is served with another method is a 405 with ``Allow``.

OpenAI's own answer to an unserved path is a 404 ``invalid_request_error`` with code
``unknown_url`` ("Unknown request URL: POST /v1/x. Please check the URL for typos ...", as
api.openai.com answers it); the OpenAI SDK raises ``NotFoundError`` for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ..core.text import clip
from ..errors import GatewayError, UnknownURLError
from ..pipeline.call import SurfaceName
from ..pipeline.run import new_request_id
from .anthropic import error_response
from .openai import openai_gateway_error

__all__ = [
    "OPENAI_RESOURCES",
    "allowed_methods",
    "path_error",
    "speaks_anthropic",
    "surface_for",
    "unserved",
]

#: The first path segment after ``/v1/`` of every resource the OpenAI Python SDK calls
#: (openai-python 2.x, ``src/openai/resources``). Anthropic's own (``messages``,
#: ``complete``, ``files`` with ``anthropic-version``) are told apart by the header.
OPENAI_RESOURCES = frozenset(
    {
        "assistants",
        "audio",
        "batches",
        "chat",
        "chatkit",
        "completions",
        "containers",
        "conversations",
        "embeddings",
        "evals",
        "files",
        "fine_tuning",
        "images",
        "models",
        "moderations",
        "realtime",
        "responses",
        "threads",
        "uploads",
        "vector_stores",
        "videos",
    }
)


def speaks_anthropic(headers: Mapping[str, str]) -> bool:
    """Whether a request on a shared path is an Anthropic client's (``anthropic-version``)."""
    return "anthropic-version" in headers


def surface_for(path: str, headers: Mapping[str, str]) -> SurfaceName:
    """The surface whose envelope answers a request on ``path``: OpenAI's under
    ``/openai/`` and ``/v1/chat/``; Anthropic's under ``/anthropic/`` and for any request
    with ``anthropic-version``; OpenAI's for a ``/v1/<resource>`` of
    :data:`OPENAI_RESOURCES`; Anthropic's otherwise."""
    if path.startswith(("/openai/", "/v1/chat/")):
        return "openai"
    if path.startswith("/anthropic/") or speaks_anthropic(headers):
        return "anthropic"
    if path.startswith("/v1/") and path[4:].split("/", 1)[0] in OPENAI_RESOURCES:
        return "openai"
    return "anthropic"


def path_error(request: web.Request, err: GatewayError) -> web.Response:
    """``err`` in the envelope :func:`surface_for` picks, with a new request id."""
    rid = new_request_id()
    if surface_for(request.path, request.headers) == "openai":
        return openai_gateway_error(err, rid)
    return error_response(err, rid)


async def allowed_methods(request: web.Request) -> list[str]:
    """The methods routes serve ``request``'s path with (sorted; empty when none does).
    A GET route serves HEAD too. Only the 404 path calls this: it walks every route."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    allowed.discard("*")
    return sorted(allowed)


async def unserved(request: web.Request) -> web.Response:
    """The answer to a request no route took: 405 with ``Allow`` when the path is served
    with other methods, else 404 (``unknown_url`` in OpenAI's envelope). The path is
    echoed clipped to :data:`~llmrelay.core.text.MAX_ECHO_CHARS` characters."""
    shown = f"{clip(request.method, 16)} {clip(request.path)}"
    allowed = await allowed_methods(request)
    if allowed:
        err = GatewayError(
            f"Method not allowed: {shown} (allowed: {', '.join(allowed)})",
            status=405,
            headers={"Allow": ", ".join(allowed)},
        )
        return path_error(request, err)
    return path_error(request, UnknownURLError(f"Unknown request URL: {shown} (no route for it)"))
