"""A key edited on one instance (PATCH /admin/keys/{id}) reaches the others through their
key caches within ``governance.key_refresh_s`` (0.5 s here) plus one query, on PostgreSQL,
with the rate limit counted in Redis across instances."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import anthropic

from tests.governance.cluster import (
    ADMIN_KEY,
    PG_URL,
    REDIS_URL,
    admin_post,
    cluster,
    needs_services,
    redis_prefix,
)
from tests.pg_schema import fresh_pg_schema

pytestmark = needs_services

MSG: Any = [{"role": "user", "content": "hello"}]
OTHER = {"other": {"targets": [{"model": "mock/echo"}]}}


def patch(url: str, body: Any) -> Any:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def status(client: anthropic.Anthropic) -> int:
    try:
        client.messages.create(model="mock/echo", max_tokens=16, messages=MSG)
    except anthropic.APIStatusError as err:
        return err.status_code
    return 200


def test_an_edit_on_one_instance_reaches_the_other_within_the_refresh_time(
    tmp_path: Path,
) -> None:
    assert PG_URL and REDIS_URL
    with (
        fresh_pg_schema(PG_URL) as db,
        redis_prefix() as prefix,
        # A second routable name, for a key limited to a model other than the one called.
        cluster(tmp_path, 2, db, REDIS_URL, prefix, models=OTHER) as gws,
    ):
        created = admin_post(gws[0], "/admin/keys", {"name": "moving", "models": ["other"]})
        clients = [
            anthropic.Anthropic(api_key=created["key"], base_url=gw.url, max_retries=0)
            for gw in gws
        ]
        with clients[0], clients[1]:
            deadline = time.monotonic() + 5
            while status(clients[1]) != 403:  # until the second instance knows the key
                assert time.monotonic() < deadline, "the new key did not reach instance 2"
                time.sleep(0.1)
            edited = patch(f"{gws[0].url}/admin/keys/{created['id']}", {"models": None, "rpm": 2})
            assert edited["models"] is None and edited["limits"] == {"rpm": 2}
            edited_at = time.monotonic()
            assert status(clients[0]) == 200  # this instance: at once
            # The other: within the documented bound, key_refresh_s plus one query.
            while status(clients[1]) != 200:
                assert time.monotonic() - edited_at <= 0.5 + 1.0, "the edit did not reach it"
                time.sleep(0.05)
            # rpm 2 is shared through Redis: both instances' calls count, a third is 429.
            assert [status(clients[0]), status(clients[1])] == [429, 429]
