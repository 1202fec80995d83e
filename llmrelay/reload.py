"""Reloading the config file while the gateway runs (docs/reload.md).

Three triggers, one path: ``SIGHUP`` (registered per process by ``process.py``, so a
supervisor can forward it to each worker), ``POST /admin/reload`` and, with
``server.watch_config: true``, a change of the file's modification time or size (polled
every ``server.watch_interval_s``).

A reload reads and validates the whole file first (in a worker thread: YAML, ``${VAR}``,
every key, the routing cross-checks, provider libraries). If anything is wrong, or a
setting that only a restart can change differs (:data:`RESTART_ONLY`), nothing changes:
the error, naming the file, the key path and what was expected, is logged and returned.
Otherwise the gateway's runtime is replaced at once (``Gateway.apply``): calls in flight
finish on the configuration they started with.

With ``--workers N`` (``worker`` given), a reload asked of one worker by ``POST
/admin/reload`` is passed on to every worker: once this worker has validated and applied
the file, it sends SIGHUP to its supervisor, which forwards it to every worker (this one
included: reloading the same file again changes nothing). Each worker then reads the file
itself and logs its own outcome (with its ``worker`` index). The answer says so
(``"workers": N``).

Bounds: one reload at a time; another waits for it at most :data:`RELOAD_TIMEOUT_S`, and
a reload (reading the file, opening and starting new providers) is given up after
:data:`RELOAD_TIMEOUT_S` with nothing changed. The error text returned is clipped to
:data:`MAX_ERROR_CHARS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from aiohttp import web
from pydantic import BaseModel

from .config import ConfigError, Settings, load_settings
from .providers.registry import missing_dependencies
from .runtime import Runtime
from .workers import Worker

__all__ = [
    "MAX_ERROR_CHARS",
    "RELOADER",
    "RELOAD_TIMEOUT_S",
    "RESTART_ONLY",
    "ReloadResult",
    "Reloader",
    "restart_only_changes",
]

log = logging.getLogger("llmrelay.reload")

#: Seconds a reload may take (waiting for the one before it, reading the file, starting
#: new providers); past it the reload is refused and the configuration in force stays.
RELOAD_TIMEOUT_S = 60.0
#: Characters of a refused reload's error returned by ``POST /admin/reload`` and logged.
MAX_ERROR_CHARS = 8192

#: Top-level settings a reload cannot change: the listener, the databases and stores the
#: process opened at start, what observability and logging set up, the admin key the
#: admin routes and the console were built with, the console's settings. A reload that
#: changes one is refused, naming it; so is a ``forward_headers`` entry naming a header no
#: account forwarded at start.
RESTART_ONLY = (
    "server",
    "database",
    "redis",
    "usage",
    "admin",
    "console",
    "observability",
    "logging",
    "governance.key_refresh_s",
)

Trigger = Literal["sighup", "admin", "watch"]


class ReloadTarget(Protocol):
    """What a reload needs of the gateway."""

    @property
    def settings(self) -> Settings: ...

    async def apply(self, settings: Settings) -> Runtime: ...


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """A reload that took effect: the file and what is in force now."""

    config: str
    providers: int
    models: int
    virtual_models: int
    #: Workers asked to reload the file too (``--workers N``: N; one process: 1).
    workers: int = 1

    def as_json(self) -> dict[str, object]:
        return {
            "reloaded": True,
            "config": self.config,
            "providers": self.providers,
            "models": self.models,
            "virtual_models": self.virtual_models,
            "workers": self.workers,
        }


def _changed(old: object, new: object, path: str) -> list[str]:
    """The key paths under ``path`` whose values differ (one level into mappings)."""
    if old == new:
        return []
    if not isinstance(old, BaseModel) or type(old) is not type(new):
        return [path]
    names = type(old).model_fields
    return [f"{path}.{n}" for n in names if getattr(old, n) != getattr(new, n)] or [path]


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    """The key paths of :data:`RESTART_ONLY` settings that differ between ``old`` and
    ``new`` (``server.port``, ``database``...), in that order."""
    out: list[str] = []
    for path in RESTART_ONLY:
        a: object = old
        b: object = new
        for part in path.split("."):
            a, b = getattr(a, part), getattr(b, part)
        out += _changed(a, b, path)
    return out


class Reloader:
    """Reloads the gateway's config file on request (see the module docstring)."""

    def __init__(
        self,
        gateway: ReloadTarget,
        path: str,
        env: Mapping[str, str] | None = None,
        worker: Worker | None = None,
    ) -> None:
        """``path``: the config file; ``env``: the environment its ``${VAR}`` are read
        from at each reload (default: the process's); ``worker``: this process is one of
        ``--workers N`` (an admin reload then reaches every worker; log lines name it)."""
        self._gateway = gateway
        self._worker = worker
        self._where: dict[str, object] = {} if worker is None else {"worker": worker.index}
        self.path = path
        self._env = env
        self._lock = asyncio.Lock()
        #: Client headers some account forwarded at start: the surfaces' first filter.
        self._forwarded_at_start = _forwarded(gateway.settings)
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        #: Set once the gateway has started: a reload requested before is ignored (logged).
        self.ready = False

    async def reload(self, trigger: Trigger) -> ReloadResult:
        """Read, validate and put in force the config file.

        Raises:
            ConfigError: the file cannot be used or changes a restart-only setting; or the
                reload ran out of :data:`RELOAD_TIMEOUT_S`. The configuration in force stays.
        """
        if not self.ready:
            message = f"{self.path}: the gateway is still starting; reload again once it listens"
            self._refused(trigger, message)
            raise ConfigError(message)
        try:
            async with asyncio.timeout(RELOAD_TIMEOUT_S):
                async with self._lock:
                    result = await self._reload()
        except ConfigError as err:
            self._refused(trigger, str(err))
            raise ConfigError(_clip(str(err))) from None
        except TimeoutError:
            message = f"{self.path}: the reload took more than {RELOAD_TIMEOUT_S:g} s"
            self._refused(trigger, message)
            raise ConfigError(message) from None
        except (OSError, ValueError) as err:  # an unusable ca_file (ssl.SSLError is OSError)
            message = f"{self.path}: a provider could not be set up: {type(err).__name__}: {err}"
            self._refused(trigger, message)
            raise ConfigError(_clip(message)) from None
        except Exception as err:  # a bug: the old configuration stays all the same
            log.exception("config reload failed", extra={"config": self.path})
            message = f"{self.path}: the reload failed ({type(err).__name__}); see the log"
            self._refused(trigger, message)
            raise ConfigError(message) from None
        if trigger == "admin":
            result = self._tell_siblings(result)
        log.warning(
            "config reloaded",
            extra={"config": self.path, "trigger": trigger, **self._where, **result.as_json()},
        )
        return result

    def _tell_siblings(self, result: ReloadResult) -> ReloadResult:
        """With ``--workers N``: SIGHUP to the supervisor, which forwards it to every worker
        (``supervisor.py``); ``result`` then counts them. Not when the supervisor is gone
        (this worker is stopping: its parent is another process now)."""
        worker = self._worker
        if worker is None or worker.count < 2 or worker.supervisor_pid <= 0:
            return result
        if os.getppid() != worker.supervisor_pid:
            return result
        os.kill(worker.supervisor_pid, signal.SIGHUP)
        return dataclasses.replace(result, workers=worker.count)

    async def _reload(self) -> ReloadResult:
        env = os.environ if self._env is None else self._env
        settings = await asyncio.to_thread(_read, self.path, env)
        changed = restart_only_changes(self._gateway.settings, settings)
        changed += _newly_forwarded(self._forwarded_at_start, settings)
        if changed:
            raise ConfigError(
                f"{self.path}: {', '.join(changed)}: cannot change while the gateway runs"
                " (restart it to apply); nothing was reloaded"
            )
        await self._gateway.apply(settings)
        return ReloadResult(
            self.path,
            len(settings.providers),
            sum(len(p.models) for p in settings.providers.values()),
            len(settings.models),
        )

    def _refused(self, trigger: Trigger, message: str) -> None:
        log.error(
            "config reload refused; the configuration in force stays",
            extra={
                "config": self.path,
                "trigger": trigger,
                **self._where,
                "error": _clip(message),
            },
        )

    def request(self, trigger: Trigger) -> None:
        """Reload in the background (from a signal handler); the outcome is logged."""
        task = asyncio.get_running_loop().create_task(self._background(trigger))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _background(self, trigger: Trigger) -> None:
        with contextlib.suppress(ConfigError):
            await self.reload(trigger)

    def watch(self, interval_s: float) -> None:
        """Reload when the file's modification time or size changes, looked at every
        ``interval_s`` seconds (in a worker thread: a slow network file system does not
        hold the event loop)."""
        if self._watch is None:
            loop = asyncio.get_running_loop()
            self._watch = loop.create_task(self._watching(interval_s), name="config-watch")

    async def _watching(self, interval_s: float) -> None:
        seen = await asyncio.to_thread(_stamp, self.path)
        while True:
            await asyncio.sleep(interval_s)
            stamp = await asyncio.to_thread(_stamp, self.path)
            if stamp is not None and stamp != seen:
                seen = stamp
                with contextlib.suppress(ConfigError):
                    await self.reload("watch")

    async def aclose(self) -> None:
        """Stop watching; wait for a reload in progress (it is bounded)."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _read(path: str, env: Mapping[str, str]) -> Settings:
    """The file's settings, and the libraries its provider types need, checked (as at
    start: ``cli_common.load_config``); in a worker thread.

    Raises:
        ConfigError: naming the file, the key path and what was expected.
    """
    settings = load_settings(path, env)
    missing = missing_dependencies({p.type for p in settings.providers.values()})
    if missing:
        raise ConfigError("\n".join(f"{path}: {m}" for m in missing))
    return settings


def _forwarded(settings: Settings) -> frozenset[str]:
    return frozenset(
        name for cfg in settings.providers.values() for name in getattr(cfg, "forward_headers", ())
    )


def _newly_forwarded(at_start: frozenset[str], settings: Settings) -> list[str]:
    """``providers.<account>.forward_headers`` entries naming a header no account forwarded
    at start: the surfaces drop it before any provider sees it until a restart."""
    out = []
    for account, cfg in settings.providers.items():
        new = [n for n in getattr(cfg, "forward_headers", ()) if n not in at_start]
        if new:
            out.append(f"providers.{account}.forward_headers ({', '.join(new)})")
    return out


def _stamp(path: str) -> tuple[int, int] | None:
    """The file's modification time (ns) and size; None when it cannot be read (an editor
    replacing it): the watcher then waits for the next look."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _clip(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 20] + "\n... (truncated)"


#: The app's reloader (absent when the settings did not come from a file).
RELOADER = web.AppKey("reloader", Reloader)
