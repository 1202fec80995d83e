"""``llmrelay keys create|list|update|revoke|rotate`` and ``llmrelay db upgrade|check``.

They work on the database the config names (``database:``), directly, so they need no
running gateway; running gateways pick changes up within ``governance.key_refresh_s``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from .cli_common import load_config, safe_url

__all__ = ["add_commands", "prepare_database"]

_DEFAULT_CONFIG = os.environ.get("LLMRELAY_CONFIG", "llmrelay.local.yaml")


def prepare_database(url: str, config: str) -> None:
    """Make the database usable or exit 2 with a message naming the config and the fix.

    SQLite (the embedded default) is migrated to the current schema on the spot;
    PostgreSQL, shared by several instances, is only checked: ``llmrelay db upgrade``
    migrates it, once, on purpose.
    """
    from .stores.database import SCHEMA_HEAD, SchemaError, check

    try:
        if url.startswith("sqlite:///"):
            if _sqlite_revision(Path(url.removeprefix("sqlite:///"))) != SCHEMA_HEAD:
                # Migrate in a child process: Alembic and SQLAlchemy would stay imported in
                # the gateway (20 MB, and more objects for every garbage collection to scan).
                done = subprocess.run(
                    [sys.executable, "-m", "llmrelay", "db", "upgrade", "--config", config],
                    capture_output=True,
                    text=True,
                )
                if done.returncode != 0:
                    print(done.stderr.strip(), file=sys.stderr)
                    raise SystemExit(2)
        else:
            check(url)
    except SchemaError as err:
        print(f"llmrelay: {config}: database: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as err:
        print(
            f"llmrelay: {config}: database: cannot use {safe_url(url)}: "
            f"{type(err).__name__}: {err}",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def _sqlite_revision(path: Path) -> str | None:
    """The schema revision of a SQLite file, read without Alembic (None: none yet)."""
    if not path.exists():
        return None
    db = sqlite3.connect(str(path))
    try:
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return str(row[0]) if row else None


def _open(config: str) -> Any:
    return _open_with_settings(config)[1]


def _open_with_settings(config: str) -> tuple[Any, Any]:
    """The config's settings and its database's stores; an operation waits at most
    ``governance.admin_store_timeout_s`` for a PostgreSQL connection."""
    from .stores.database import open_stores

    settings = load_config(config)
    prepare_database(settings.database_url(), config)
    timeout = settings.governance.admin_store_timeout_s
    return settings, open_stores(settings.database_url(), timeout_s=timeout)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _create(args: argparse.Namespace) -> int:
    from .policy.virtual_keys import (
        KeySpecError,
        check_name,
        key_json,
        new_secret,
        virtual_key_from_spec,
    )
    from .stores.keys import KeyNameTaken

    spec: dict[str, Any] = {"name": args.name, "team": args.team, "models": args.models}
    spec["allowed_accounts"] = args.allowed_accounts
    for f in ("rpm", "rph", "rpd", "tpm", "tph", "tpd"):
        spec[f] = getattr(args, f)
    spec["budget_usd"] = args.budget_usd
    spec["budget_period"] = args.budget_period
    spec["budget_mode"] = args.budget_mode
    spec["expires_in"] = args.expires
    try:
        key = virtual_key_from_spec({k: v for k, v in spec.items() if v is not None})
    except KeySpecError as err:
        print(f"llmrelay keys create: {err}", file=sys.stderr)
        return 2
    secret, row = new_secret(key.id)
    settings, stores = _open_with_settings(args.config)
    try:
        check_name(key, {k.name for k in settings.auth.keys})
        stores.keys.create(key, row)
    except KeyNameTaken as err:
        print(f"llmrelay keys create: {err}", file=sys.stderr)
        return 1
    finally:
        stores.close()
    if args.json:
        print(orjson.dumps({**key_json(key), "key": secret}).decode())
    else:
        print(f"created key {key.name!r} ({key.id}); the secret is shown only now:")
        print(secret)
    return 0


def _list(args: argparse.Namespace) -> int:
    from .policy.virtual_keys import key_json

    stores = _open(args.config)
    try:
        keys = stores.keys.list()
    finally:
        stores.close()
    rows = [key_json(k) for k in keys]
    if args.json:
        print(orjson.dumps(rows).decode())
        return 0
    if not rows:
        print("no virtual keys (keys in the config file are not listed)")
        return 0
    print(f"{'id':<20} {'name':<20} {'team':<12} {'status':<8} {'expires':<21} limits / budget")
    for r in rows:
        extras = " ".join(f"{k}={v}" for k, v in r["limits"].items())
        if r["budget"]:
            b = r["budget"]
            extras += f" budget=${b['usd']:g}/{b['period']}" + (
                " (audit)" if b["mode"] == "audit" else ""
            )
        if r["models"]:
            extras += " models=" + ",".join(r["models"])
        if r.get("allowed_accounts") is not None:
            extras += " accounts=" + (",".join(r["allowed_accounts"]) or "none")
        print(
            f"{r['id']:<20} {r['name']:<20} {r['team'] or '-':<12} {r['status']:<8}"
            f" {_when(r['expires_at']):<21} {extras.strip()}"
        )
    return 0


_LIMIT_NAMES = ("rpm", "rph", "rpd", "tpm", "tph", "tpd")


def _update_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The PATCH /admin/keys/{id} body the flags given stand for; ``none`` (and ``all``
    for --models, ``models`` for --allowed-accounts) removes a field. Raises KeySpecError."""
    from .policy.virtual_keys import KeySpecError

    def nullable(text: str, *words: str) -> str | None:
        return None if text.strip().lower() in ("none", *words) else text

    spec: dict[str, Any] = {}
    if args.team is not None:
        spec["team"] = nullable(args.team)
    if args.models is not None:
        spec["models"] = nullable(args.models, "all")
    if args.allowed_accounts is not None:
        spec["allowed_accounts"] = nullable(args.allowed_accounts, "models")
    for f in _LIMIT_NAMES:
        value = getattr(args, f)
        if value is not None:
            text = nullable(value)
            try:
                spec[f] = None if text is None else int(text)
            except ValueError:
                raise KeySpecError(f"--{f}: expected a whole number or none") from None
    if args.budget_usd is not None:
        text = nullable(args.budget_usd)
        try:
            spec["budget_usd"] = None if text is None else float(text)
        except ValueError:
            raise KeySpecError("--budget-usd: expected an amount in USD or none") from None
    if args.budget_period is not None:
        spec["budget_period"] = args.budget_period
    if args.budget_mode is not None:
        spec["budget_mode"] = args.budget_mode
    return spec


def _update(args: argparse.Namespace) -> int:
    from .policy.virtual_keys import KeySpecError, key_edit_from_spec, key_json
    from .stores.keys import KeyRevoked

    try:
        edit = key_edit_from_spec(_update_spec(args))
    except KeySpecError as err:
        print(f"llmrelay keys update: {err}", file=sys.stderr)
        return 2
    settings, stores = _open_with_settings(args.config)
    try:
        key = stores.keys.update(args.id, edit)
    except KeyRevoked as err:
        print(f"llmrelay keys update: {err}", file=sys.stderr)
        return 1
    finally:
        stores.close()
    if key is None:
        where = (
            " (it is a key of the config file: edit the file)"
            if args.id in {k.name for k in settings.auth.keys}
            else ""
        )
        print(f"llmrelay keys update: no virtual key with id {args.id!r}{where}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(key_json(key)).decode())
    else:
        print(f"updated {key.id}; running gateways apply it within governance.key_refresh_s")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    stores = _open(args.config)
    try:
        ok = stores.keys.revoke(args.id, time.time())
    finally:
        stores.close()
    if not ok:
        print(f"llmrelay keys revoke: no key with id {args.id!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.id}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from .policy.virtual_keys import KeySpecError, new_secret, parse_duration

    try:
        grace = parse_duration(args.grace)
    except KeySpecError as err:
        print(f"llmrelay keys rotate: --grace: {err}", file=sys.stderr)
        return 2
    until = time.time() + grace
    secret, row = new_secret(args.id)
    stores = _open(args.config)
    try:
        key = stores.keys.get(args.id)
        if key is not None and key.revoked_at is not None:
            print(f"llmrelay keys rotate: key {args.id!r} is revoked", file=sys.stderr)
            return 1
        ok = key is not None and stores.keys.rotate(args.id, row, until)
    finally:
        stores.close()
    if not ok:
        print(f"llmrelay keys rotate: no key with id {args.id!r}", file=sys.stderr)
        return 1
    print(f"rotated {args.id}; the old secret stays valid until {_when(until)}. New secret:")
    print(secret)
    return 0


def _db(args: argparse.Namespace) -> int:
    from .stores.database import SchemaError, check, upgrade

    settings = load_config(args.config)
    url = settings.database_url()
    try:
        if args.action == "upgrade":
            upgrade(url)
            print(f"database schema is up to date ({safe_url(url)})")
        else:
            check(url)
            print(f"database schema is current ({safe_url(url)})")
            problems = _name_clashes(settings)
            for problem in problems:
                print(f"llmrelay db check: {problem}", file=sys.stderr)
            if problems:
                return 1
    except SchemaError as err:
        print(f"llmrelay db {args.action}: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        print(
            f"llmrelay db {args.action}: cannot use the database {safe_url(url)}:"
            f" {type(err).__name__}: {err}",
            file=sys.stderr,
        )
        return 1
    return 0


def _name_clashes(settings: Any) -> list[str]:
    """Virtual keys (not revoked) that share a name, or take a config-file key's name:
    possible in a database written before names were checked."""
    from .policy.virtual_keys import name_clashes
    from .stores.database import open_stores

    timeout = settings.governance.admin_store_timeout_s
    stores = open_stores(settings.database_url(), timeout_s=timeout)
    try:
        keys = stores.keys.list()
    finally:
        stores.close()
    return name_clashes(keys, {k.name for k in settings.auth.keys})


def _reported(fn: Any) -> Any:
    """Run a command; a database error is one line on stderr and exit status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            result: int = fn(args)
        except Exception as err:
            print(f"llmrelay: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
        return result

    return run


def add_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list, update, revoke and rotate virtual keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)

    p = ksub.add_parser("create", help="create a virtual key; prints its secret once")
    p.add_argument("--config", default=_DEFAULT_CONFIG)
    p.add_argument("--name", required=True)
    p.add_argument("--team")
    p.add_argument("--models", help="comma-separated public model names (default: all)")
    p.add_argument(
        "--allowed-accounts",
        help="comma-separated provider accounts the passthrough (/proxy/...) may reach "
        "(default: those of --models)",
    )
    for f, words in (
        ("rpm", "requests per minute"),
        ("rph", "requests per hour"),
        ("rpd", "requests per day"),
        ("tpm", "tokens per minute"),
        ("tph", "tokens per hour"),
        ("tpd", "tokens per day"),
    ):
        p.add_argument(f"--{f}", type=int, help=words)
    p.add_argument("--budget-usd", type=float)
    p.add_argument("--budget-period", choices=["day", "week", "month"])
    p.add_argument("--budget-mode", choices=["enforce", "audit"])
    p.add_argument("--expires", help="lifetime such as 30d, 12h")
    p.add_argument("--json", action="store_true", help="print the key (and secret) as JSON")
    p.set_defaults(fn=_reported(_create))

    p = ksub.add_parser("list", help="list virtual keys (never their secrets)")
    p.add_argument("--config", default=_DEFAULT_CONFIG)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_reported(_list))

    p = ksub.add_parser(
        "update",
        help="change a key's team, models, accounts, limits or budget (none: remove one)",
    )
    p.add_argument("id")
    p.add_argument("--config", default=_DEFAULT_CONFIG)
    p.add_argument("--team", help="the team, or none")
    p.add_argument("--models", help="comma-separated public model names, or all")
    p.add_argument(
        "--allowed-accounts",
        help="comma-separated provider accounts for the passthrough, or models (those of --models)",
    )
    for f in _LIMIT_NAMES:
        p.add_argument(f"--{f}", help="a whole number, or none (unlimited)")
    p.add_argument("--budget-usd", help="USD per period, or none (no budget)")
    p.add_argument("--budget-period", choices=["day", "week", "month"])
    p.add_argument("--budget-mode", choices=["enforce", "audit"])
    p.add_argument("--json", action="store_true", help="print the key as JSON")
    p.set_defaults(fn=_reported(_update))

    p = ksub.add_parser("revoke", help="revoke a key; every instance refuses it shortly")
    p.add_argument("id")
    p.add_argument("--config", default=_DEFAULT_CONFIG)
    p.set_defaults(fn=_reported(_revoke))

    p = ksub.add_parser("rotate", help="issue a new secret; the old one stays valid for --grace")
    p.add_argument("id")
    p.add_argument("--grace", default="24h")
    p.add_argument("--config", default=_DEFAULT_CONFIG)
    p.set_defaults(fn=_reported(_rotate))

    db = sub.add_parser("db", help="database schema: upgrade (apply migrations) or check")
    db.add_argument("action", choices=["upgrade", "check"])
    db.add_argument("--config", default=_DEFAULT_CONFIG)
    db.set_defaults(fn=_db)
