"""Keeps the :class:`~llmrelay.policy.auth.KeyRing` in step with the key store.

At start the whole store is loaded; then every ``refresh_s`` seconds only what changed
(``KeyStore.changed_since``), in a worker thread. So a key created, revoked or rotated on
any instance takes effect on every instance within ``refresh_s`` plus one query. When the
store cannot be reached the cached keys keep working; the failure is logged once, and the
recovery once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..stores.keys import KeyStore
from .auth import KeyRing

__all__ = ["KeyCache"]

log = logging.getLogger("llmrelay.keys")


class KeyCache:
    def __init__(self, store: KeyStore, ring: KeyRing, refresh_s: float) -> None:
        self._store = store
        self._ring = ring
        self._refresh_s = refresh_s
        self._revision = 0
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Load every key (raises the store's error if it is unreachable), then refresh in
        the background."""
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="key-cache")

    async def refresh(self) -> None:
        """Apply what changed since the last refresh. Raises the store's error."""
        async with self._lock:
            changes = await asyncio.to_thread(self._store.changed_since, self._revision)
            if changes.keys:
                self._ring.apply(changes)
            self._revision = max(self._revision, changes.revision)

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

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
