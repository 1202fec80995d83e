"""Routing health shared between instances (and workers) through Redis.

With ``redis:`` configured, what one instance learns about a target reaches the others:

* **Cooldowns.** When this process starts a cooldown (:attr:`Health.on_cooldown`: a 529, a
  429 with ``retry-after``, ``routing.cooldown.failures`` failures in a row) it publishes
  ``{"t": target, "u": until (Unix seconds), "i": instance}`` on the channel
  ``<prefix>health:cooldown`` and records it in the hash ``<prefix>health:cooldowns``
  (target → until; the hash expires ``COOLDOWN_TTL_S`` after its last write). Every
  instance is subscribed and cools the target until then (:meth:`Health.cool`): the others
  learn of it one Redis trip after the discovery. An instance that (re)subscribes first
  reads the hash, so it also learns of cooldowns still running. A success elsewhere does
  not end a cooldown early; it runs out.
* **Latency.** Every ``SYNC_INTERVAL_S`` this process writes its (seconds, output tokens)
  sums per target over ``routing.latency.window_s`` (:meth:`LatencyStats.sums`) to the hash
  ``<prefix>health:latency`` (field ``<instance>|<target>``, with the time written) and
  reads the whole hash in the same round trip; the fleet's figure for a target is its
  seconds summed over its tokens across instances (entries older than the window are
  dropped and deleted). ``strategy: latency`` then orders targets by the fleet's figures
  (:meth:`LatencyStats.set_fleet`).

Nothing here is on a call's path: a cooldown is handed to a bounded queue
(``QUEUE_SIZE``; when full the publish is dropped and counted in :attr:`SharedHealth.dropped`)
and published by a background task; the latency sync runs in the background. Each Redis
command waits at most ``TIMEOUT_S``.

**Redis away.** One warning (``shared routing health unavailable``), then each instance uses
its own view: its own cooldowns and latency figures (the fleet's figures are forgotten). No
call fails for it. The tasks retry every ``RETRY_S``; when Redis answers again one info
line says so and sharing resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from .health import Health, LatencyStats

__all__ = [
    "COOLDOWN_TTL_S",
    "QUEUE_SIZE",
    "RETRY_S",
    "SYNC_INTERVAL_S",
    "TIMEOUT_S",
    "SharedHealth",
]

log = logging.getLogger("llmrelay.routing")

#: Seconds between latency syncs (one pipelined round trip each).
SYNC_INTERVAL_S = 1.0
#: Seconds each Redis command waits before the shared view is considered away.
TIMEOUT_S = 1.0
#: Seconds between attempts while Redis is away.
RETRY_S = 1.0
#: Cooldowns waiting to be published, at most.
QUEUE_SIZE = 1000
#: Seconds the cooldowns hash lives after its last write.
COOLDOWN_TTL_S = 3600
#: Longest target name shared (longer ones stay local).
MAX_TARGET_CHARS = 512


class SharedHealth:
    """Shares ``health`` and ``latency`` through the Redis at ``url`` (keys under ``prefix``).
    ``window_s``: ``routing.latency.window_s``. ``clock``: Unix seconds (tests drive it)."""

    def __init__(
        self,
        health: Health,
        latency: LatencyStats,
        url: str,
        prefix: str,
        *,
        window_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import redis.asyncio as aioredis

        self._health = health
        self._latency = latency
        self._redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=TIMEOUT_S,
            socket_timeout=TIMEOUT_S,
            client_name="llmrelay-health",
        )
        self._channel = f"{prefix}health:cooldown"
        self._cooldowns = f"{prefix}health:cooldowns"
        self._latency_key = f"{prefix}health:latency"
        self._window_s = window_s
        self._clock = clock
        self.instance = uuid.uuid4().hex[:12]
        self._queue: asyncio.Queue[tuple[str, float]] = asyncio.Queue(QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._down = False
        #: Cooldowns not published because the queue was full.
        self.dropped = 0
        #: Cooldowns learnt from other instances.
        self.received = 0

    def start(self) -> None:
        """Hook into ``health`` and start the background tasks (on the running loop)."""
        self._health.on_cooldown = self._cooled
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._publish_loop(), name="health-publish"),
            loop.create_task(self._listen_loop(), name="health-listen"),
            loop.create_task(self._sync_loop(), name="health-sync"),
        ]

    def rebind(self, health: Health, latency: LatencyStats) -> None:
        """Share the state of a router a config reload built (``Gateway.apply``): the
        same objects when the routing settings did not change, new ones otherwise."""
        if health is not self._health:
            self._health.on_cooldown = None
            self._health = health
            if self._tasks:
                health.on_cooldown = self._cooled
        self._latency = latency

    async def aclose(self) -> None:
        self._health.on_cooldown = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    # -- state ---------------------------------------------------------------------------

    def _failed(self, err: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "shared routing health unavailable; each instance uses its own view",
                extra={"error": f"{type(err).__name__}: {err}"[:500]},
            )
        self._latency.set_fleet({})

    def _ok(self) -> None:
        if self._down:
            self._down = False
            log.info("shared routing health available again")

    # -- cooldowns -----------------------------------------------------------------------

    def _cooled(self, target: str, seconds: float) -> None:
        """On the call's path (from :meth:`Health.failure`): queue, never wait."""
        if len(target) > MAX_TARGET_CHARS:
            return
        try:
            self._queue.put_nowait((target, self._clock() + seconds))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _publish_loop(self) -> None:
        while True:
            target, until = await self._queue.get()
            message = orjson.dumps({"t": target, "u": until, "i": self.instance})
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.hset(self._cooldowns, target, str(until))
                    pipe.expire(self._cooldowns, COOLDOWN_TTL_S)
                    pipe.publish(self._channel, message)
                    await pipe.execute()
                self._ok()
            except Exception as err:  # Redis away: this instance keeps its own cooldown
                self._failed(err)

    async def _listen_loop(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                # Cooldowns that started before this subscription.
                for target, until in (await self._redis.hgetall(self._cooldowns)).items():
                    self._apply(_text(target), float(until), None)
                self._ok()
                while True:
                    message = await pubsub.get_message(timeout=SYNC_INTERVAL_S)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._failed(err)
                await asyncio.sleep(RETRY_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _on_message(self, data: Any) -> None:
        try:
            body = orjson.loads(data)
            target, until, instance = str(body["t"]), float(body["u"]), str(body["i"])
        except (ValueError, TypeError, KeyError):
            return  # not ours; ignore
        self._apply(target, until, instance)

    def _apply(self, target: str, until: float, instance: str | None) -> None:
        if instance == self.instance or len(target) > MAX_TARGET_CHARS:
            return
        left = until - self._clock()
        if left > 0:
            self._health.cool(target, left)
            self.received += 1

    # -- latency -------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            try:
                await self.sync_latency()
                self._ok()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._failed(err)
            await asyncio.sleep(SYNC_INTERVAL_S)

    async def sync_latency(self) -> None:
        """Write this process's sums and read the fleet's, in one pipelined round trip."""
        now = self._clock()
        mine = {
            f"{self.instance}|{t}": orjson.dumps([s, tokens, now])
            for t, (s, tokens) in self._latency.sums().items()
            if len(t) <= MAX_TARGET_CHARS
        }
        async with self._redis.pipeline(transaction=False) as pipe:
            if mine:
                pipe.hset(self._latency_key, mapping=mine)  # type: ignore[arg-type]
                pipe.expire(self._latency_key, int(self._window_s) + 60)
            pipe.hgetall(self._latency_key)
            answers = await pipe.execute()
        totals: dict[str, list[float]] = {}
        stale: list[str] = []
        for raw_field, raw_value in answers[-1].items():
            field = _text(raw_field)
            try:
                seconds, tokens, at = orjson.loads(raw_value)
                target = field.split("|", 1)[1]
            except (ValueError, TypeError, IndexError):
                stale.append(field)
                continue
            if now - float(at) > self._window_s:
                stale.append(field)
                continue
            sums = totals.setdefault(target, [0.0, 0.0])
            sums[0] += float(seconds)
            sums[1] += float(tokens)
        self._latency.set_fleet({t: s / n for t, (s, n) in totals.items() if n > 0})
        if stale:
            await self._redis.hdel(self._latency_key, *stale)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
