"""Builds the aiohttp application and wires the parts together. No request logic lives here."""

from __future__ import annotations

import logging
import time

import aiohttp
from aiohttp import web

from .config import Settings
from .errors import NotFoundError
from .obs.usage import UsageRecorder
from .policy.auth import KeyRing
from .providers.base import Provider
from .providers.registry import build_provider
from .routing.router import Router
from .routing.table import RouteTable
from .stores.sqlite_usage import SQLiteUsageStore
from .stores.usage import UsageRecord
from .surfaces.anthropic import AnthropicSurface, error_response, utc_now_rfc3339
from .surfaces.common import new_request_id
from .surfaces.openai import OpenAISurface, openai_error_response
from .tokens import TokenCounter

__all__ = ["GATEWAY", "Gateway", "build_app"]

log = logging.getLogger("llmrelay")


class Gateway:
    """Everything a request needs, built once per process from one :class:`Settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = KeyRing((k.name, k.key) for k in settings.auth.keys)
        self.routes = RouteTable({}, {})
        self.router = Router(self.routes, {}, settings.routing)
        self.created_unix = int(time.time())
        self.created_at = utc_now_rfc3339()
        self.recorder: UsageRecorder | None = None
        self.tokens = TokenCounter()
        self._session: aiohttp.ClientSession | None = None
        self._providers: dict[str, Provider] = {}
        self._store: SQLiteUsageStore | None = None

    async def start(self) -> None:
        """Open the upstream connection pool, the providers and the usage writer."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            skip_auto_headers=("User-Agent",),
        )
        self._providers = {
            account: build_provider(account, cfg, self._session)
            for account, cfg in self.settings.providers.items()
        }
        for account, provider in self._providers.items():
            try:
                await provider.start()
            except Exception as err:
                log.error(
                    "provider failed to start",
                    extra={"provider": account, "error": f"{type(err).__name__}: {err}"},
                )
        self.routes = RouteTable(
            self._providers, {a: c.models for a, c in self.settings.providers.items()}
        )
        self.router = Router(self.routes, self.settings.models, self.settings.routing)
        self.tokens.start(r.provider_model for r in self.routes if r.provider.wire == "openai")
        usage = self.settings.usage
        if usage.enabled:
            self._store = SQLiteUsageStore(self.settings.usage_path())
            self.recorder = UsageRecorder(
                self._store,
                queue_size=usage.queue_size,
                batch_size=usage.batch_size,
                flush_interval_s=usage.flush_interval_s,
            )
            self.recorder.start()

    def record_usage(self, record: UsageRecord) -> None:
        if self.recorder is not None:
            self.recorder.record(record)

    async def stop(self) -> None:
        """Flush usage, close providers and connections."""
        if self.recorder is not None:
            await self.recorder.aclose()
            if self.recorder.dropped:
                log.warning("usage rows lost", extra={"dropped": self.recorder.dropped})
        if self._store is not None:
            self._store.close()
        await self.tokens.aclose()
        for provider in self._providers.values():
            await provider.aclose()
        if self._session is not None:
            await self._session.close()


GATEWAY = web.AppKey("gateway", Gateway)


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok", headers={"request-id": new_request_id()})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"request-id": new_request_id()})


async def _not_found(request: web.Request) -> web.Response:
    err = NotFoundError(f"no route for {request.method} {request.path}")
    if request.path.startswith(("/openai/", "/v1/chat/")):
        return openai_error_response(err.status, err.error_type, err.message, new_request_id())
    return error_response(err, new_request_id())


def build_app(settings: Settings) -> web.Application:
    """The gateway as an aiohttp app; its startup opens pools, its cleanup flushes usage."""
    gateway = Gateway(settings)
    # aiohttp refuses larger bodies itself; the surface turns that into a 413 in API shape.
    max_body = int(settings.server.max_request_body_mb * 1024 * 1024)
    app = web.Application(client_max_size=max_body, handler_args={"max_field_size": 65536})
    app[GATEWAY] = gateway

    async def on_startup(_: web.Application) -> None:
        await gateway.start()

    async def on_cleanup(_: web.Application) -> None:
        await gateway.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    anthropic = AnthropicSurface(gateway)
    openai = OpenAISurface(gateway)
    anthropic.add_routes(app)
    openai.add_routes(app)

    async def list_models(request: web.Request) -> web.StreamResponse:
        # Anthropic's SDK and Claude Code always send anthropic-version; others get OpenAI's shape.
        if "anthropic-version" in request.headers:
            return await anthropic.list_models(request)
        return await openai.list_models(request)

    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/health", _health)
    app.router.add_route("HEAD", "/", _ok)
    app.router.add_get("/api/hello", _ok)  # aiohttp answers HEAD for GET routes too
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app
