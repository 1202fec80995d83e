"""Counters in Redis, shared by every llmrelay instance: a
:class:`~llmrelay.stores.counters.CounterStore`.

**One round trip per call.** Each method is one Lua script, registered once and run with
EVALSHA (redis-py loads it again on NOSCRIPT, e.g. after a Redis restart). A script runs
atomically, so a check and its update cannot interleave with another instance's. There are
three scripts: ``_ADMIT`` serves :meth:`~RedisCounterStore.admit` and, with no holds or no
windows, ``acquire`` and ``reserve``; ``_RELEASE`` serves ``release``, ``add`` and
``settle``; ``_SEED`` serves ``seed``. Every key a script touches is passed in ``KEYS``.
``bench/counters_micro.py``, client µs wall/CPU: admit 3 windows + 2 holds 211/145, release
1 window + 2 settles 134/98 (per part before: acquire + 2 reserve 435/313, add + 2 settle 334/252).

**Layout.** A sliding window is a hash under ``prefix + window.key``: field = bucket index
(``floor(now / bucket_s)``), value = the amount counted in that bucket. A script sums the
fields inside the window, deletes those that left it and, on a write, sets the hash to expire
one bucket after the window. A budget is a hash ``{spent, reserved}`` (integer micro-USD)
under ``prefix + key`` that expires ``ttl_s`` after the write that created it (later writes do
not extend it: put the period in the key). All keys of one call must live on one Redis node
(Redis Cluster is not supported unless the keys share a hash tag).

**Time.** ``now`` is this process's clock, passed to the scripts as an argument, not Redis
``TIME``: tests drive time through ``clock``, the in-process fallback store uses the same
clock (so an :attr:`~llmrelay.stores.counters.Acquired.at` settles correctly on either), and
scripts stay deterministic. The price is that instances need NTP-synced clocks: an instance
whose clock is ``d`` seconds ahead counts in a later bucket and drops the oldest ``d`` seconds
of a window early, so a window may admit what those ``d`` seconds held; with NTP (ms) and
buckets of a second or more this is negligible.

**Failures.** The client is built with socket connect and read timeouts (``timeout_s``,
0.5 s by default) and no retries, so an unreachable, stalled or loading Redis surfaces within
about ``timeout_s`` as a :class:`ConnectionError` (a built-in ``OSError``; ``TimeoutError`` for
a stall), which :class:`~llmrelay.stores.failover_counters.FailoverCounterStore` turns into
fail-open or fail-closed. Redis out of memory, read-only replicas and cluster-down answers are
reported the same way. Other Redis errors (a script error) propagate unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from llmrelay.stores.counters import Acquired, Admitted, BudgetState, Hold, Settle, Window
from llmrelay.stores.memory_counters import check_admit, check_settles, check_windows

__all__ = ["RedisCounterStore"]

# KEYS: one hash per window, then one per hold. ARGV: now, the number of windows, then
# limit, window_s, bucket_s, amount per window, then limit, amount, ttl_ms, enforce (1|0)
# per hold. Checks every window, then every hold; writes only if none refused. Returns
# {ok, refused window, retry_after_s, refused hold, then ok (fits), spent, reserved after
# the script per hold looked at}; retry_after_s as a string because Redis truncates Lua
# numbers to integers.
_ADMIT = """
local now, nw = tonumber(ARGV[1]), tonumber(ARGV[2])
local cur = {}
for i = 1, nw do
  local a = 2 + (i - 1) * 4
  local limit, win = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local bs, amount = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local n = win / bs
  cur[i] = math.floor(now / bs)
  local flat = redis.call('HGETALL', KEYS[i])
  local total, dead, live = 0, {}, {}
  for j = 1, #flat, 2 do
    local idx, count = tonumber(flat[j]), tonumber(flat[j + 1])
    if idx <= cur[i] - n then
      dead[#dead + 1] = flat[j]
    else
      total = total + count
      live[#live + 1] = {idx, count}
    end
  end
  if #dead > 0 then redis.call('HDEL', KEYS[i], unpack(dead)) end
  if total + amount > limit then
    local retry = win
    if amount <= limit then
      table.sort(live, function(x, y) return x[1] < y[1] end)
      local excess, removed = total + amount - limit, 0
      for _, b in ipairs(live) do
        removed = removed + b[2]
        if removed >= excess then
          retry = (b[1] + n) * bs - now
          break
        end
      end
    end
    return {0, i - 1, tostring(retry), -1}
  end
end
local out, fits, h0 = {1, -1, '0', -1}, {}, 2 + nw * 4
for j = 1, #KEYS - nw do
  local a = h0 + (j - 1) * 4
  local v = redis.call('HMGET', KEYS[nw + j], 'spent', 'reserved')
  local spent, reserved = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  fits[j] = spent + reserved + tonumber(ARGV[a + 2]) <= tonumber(ARGV[a + 1])
  out[#out + 1], out[#out + 2], out[#out + 3] = fits[j] and 1 or 0, spent, reserved
  if not fits[j] and ARGV[a + 4] == '1' then
    out[1], out[4] = 0, j - 1
    return out
  end
end
for i = 1, nw do
  local a = 2 + (i - 1) * 4
  local amount = tonumber(ARGV[a + 4])
  if amount > 0 then
    redis.call('HINCRBY', KEYS[i], cur[i], amount)
    redis.call('PEXPIRE', KEYS[i], (tonumber(ARGV[a + 2]) + tonumber(ARGV[a + 3])) * 1000)
  end
end
for j = 1, #KEYS - nw do
  if fits[j] then
    local a, key = h0 + (j - 1) * 4, KEYS[nw + j]
    out[4 + 3 * j] = redis.call('HINCRBY', key, 'reserved', ARGV[a + 2])
    if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[a + 3]) end
  end
end
return out
"""

# KEYS: one hash per window, then one per budget. ARGV: now, at, the number of windows, then
# window_s, bucket_s, amount per window, then reserved, actual, ttl_ms per budget.
# A positive amount goes to the current bucket; a negative one comes off the bucket of `at`
# while that bucket is in the window, never below zero. A budget releases up to `reserved`
# (never below zero) and adds `actual` to spent.
_RELEASE = """
local now, at, nw = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, nw do
  local a = 3 + (i - 1) * 3
  local win, bs, amount = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local cur = math.floor(now / bs)
  if amount > 0 then
    redis.call('HINCRBY', KEYS[i], cur, amount)
    redis.call('PEXPIRE', KEYS[i], (win + bs) * 1000)
  elseif amount < 0 then
    local idx = math.floor(at / bs)
    if idx > cur - win / bs then
      local have = tonumber(redis.call('HGET', KEYS[i], idx) or '0')
      if have + amount <= 0 then
        redis.call('HDEL', KEYS[i], idx)
      else
        redis.call('HINCRBY', KEYS[i], idx, amount)
      end
    end
  end
end
local b0 = 3 + nw * 3
for j = 1, #KEYS - nw do
  local a, key = b0 + (j - 1) * 3, KEYS[nw + j]
  local have = tonumber(redis.call('HGET', key, 'reserved') or '0')
  local release, actual = math.min(have, tonumber(ARGV[a + 1])), tonumber(ARGV[a + 2])
  if release > 0 then redis.call('HINCRBY', key, 'reserved', -release) end
  if actual > 0 then redis.call('HINCRBY', key, 'spent', actual) end
  if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, ARGV[a + 3]) end
end
return 1
"""

# KEYS: the budget hash. ARGV: spent, ttl_ms. Returns 1 if set, 0 if it existed.
_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spent', ARGV[1], 'reserved', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# Errors that mean "Redis cannot serve now", as opposed to a bug in a script.
_UNAVAILABLE = (
    rexc.ConnectionError,  # refused, reset, auth, loading, too many connections
    rexc.TimeoutError,
    rexc.OutOfMemoryError,
    rexc.ReadOnlyError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
)


class RedisCounterStore:
    """Counters in Redis at ``url_or_client`` (``redis://host:port/db`` or a
    ``redis.asyncio.Redis``; a client passed in is not closed by :meth:`aclose`). Keys are
    ``prefix`` + the window or budget key; ``clock`` returns Unix seconds.

    Raises :class:`ConnectionError` / :class:`TimeoutError` when Redis is unavailable,
    within about ``timeout_s`` seconds (for a client passed in, its own timeouts apply).
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        prefix: str = "llmrelay:",
        clock: Callable[[], float] = time.time,
        *,
        timeout_s: float = 0.5,
        client_name: str = "llmrelay",
    ) -> None:
        if isinstance(url_or_client, str):
            self._redis = aioredis.Redis.from_url(
                url_or_client,
                # Connecting gets a little longer than a reply: a burst of new connections on
                # a busy event loop must not read as an outage.
                socket_connect_timeout=max(timeout_s, 1.0),
                socket_timeout=timeout_s,
                # A pooled connection that Redis closed (a restart, a failover, an idle
                # timeout, CLIENT KILL) fails at once with ConnectionError: one immediate
                # retry on a new connection keeps that from looking like an outage. A
                # timeout is not retried (that would double the wait when Redis is gone).
                retry=Retry(NoBackoff(), 1, supported_errors=(rexc.ConnectionError,)),
                # Connections idle this long are checked with a PING before use.
                health_check_interval=30,
                client_name=client_name,
            )
            self._owned = True
        else:
            self._redis = url_or_client
            self._owned = False
        self._prefix = prefix
        self._clock = clock
        self._admit = self._redis.register_script(_ADMIT)
        self._release = self._redis.register_script(_RELEASE)
        self._seed = self._redis.register_script(_SEED)

    async def admit(
        self, windows: Sequence[Window], amounts: Sequence[int], holds: Sequence[Hold]
    ) -> Admitted:
        """Admit every window and hold or none (audit holds never refuse): one script."""
        check_admit(windows, amounts, holds)
        now = self._clock()
        if not windows and not holds:
            return Admitted(True, at=now)
        args: list[Any] = [repr(now), len(windows)]
        for w, amount in zip(windows, amounts, strict=True):
            args += (w.limit, w.window_s, w.bucket_s, amount)
        for h in holds:
            args += (h.limit, h.amount, h.ttl_s * 1000, 1 if h.enforce else 0)
        keys = [self._prefix + w.key for w in windows]
        keys += [self._prefix + h.key for h in holds]
        r = await self._run(self._admit(keys=keys, args=args))
        states = tuple(
            BudgetState(bool(r[k]), int(r[k + 1]), int(r[k + 2])) for k in range(4, len(r), 3)
        )
        return Admitted(bool(r[0]), int(r[1]), float(r[2]), int(r[3]), states, now)

    async def release(
        self,
        windows: Sequence[Window],
        amounts: Sequence[int],
        at: float | None,
        settles: Sequence[Settle],
    ) -> None:
        """Token corrections and budget settles in one script."""
        check_windows(windows, amounts)
        check_settles(settles)
        pairs = [(w, a) for w, a in zip(windows, amounts, strict=True) if a]
        todo = [s for s in settles if s.reserved or s.actual]
        if not pairs and not todo:
            return
        now = self._clock()
        args: list[Any] = [repr(now), repr(now if at is None else min(at, now)), len(pairs)]
        for w, amount in pairs:
            args += (w.window_s, w.bucket_s, amount)
        for s in todo:
            args += (s.reserved, s.actual, s.ttl_s * 1000)
        keys = [self._prefix + w.key for w, _ in pairs]
        keys += [self._prefix + s.key for s in todo]
        await self._run(self._release(keys=keys, args=args))

    async def acquire(self, windows: Sequence[Window], amounts: Sequence[int]) -> Acquired:
        """Admit all amounts or none. Raises ValueError for a negative amount."""
        check_windows(windows, amounts)
        if any(a < 0 for a in amounts):
            raise ValueError("acquire takes amounts >= 0; settle with add()")
        r = await self.admit(windows, amounts, ())
        return Acquired(r.ok, r.refused_window, r.retry_after_s, r.at)

    async def add(
        self, windows: Sequence[Window], amounts: Sequence[int], at: float | None = None
    ) -> None:
        """Count amounts unchecked; a negative one is taken from the bucket of ``at``."""
        await self.release(windows, amounts, at, ())

    async def reserve(self, key: str, limit: int, amount: int, ttl_s: int) -> BudgetState:
        """Reserve ``amount`` micro-USD iff ``spent + reserved + amount <= limit``."""
        if amount < 0:
            raise ValueError("reserve takes an amount >= 0")
        return (await self.admit((), (), (Hold(key, limit, amount, ttl_s),))).holds[0]

    async def settle(self, key: str, reserved: int, actual: int, ttl_s: int) -> None:
        """Release up to ``reserved`` (never below zero) and add ``actual`` to ``spent``."""
        if reserved < 0 or actual < 0:
            raise ValueError("settle takes reserved >= 0 and actual >= 0")
        await self.release((), (), None, (Settle(key, reserved, actual, ttl_s),))

    async def seed(self, key: str, spent: int, ttl_s: int) -> bool:
        done = await self._run(self._seed(keys=[self._prefix + key], args=[spent, ttl_s * 1000]))
        return bool(int(done))

    async def ping(self) -> None:
        """A Redis ``PING`` (bounded by the client's ``socket_timeout``)."""
        await self._run(self._redis.ping())

    async def aclose(self) -> None:
        if self._owned:
            await self._redis.aclose()

    @staticmethod
    async def _run(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except rexc.TimeoutError as e:
            raise TimeoutError(f"redis: {e}") from e
        except _UNAVAILABLE as e:
            raise ConnectionError(f"redis: {e}") from e
