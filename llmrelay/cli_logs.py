"""``llmrelay logs``: the request log, one line per call, read from the database the config
names (like ``llmrelay usage``: no gateway needed).

    llmrelay logs --config FILE [--key K] [--team T] [--model M] [--provider P]
                  [--status 429|5xx] [--since 1h] [--until ...] [--limit N] [--follow] [--json]
    llmrelay logs show REQUEST_ID --config FILE

A line: time (UTC), request id, key, model asked -> provider/provider model, status,
latency, tokens in/out, cost, attempts when more than one, and the error. The newest
``--limit`` calls are printed oldest first; ``--follow`` then prints new ones as they are
written (polling every second) until Ctrl-C; started before the gateway created its
SQLite database, it waits for the file. ``show`` prints one call whole: its record,
attempts and captured bodies; a unique prefix of the request id is enough.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .obs.request_log import (
    MAX_LIMIT,
    attempts_json,
    iso_time,
    parse_status,
    parse_time,
    record_json,
)
from .stores.usage import LoggedRequest, RequestBodies, RequestFilter, UsageStore

__all__ = ["add_command", "format_line"]

_POLL_S = 1.0
_ERROR_CHARS = 160


def add_command(sub: Any) -> None:
    """Add ``logs`` to the ``llmrelay`` subcommands."""
    p = sub.add_parser(
        "logs",
        help="print the request log, one line per call (or one call whole: logs show ID)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("action", nargs="?", choices=["show"], help="show one call whole")
    p.add_argument("request_id", nargs="?", help="the call's request id (or a unique prefix)")
    p.add_argument("--config", required=True)
    p.add_argument("--key", help="only calls of this key name")
    p.add_argument("--team", help="only calls of this team")
    p.add_argument("--model", help="only calls asking for this model")
    p.add_argument("--provider", help="only calls served by this provider account")
    p.add_argument("--status", type=_status, help="a code (429) or a class (5xx)")
    p.add_argument("--since", type=_time("since"), help="15m, 1h, 7d, a date or a time")
    p.add_argument("--until", type=_time("until"), help="same forms as --since")
    p.add_argument("--limit", type=_limit, default=50, help="calls to print (default 50)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new calls")
    p.add_argument("--json", action="store_true", help="one JSON object per call")
    p.set_defaults(fn=_logs)


def _status(text: str) -> tuple[int, int]:
    try:
        return parse_status(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _time(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return parse_time(text, name)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_LIMIT}, got {text!r}")
    return int(text)


def _logs(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_settings
    from .stores.database import open_stores

    if args.action == "show" and not args.request_id:
        print("llmrelay logs show: give a request id", file=sys.stderr)
        return 2
    if args.action is None and args.request_id:
        print(
            f"llmrelay logs: unexpected {args.request_id!r} (did you mean logs show?)",
            file=sys.stderr,
        )
        return 2
    try:
        settings = load_settings(args.config)
    except ConfigError as err:
        print(f"llmrelay: config error\n{err}", file=sys.stderr)
        return 2
    url = settings.database_url()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            print(f"no requests recorded yet ({path} does not exist)", flush=True)
            if not args.follow or args.action is not None:
                return 0 if args.action is None else 1
            if not _await_file(path):
                return 0
    stores = open_stores(url)
    try:
        if args.action == "show":
            return _show(stores.usage, args.request_id)
        return _list(stores.usage, args)
    finally:
        stores.close()


def _filter(args: argparse.Namespace, **kw: Any) -> RequestFilter:
    lo, hi = args.status or (None, None)
    return RequestFilter(
        key=args.key,
        team=args.team,
        model=args.model,
        provider=args.provider,
        status_min=lo,
        status_max=hi,
        since=args.since,
        until=args.until,
        **kw,
    )


def _list(store: UsageStore, args: argparse.Namespace) -> int:
    emit = _json_line if args.json else format_line
    page = store.requests(_filter(args, limit=args.limit))
    for item in reversed(page.items):
        print(emit(item), flush=args.follow)
    if not args.follow:
        return 0
    last = page.items[0].id if page.items else _newest_id(store)
    try:
        while True:
            time.sleep(_POLL_S)
            new = store.requests(_filter(args, after_id=last, limit=MAX_LIMIT)).items
            for item in new:
                print(emit(item), flush=True)
            if new:
                last = new[-1].id
    except KeyboardInterrupt:
        return 0


def _await_file(path: Path) -> bool:
    """``--follow`` before the gateway wrote its first row: wait for the database file to
    appear (polling every second); False when Ctrl-C ends the wait."""
    try:
        while not path.exists():
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        return False
    return True


def _newest_id(store: UsageStore) -> int:
    """Where following starts when nothing matched yet: after the newest row of any kind."""
    items = store.requests(RequestFilter(limit=1)).items
    return items[0].id if items else 0


def _json_line(item: LoggedRequest) -> str:
    return orjson.dumps(record_json(item)).decode()


def format_line(item: LoggedRequest) -> str:
    """One call on one line (see the module docstring)."""
    r = item.record
    served = f"{r.provider}/{r.provider_model}" if r.provider else "-"
    parts = [
        iso_time(r.ts).replace("T", " ").removesuffix("Z"),
        r.request_id,
        r.key_name or "-",
        f"{r.model or '-'} → {served}",
        str(r.status),
        f"{r.latency_s * 1000:.0f}ms",
        f"{r.input_tokens}/{r.output_tokens} tok",
        "-" if r.cost_usd is None else f"${r.cost_usd:.6f}",
    ]
    if r.attempts > 1:
        parts.append(f"{r.attempts} attempts")
    if r.error_type or r.error_message:
        error = ": ".join(x for x in (r.error_type, r.error_message) if x)
        if len(error) > _ERROR_CHARS:
            error = error[: _ERROR_CHARS - 1] + "…"
        parts.append(error)
    return "  ".join(parts)


def _find(store: UsageStore, request_id: str) -> tuple[LoggedRequest, RequestBodies | None] | str:
    found = store.request(request_id)
    if found is not None:
        return found
    matches = store.requests(RequestFilter(request_id_prefix=request_id, limit=2)).items
    if len(matches) == 1:
        again = store.request(matches[0].record.request_id)
        if again is not None:
            return again
    if matches:
        return f"{request_id!r} is the start of several request ids; give more of it"
    return f"no request {request_id!r} in the request log"


def _show(store: UsageStore, request_id: str) -> int:
    found = _find(store, request_id)
    if isinstance(found, str):
        print(f"llmrelay logs show: {found}", file=sys.stderr)
        return 1
    item, bodies = found
    data = record_json(item)
    width = max(len(k) for k in data)
    for name, value in data.items():
        if name == "has_bodies":
            continue
        print(f"{name.ljust(width)}  {'-' if value is None else value}")
    print()
    _print_attempts(attempts_json(item.record))
    print()
    if bodies is None:
        print("bodies: none captured")
        return 0
    for label, text, cut in (
        ("request", bodies.request, bodies.request_truncated),
        ("response", bodies.response, bodies.response_truncated),
    ):
        print(f"{label} body{' (truncated)' if cut else ''}:")
        print(_pretty(text))
    return 0


def _print_attempts(entries: Any) -> None:
    """The attempts as ``GET /admin/requests/{request_id}`` gives them (``attempts_json``)."""
    if not isinstance(entries, list) or not entries:
        print("attempts: none recorded")
        return
    print("attempts:")
    for n, a in enumerate(entries, 1):
        if not isinstance(a, dict):
            continue
        if "truncated" in a:
            print(f"  … {a['truncated']} more")
            continue
        latency = a.get("latency_s")
        took = f"{latency * 1000:.1f}ms" if isinstance(latency, int | float) else "-"
        line = f"  {n}. {a.get('target')}  {a.get('status')}  {took}"
        if a.get("error_type"):
            line += f"  {a['error_type']}"
        if a.get("message"):
            line += f": {a['message']}"
        print(line)


def _pretty(text: str | None) -> str:
    if text is None:
        return "  (none)"
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
