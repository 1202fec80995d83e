"""The configuration in force: one immutable :class:`Runtime` per loaded config file,
swapped whole by a reload (``llmrelay/reload.py``).

A runtime holds everything a call reads that comes from the config file: the settings,
the routes and virtual models (``Router``), the policy (prices, team and model limits,
budgets) and the providers with their connection pools. A call pins the runtime in force
when it arrives (:meth:`Runtime.pin`) and reads only that one to its end, so a reload
never changes a call half way (a stream that started before a price change is priced at
the old price). The gateway key table (:class:`~llmrelay.policy.auth.KeyRing`), the token
counter and the observers are the process's, shared by every runtime.

Provider pools are counted: each runtime that uses an account's :class:`ProviderPool`
holds it; a runtime replaced by a reload lets go of its pools once its last call has
ended (:meth:`Runtime.call_ended`), and a pool no runtime holds is closed then. An account
whose settings did not change keeps its pool (warm connections, the provider's refreshed
credentials) across reloads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import aiohttp

from .config import EgressConfig, ProviderConfig, Settings
from .providers.base import Provider, WireBounds
from .providers.egress import egress_for, open_session
from .providers.registry import build_provider
from .routing.router import Router
from .routing.table import RouteTable

if TYPE_CHECKING:
    from .drain import Drain
    from .pipeline.call import Call, CallObserver, Capture
    from .policy.admission import Policy
    from .policy.auth import KeyRing
    from .tokens import TokenCounter

__all__ = [
    "Lease",
    "ProviderPool",
    "Runtime",
    "RuntimeHost",
    "RuntimeLease",
    "build_runtime",
    "empty_runtime",
    "release_pools",
]

log = logging.getLogger("llmrelay")


class RuntimeHost(Protocol):
    """The process-wide parts a runtime lends its calls (the gateway)."""

    keys: KeyRing
    tokens: TokenCounter
    drain: Drain

    @property
    def observers(self) -> Sequence[CallObserver]: ...

    def capture_for(self, call: Call) -> Capture | None: ...


class ProviderPool:
    """One provider account's client and connection pool, shared by the runtimes whose
    config has the account unchanged; closed when the last of them lets go."""

    def __init__(
        self,
        account: str,
        config: ProviderConfig,
        provider: Provider,
        session: aiohttp.ClientSession,
    ) -> None:
        self.account = account
        self.config = config
        self.provider = provider
        self.session = session
        #: Runtimes holding this pool.
        self.holders = 0
        self.closed = False

    async def aclose(self) -> None:
        """Close the provider (its credential refresher) and its connections; once."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.provider.aclose()
        finally:
            await self.session.close()


class Lease:
    """How many calls still use a runtime, and what to do once a retired one has none."""

    __slots__ = ("calls", "on_drained", "retired")

    def __init__(self) -> None:
        #: Calls that pinned the runtime and have not ended.
        self.calls = 0
        #: A newer runtime replaced this one: its pools are let go once ``calls`` is 0.
        self.retired = False
        #: Called once when the retired runtime's last call ended. Must not block.
        self.on_drained: Callable[[], None] | None = None

    def ended(self) -> None:
        self.calls -= 1
        if self.retired and self.calls == 0:
            self._drained()

    def retire(self, on_drained: Callable[[], None]) -> None:
        self.retired = True
        self.on_drained = on_drained
        if self.calls == 0:
            self._drained()

    def _drained(self) -> None:
        if self.on_drained is not None:
            done, self.on_drained = self.on_drained, None
            done()


@dataclass(frozen=True, eq=False)
class Runtime:
    """The configuration in force for the calls that pinned it: immutable; a reload builds
    a new runtime instead. Only its :class:`Lease` (the count of its calls) changes.

    It is what the pipeline calls its :class:`~llmrelay.pipeline.call.Parts`: a call
    reads ``settings``, ``router`` and ``policy`` from here, and the host's keys, token
    counter, observers and body capture through it.
    """

    settings: Settings
    router: Router
    policy: Policy
    pools: Mapping[str, ProviderPool]
    host: RuntimeHost
    lease: Lease = field(default_factory=Lease, repr=False)

    @property
    def keys(self) -> KeyRing:
        return self.host.keys

    @property
    def tokens(self) -> TokenCounter:
        return self.host.tokens

    @property
    def drain(self) -> Drain:
        return self.host.drain

    @property
    def observers(self) -> Sequence[CallObserver]:
        return self.host.observers

    def capture_for(self, call: Call) -> Capture | None:
        return self.host.capture_for(call)

    def pin(self) -> Runtime:
        """This runtime (a runtime is already a snapshot)."""
        return self

    def provider(self, account: str) -> Provider | None:
        """The started provider of ``account`` (None: no such account)."""
        pool = self.pools.get(account)
        return None if pool is None else pool.provider

    @property
    def retired(self) -> bool:
        return self.lease.retired

    def call_started(self) -> None:
        self.lease.calls += 1

    def call_ended(self) -> None:
        """One call of this runtime ended; a retired runtime's last one lets its pools go."""
        self.lease.ended()

    def retire(self, on_drained: Callable[[Runtime], None]) -> None:
        """A newer runtime is in force: ``on_drained(self)`` runs now if no call uses this
        one, else when the last one ends (the gateway then lets go of its pools:
        :func:`release_pools`). Must not block."""
        self.lease.retire(lambda: on_drained(self))


async def release_pools(runtime: Runtime) -> None:
    """Let go of ``runtime``'s pools; close each one no other runtime holds."""
    for pool in runtime.pools.values():
        pool.holders -= 1
        if pool.holders <= 0:
            try:
                await pool.aclose()
            except Exception as err:
                log.warning(
                    "closing a provider pool failed",
                    extra={"provider": pool.account, "error": f"{type(err).__name__}: {err}"},
                )
            else:
                log.info("provider pool closed", extra={"provider": pool.account})


async def open_pool(account: str, cfg: ProviderConfig, bounds: WireBounds) -> ProviderPool:
    """A new pool for one account: its egress (proxy, CAs; read in a thread), a session
    and the provider, started. A provider that fails to start is logged and kept (its
    calls then fail with the provider's error), as at the gateway's start.

    Raises:
        ssl.SSLError, OSError: the account's ``ca_file`` is not a readable PEM bundle.
    """
    egress = None
    if isinstance(cfg, EgressConfig):
        egress = await asyncio.to_thread(egress_for, cfg.upstream_url(), cfg.proxy, cfg.ca_file)
    session = open_session(egress)
    try:
        provider = build_provider(account, cfg, session, bounds)
    except BaseException:
        await session.close()
        raise
    try:
        await provider.start()
    except Exception as err:
        log.error(
            "provider failed to start",
            extra={"provider": account, "error": f"{type(err).__name__}: {err}"},
        )
    return ProviderPool(account, cfg, provider, session)


def _total_s(cfg: ProviderConfig) -> float:
    """An account's whole-call deadline (providers without timeouts: the default)."""
    timeouts = getattr(cfg, "timeouts", None)
    return 600.0 if timeouts is None else float(timeouts.total_s)


async def build_runtime(
    settings: Settings,
    host: RuntimeHost,
    policy: Policy,
    previous: Runtime | None,
) -> Runtime:
    """The runtime for ``settings``: pools of accounts unchanged since ``previous`` are
    shared with it, the others opened (and closed again if opening one fails); routing
    state (cooldowns, latency, session pins) carries over when its settings are the same.

    Raises:
        ssl.SSLError, OSError: an account's ``ca_file`` cannot be used.
    """
    bounds = WireBounds(int(settings.server.max_sse_event_mb * 1024 * 1024))
    old = previous.pools if previous is not None else {}
    pools: dict[str, ProviderPool] = {}
    opened: list[ProviderPool] = []
    try:
        for account, cfg in settings.providers.items():
            kept = old.get(account)
            if kept is not None and not kept.closed and kept.config == cfg:
                pools[account] = kept
            else:
                pool = await open_pool(account, cfg, bounds)
                opened.append(pool)
                pools[account] = pool
    except BaseException:
        for pool in opened:
            await pool.aclose()
        raise
    for pool in pools.values():
        pool.holders += 1
    providers = settings.providers
    table = RouteTable(
        {a: p.provider for a, p in pools.items()},
        {a: c.models for a, c in providers.items()},
        {a: _total_s(c) for a, c in providers.items()},
    )
    router = Router(table, settings.models, settings.routing)
    if previous is not None:
        _carry_routing_state(previous, settings, router)
    return Runtime(settings, router, policy, pools, host)


def _carry_routing_state(previous: Runtime, settings: Settings, router: Router) -> None:
    """Keep what routing learnt (cooldowns, recent latency, session pins) when the settings
    it was learnt under are the same. Entries of targets that are gone stay unused."""
    before, now = previous.settings.routing, settings.routing
    if before.cooldown == now.cooldown:
        router.health = previous.router.health
    if before.latency == now.latency:
        router.latency = previous.router.latency
    if before.max_sessions == now.max_sessions:
        router.affinity = previous.router.affinity


def empty_runtime(settings: Settings, host: RuntimeHost, policy: Policy) -> Runtime:
    """The runtime before the gateway has started: no providers, nothing routes."""
    table = RouteTable({}, {})
    return Runtime(settings, Router(table, {}, settings.routing), policy, {}, host)


class RuntimeLease:
    """The call observer that counts each runtime's calls (first among the observers), so
    that a retired runtime knows when its last call ended."""

    def call_started(self, call: Call) -> None:
        if isinstance(call.parts, Runtime):
            call.parts.call_started()

    def call_ended(self, call: Call) -> None:
        if isinstance(call.parts, Runtime):
            call.parts.call_ended()
