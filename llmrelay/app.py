"""Builds the aiohttp application and wires the parts together. No request logic lives here."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from .config import GatewayKeyConfig, LimitsConfig, Settings, model_entry
from .console.session import LoginThrottle
from .drain import DRAIN, Drain
from .errors import GatewayError
from .obs.capture import CapturePolicy
from .obs.metrics import GatewayState, Metrics
from .obs.metrics_peers import PeerMetrics
from .obs.retention import BodyPruner
from .obs.target_stats import TargetStats
from .obs.usage import UsageRecorder
from .pipeline.body import BodyLimits
from .pipeline.call import Call, CallObserver, Capture
from .pipeline.observe import AccessLog, UsageObserver
from .pipeline.run import guarded, new_request_id
from .policy.admission import Policy
from .policy.auth import KeyRing, Principal
from .policy.keycache import KeyCache
from .policy.overrides import OverrideAllowance
from .policy.pricing import Price, PriceTable
from .providers.base import Provider
from .providers.registry import client_header_filter
from .reload import RELOADER, Reloader
from .routing.names import is_routable
from .routing.router import Router
from .routing.table import RouteTable
from .runtime import Runtime, RuntimeLease, build_runtime, empty_runtime, release_pools
from .stores.counters import CounterStore
from .stores.database import Stores, open_stores
from .stores.keys import BudgetSpec, Limits
from .stores.memory_counters import MemoryCounterStore
from .stores.usage import UsageRecord, UsageStore
from .surfaces.admin import AdminSurface
from .surfaces.anthropic import AnthropicSurface, utc_now_rfc3339
from .surfaces.console_mount import mount_console
from .surfaces.dispatch import path_error, speaks_anthropic, unserved
from .surfaces.metrics import MetricsSurface
from .surfaces.openai import OpenAISurface
from .surfaces.proxy import ProxySurface
from .tokens import TokenCounter
from .translation import WireLimits
from .workers import Worker

if TYPE_CHECKING:
    from .obs.tracing import Tracing
    from .routing.shared_health import SharedHealth
    from .stores.failover_counters import FailoverCounterStore

__all__ = ["GATEWAY", "Gateway", "build_app"]

log = logging.getLogger("llmrelay")


class Gateway:
    """Everything a request needs, built once per process; the configuration in force is its
    :attr:`runtime`, which a config reload replaces whole (:meth:`apply`)."""

    def __init__(self, settings: Settings, worker: Worker | None = None) -> None:
        #: This process's place among ``--workers N`` (None: the only process).
        self.worker = worker
        self.keys = KeyRing(config_keys(settings))
        self.created_unix = int(time.time())
        self.created_at = utc_now_rfc3339()
        self.recorder: UsageRecorder | None = None
        self.tokens = TokenCounter()
        self.key_cache: KeyCache | None = None
        #: The configuration in force (replaced whole by :meth:`apply`; calls pin it).
        self.runtime: Runtime = empty_runtime(
            settings, self, build_policy(settings, MemoryCounterStore(), None)
        )
        #: Runtimes replaced by a reload whose calls are still running.
        self._retired: set[Runtime] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.counters_failed_over = False
        #: Shutdown state: draining (``/ready`` 503), then open streams cut (drain.py).
        self.drain = Drain()
        #: True once :meth:`start` has loaded providers, stores and the key table.
        self.started = False
        #: Prometheus metrics (None when ``observability.metrics.enabled`` is false).
        self.metrics: Metrics | None = None
        observers: list[CallObserver] = [
            RuntimeLease(),
            UsageObserver(self.record_usage),
            AccessLog(),
        ]
        #: OpenTelemetry traces (None when tracing is off: then nothing of it is imported).
        self.tracing: Tracing | None = None
        if settings.observability.tracing.active(os.environ):
            from .obs.tracing import Tracing

            self.tracing = Tracing(settings, os.environ)
        #: Serves this worker's metrics to its siblings and gathers theirs (None: one process).
        self.peer_metrics: PeerMetrics | None = None
        if settings.observability.metrics.enabled:
            self.metrics = Metrics(settings.observability.metrics, self._state())
            observers.append(self.metrics)
            if worker is not None and worker.count > 1:
                self.peer_metrics = PeerMetrics(worker, self.metrics.registry.collect)
        if self.tracing is not None:
            observers.append(self.tracing)
        #: Recent outcomes per target for the console and /admin/models (with the admin API).
        self.target_stats: TargetStats | None = None
        if settings.admin is not None:
            self.target_stats = TargetStats()
            observers.append(self.target_stats)
        #: Who sees each call start and end: the usage row, the access log, metrics, traces.
        self.observers: tuple[CallObserver, ...] = tuple(observers)
        request_log = settings.observability.request_log
        #: Whose bodies the request log keeps (None: nobody's, nothing runs per call).
        self._capture = CapturePolicy(request_log) if CapturePolicy.applies(request_log) else None
        self._pruner: BodyPruner | None = None
        self._shared_health: SharedHealth | None = None
        self._stores: Stores | None = None
        self._counters: CounterStore | None = None
        self._failover: FailoverCounterStore | None = None

    @property
    def settings(self) -> Settings:
        """The settings in force (a call reads its pinned runtime's instead)."""
        return self.runtime.settings

    @property
    def router(self) -> Router:
        return self.runtime.router

    @property
    def routes(self) -> RouteTable:
        return self.runtime.router.table

    @property
    def policy(self) -> Policy:
        return self.runtime.policy

    def pin(self) -> Runtime:
        """The runtime in force, for one call to read to its end."""
        return self.runtime

    def _state(self) -> GatewayState:
        """What a metrics scrape reads from this gateway."""

        def usage_counts() -> dict[str, int]:
            recorder = self.recorder
            if recorder is None:
                return {}
            names = ("written", "dropped", "spilled", "dead_lettered", "queue_depth")
            return {n: int(getattr(recorder, n, 0)) for n in names}

        return GatewayState(
            usage_counts=usage_counts,
            counters_failed_over=lambda: self.counters_failed_over,
            cooldowns=lambda: self.router.health.cooldowns(),
            spans_dropped=lambda: 0 if self.tracing is None else self.tracing.spans_dropped(),
        )

    def capture_for(self, call: Call) -> Capture | None:
        """The call's body capture under ``observability.request_log`` (by key name, then
        team, then ``bodies``), attached to its usage row; None when it keeps none. A sampled
        call's trace reads the answer on its way (``Tracing.capture``)."""
        policy, caller = self._capture, call.caller
        capture = None
        if policy is not None and caller is not None and self.recorder is not None:
            capture = policy.capture(call.record, call.surface, caller.name, caller.team)
        if self.tracing is not None:
            return self.tracing.capture(call, capture)
        return capture

    def stores(self) -> Stores:
        """The database's stores (open after :meth:`start`)."""
        assert self._stores is not None, "gateway not started"
        return self._stores

    async def start(self) -> None:
        """Open the stores, the providers with their connection pools and the usage writer."""
        self._stores = await asyncio.to_thread(open_stores, self.settings.database_url())
        self.key_cache = KeyCache(
            self._stores.keys, self.keys, self.settings.governance.key_refresh_s
        )
        await self.key_cache.start()
        self._counters = await self._open_counters()
        policy = build_policy(self.settings, self._counters, self._stores.usage)
        self.runtime = await build_runtime(self.settings, self, policy, None)
        redis = self.settings.redis
        if redis is not None and self.settings.models:
            from .routing.shared_health import SharedHealth

            self._shared_health = SharedHealth(
                self.router.health,
                self.router.latency,
                redis.url,
                redis.prefix,
                window_s=self.settings.routing.latency.window_s,
            )
            self._shared_health.start()
        usage = self.settings.usage
        if usage.enabled:
            own = self.worker.file_for if self.worker is not None else None
            self.recorder = UsageRecorder.from_config(
                self._stores.usage, usage, self.settings.source, own
            )
            self.recorder.start()
        if self.peer_metrics is not None:
            await self.peer_metrics.start()
        retention = self.settings.observability.request_log.retention_days
        self._pruner = BodyPruner(self._stores.usage, retention)
        self._pruner.start()
        self.started = True

    async def not_ready(self) -> str | None:
        """Why ``GET /ready`` answers 503, or None when it answers 200: ``starting`` (before
        :meth:`start` loaded providers, stores and the key table), ``draining`` (a shutdown
        signal came), or, under ``governance.fail_closed`` only (calls would be refused), a
        store that does not answer: Redis (pinged here, within ``redis.timeout_s``, at least
        1 s to connect; while it is down, at most one probe a second) or the database
        (the key table's last refresh failed, every ``governance.key_refresh_s``)."""
        if not self.started:
            return "starting"
        if self.drain.draining:
            return "draining"
        if not self.settings.governance.fail_closed:
            return None
        failover = self._failover
        if failover is not None:
            await failover.ping()
            if not failover.using_primary:
                return "counter store (redis) unreachable"
        if self.key_cache is not None and self.key_cache.failing:
            return "database unreachable"
        return None

    async def _open_counters(self) -> CounterStore:
        """In-process counters, or Redis with in-process counters to fall back on."""
        redis = self.settings.redis
        if redis is None and self.worker is not None:
            from .stores.socket_counters import SocketCounterStore

            return SocketCounterStore(self.worker.counter_socket)
        if redis is None:
            return MemoryCounterStore()
        from .stores.failover_counters import FailoverCounterStore
        from .stores.redis_counters import RedisCounterStore

        def on_state(up: bool) -> None:
            # The counters moved between Redis and this process: budgets seed again.
            self.counters_failed_over = not up
            self.policy.budgets.forget_seeds()

        self._failover = FailoverCounterStore(
            RedisCounterStore(redis.url, prefix=redis.prefix, timeout_s=redis.timeout_s),
            MemoryCounterStore(),
            fail_closed=self.settings.governance.fail_closed,
            on_state=on_state,
            on_local=lambda local: self.policy.budgets.seed_local(local),
        )
        return self._failover

    async def apply(self, settings: Settings) -> Runtime:
        """Put ``settings`` in force: build its runtime (sharing the pools of unchanged
        accounts), then swap it in at once. Calls in flight finish on the runtime they
        pinned; its pools no longer used close when its last call has ended. Settings that
        only a restart changes must have been checked by the caller (``reload.py``).

        Raises:
            ssl.SSLError, OSError: a provider's ``ca_file`` cannot be used (nothing changed).
        """
        assert self._stores is not None and self._counters is not None, "gateway not started"
        policy = build_policy(settings, self._counters, self._stores.usage)
        new = await build_runtime(settings, self, policy, self.runtime)
        old, self.runtime = self.runtime, new
        if self._shared_health is not None:
            # Routing state learnt under other settings starts anew (runtime.py).
            self._shared_health.rebind(new.router.health, new.router.latency)
        self.keys.replace_config(config_keys(settings))
        self._retired.add(old)
        old.retire(self._drained)
        return new

    def _drained(self, runtime: Runtime) -> None:
        """A retired runtime's last call ended: close what only it used, in the background."""
        self._retired.discard(runtime)

        async def close() -> None:
            await runtime.policy.aclose()
            await runtime.policy.targets.aclose()
            await release_pools(runtime)

        task = asyncio.get_running_loop().create_task(close(), name="runtime-drained")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def provider(self, account: str) -> Provider | None:
        """The provider of ``account`` in the configuration in force (None: no such
        account); a call reads its pinned runtime's instead."""
        return self.runtime.provider(account)

    def record_usage(self, record: UsageRecord) -> None:
        if self.recorder is not None:
            self.recorder.record(record)

    async def stop(self) -> None:
        """Flush usage and traces, close providers and connections."""
        if self.peer_metrics is not None:
            await self.peer_metrics.aclose()
        if self._shared_health is not None:
            await self._shared_health.aclose()
        if self._pruner is not None:
            await self._pruner.aclose()
        if self.recorder is not None:
            await self.recorder.aclose()
            if self.recorder.dropped:
                log.warning("usage rows lost", extra={"dropped": self.recorder.dropped})
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for runtime in (*self._retired, self.runtime):
            await runtime.policy.aclose()
            await runtime.policy.targets.aclose()
        if self.key_cache is not None:
            await self.key_cache.aclose()
        if self._counters is not None:
            await self._counters.aclose()
        if self._stores is not None:
            self._stores.close()
        await self.tokens.aclose()
        for runtime in (*self._retired, self.runtime):
            for pool in runtime.pools.values():
                await pool.aclose()
        if self.tracing is not None:
            await self.tracing.aclose()


def config_keys(settings: Settings) -> list[tuple[str, Principal]]:
    """The config file's gateway keys: (secret, principal) pairs."""
    return [(k.key, config_principal(k)) for k in settings.auth.keys]


def config_principal(k: GatewayKeyConfig) -> Principal:
    """The principal of a key from the config file (``key_id`` ``cfg:<name>``)."""
    budget, o = k.budget, k.overrides
    return Principal(
        name=k.name,
        key_id=f"cfg:{k.name}",
        team=k.team,
        models=frozenset(k.models) if k.models is not None else None,
        limits=Limits(**k.limits.model_dump()),
        budget=BudgetSpec(budget.usd, budget.period, budget.mode) if budget else None,
        overrides=OverrideAllowance(
            o.max_attempts, frozenset(o.retry_statuses), o.max_timeout_ms, o.max_ttft_timeout_ms
        ),
        accounts=frozenset(k.allowed_accounts) if k.allowed_accounts is not None else None,
    )


def build_policy(settings: Settings, counters: CounterStore, usage: UsageStore | None) -> Policy:
    """The policy step from the config's teams, model limits and price overrides."""
    prices = PriceTable(
        {
            m: Price(
                p.input,
                p.output,
                p.input if p.cache_write is None else p.cache_write,
                p.input if p.cache_read is None else p.cache_read,
            )
            for m, p in settings.pricing.items()
        }
    )
    model_limits: dict[str, Limits] = {}
    for account, cfg in settings.providers.items():
        for public, entry in cfg.models.items():
            limits = model_entry(entry).limits
            if limits != LimitsConfig():
                model_limits[f"{account}/{public}"] = Limits(**limits.model_dump())
    policy = Policy(
        counters,
        usage,
        prices,
        team_limits={
            t: Limits(**c.limits.model_dump())
            for t, c in settings.teams.items()
            if c.limits != LimitsConfig()
        },
        team_budgets={
            t: BudgetSpec(c.budget.usd, c.budget.period, c.budget.mode)
            for t, c in settings.teams.items()
            if c.budget is not None
        },
        model_limits=model_limits,
        store_timeout_s=settings.governance.store_timeout_s,
        fail_closed=settings.governance.fail_closed,
    )
    return policy


class ConfigKeyNames(Collection[str]):
    """The names of the config file's keys in force (a live view: reloads change them)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def __contains__(self, name: object) -> bool:
        return any(k.name == name for k in self._gateway.settings.auth.keys)

    def __iter__(self) -> Iterator[str]:
        return iter([k.name for k in self._gateway.settings.auth.keys])

    def __len__(self) -> int:
        return len(self._gateway.settings.auth.keys)


GATEWAY = web.AppKey("gateway", Gateway)


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok", headers={"request-id": new_request_id()})


async def _health(request: web.Request) -> web.Response:
    """Liveness: 200 while the process serves HTTP at all, draining included."""
    return web.json_response({"status": "ok"}, headers={"request-id": new_request_id()})


async def _ready(request: web.Request) -> web.Response:
    """Readiness, for load balancers: 200 ``{"status": "ready"}``, or 503
    ``{"status": "unavailable", "reason": ...}`` (``Gateway.not_ready``)."""
    headers = {"request-id": new_request_id(), "cache-control": "no-store"}
    reason = await request.app[GATEWAY].not_ready()
    if reason is None:
        return web.json_response({"status": "ready"}, headers=headers)
    body = {"status": "unavailable", "reason": reason}
    return web.json_response(body, status=503, headers=headers)


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """The ``Expect`` header of any route: ``100-continue`` is answered as aiohttp does; any
    other expectation is a 417 in the path's envelope (aiohttp's own answer was plain text
    quoting the header, outside every envelope)."""
    if request.version != aiohttp.HttpVersion11:
        return None
    if request.headers.get("expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer's own bytes are still to come
        return None
    return path_error(request, GatewayError("Expect: only 100-continue is supported", status=417))


def build_app(settings: Settings, worker: Worker | None = None) -> web.Application:
    """The gateway as an aiohttp app; its startup opens pools, its cleanup flushes usage.
    ``worker``: this process is one of ``llmrelay serve --workers N`` (docs/workers.md)."""
    gateway = Gateway(settings, worker)
    # aiohttp refuses larger bodies itself; the surface turns that into a 413 in API shape.
    max_body = int(settings.server.max_request_body_mb * 1024 * 1024)
    app = web.Application(client_max_size=max_body, handler_args={"max_field_size": 65536})
    app[GATEWAY] = gateway
    app[DRAIN] = gateway.drain
    reloader = None
    if settings.source != "<memory>":
        reloader = Reloader(gateway, settings.source, worker=worker)
        app[RELOADER] = reloader

    async def on_startup(_: web.Application) -> None:
        await gateway.start()
        if reloader is not None:
            reloader.ready = True
            if settings.server.watch_config:
                reloader.watch(settings.server.watch_interval_s)
        # What start-up made (modules, config, tables) lives as long as the process: keep it
        # out of every later garbage collection, which shortens the pauses (p99). Each open
        # stream holds ~800 references a full collection walks (~100 ms of CPU under 1,000
        # streams), and Python's default thresholds (700, 10, 10) ran one every second or
        # so there; collecting the youngest generation after 50,000 net allocations lets
        # short-lived request objects die by reference count before they are promoted:
        # ~3 full collections per 30 s instead of ~23 (bench/metrics_scrape.py,
        # docs/benchmarks.md). Cycles are still collected; they wait longer.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 10)

    async def on_cleanup(_: web.Application) -> None:
        if reloader is not None:
            await reloader.aclose()
        await gateway.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    server = settings.server
    limits = BodyLimits(max_body, server.body_timeout_s, server.max_json_depth)
    wire = WireLimits(
        server.max_json_depth,
        int(server.max_sse_event_mb * 1024 * 1024),
        server.max_stream_preamble_kb * 1024,
    )
    headers = client_header_filter(settings.providers.values())
    anthropic = AnthropicSurface(gateway, limits, wire, headers, gateway.created_at)
    openai = OpenAISurface(gateway, limits, wire, headers, gateway.created_unix)
    anthropic.add_routes(app)
    openai.add_routes(app)
    ProxySurface(gateway, limits, headers).add_routes(app)
    # Wrong admin/metrics keys and console sign-ins share one per-address throttle.
    throttle = LoginThrottle(settings.console.login_failures_per_minute)
    if settings.admin is not None:
        admin = AdminSurface(
            gateway,
            settings.admin.key,
            store_timeout_s=settings.governance.admin_store_timeout_s,
            config_key_names=ConfigKeyNames(gateway),
            body=limits,
            reloader=reloader,
            throttle=throttle,
            routable=lambda name: is_routable(gateway.settings, name),
        )
        admin.add_routes(app)
        mount_console(app, gateway, settings, admin)
    else:
        mount_console(app, gateway, settings, None)
    if gateway.metrics is not None:
        key = settings.observability.metrics.key
        MetricsSurface(gateway.metrics, key, gateway.peer_metrics, throttle).add_routes(app)

    async def list_models(request: web.Request) -> web.StreamResponse:
        # Anthropic's SDK and Claude Code always send anthropic-version; others get OpenAI's shape.
        if speaks_anthropic(request.headers):
            return await anthropic.list_models(request)
        return await openai.list_models(request)

    async def get_model(request: web.Request) -> web.StreamResponse:
        if speaks_anthropic(request.headers):
            return await anthropic.get_model(request)
        return await openai.get_model(request)

    app.router.add_get("/v1/models", guarded(list_models, anthropic))
    app.router.add_get("/v1/models/{model_id:.+}", guarded(get_model, anthropic))
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    app.router.add_route("HEAD", "/", _ok)
    app.router.add_get("/api/hello", _ok)  # aiohttp answers HEAD for GET routes too
    app.router.add_route("*", "/{tail:.*}", unserved)
    for route in app.router.routes():
        # aiohttp 3.14 keeps a route's Expect handler here (web_urldispatcher.AbstractRoute);
        # its routes take one only as they are added, and the surfaces add their own.
        route._expect_handler = _expect
    return app
