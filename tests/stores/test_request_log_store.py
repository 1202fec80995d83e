"""The request log on the usage store (SQLite and PostgreSQL, see conftest.py): the new
columns, the attempts, filters and pages newest first, one request with its bodies, and
pruning bodies without touching the bill."""

from __future__ import annotations

import itertools

import orjson
import pytest

from llmrelay.routing.executor import AttemptRecord
from llmrelay.stores.database import Stores
from llmrelay.stores.usage import (
    ATTEMPT_LOG_CAP,
    RequestBodies,
    RequestFilter,
    UsageRecord,
    UsageStore,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def rec(i: int, **kw: object) -> UsageRecord:
    base: dict[str, object] = {
        "ts": T0 + i,
        "request_id": f"req_{i:024x}",
        "key_name": "alice",
        "model": "mock/echo",
        "provider": "mock",
        "provider_model": "echo",
        "endpoint": "messages",
        "stream": False,
        "status": 200,
        "latency_s": 0.25,
    }
    base.update(kw)
    return UsageRecord(**base)  # type: ignore[arg-type]


def test_the_request_log_columns_round_trip(stores: Stores) -> None:
    attempts = [
        AttemptRecord("busy/echo", 529, "overloaded_error", 0.01234567, "Overloaded", "busy"),
        AttemptRecord("mock/echo", 200, None, 0.5, None, "mock"),
    ]
    row = rec(
        1,
        attempts=2,
        attempt_log=attempts,
        surface="openai",
        routed_model="echo",
        error_message="nothing wrong",
        user_agent="OpenAI/Python 1.0",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        overhead_ms=0.75,
        upstream_ms=12.5,
    )
    stores.usage.write([row])
    (back,) = stores.usage.rows()
    assert (back.surface, back.routed_model, back.error_message) == (
        "openai",
        "echo",
        "nothing wrong",
    )
    assert (back.user_agent, back.trace_id) == (
        "OpenAI/Python 1.0",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    )
    assert (back.overhead_ms, back.upstream_ms) == (0.75, 12.5)
    assert isinstance(back.attempt_log, str)
    assert orjson.loads(back.attempt_log) == [
        {
            "target": "busy/echo",
            "status": 529,
            "error_type": "overloaded_error",
            "latency_s": 0.0123,
            "message": "Overloaded",
        },
        {"target": "mock/echo", "status": 200, "error_type": None, "latency_s": 0.5},
    ]


def test_a_long_attempt_list_is_stored_as_valid_json_within_the_cap(stores: Stores) -> None:
    attempts = [
        AttemptRecord(f"t{i}/m", 529, "overloaded_error", 0.1, "x" * 1000) for i in range(60)
    ]
    stores.usage.write([rec(1, attempt_log=attempts)])
    (back,) = stores.usage.rows()
    assert isinstance(back.attempt_log, str) and len(back.attempt_log) <= ATTEMPT_LOG_CAP
    entries = orjson.loads(back.attempt_log)
    assert entries[0]["target"] == "t0/m" and len(entries[0]["message"]) == 300
    assert entries[-1] == {"truncated": 60 - (len(entries) - 1)}


def mix() -> list[UsageRecord]:
    """A known mix of calls: 3 keys, 2 teams, 3 models, 2 providers, 4 statuses."""
    keys = itertools.cycle([("alice", "red"), ("bob", "blue"), ("carol", None)])
    models = itertools.cycle(["mock/echo", "claude", "gpt"])
    providers = itertools.cycle(["mock", "mock", "openai", "anthropic"])
    statuses = itertools.cycle([200, 200, 429, 500, 503, 200, 400])
    rows = []
    for i in range(40):
        key, team = next(keys)
        rows.append(
            rec(i, key_name=key, team=team, model=next(models), provider=next(providers),
                status=next(statuses))
        )  # fmt: skip
    return rows


def ids_of(store: UsageStore, where: RequestFilter) -> list[str]:
    return [item.record.request_id for item in store.requests(where).items]


@pytest.mark.parametrize(
    ("where", "keep"),
    [
        (RequestFilter(key="bob"), lambda r: r.key_name == "bob"),
        (RequestFilter(team="red"), lambda r: r.team == "red"),
        (RequestFilter(model="gpt"), lambda r: r.model == "gpt"),
        (RequestFilter(provider="openai"), lambda r: r.provider == "openai"),
        (RequestFilter(status_min=429, status_max=429), lambda r: r.status == 429),
        (RequestFilter(status_min=500, status_max=599), lambda r: 500 <= r.status <= 599),
        (RequestFilter(since=T0 + 10), lambda r: r.ts >= T0 + 10),
        (RequestFilter(until=T0 + 10), lambda r: r.ts < T0 + 10),
        (
            RequestFilter(key="alice", status_min=200, status_max=299, since=T0 + 5),
            lambda r: r.key_name == "alice" and r.status == 200 and r.ts >= T0 + 5,
        ),
        (
            RequestFilter(model="claude", provider="mock", until=T0 + 30),
            lambda r: r.model == "claude" and r.provider == "mock" and r.ts < T0 + 30,
        ),
        (
            RequestFilter(request_id_prefix="req_00000000000000000000001"),
            lambda r: 16 <= int(r.request_id[4:], 16) < 32,
        ),
    ],
    ids=["key", "team", "model", "provider", "status", "5xx", "since", "until", "combined",
         "combined2", "request_id_prefix"],
)  # fmt: skip
def test_each_filter_alone_and_combined_newest_first(
    stores: Stores, where: RequestFilter, keep: object
) -> None:
    rows = mix()
    stores.usage.write(rows)
    expected = [r.request_id for r in reversed(rows) if keep(r)]  # type: ignore[operator]
    assert expected  # the mix has some of each
    assert ids_of(stores.usage, where) == expected


def test_a_request_id_prefix_is_not_a_pattern(stores: Stores) -> None:
    stores.usage.write([rec(1, request_id="req_a%c"), rec(2, request_id="req_abc"),
                        rec(3, request_id="req_a_c"), rec(4, request_id="REQ_A%C")])  # fmt: skip
    assert ids_of(stores.usage, RequestFilter(request_id_prefix="req_a%")) == ["req_a%c"]
    assert ids_of(stores.usage, RequestFilter(request_id_prefix="req_a_")) == ["req_a_c"]
    assert ids_of(stores.usage, RequestFilter(request_id_prefix="req_a")) == [
        "req_a_c",
        "req_abc",
        "req_a%c",
    ]


@pytest.mark.parametrize("limit", [1, 3, 7, 40, 100])
def test_pages_walk_every_row_once_without_gaps(stores: Stores, limit: int) -> None:
    rows = mix()
    stores.usage.write(rows[:25])
    stores.usage.write(rows[25:])
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        page = stores.usage.requests(RequestFilter(limit=limit, before_id=before))
        pages += 1
        assert len(page.items) <= limit
        seen += [item.record.request_id for item in page.items]
        ids = [item.id for item in page.items]
        assert ids == sorted(ids, reverse=True)
        if page.next_before_id is None:
            break
        assert page.next_before_id == ids[-1]
        before = page.next_before_id
    assert seen == [r.request_id for r in reversed(rows)]
    assert pages == -(-40 // limit)  # no empty last page


def test_a_filtered_walk_has_no_gaps(stores: Stores) -> None:
    rows = mix()
    stores.usage.write(rows)
    seen: list[str] = []
    before = None
    while True:
        page = stores.usage.requests(RequestFilter(key="carol", limit=4, before_id=before))
        seen += [item.record.request_id for item in page.items]
        if page.next_before_id is None:
            break
        before = page.next_before_id
    assert seen == [r.request_id for r in reversed(rows) if r.key_name == "carol"]


def test_after_id_follows_new_rows_oldest_first(stores: Stores) -> None:
    stores.usage.write([rec(1), rec(2)])
    newest = stores.usage.requests(RequestFilter(limit=1)).items[0].id
    assert stores.usage.requests(RequestFilter(after_id=newest)).items == []
    stores.usage.write([rec(3), rec(4, key_name="bob"), rec(5)])
    page = stores.usage.requests(RequestFilter(after_id=newest))
    assert [i.record.request_id for i in page.items] == [rec(i).request_id for i in (3, 4, 5)]
    assert page.next_before_id is None
    page = stores.usage.requests(RequestFilter(after_id=newest, key="bob"))
    assert [i.record.key_name for i in page.items] == ["bob"]


def test_one_request_with_its_bodies(stores: Stores) -> None:
    with_bodies = rec(1, request_id="req_with")
    with_bodies.bodies = RequestBodies('{"model": "m"}', '{"id": "msg"}', False, True)
    stores.usage.write([with_bodies, rec(2, request_id="req_without")])
    found = stores.usage.request("req_with")
    assert found is not None
    item, kept = found
    assert item.has_bodies and item.record.request_id == "req_with"
    assert kept == RequestBodies('{"model": "m"}', '{"id": "msg"}', False, True)
    found = stores.usage.request("req_without")
    assert found is not None and found[0].has_bodies is False and found[1] is None
    assert stores.usage.request("req_nobody") is None
    assert stores.usage.request("req_w") is None  # exact, not a prefix
    flags = {
        i.record.request_id: i.has_bodies for i in stores.usage.requests(RequestFilter()).items
    }
    assert flags == {"req_with": True, "req_without": False}


def test_pruning_deletes_old_bodies_in_batches_and_keeps_every_usage_row(stores: Stores) -> None:
    rows = []
    for i in range(12):
        r = rec(i, ts=T0 + i * 3600)
        r.bodies = RequestBodies(f'{{"n": {i}}}', "{}")
        rows.append(r)
    stores.usage.write(rows)
    cutoff = T0 + 7 * 3600  # rows 0..6 are older
    assert stores.usage.prune_bodies(cutoff, 5) == 5
    assert stores.usage.prune_bodies(cutoff, 5) == 2
    assert stores.usage.prune_bodies(cutoff, 5) == 0
    assert len(stores.usage.rows()) == 12
    kept = [stores.usage.request(r.request_id) for r in rows]
    assert [k is not None and k[1] is not None for k in kept] == [False] * 7 + [True] * 5


def test_one_status_is_paged_by_its_index_without_a_sort(tmp_path: object) -> None:
    """A filter on one status (``status=200``) must read the (status, id) index in id order
    and stop at the page's limit: a range there sorted every match (3.7 s on 1M rows)."""
    import sqlite3
    from pathlib import Path

    from llmrelay.stores._usage_sql import SQLITE
    from llmrelay.stores.sqlite_usage import SQLiteUsageStore

    path = Path(str(tmp_path)) / "plan.db"
    SQLiteUsageStore(path).write([rec(i, status=200 if i % 3 else 529) for i in range(30)])
    db = sqlite3.connect(path)
    one = RequestFilter(status_min=200, status_max=200, limit=10)
    sql, params = SQLITE.requests(one)
    plan = " ".join(str(row) for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "usage_status_id" in plan and "TEMP B-TREE" not in plan
    rows = db.execute(sql, params).fetchall()
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)
    assert len(rows) == 11  # limit + 1: another page follows
