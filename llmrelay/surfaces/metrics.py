"""``GET /metrics``: the Prometheus text exposition of :class:`~llmrelay.obs.metrics.Metrics`.

Open by default; with ``observability.metrics.key`` set, a scrape must send
``Authorization: Bearer <key>`` (401 otherwise, in Anthropic's envelope).
"""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..errors import AuthenticationError
from ..obs.metrics import Metrics
from ..pipeline.run import new_request_id
from .anthropic import error_response

__all__ = ["MetricsSurface"]


class MetricsSurface:
    def __init__(self, metrics: Metrics, key: str | None) -> None:
        self._metrics = metrics
        self._key = key.encode() if key is not None else None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.scrape)

    async def scrape(self, request: web.Request) -> web.StreamResponse:
        if self._key is not None:
            auth = request.headers.get("authorization", "")
            token = auth[7:].strip().encode() if auth.lower().startswith("bearer ") else b""
            if not hmac.compare_digest(token, self._key):
                err = AuthenticationError("send the metrics key as Authorization: Bearer")
                return error_response(err, new_request_id())
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"content-type": CONTENT_TYPE_LATEST})
