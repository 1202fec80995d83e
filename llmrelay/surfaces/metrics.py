"""``GET /metrics``: the Prometheus text exposition of :class:`~llmrelay.obs.metrics.Metrics`.

Open by default; with ``observability.metrics.key`` set, a scrape must send
``Authorization: Bearer <key>`` (401 otherwise, in Anthropic's envelope; past the shared
per-address throttle of wrong keys, 429 with ``retry-after``).

A scrape is gathered and written on the event loop, gzipped when the scraper accepts it
(Prometheus does): ~3.5 ms of CPU for 370 series (``prometheus_client``'s text format
costs ~6 µs a series). Writing on a worker thread was tried: under load the thread waits
for the GIL in 5 ms slices and the scrape took twice as long at the median.
"""

from __future__ import annotations

import gzip
import hmac
from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import Metric

from ..console.session import LoginThrottle
from ..errors import AuthenticationError, RateLimitedError
from ..obs.metrics import Metrics
from ..obs.metrics_peers import PeerMetrics
from ..pipeline.run import new_request_id
from .anthropic import error_response

__all__ = ["MetricsSurface"]


class _Gathered:
    """Metric families already collected, in the shape ``generate_latest`` reads."""

    __slots__ = ("_families",)

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _render(families: list[Metric], compress: bool) -> bytes:
    text = generate_latest(_Gathered(families))
    return gzip.compress(text, compresslevel=1) if compress else text


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value (RFC 9110 12.5.3) allows gzip: listed, and not
    with ``q=0``."""
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.partition(";")
        if coding.strip() == "gzip":
            q = params.replace(" ", "")
            return not (q.startswith("q=0") and q.strip("q=0.") == "")
    return False


class MetricsSurface:
    """``GET /metrics``; ``peers`` (a worker of several): the answer covers every worker."""

    def __init__(
        self,
        metrics: Metrics,
        key: str | None,
        peers: PeerMetrics | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        """``throttle``: wrong metrics keys per client address (shared with the admin API's;
        past it, 429 with retry-after even for the right key)."""
        self._metrics = metrics
        self._throttle = throttle or LoginThrottle(5)
        self._key = key.encode() if key is not None else None
        self._peers = peers

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.scrape)

    async def scrape(self, request: web.Request) -> web.StreamResponse:
        if self._key is not None:
            address = request.remote or "unknown"
            wait = self._throttle.retry_after(address)
            if wait > 0:
                limited = RateLimitedError(
                    f"too many wrong metrics keys from your address; try again in {wait:.0f} s",
                    headers={"retry-after": str(max(1, round(wait)))},
                )
                return error_response(limited, new_request_id())
            auth = request.headers.get("authorization", "")
            token = auth[7:].strip().encode() if auth.lower().startswith("bearer ") else b""
            if not hmac.compare_digest(token, self._key):
                self._throttle.failed(address)
                err = AuthenticationError("send the metrics key as Authorization: Bearer")
                return error_response(err, new_request_id())
        families = list(self._metrics.registry.collect())
        if self._peers is not None:
            families = await self._peers.gather(families)
        compress = _accepts_gzip(request.headers.get("accept-encoding", ""))
        body = _render(families, compress)
        headers = {"content-type": CONTENT_TYPE_LATEST}
        if compress:
            headers["content-encoding"] = "gzip"
        return web.Response(body=body, headers=headers)
