"""``redis.timeout_s`` bounds each wait for Redis on the request path: a call against a
Redis that accepts connections and never answers waits for that long, then is answered
(here 503, under ``governance.fail_closed``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from urllib.parse import urlsplit

import anthropic
import pytest

from tests.conftest import ALICE_KEY
from tests.pipeline.inprocess import gateway_in_process
from tests.tcp_proxy import TcpProxy

REDIS_URL = os.environ.get("LLMRELAY_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(
    not REDIS_URL, reason="set LLMRELAY_TEST_REDIS_URL (.ci/run sets it)"
)


@pytest.mark.parametrize("timeout_s", [0.3, 30.0])
def test_a_stalled_redis_is_waited_for_redis_timeout_s(tmp_path: Path, timeout_s: float) -> None:
    asyncio.run(_stalled(tmp_path, timeout_s))


async def _stalled(tmp_path: Path, timeout_s: float) -> None:
    assert REDIS_URL
    target = urlsplit(REDIS_URL)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        proxy.start()
        proxy.blackhole()
        async with gateway_in_process(
            tmp_path,
            auth={"keys": [{"name": "alice", "key": ALICE_KEY, "limits": {"rpm": 100}}]},
            redis={"url": f"redis://127.0.0.1:{proxy.port}/0", "timeout_s": timeout_s},
            governance={"fail_closed": True},
        ) as gw:
            client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=ALICE_KEY, max_retries=0)
            call = asyncio.create_task(
                client.messages.create(
                    model="local/echo",
                    max_tokens=8,
                    messages=[{"role": "user", "content": "hi"}],
                )
            )
            if timeout_s > 10:
                # Still waiting well past the default (0.5 s): the setting is what bounds it.
                done, _ = await asyncio.wait({call}, timeout=3.0)
                assert not done
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await call
                await client.close()
                return
            with pytest.raises(anthropic.APIStatusError) as caught:
                await asyncio.wait_for(call, 30)
            assert caught.value.status_code == 503, caught.value
            await client.close()
