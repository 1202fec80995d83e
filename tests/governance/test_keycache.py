"""The key cache over a key store that stalls: one read at a time, no caller held past its
timeout, and a refresh that comes after a write reads after it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from llmrelay.policy.auth import KeyRing, digest
from llmrelay.policy.keycache import KeyCache
from llmrelay.stores.keys import KeyChanges, KeySecret, VirtualKey
from llmrelay.stores.sqlite_keys import SQLiteKeyStore

RETURNS_WITHIN_S = 20.0


class Stalling(SQLiteKeyStore):
    """A real SQLite key store whose reads wait while the gate is closed, counted."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.gate.set()
        self.reads = 0

    def changed_since(self, revision: int) -> KeyChanges:
        self.reads += 1
        self.gate.wait(RETURNS_WITHIN_S)
        return super().changed_since(revision)


def test_a_stalled_store_holds_one_read_and_no_caller_past_its_timeout(tmp_path: Path) -> None:
    store = Stalling(tmp_path / "keys.db")
    ring = KeyRing([])
    cache = KeyCache(store, ring, refresh_s=60, timeout_s=0.05)

    async def main() -> None:
        await cache.start()
        assert store.reads == 1
        store.gate.clear()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(cache.refresh() for _ in range(5)), return_exceptions=True),
            RETURNS_WITHIN_S,
        )
        assert all(isinstance(o, TimeoutError) for o in outcomes), outcomes
        with pytest.raises(TimeoutError):
            await cache.refresh()
        assert store.reads == 2  # one read in flight, shared, however many asked
        # A key written meanwhile is seen by the next refresh once the store answers.
        secret = "sk-llmrelay-written-while-stalled"
        store.create(VirtualKey("vk_1", "svc"), KeySecret(digest(secret), "vk_1"))
        store.gate.set()
        await cache.refresh(RETURNS_WITHIN_S)
        assert ring.authenticate({"x-api-key": secret}).key_id == "vk_1"
        await cache.aclose()

    asyncio.run(main())
    store.close()
