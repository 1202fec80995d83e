"""Keeps the :class:`~llmrelay.policy.auth.KeyRing` in step with the key store.

At start the whole store is loaded; then every ``refresh_s`` seconds only what changed
(``KeyStore.changed_since``), in a worker thread. So a key created, revoked or rotated on
any instance takes effect on every instance within ``refresh_s`` plus one query. When the
store cannot be reached the cached keys keep working; the failure is logged once, and the
recovery once.

One read runs at a time: a database that stalls holds one thread, however often the
refresh comes round or an admin write asks for one, and no caller waits longer than its
timeout (``timeout_s``, 5 s by default) for it; the read goes on and is applied when it
ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..stores.keys import KeyStore
from ..stores.offload import in_daemon_thread
from .auth import KeyRing

__all__ = ["KeyCache"]

log = logging.getLogger("llmrelay.keys")


class KeyCache:
    def __init__(
        self, store: KeyStore, ring: KeyRing, refresh_s: float, *, timeout_s: float = 5.0
    ) -> None:
        self._store = store
        self._ring = ring
        self._refresh_s = refresh_s
        self._timeout_s = timeout_s
        self._revision = 0
        self._task: asyncio.Task[None] | None = None
        self._loading: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        """Load every key (raises the store's error, or ``TimeoutError``, if it is
        unreachable), then refresh in the background."""
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="key-cache")

    async def refresh(self, timeout_s: float | None = None) -> None:
        """Apply what changed, read after this call began (a read already in flight may have
        begun before a write the caller just made: it is awaited, then another one runs).

        Raises:
            TimeoutError: no answer within ``timeout_s`` (default: the cache's timeout).
            Exception: the store's error.
        """
        async with asyncio.timeout(self._timeout_s if timeout_s is None else timeout_s):
            pending = self._loading
            if pending is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending)
            if self._loading is None:
                self._loading = asyncio.get_running_loop().create_task(self._load())
                # Callers that timed out leave its outcome behind: mark it seen.
                self._loading.add_done_callback(_seen)
            await asyncio.shield(self._loading)

    async def _load(self) -> None:
        try:
            changes = await in_daemon_thread(
                self._store.changed_since, self._revision, name="llmrelay-keys"
            )
            if changes.keys:
                self._ring.apply(changes)
            self._revision = max(self._revision, changes.revision)
        finally:
            self._loading = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception as err:
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "key store unreachable, serving cached keys",
                        extra={"error": f"{type(err).__name__}: {err}"},
                    )
                continue
            if self._failing:
                self._failing = False
                log.info("key store reachable again")

    @property
    def failing(self) -> bool:
        """True while the last background refresh failed (the database did not answer)."""
        return self._failing

    async def aclose(self) -> None:
        for task in (self._task, self._loading):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def _seen(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
