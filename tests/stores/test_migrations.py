"""Schema migrations: upgrade, check, and files written by the release before them."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from llmrelay.stores import schema
from llmrelay.stores.database import (
    SCHEMA_HEAD,
    SchemaError,
    check,
    current_and_head,
    open_stores,
    parse_url,
    upgrade,
)
from llmrelay.stores.sqlite_usage import SQLiteUsageStore
from tests.pg_schema import postgres_url_or_skip

# The usage table exactly as the release before migrations created it (sqlite_usage.py at
# commit 23ab627), with no alembic_version table.
OLD_RELEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    request_id TEXT NOT NULL,
    key_name TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_creation_input_tokens INTEGER NOT NULL,
    cache_read_input_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    ttft_s REAL,
    error_type TEXT,
    upstream_request_id TEXT
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
"""
UPGRADE_HINT = "run `llmrelay db upgrade --config <file>`"


def old_release_file(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_RELEASE_SCHEMA)
    db.executemany(
        "INSERT INTO usage (ts, request_id, key_name, model, provider, provider_model,"
        " endpoint, stream, status, input_tokens, output_tokens, cache_creation_input_tokens,"
        " cache_read_input_tokens, latency_s, ttft_s, error_type, upstream_request_id)"
        " VALUES (?, ?, 'alice', 'm', 'p', 'pm', 'messages', ?, 200, 10, 5, 0, 0, 0.5, ?, NULL,"
        " NULL)",
        [(1_700_000_000.0, "req_1", 0, None), (1_700_000_001.0, "req_2", 1, 0.1)],
    )
    db.commit()
    db.close()
    return path


def test_schema_head_constant_is_alembic_head(tmp_path: Path) -> None:
    assert current_and_head(f"sqlite:///{tmp_path / 'x.db'}") == (None, SCHEMA_HEAD)


def test_upgrade_twice_is_a_no_op(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    assert current_and_head(empty_db_url) == (SCHEMA_HEAD, SCHEMA_HEAD)
    stores = open_stores(empty_db_url)
    stores.usage.write([])
    stores.close()
    upgrade(empty_db_url)
    assert current_and_head(empty_db_url) == (SCHEMA_HEAD, SCHEMA_HEAD)
    check(empty_db_url)


def test_check_on_an_empty_database_names_both_revisions_and_the_command(
    empty_db_url: str,
) -> None:
    with pytest.raises(SchemaError) as err:
        check(empty_db_url)
    assert str(err.value) == (
        f"the database schema is at revision none, this llmrelay expects {SCHEMA_HEAD}: "
        + UPGRADE_HINT
    )


def test_check_on_an_older_revision_names_it(empty_db_url: str) -> None:
    upgrade(empty_db_url, "0001")
    with pytest.raises(SchemaError, match=f"at revision 0001, this llmrelay expects {SCHEMA_HEAD}"):
        check(empty_db_url)
    upgrade(empty_db_url)
    check(empty_db_url)


def test_a_newer_release_schema_is_refused_not_touched(db_url: str) -> None:
    stores = open_stores(db_url)
    stores.close()
    _set_version(db_url, "9999")
    with pytest.raises(SchemaError, match="9999, which this llmrelay does not know"):
        check(db_url)
    with pytest.raises(SchemaError, match="upgrade llmrelay"):
        upgrade(db_url)


def _set_version(url: str, revision: str) -> None:
    db = parse_url(url)
    if db.sqlite_path is not None:
        conn = sqlite3.connect(db.sqlite_path)
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        conn.commit()
        conn.close()
        return
    import psycopg

    with psycopg.connect(db.conninfo or "", autocommit=True) as pg:
        pg.execute("UPDATE alembic_version SET version_num = %s", (revision,))


def test_check_on_an_old_release_file_raises(tmp_path: Path) -> None:
    path = old_release_file(tmp_path / "usage.db")
    with pytest.raises(SchemaError, match="at revision none.*" + UPGRADE_HINT.replace("`", ".")):
        check(f"sqlite:///{path}")


def test_upgrading_an_old_release_file_keeps_its_rows(tmp_path: Path) -> None:
    path = old_release_file(tmp_path / "usage.db")
    upgrade(f"sqlite:///{path}")
    check(f"sqlite:///{path}")
    stores = open_stores(f"sqlite:///{path}")
    try:
        rows = stores.usage.rows()
        assert [(r.request_id, r.stream, r.ttft_s) for r in rows] == [
            ("req_1", False, None),
            ("req_2", True, 0.1),
        ]
        assert [(r.key_id, r.team, r.cost_usd, r.attempts, r.attempt_log) for r in rows] == [
            (None, None, None, 1, None)
        ] * 2
        (summary,) = stores.usage.summary(["key"])
        assert (summary.group, summary.requests, summary.cost_usd) == (("alice",), 2, None)
    finally:
        stores.close()


def test_the_sqlite_store_upgrades_an_old_release_file_by_itself(tmp_path: Path) -> None:
    # What `llmrelay usage` and a gateway on last release's file do.
    path = old_release_file(tmp_path / "usage.db")
    store = SQLiteUsageStore(path)
    try:
        assert [r.request_id for r in store.rows()] == ["req_1", "req_2"]
    finally:
        store.close()
    check(f"sqlite:///{path}")


def test_check_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError):
        check(f"sqlite:///{tmp_path / 'absent.db'}")
    assert not (tmp_path / "absent.db").exists()


def test_concurrent_upgrades_run_the_migrations_once(empty_db_url: str) -> None:
    # Three processes, as three gateways starting together would: the database's lock
    # (BEGIN EXCLUSIVE, or a PostgreSQL advisory lock) lets one migrate, the others find it done.
    script = "import sys; from llmrelay.stores.database import upgrade; upgrade(sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", script, empty_db_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outcomes = [(p.communicate(timeout=60)[1], p.returncode) for p in procs]
    assert [err.decode() for err, code in outcomes if code != 0] == []
    check(empty_db_url)


def test_upgrades_from_threads_of_one_process_take_turns(empty_db_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(empty_db_url)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check(empty_db_url)


def test_downgrade_to_the_baseline_and_back(db_url: str) -> None:
    from alembic import command

    stores = open_stores(db_url)
    stores.usage.write([])
    stores.close()
    with schema._connect(parse_url(db_url), exclusive=True) as conn:
        command.downgrade(schema._config(conn), "0001")
    assert current_and_head(db_url) == ("0001", SCHEMA_HEAD)
    upgrade(db_url)
    check(db_url)


def test_url_forms(tmp_path: Path) -> None:
    assert parse_url("sqlite:///rel/llmrelay.db").sqlite_path == Path("rel/llmrelay.db")
    assert parse_url("sqlite:////abs/llmrelay.db").sqlite_path == Path("/abs/llmrelay.db")
    url = "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx"
    assert parse_url(url).conninfo == url
    assert parse_url("postgres://u@h/db").conninfo == "postgres://u@h/db"
    for bad in ("mysql://u@h/db", "llmrelay.db", "sqlite://", "sqlite:///", "sqlite:///:memory:"):
        with pytest.raises(ValueError, match=re.escape("sqlite:///relative/path.db")):
            parse_url(bad)


def test_migrations_are_packages_so_a_wheel_ships_them() -> None:
    # setuptools' packages.find only takes folders with an __init__.py (pyproject.toml).
    from importlib.resources import files

    versions = files("llmrelay.stores.migrations") / "versions"
    assert (files("llmrelay.stores.migrations") / "env.py").is_file()
    assert (versions / "__init__.py").is_file()
    names = {p.name for p in versions.iterdir()}
    assert {"v0001_baseline.py", "v0002_governance.py"} <= names


def cli_db(tmp_path: Path, action: str, url: str) -> subprocess.CompletedProcess[str]:
    """``llmrelay db ACTION`` on a config whose database is ``url`` and whose config-file
    keys are alice and bob."""
    config = tmp_path / "llmrelay.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": url,
                "auth": {
                    "keys": [
                        {"name": "alice", "key": "sk-test-alice-0123456789abcdef"},
                        {"name": "bob", "key": "sk-test-bob-0123456789abcdef"},
                    ]
                },
                "providers": {"mock": {"type": "mock", "models": {"echo": "echo"}}},
            }
        )
    )
    return subprocess.run(
        [sys.executable, "-m", "llmrelay", "db", action, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_upgrade_into_a_missing_postgres_schema_says_what_to_do(tmp_path: Path) -> None:
    base = postgres_url_or_skip()
    url = base + ("&" if "?" in base else "?") + "options=-csearch_path%3Dllmrelay_t_absent"
    for run in (upgrade, check):
        with pytest.raises(SchemaError) as err:
            run(url)
        assert "search_path is 'llmrelay_t_absent'" in str(err.value)
        assert "CREATE SCHEMA llmrelay_t_absent" in str(err.value)
    for action in ("upgrade", "check"):
        done = cli_db(tmp_path, action, url)
        assert done.returncode == 1, done
        assert done.stderr.startswith(f"llmrelay db {action}: the database has no schema")
        assert "CREATE SCHEMA llmrelay_t_absent" in done.stderr
        assert "Traceback" not in done.stderr and "InvalidSchemaName" not in done.stderr


def _insert_key(url: str, key_id: str, name: str, revoked_at: float | None = None) -> None:
    """A key row written straight into the table, as a release before name checks could."""
    db = parse_url(url)
    columns = "id, name, models, created_at, revoked_at, revision"
    values = (key_id, name, "[]", 1_700_000_000.0, revoked_at, 1)
    if db.sqlite_path is not None:
        conn = sqlite3.connect(db.sqlite_path)
        conn.execute(f"INSERT INTO virtual_keys ({columns}) VALUES (?, ?, ?, ?, ?, ?)", values)
        conn.commit()
        conn.close()
        return
    import psycopg

    with psycopg.connect(db.conninfo or "", autocommit=True) as pg:
        pg.execute(f"INSERT INTO virtual_keys ({columns}) VALUES (%s, %s, %s, %s, %s, %s)", values)


def test_db_check_reports_keys_that_share_a_name(tmp_path: Path, db_url: str) -> None:
    done = cli_db(tmp_path, "check", db_url)
    assert done.returncode == 0 and done.stderr == "", done
    _insert_key(db_url, "vk_1", "svc")
    _insert_key(db_url, "vk_2", "svc")
    _insert_key(db_url, "vk_3", "svc", revoked_at=1_700_000_001.0)  # revoked: not a clash
    _insert_key(db_url, "vk_4", "alice")  # a config-file key's name
    _insert_key(db_url, "vk_5", "solo")
    # Existing duplicates do not stop a migration (there is none to run, and upgrade is a
    # no-op), and check names each clash.
    upgrade(db_url)
    done = cli_db(tmp_path, "check", db_url)
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 2, lines
    assert "virtual key vk_4 named 'alice' like a key of the config file" in lines[0]
    assert "2 virtual keys are named 'svc' (vk_1, vk_2)" in lines[1]
    assert "vk_3" not in done.stderr and "solo" not in done.stderr
