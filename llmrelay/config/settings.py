"""The whole settings tree: server, auth, providers, models, routing, usage, translation,
logging."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ._base import ConfigModel as _Model
from .console import ConsoleConfig
from .governance import (
    AdminConfig,
    BudgetConfig,
    GovernanceConfig,
    LimitsConfig,
    PriceConfig,
    RedisConfig,
    TeamConfig,
)
from .observability import ObservabilityConfig
from .providers import ProviderConfig
from .routing import RoutingConfig, VirtualModelConfig, check_routing

__all__ = [
    "AuthConfig",
    "GatewayKeyConfig",
    "LoggingConfig",
    "ServerConfig",
    "Settings",
    "TLSConfig",
    "TranslationConfig",
    "UsageConfig",
]


class TLSConfig(_Model):
    """TLS on the gateway's own listener: clients then connect with ``https://``."""

    #: PEM certificate chain (the server's certificate first).
    cert_file: str
    #: PEM private key of the certificate (unencrypted).
    key_file: str

    @field_validator("cert_file", "key_file")
    @classmethod
    def _exists(cls, v: str) -> str:
        if not Path(v).is_file():
            raise ValueError(f"{v!r} does not exist or is not a file")
        return v

    @model_validator(mode="after")
    def _pair(self) -> TLSConfig:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.cert_file, self.key_file
            )
        except (ssl.SSLError, OSError) as err:
            raise ValueError(
                "cert_file and key_file must be a PEM certificate chain and its unencrypted"
                f" private key ({err.__class__.__name__})"
            ) from None
        return self


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=1, le=65535)
    #: Largest request body accepted, in MiB; larger bodies get 413 ``request_too_large``.
    max_request_body_mb: float = Field(default=32.0, gt=0)
    #: Seconds a client has to send a request's line and headers once it starts one.
    header_timeout_s: float = Field(default=10.0, gt=0)
    #: Seconds a client has to send a whole request body, however it trickles (408).
    body_timeout_s: float = Field(default=60.0, gt=0)
    #: Seconds an idle keep-alive connection is kept open.
    keepalive_timeout_s: float = Field(default=75.0, gt=0)
    #: The listen socket's backlog (connections the kernel queues before ``accept``).
    backlog: int = Field(default=2048, ge=1)
    #: Open client connections at most; more are answered 503 and closed.
    max_connections: int = Field(default=10_000, ge=1)
    #: Deepest nesting of JSON arrays and objects in a request body (deeper: 400).
    max_json_depth: int = Field(default=128, ge=2, le=250)
    #: Largest single server-sent event read from a provider, in MiB; a stream with a larger
    #: one ends with an error event.
    max_sse_event_mb: float = Field(default=8.0, gt=0)
    #: Most a virtual model's stream may send before its first content (``message_start``,
    #: pings, role-only deltas), in KiB, held by the first-chunk gate; past it the gate
    #: commits to that stream (``docs/routing.md``).
    max_stream_preamble_kb: int = Field(default=64, ge=1)
    #: Seconds the listener keeps accepting connections after SIGTERM/SIGINT while
    #: ``/ready`` answers 503, for load balancers to notice (docs/operations.md).
    shutdown_grace_s: float = Field(default=5.0, ge=0, le=3600)
    #: Seconds, after the grace period, that calls and streams in flight have to finish;
    #: streams still open then end with an ``overloaded_error`` event.
    drain_timeout_s: float = Field(default=600.0, ge=0, le=86_400)
    #: Serve HTTPS with this certificate and key; unset: plain HTTP.
    tls: TLSConfig | None = None
    #: Reload the config file when its modification time or size changes (polled every
    #: ``watch_interval_s``); SIGHUP and ``POST /admin/reload`` reload it in any case.
    watch_config: bool = False
    #: Seconds between two looks at the config file's modification time.
    watch_interval_s: float = Field(default=2.0, ge=0.1, le=3600)
    #: Worker processes serving the port (docs/workers.md): a number, or ``auto`` for the
    #: CPUs this process may use (affinity and cgroup quota). 1: one process, no supervisor.
    workers: int | Literal["auto"] = Field(default=1)

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 256:
            raise ValueError("expected auto or a number of workers from 1 to 256")
        return v


class OverridesConfig(_Model):
    """What a key's requests may override per request with ``x-llmrelay-retry``,
    ``x-llmrelay-timeout-ms`` and ``x-llmrelay-ttft-timeout-ms`` (``docs/headers.md``); a
    request asking more is clamped to these."""

    #: Most attempts per target a request may ask for (the first one included).
    max_attempts: int = Field(default=3, ge=1, le=10)
    #: Statuses a request may ask to be retried on; others it names are dropped.
    retry_statuses: list[int] = Field(default_factory=lambda: [408, 429, 500, 502, 503, 504, 529])
    #: Longest per-attempt time limit a request may ask for, in milliseconds.
    max_timeout_ms: int = Field(default=600_000, ge=1, le=86_400_000)
    #: Longest time to a stream's first event a request may ask for, in milliseconds.
    max_ttft_timeout_ms: int = Field(default=600_000, ge=1, le=86_400_000)

    @field_validator("retry_statuses")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        for s in v:
            if not 400 <= s <= 599:
                raise ValueError(f"expected HTTP error statuses (400-599); {s} is not one")
        return v


class GatewayKeyConfig(_Model):
    name: str = Field(min_length=1)
    key: str = Field(min_length=8)
    team: str | None = None
    #: Public model names this key may call; unset = all.
    models: list[str] | None = None
    #: Provider accounts this key may reach through the native passthrough
    #: (``/proxy/{account}/...``, ``/v1/messages/batches``, ``/v1/files``); unset = the
    #: accounts of the models in ``models`` (every account when ``models`` is unset).
    allowed_accounts: list[str] | None = None
    limits: LimitsConfig = LimitsConfig()
    budget: BudgetConfig | None = None
    #: Bounds of the per-request override headers for this key.
    overrides: OverridesConfig = OverridesConfig()


class AuthConfig(_Model):
    keys: list[GatewayKeyConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> AuthConfig:
        seen_names: set[str] = set()
        seen_keys: dict[str, str] = {}
        for k in self.keys:
            if k.name in seen_names:
                raise ValueError(f"duplicate key name {k.name!r}")
            seen_names.add(k.name)
            if k.key in seen_keys:
                raise ValueError(f"keys {seen_keys[k.key]!r} and {k.name!r} have the same secret")
            seen_keys[k.key] = k.name
        return self


class UsageConfig(_Model):
    """How usage rows are kept (docs/limits.md). Relative paths are relative to the
    config file; unset spill and dead-letter paths sit next to ``path``."""

    enabled: bool = True
    #: SQLite file for usage rows; relative paths are relative to the config file.
    path: str = "llmrelay-usage.db"
    #: Rows held in memory waiting for the writer; when full, new rows go to the spill file.
    queue_size: int = Field(default=10_000, ge=1, le=10_000_000)
    #: Rows per write. Small batches keep each write's hold on the interpreter short.
    batch_size: int = Field(default=100, ge=1, le=10_000)
    #: Seconds between writes when rows are waiting.
    flush_interval_s: float = Field(default=1.0, gt=0, le=3600)
    #: JSON-lines file for rows that do not fit the queue (the store is down or slow);
    #: replayed into the store when it is back. Unset: ``<path's stem>.spill.jsonl``.
    spill_path: str | None = None
    #: Largest size of rows waiting in the spill file, in MiB; past it rows are dropped and
    #: counted. 0: no spill file (a full queue drops rows).
    spill_max_mb: float = Field(default=256.0, ge=0, le=1_048_576)
    #: JSON-lines file for rows no store would take even in their reduced ASCII form.
    #: Unset: ``<path's stem>.dead-letter.jsonl``.
    dead_letter_path: str | None = None
    #: Largest size of the dead-letter file, in MiB; past it such rows are dropped and counted.
    dead_letter_max_mb: float = Field(default=64.0, ge=0, le=1_048_576)
    #: Seconds the gateway's shutdown keeps writing queued rows to the store; what is left
    #: then goes to the spill file.
    shutdown_timeout_s: float = Field(default=5.0, ge=0, le=600)

    def file(self, name: str | None, suffix: str, source: str) -> Path:
        """The path ``name`` (or ``path`` with ``suffix`` for its extension), relative to the
        directory of the config file ``source`` (``<memory>``: the working directory)."""
        p = Path(name) if name else Path(self.path).with_suffix(suffix)
        if not p.is_absolute() and source != "<memory>":
            p = Path(source).parent / p
        return p


class TranslationConfig(_Model):
    #: ``max_tokens`` sent to a provider that requires it (Anthropic) when the client's API
    #: does not (an OpenAI request without ``max_tokens`` / ``max_completion_tokens``).
    default_max_tokens: int = Field(default=8192, ge=1)


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "warning"
    #: ``json``: one JSON object a line (for log pipelines); ``text``: readable lines.
    format: Literal["json", "text"] = "json"


class Settings(_Model):
    """The whole validated configuration; ``source`` is the file it came from."""

    server: ServerConfig = ServerConfig()
    auth: AuthConfig
    providers: dict[str, ProviderConfig] = Field(min_length=1)
    #: ``sqlite:///path`` (relative to the config file) or ``postgresql://...``; unset: the
    #: SQLite file at ``usage.path``. Holds virtual keys and usage rows.
    database: str | None = None
    #: Shared counters (rate limits, budgets) for several instances; unset: in-process.
    redis: RedisConfig | None = None
    admin: AdminConfig | None = None
    #: The web console at ``/ui/`` (docs/console.md).
    console: ConsoleConfig = ConsoleConfig()
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    #: Price overrides by provider model id, USD per million tokens.
    pricing: dict[str, PriceConfig] = Field(default_factory=dict)
    governance: GovernanceConfig = GovernanceConfig()
    #: Virtual models: public name -> targets, strategy, retries (docs/routing.md).
    models: dict[str, VirtualModelConfig] = Field(default_factory=dict)
    routing: RoutingConfig = RoutingConfig()
    usage: UsageConfig = UsageConfig()
    translation: TranslationConfig = TranslationConfig()
    logging: LoggingConfig = LoggingConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    source: str = "<memory>"

    @field_validator("redis", mode="before")
    @classmethod
    def _redis_url(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v

    @field_validator("database")
    @classmethod
    def _database_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("expected sqlite:///path/to/file.db or postgresql://user@host/db")
        return v

    @field_validator("providers")
    @classmethod
    def _account_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not name or "/" in name:
                raise ValueError(f"provider account name {name!r} must be non-empty without '/'")
        return v

    def database_url(self) -> str:
        """The database URL with a relative SQLite path made relative to the config file."""
        url = self.database or f"sqlite:///{self.usage.path}"
        if url.startswith("sqlite:///"):
            p = Path(url.removeprefix("sqlite:///"))
            if not p.is_absolute() and self.source != "<memory>":
                p = Path(self.source).parent / p
            return f"sqlite:///{p}"
        return url

    @model_validator(mode="after")
    def _allowed_accounts(self) -> Settings:
        for i, key in enumerate(self.auth.keys):
            unknown = [a for a in key.allowed_accounts or () if a not in self.providers]
            if unknown:
                raise ValueError(
                    f"auth.keys.{i}.allowed_accounts: {', '.join(map(repr, unknown))} "
                    "not among the provider accounts"
                )
        return self

    @model_validator(mode="after")
    def _routing(self) -> Settings:
        problems = check_routing(
            {a: c.models for a, c in self.providers.items()}, self.models, self.routing
        )
        if problems:
            # One line per problem, each starting with its key path (see loader._format).
            raise ValueError("\n".join(problems))
        return self

    def usage_path(self) -> Path:
        p = Path(self.usage.path)
        if not p.is_absolute() and self.source != "<memory>":
            p = Path(self.source).parent / p
        return p
