"""The SQLite file deleted (or replaced) under a running gateway's stores: the still-open
database is copied back to the path and both stores reopen it, so a restart finds every key
and row; when the copy fails, writes fail as an outage (the usage writer spills) and say
why. See llmrelay/stores/sqlite_file.py."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from llmrelay.stores import sqlite_file
from llmrelay.stores.database import open_stores
from llmrelay.stores.keys import KeySecret, VirtualKey
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from tests.stores.test_usage_store import DAY1, rec


def delete_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def check_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_file, "CHECK_S", 0.0)


def key(i: int) -> tuple[VirtualKey, KeySecret]:
    return (
        VirtualKey(id=f"vk_{i}", name=f"key-{i}", created_at=1_700_000_000.0),
        KeySecret(bytes([i]) * 32, f"vk_{i}"),
    )


def test_a_deleted_file_is_restored_from_the_open_copy_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "usage.db"
    stores = open_stores(f"sqlite:///{path}")
    stores.keys.create(*key(1))
    stores.usage.write([rec(DAY1)])
    delete_database(path)
    with caplog.at_level(logging.ERROR, "llmrelay.stores"):
        stores.usage.write([rec(DAY1 + 1)])  # the check runs before the batch
        stores.keys.create(*key(2))  # the key store follows the restored file quietly
        stores.usage.write([rec(DAY1 + 2)])
    assert path.exists()
    assert isinstance(stores.usage, SQLiteUsageStore)
    incident = stores.usage.file_incident
    assert incident is not None and "usage.db was deleted" in incident
    assert "nothing lost" in incident
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "deleted" in str(errors[0].__dict__.get("what"))
    assert not list(tmp_path.glob(".usage.db.restore-*"))
    stores.close()

    again = open_stores(f"sqlite:///{path}")  # a restart
    try:
        assert [k.id for k in again.keys.list()] == ["vk_1", "vk_2"]
        assert [r.ts for r in again.usage.rows()] == [DAY1, DAY1 + 1, DAY1 + 2]
    finally:
        again.close()


def test_a_console_read_never_creates_an_empty_file_where_the_database_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.db"
    store = SQLiteUsageStore(path)
    store.write([rec(DAY1)])
    delete_database(path)
    with pytest.raises(sqlite3.OperationalError):
        store.last_used("vk_x")  # the reader's first use: a 503 page, not an empty file
    assert not path.exists()
    store.write([rec(DAY1 + 1)])  # the writer restores it
    assert store.last_used("vk_x") is None
    assert len(SQLiteUsageStore(path).rows()) == 2
    store.close()


def test_another_file_put_at_the_path_is_used(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    store = SQLiteUsageStore(path)
    store.write([rec(DAY1)])
    other = tmp_path / "backup.db"
    backup = SQLiteUsageStore(other)
    backup.write([rec(DAY1 + 5), rec(DAY1 + 6)])
    backup.close()  # a backup is a whole file (its WAL checkpointed)
    delete_database(path)
    os.replace(other, path)
    store.write([rec(DAY1 + 7)])
    assert [r.ts for r in store.rows()] == [DAY1 + 5, DAY1 + 6, DAY1 + 7]
    assert store.file_incident is not None and "replaced by another file" in store.file_incident
    store.close()


def test_when_the_copy_fails_writes_fail_as_an_outage_until_it_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "usage.db"
    store = SQLiteUsageStore(path)
    store.write([rec(DAY1)])
    delete_database(path)

    def no_space(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sqlite_file.os, "link", no_space)
    with pytest.raises(sqlite3.OperationalError, match="could not be restored or opened"):
        store.write([rec(DAY1 + 1)])
    assert not path.exists()
    assert store.file_incident is not None and "No space left" in store.file_incident
    monkeypatch.undo()
    monkeypatch.setattr(sqlite_file, "CHECK_S", 0.0)
    store.write([rec(DAY1 + 1)])  # the next batch (the writer's retry) restores it
    assert [r.ts for r in SQLiteUsageStore(path).rows()] == [DAY1, DAY1 + 1]
    store.close()
