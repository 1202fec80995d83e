"""``llmrelay serve | check-config | usage | logs | keys | db | init | snippet``."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from .cli_common import load_config, safe_url
from .config import model_entry
from .config.observability import TracingConfig
from .workers import Listen, Worker, resolve_workers

__all__ = ["main", "package_version"]


def _serve(args: argparse.Namespace) -> int:
    from .obs.log import format_line, setup_logging

    settings = load_config(args.config)
    from .providers.proxy_env import env_proxy_errors

    proxy_errors = env_proxy_errors(os.environ)
    if proxy_errors:
        for line in proxy_errors:
            print(f"llmrelay: {line}", file=sys.stderr)
        return 1
    setup_logging(
        args.log_level or settings.logging.level, args.log_format or settings.logging.format
    )
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    worker = listen = None
    if args.worker is not None:  # started by the supervisor, which prepared the database
        worker, listen = _worker_of(args)
    else:
        from .cli_admin import prepare_database

        prepare_database(settings.database_url(), args.config)
        count = resolve_workers(args.workers or settings.server.workers)
        if count > 1:
            return _supervise(args, settings, host, port, count)
    # Only the processes that serve HTTP load the app (the supervisor stays small).
    from .app import build_app
    from .process import run

    routes = sum(len(p.models) for p in settings.providers.values())
    obs = settings.observability
    tracing = obs.tracing
    fields: dict[str, object] = {
        "url": f"{'https' if settings.server.tls else 'http'}://{host}:{port}",
        "config": args.config,
        "models": routes,
        "virtual_models": len(settings.models),
        # what an operator checks first: is each observability feature on, and how
        "metrics": ("on, key required" if obs.metrics.key else "on")
        if obs.metrics.enabled
        else "off",
        "tracing": tracing_summary(tracing),
        "bodies": obs.request_log.bodies,
    }
    if worker is not None:
        fields["worker"] = worker.index
    log_format = args.log_format or settings.logging.format
    line = format_line("listening", fields, log_format)

    def on_listening() -> None:
        print(line, file=sys.stderr, flush=True)
        if args.ready_fd is not None:  # tell the supervisor
            os.write(args.ready_fd, b"1")
            os.close(args.ready_fd)

    try:
        run(build_app(settings, worker), settings.server, host, port, on_listening, listen)
    except OSError as err:
        print(f"llmrelay: cannot listen on {host}:{port}: {err.strerror}", file=sys.stderr)
        return 1
    return 0


def _worker_of(args: argparse.Namespace) -> tuple[Worker, Listen]:
    """The worker description and listen option the supervisor passed on the command line."""
    import socket

    from .supervisor import watch_parent

    index, _, count = args.worker.partition("/")
    worker = Worker(int(index), int(count), Path(args.run_dir), os.getppid())
    sock = None
    if args.listen_fd is not None:
        sock = socket.socket(fileno=args.listen_fd)
    watch_parent()
    return worker, Listen(reuse_port=sock is None, sock=sock)


def _supervise(args: argparse.Namespace, settings: Any, host: str, port: int, count: int) -> int:
    from .supervisor import supervise, worker_argv

    argv = ["serve", "--config", args.config, "--host", host, "--port", str(port)]
    if args.log_level:
        argv += ["--log-level", args.log_level]
    if args.log_format:
        argv += ["--log-format", args.log_format]
    from .server import END_GRACE_S
    from .supervisor import stop_timeout

    server = settings.server
    stop_s = stop_timeout(
        server.shutdown_grace_s,
        server.drain_timeout_s,
        END_GRACE_S,
        settings.usage.shutdown_timeout_s,
    )
    try:
        return supervise(
            count, worker_argv(argv), host, port, settings.redis is None, stop_timeout_s=stop_s
        )
    except OSError as err:
        print(f"llmrelay: cannot listen on {host}:{port}: {err.strerror}", file=sys.stderr)
        return 1


def tracing_summary(tracing: TracingConfig) -> str:
    """``off``, or ``on``, where spans go (without any credentials in the URL) and the
    sampling ratio: for the startup line."""
    if not tracing.active(os.environ):
        return "off"
    endpoint = tracing.destination(os.environ)
    where = safe_url(endpoint)
    return f"on, {tracing.protocol} to {where}, sample_ratio {tracing.sample_ratio:g}"


def _check_config(args: argparse.Namespace) -> int:
    settings = load_config(args.config)
    print(f"{args.config}: ok")
    print(f"  keys: {', '.join(k.name for k in settings.auth.keys)}")
    for k in settings.auth.keys:
        policy = _policy_words(k.team, k.models, k.limits.model_dump(), k.budget)
        if policy:
            print(f"    {k.name}: {policy}")
    for team, t in settings.teams.items():
        print(f"  team {team}: {_policy_words(None, None, t.limits.model_dump(), t.budget)}")
    print(f"  database: {safe_url(settings.database_url())}")
    if settings.redis is not None:
        redis = settings.redis
        print(f"  counters: redis {safe_url(redis.url)} (prefix {redis.prefix})")
    elif settings.server.workers != 1:
        print("  counters: kept by the supervisor for every worker")
    else:
        print("  counters: in process")
    if settings.server.workers == "auto":
        print(f"  workers: auto ({resolve_workers('auto')} on this machine)")
    elif settings.server.workers != 1:
        print(f"  workers: {settings.server.workers}")
    if settings.admin is not None:
        print("  admin API: on (/admin/...)")
    for account, cfg in settings.providers.items():
        for public, entry in cfg.models.items():
            m = model_entry(entry)
            cap = f" (max_output_tokens {m.max_output_tokens})" if m.max_output_tokens else ""
            print(f"  {account}/{public} -> {cfg.type}:{m.id}{cap}")
    for name, vm in settings.models.items():
        targets = ", ".join(
            f"{t.model} (priority {t.priority}, weight {t.weight:g})" for t in vm.targets
        )
        print(f"  {name} -> {vm.strategy}: {targets}")
    for i, rule in enumerate(settings.routing.rules):
        match = rule.match.model_dump(exclude_none=True) or "every call"
        print(f"  rule {i}: {match} -> {rule.model}")
    return 0


def _policy_words(
    team: str | None, models: list[str] | None, limits: dict[str, int | None], budget: Any
) -> str:
    words = [f"team {team}"] if team else []
    if models is not None:
        words.append("models " + ",".join(models))
    words += [f"{k}={v}" for k, v in limits.items() if v is not None]
    if budget is not None:
        words.append(f"budget ${budget.usd:g}/{budget.period} ({budget.mode})")
    return ", ".join(words)


_SUMMARY_FIELDS = ("key", "team", "model", "day")
_SPAN_UNITS = {"m": 60, "h": 3600, "d": 86400}


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    if text.isdigit() and 1 <= int(text) <= 256:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: use auto or a number from 1 to 256")


def _port(text: str) -> int:
    """``--port``: a TCP port, 1 to 65535 (as ``server.port``); 0 (any free port) is
    refused: clients and the supervisor's workers need a known one."""
    if text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: use a port number from 1 to 65535")


def _group_by(text: str) -> list[str]:
    """``key,team,model,day`` (any of them, in the order wanted) → the list."""
    fields = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in fields if f not in _SUMMARY_FIELDS]
    if bad or not fields:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use a comma-separated list of {', '.join(_SUMMARY_FIELDS)}"
        )
    return fields


def _since(text: str) -> float:
    """``7d``, ``24h``, ``30m`` (before now) or ``YYYY-MM-DD`` (UTC midnight) → Unix seconds."""
    import datetime
    import time

    unit = _SPAN_UNITS.get(text[-1:])
    if unit is not None and text[:-1].isdigit():
        return time.time() - int(text[:-1]) * unit
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use 7d, 24h, 30m or YYYY-MM-DD") from None
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()


_CELL_CHARS = 64


def _cell(value: str) -> str:
    """A group's name as a table cell: one line, at most :data:`_CELL_CHARS` characters
    (a client may have asked for a long junk model name; it must not widen every row)."""
    value = value.replace("\n", " ").replace("\t", " ")
    return value if len(value) <= _CELL_CHARS else value[: _CELL_CHARS - 1] + "…"


def _usage(args: argparse.Namespace) -> int:
    from .stores.database import open_stores

    settings = load_config(args.config)
    url = settings.database_url()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            print(f"no usage recorded yet ({path} does not exist)")
            return 0
    stores = open_stores(url)
    try:
        rows = stores.usage.summary(args.by, args.since)
    finally:
        stores.close()
    header = (
        *args.by,
        "requests",
        "errors",
        "input",
        "output",
        "cache_write",
        "cache_read",
        "cost_usd",
        "avg_latency_ms",
    )
    table = [header] + [
        (
            *(_cell(g) for g in r.group),
            str(r.requests),
            str(r.errors),
            str(r.input_tokens),
            str(r.output_tokens),
            str(r.cache_creation_input_tokens),
            str(r.cache_read_input_tokens),
            "" if r.cost_usd is None else f"{r.cost_usd:.6f}",
            f"{r.avg_latency_s * 1000:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    groups = len(args.by)
    for row in table:
        print(
            "  ".join(
                cell.ljust(w) if i < groups else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    return 0


_STARTER = """\
# llmrelay local config, written by `make run` / `llmrelay init`. Reference: docs/configuration.md
server:
  host: 127.0.0.1
  port: 4000
auth:
  keys:
    - name: local
      key: {key}
providers:
  mock:
    type: mock            # offline, deterministic, speaks the Anthropic Messages API
    models:
      echo: echo
  mock-overloaded:        # a mock that answers like an overloaded provider (529, or a
    type: mock            # 200 stream opening with overloaded_error), to try fallbacks
    models:
      echo: echo
    error_status: 529
    error_in_stream: true
  # anthropic:
  #   type: anthropic
  #   base_url: https://api.anthropic.com
  #   api_key: ${{ANTHROPIC_API_KEY}}
  #   models:
  #     claude-sonnet: claude-sonnet-4-5
models:                   # virtual models: one name, several targets (docs/routing.md)
  echo:
    targets:
      - {{model: mock-overloaded/echo, priority: 1}}
      - {{model: mock/echo, priority: 2}}
usage:
  path: llmrelay-usage.db
admin:                    # the admin API and the web console's sign-in (http://.../ui/)
  key: {admin_key}
"""


def _init(args: argparse.Namespace) -> int:
    path = Path(args.config)
    if path.exists():
        print(f"{path} exists; leaving it as it is", file=sys.stderr)
        return 0
    path.write_text(
        _STARTER.format(
            key="sk-llmrelay-" + secrets.token_urlsafe(24),
            admin_key="sk-admin-" + secrets.token_urlsafe(24),
        )
    )
    path.chmod(0o600)
    print(f"wrote {path} with a new gateway key and the mock provider", file=sys.stderr)
    return 0


def _snippet(args: argparse.Namespace) -> int:
    settings = load_config(args.config)
    key = settings.auth.keys[0].key
    account, cfg = next(iter(settings.providers.items()))
    model = f"{account}/{next(iter(cfg.models))}"
    port = args.port or settings.server.port
    base = f"{'https' if settings.server.tls else 'http'}://{settings.server.host}:{port}"
    print(f"""
llmrelay is starting at {base}  (model {model}, key name {settings.auth.keys[0].name!r})
Paste this into Python (pip install anthropic):

from anthropic import Anthropic
client = Anthropic(base_url="{base}", api_key="{key}")
message = client.messages.create(
    model="{model}", max_tokens=256,
    messages=[{{"role": "user", "content": "Hello, llmrelay"}}],
)
print(message.content[0].text)

Or curl:

curl -s {base}/v1/messages -H "x-api-key: {key}" -H "content-type: application/json" \\
  -d '{{"model": "{model}", "max_tokens": 256,
       "messages": [{{"role": "user", "content": "Hello"}}]}}'
""")
    if settings.admin is not None and settings.console.enabled is not False:
        print(f"Web console: {base}/ui/  (sign in with admin.key from {args.config})\n")
    return 0


def package_version() -> str:
    """The installed distribution's version (``importlib.metadata``), e.g. ``"0.1.0"``; from
    a source tree that is not installed, ``llmrelay.__version__`` (the same value: the
    wheel's version is read from it, see pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmrelay")
    except PackageNotFoundError:
        from . import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    from .hangup import ignore_hangup

    # Already done by the ``llmrelay`` entry (``entry.py``); again for a direct call.
    ignore_hangup(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="llmrelay", description="An AI gateway.")
    parser.add_argument("--version", action="version", version=f"llmrelay {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--config", required=True)
    p.add_argument("--host")
    p.add_argument("--port", type=_port, help="overrides server.port (1 to 65535)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--log-format", choices=["json", "text"], help="overrides logging.format (default json)"
    )
    p.add_argument(
        "--workers",
        type=_workers,
        help="worker processes on the port: a number or auto (overrides server.workers)",
    )
    # Set by the supervisor on the workers it starts (llmrelay/supervisor.py).
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--run-dir", help=argparse.SUPPRESS)
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    p.set_defaults(fn=_serve)
    p = sub.add_parser("check-config", help="validate a config and print what is routed")
    p.add_argument("config")
    p.set_defaults(fn=_check_config)
    p = sub.add_parser("usage", help="print usage and cost per key and model (or --by)")
    p.add_argument("--config", required=True)
    p.add_argument(
        "--by",
        type=_group_by,
        default=["key", "model"],
        metavar="FIELDS",
        help="group by these, comma-separated: key, team, model, day (default key,model)",
    )
    p.add_argument(
        "--since",
        type=_since,
        metavar="WHEN",
        help="only calls since 7d, 24h, 30m ago or since YYYY-MM-DD (UTC)",
    )
    p.set_defaults(fn=_usage)
    from .cli_logs import add_command

    add_command(sub)
    from .cli_admin import add_commands

    add_commands(sub)
    p = sub.add_parser("init", help="write a starter config with a new key (if missing)")
    p.add_argument("config")
    p.set_defaults(fn=_init)
    p = sub.add_parser("snippet", help="print a ready-to-paste SDK snippet for a config")
    p.add_argument("--config", required=True)
    p.add_argument("--port", type=_port, help="the port serve --port will listen on")
    p.set_defaults(fn=_snippet)
    args = parser.parse_args(argv)
    try:
        result: int = args.fn(args)
    except BrokenPipeError:
        # The reader went away (`llmrelay logs | head`): stop quietly, as Unix tools do.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return result


if __name__ == "__main__":
    raise SystemExit(main())
