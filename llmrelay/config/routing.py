"""Virtual models (``models:``) and routing rules (``routing:``).

A virtual model is a public model name standing for several ``account/model`` targets, tried
in an order its ``strategy`` decides, with retries, timeouts and fallbacks. ``routing:``
holds what is shared by all of them: rules that pick a model from who calls and what they
send, the session-affinity header, target cooldowns and the latency window. The semantics
are in ``docs/routing.md``; the cross-checks against ``providers:`` are in
:func:`check_routing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator

from ._base import ConfigModel as _Model
from .providers import Models

__all__ = [
    "FALLBACK_CONDITIONS",
    "AffinityConfig",
    "CooldownConfig",
    "LatencyConfig",
    "Pattern",
    "RetryConfig",
    "RoutingConfig",
    "RuleConfig",
    "RuleMatch",
    "Strategy",
    "TargetConfig",
    "VirtualModelConfig",
    "check_routing",
]

#: The named conditions ``fallback_on`` accepts besides status codes.
FALLBACK_CONDITIONS = ("4xx", "5xx", "timeout", "connect_error", "overloaded")

#: ``fallback_on`` when not given.
DEFAULT_FALLBACK_ON: tuple[int | str, ...] = (429, "5xx", "timeout", "connect_error", "overloaded")

Strategy = Literal["priority", "weight", "latency"]


def _check_statuses(values: list[int]) -> list[int]:
    for v in values:
        if not 400 <= v <= 599:
            raise ValueError(f"expected HTTP error statuses (400-599); {v} is not one")
    return values


class RetryConfig(_Model):
    """Retries on the same target, before moving to the next one."""

    #: Attempts per target, the first one included (1: no retry on the same target).
    attempts: int = Field(default=1, ge=1, le=10)
    #: Statuses retried on the same target. An ``overloaded_error`` first event counts as 529.
    on_status: list[int] = Field(default_factory=lambda: [429, 500, 502, 503, 504, 529])
    #: Wait before the first retry in milliseconds; doubled for each further retry, jittered.
    backoff_ms: float = Field(default=200.0, ge=0)
    #: Wait what the provider's ``retry-after-ms`` / ``retry-after`` asks instead of the backoff.
    use_retry_after: bool = True
    #: A ``retry-after`` longer than this is not waited for: the next target is tried instead.
    max_retry_after_s: float = Field(default=30.0, ge=0)

    _statuses = field_validator("on_status")(_check_statuses)


class TargetConfig(_Model):
    #: ``account/model``, a model of a configured provider account.
    model: str = Field(min_length=1)
    #: Lower is tried first (``strategy: priority``).
    priority: int = 1
    #: Relative share of first attempts among targets of the same priority.
    weight: float = Field(default=1.0, gt=0)


class AffinityConfig(_Model):
    """Session affinity: calls with the same session header go to the same target."""

    enabled: bool = True
    #: Seconds a session stays pinned after its last call.
    ttl_s: float = Field(default=3600.0, gt=0)


class VirtualModelConfig(_Model):
    """One public model name and the targets that serve it."""

    strategy: Strategy = "priority"
    targets: list[TargetConfig]
    retry: RetryConfig = RetryConfig()
    #: Seconds one attempt may take until its answer is committed: a whole JSON response, or
    #: a stream's first event.
    timeout_s: float = Field(default=600.0, gt=0)
    #: Streams: seconds from an attempt's start to its first event (``ping`` does not count);
    #: None: ``timeout_s``.
    first_token_timeout_s: float | None = Field(default=None, gt=0)
    #: Seconds for all attempts and waits of one call together.
    deadline_s: float = Field(default=600.0, gt=0)
    #: Failures that move on to the next target: statuses, ``4xx``, ``5xx``, ``timeout``,
    #: ``connect_error``, ``overloaded``. Other failures are returned to the client at once.
    fallback_on: list[int | str] = Field(default_factory=lambda: list(DEFAULT_FALLBACK_ON))
    affinity: AffinityConfig = AffinityConfig()

    @field_validator("targets")
    @classmethod
    def _some_targets(cls, v: list[TargetConfig]) -> list[TargetConfig]:
        if not v:
            raise ValueError("expected at least one target")
        seen: set[str] = set()
        for t in v:
            if t.model in seen:
                raise ValueError(f"target {t.model!r} is listed twice")
            seen.add(t.model)
        return v

    @field_validator("fallback_on")
    @classmethod
    def _conditions(cls, v: list[int | str]) -> list[int | str]:
        for item in v:
            if isinstance(item, int) and 400 <= item <= 599:
                continue
            if isinstance(item, str) and item in FALLBACK_CONDITIONS:
                continue
            raise ValueError(
                f"expected statuses (400-599) or {', '.join(FALLBACK_CONDITIONS)}; "
                f"{item!r} is neither"
            )
        return v


#: One value, or any of several; ``*``, ``?`` and ``[...]`` are glob patterns.
Pattern = str | list[str]


class RuleMatch(_Model):
    """What a rule looks at; every key given must match (an empty match matches every call)."""

    #: The gateway key's name (``auth.keys[].name``).
    key: Pattern | None = None
    #: The caller's team.
    team: Pattern | None = None
    #: The model the client asked for.
    model: Pattern | None = None
    #: Fields of the ``x-llmrelay-metadata`` JSON header; values compare as text.
    metadata: dict[str, str | int | float | bool | list[str]] | None = None


class RuleConfig(_Model):
    match: RuleMatch = RuleMatch()
    #: What the call is routed to instead: a virtual model or an ``account/model``.
    model: str = Field(min_length=1)


class CooldownConfig(_Model):
    """A target that keeps failing is skipped for a while, then tried again."""

    #: Consecutive failures (429, 5xx, timeouts, connection errors) that start a cooldown.
    failures: int = Field(default=3, ge=1)
    #: Seconds a target is skipped after ``failures`` failures in a row.
    seconds: float = Field(default=30.0, gt=0)
    #: A 429/503/529 with ``retry-after`` cools the target that long, at most this many seconds.
    max_retry_after_s: float = Field(default=300.0, ge=0)


class LatencyConfig(_Model):
    """What ``strategy: latency`` measures: seconds per output token of recent calls."""

    #: Targets within this factor of the fastest share the traffic; slower ones come after.
    factor: float = Field(default=1.5, ge=1)
    #: Calls remembered per target.
    window_calls: int = Field(default=20, ge=1)
    #: Seconds a measurement counts; a target without one is tried again as if fast.
    window_s: float = Field(default=300.0, gt=0)


class RoutingConfig(_Model):
    #: Checked in order before the model name is looked up; the first that matches wins.
    rules: list[RuleConfig] = Field(default_factory=list)
    #: The request header that names a session (Claude Code sends this one).
    session_header: str = Field(default="X-Claude-Code-Session-Id", min_length=1)
    #: Sessions remembered, least recently used dropped first.
    max_sessions: int = Field(default=100_000, ge=1)
    cooldown: CooldownConfig = CooldownConfig()
    latency: LatencyConfig = LatencyConfig()


def check_routing(
    providers: Mapping[str, Models],
    models: Mapping[str, VirtualModelConfig],
    routing: RoutingConfig,
) -> list[str]:
    """Problems between ``models:``, ``routing:`` and ``providers:``, each as
    ``"<key path>: <problem>"``; empty when there are none."""
    real = {f"{account}/{name}" for account, names in providers.items() for name in names}
    problems: list[str] = []
    for name, vm in models.items():
        account, slash, _ = name.partition("/")
        if not name.strip():
            problems.append(f"models: a model name must not be empty; found {name!r}")
        elif name in real:
            problems.append(
                f"models.{name}: the name is already the model {name!r} of provider account "
                f"{account!r}; pick a name that is not an account/model"
            )
        elif slash and account in providers:
            problems.append(
                f"models.{name}: the name starts with {account + '/'!r} like the models of "
                f"provider account {account!r}; pick another name"
            )
        for i, target in enumerate(vm.targets):
            if target.model in real:
                continue
            what = (
                "is a virtual model; targets must be account/model names"
                if target.model in models
                else f"is not a model of any provider account (known: {_some(real)})"
            )
            problems.append(f"models.{name}.targets[{i}].model: {target.model!r} {what}")
    for i, rule in enumerate(routing.rules):
        if rule.model not in real and rule.model not in models:
            problems.append(
                f"routing.rules[{i}].model: {rule.model!r} is neither a virtual model nor an "
                f"account/model (known: {_some(real | set(models))})"
            )
    return problems


def _some(names: set[str], limit: int = 6) -> str:
    listed = sorted(names)
    more = f", ... {len(listed) - limit} more" if len(listed) > limit else ""
    return ", ".join(listed[:limit]) + more
