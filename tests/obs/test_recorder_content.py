"""Rows a store cannot take for what they hold never stop the writer: every row is made
storable before it is queued, and a batch the store still refuses is split until the bad
row stands alone, which is written reduced or kept in the dead-letter file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from llmrelay.obs.dead_letter import DeadLetterFile
from llmrelay.obs.usage import UsageRecorder
from llmrelay.stores.usage import UsageRecord
from tests.obs.conftest import Backend
from tests.obs.support import POISON, good, until


def run_recorder(backend: Backend, rows: list[UsageRecord], **kw: Any) -> UsageRecorder:
    """Record ``rows``, wait until the writer has dealt with them all while running (not
    at shutdown), then close."""

    async def main() -> UsageRecorder:
        rec = UsageRecorder(
            backend.store, queue_size=1000, batch_size=100, flush_interval_s=0.01, **kw
        )
        rec.start()
        for r in rows:
            rec.record(r)
        await until(lambda: rec.written + rec.dead_lettered + rec.dropped >= len(rows))
        running = (rec.written, rec.dead_lettered)
        await rec.aclose()
        assert running == (rec.written, rec.dead_lettered)
        return rec

    return asyncio.run(main())


@pytest.mark.parametrize("kind", list(POISON))
def test_a_poison_row_between_good_rows_is_stored_cleaned_and_blocks_none(
    backend: Backend, kind: str
) -> None:
    given, stored = POISON[kind]
    rows = [good(i) for i in range(20)] + [good(20, **given)]
    rows += [good(i) for i in range(21, 71)]

    rec = run_recorder(backend, rows)

    out = backend.store.rows()
    assert len(out) == 71
    assert [r.request_id for r in out] == [f"req_{i}" for i in range(71)]
    poison = out[20]
    assert {k: getattr(poison, k) for k in stored} == stored
    assert (rec.written, rec.sanitised, rec.dropped, rec.dead_lettered) == (71, 1, 0, 0)


def refuse_non_ascii_models(backend: Backend) -> None:
    """A constraint the sanitised row still breaks: the database takes ASCII models only."""
    if backend.name == "sqlite":
        with sqlite3.connect(backend.url.removeprefix("sqlite:///")) as db:
            db.execute(
                "CREATE TRIGGER ascii_model BEFORE INSERT ON usage"
                " WHEN NEW.model GLOB '*[^ -~]*' BEGIN SELECT RAISE(ABORT, 'ASCII only'); END"
            )
    else:
        with psycopg.connect(backend.url, autocommit=True) as conn:
            conn.execute("ALTER TABLE usage ADD CONSTRAINT ascii_model CHECK (model ~ '^[ -~]*$')")


def refuse_key(backend: Backend, key: str) -> None:
    """A constraint no form of the row can meet: the database refuses one key name."""
    if backend.name == "sqlite":
        with sqlite3.connect(backend.url.removeprefix("sqlite:///")) as db:
            db.execute(
                f"CREATE TRIGGER no_{key} BEFORE INSERT ON usage WHEN NEW.key_name = '{key}'"
                " BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    else:
        with psycopg.connect(backend.url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE usage ADD CONSTRAINT no_{key} CHECK (key_name <> '{key}')")


def test_a_refused_batch_is_split_and_the_bad_row_written_reduced(backend: Backend) -> None:
    refuse_non_ascii_models(backend)
    rows = [good(i) for i in range(20)] + [good(20, model="claude-ünï…")]
    rows += [good(i) for i in range(21, 71)]

    rec = run_recorder(backend, rows)

    out = backend.store.rows()
    assert [r.request_id for r in out] == [f"req_{i}" for i in range(71)]
    assert out[20].model == "claude-\\xfcn\\xef\\u2026"
    assert (rec.written, rec.reduced, rec.dead_lettered, rec.dropped) == (71, 1, 0, 0)


def test_a_row_refused_even_reduced_goes_to_the_dead_letter_file(
    backend: Backend, tmp_path: Path
) -> None:
    refuse_key(backend, "mallory")
    dead = DeadLetterFile(tmp_path / "dead.jsonl", 1 << 20)
    rows = [good(i) for i in range(20)] + [good(20, key_name="mallory", model="\ud800")]
    rows += [good(i) for i in range(21, 71)] + [good(71, key_name="mallory")]

    rec = run_recorder(backend, rows, dead_letter=dead)

    stored = [r.request_id for r in backend.store.rows()]
    assert stored == [f"req_{i}" for i in range(71) if i != 20]
    entries = [json.loads(line) for line in dead.path.read_text().splitlines()]
    assert [e["row"]["request_id"] for e in entries] == ["req_20", "req_71"]
    # The row as recorded (made storable), not its reduced form.
    assert entries[0]["row"]["model"] == "\ufffd"
    assert entries[0]["reason"].startswith("RejectedRowsError")
    assert (rec.written, rec.dead_lettered, rec.dropped) == (70, 2, 0)


def test_a_row_refused_with_no_dead_letter_file_is_dropped_and_counted(
    backend: Backend,
) -> None:
    refuse_key(backend, "mallory")
    rows = [good(0), good(1, key_name="mallory"), good(2)]

    rec = run_recorder(backend, rows)

    assert [r.request_id for r in backend.store.rows()] == ["req_0", "req_2"]
    assert (rec.written, rec.dead_lettered, rec.dropped) == (2, 0, 1)
