"""What a client surface gives the pipeline: its envelope for errors and, per call, an
:class:`Attempter` that tries one target in the provider's wire.

A surface never runs the call's steps itself; ``run.py`` does, the same for every surface.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from ..errors import GatewayError
from ..providers.base import Endpoint
from ..routing.executor import Failure, Success
from ..routing.table import Route
from .call import Call, SurfaceName

__all__ = ["Answer", "AttemptResult", "Attempter", "Surface"]


class Answer(Protocol):
    """An attempt's answer, checked and ready; nothing of it has reached the client yet."""

    @property
    def upstream_request_id(self) -> str | None:
        """The provider's request id, when it sent one."""
        ...

    async def send(self, call: Call, headers: dict[str, str]) -> web.StreamResponse:
        """Send it with ``headers`` added; sets the usage row's status. Never raises for a
        provider failure: once the headers are out, errors end the stream as events."""
        ...


AttemptResult = Success[Answer] | Failure


class Attempter(Protocol):
    """How a surface tries one target for one call, and renders a failure."""

    async def attempt(self, route: Route, gate: bool) -> AttemptResult:
        """One attempt. With ``gate``, a stream's first event is read before answering, and
        the client's body is copied first (each attempt starts from the client's body).

        Raises:
            GatewayError: the provider could not be reached or answered too late, or the
                request cannot be expressed in the target's wire.
        """
        ...

    def error_response(self, failure: Failure, headers: dict[str, str]) -> web.Response:
        """The client's response for a failed call (a provider error body is relayed)."""
        ...


class Surface(Protocol):
    """A client API shape (Anthropic Messages, OpenAI Chat Completions)."""

    name: SurfaceName

    def error_response(
        self, err: GatewayError, request_id: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        """``err`` in this surface's JSON envelope, with its status and headers."""
        ...

    def unknown_model(self, model: str) -> str:
        """The 404 message for a model the gateway does not route (``model`` already
        clipped for echoing)."""
        ...

    def attempter(self, call: Call, endpoint: Endpoint, body: dict[str, Any]) -> Attempter:
        """The attempter for one call whose body is ``body`` (the client's JSON object)."""
        ...
