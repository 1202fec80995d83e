"""Governance settings: limits, budgets, teams, the admin key, prices, shared state."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from ._base import ConfigModel as _Model

__all__ = [
    "MAX_LIMIT",
    "AdminConfig",
    "BudgetConfig",
    "GovernanceConfig",
    "LimitsConfig",
    "PriceConfig",
    "RedisConfig",
    "TeamConfig",
]


#: The largest rate limit accepted (a quadrillion: beyond any real quota, within every store's
#: integer range).
MAX_LIMIT = 10**15


class LimitsConfig(_Model):
    """Requests (``rp*``) and tokens (``tp*``) per minute, hour and day; unset = unlimited."""

    rpm: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    rph: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    rpd: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    tpm: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    tph: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    tpd: int | None = Field(default=None, ge=1, le=MAX_LIMIT)


class BudgetConfig(_Model):
    """A USD cap per calendar period (UTC; weeks start on Monday). ``audit`` logs a spent
    budget instead of refusing calls."""

    usd: float = Field(gt=0, allow_inf_nan=False)
    period: Literal["day", "week", "month"] = "month"
    mode: Literal["enforce", "audit"] = "enforce"


class TeamConfig(_Model):
    """Limits and a budget shared by every key of the team."""

    limits: LimitsConfig = LimitsConfig()
    budget: BudgetConfig | None = None


class AdminConfig(_Model):
    """The admin API (``/admin/...``) is served only when a key is set."""

    key: str = Field(min_length=16)


class RedisConfig(_Model):
    """Shared counters for rate limits and budgets across instances."""

    url: str
    #: Prefix of every key llmrelay writes, so several deployments can share one Redis.
    prefix: str = "llmrelay:"
    #: Seconds a call waits for a Redis reply (connecting gets at least 1 s); past it the
    #: call goes on with in-process counters (or 503 under ``governance.fail_closed``).
    timeout_s: float = Field(default=0.5, gt=0, le=30)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        try:
            _ = urlsplit(v).port  # what redis-py will parse at start
        except ValueError:
            raise ValueError("expected a redis:// URL with a valid host and port") from None
        return v


class GovernanceConfig(_Model):
    #: Refuse calls (503) instead of falling back to in-process counters when Redis is down,
    #: and refuse a budgeted call whose period's spend was never read when the database
    #: does not answer (fail-open counts it from what this instance knows, with a warning).
    fail_closed: bool = False
    #: Seconds between refreshes of the virtual-key cache from the database: a key created,
    #: revoked or rotated on another instance takes effect here within this time.
    key_refresh_s: float = Field(default=2.0, gt=0, le=300)
    #: Seconds a call waits for the database on the request path (reading a budget's
    #: recorded spend); past it the call goes on with what this instance knows.
    store_timeout_s: float = Field(default=0.25, gt=0, le=60)
    #: Seconds an admin write (``/admin/keys`` create, revoke, rotate) waits for the
    #: database before it answers 503.
    admin_store_timeout_s: float = Field(default=5.0, gt=0, le=300)


class PriceConfig(_Model):
    """USD per million tokens."""

    input: float = Field(ge=0, allow_inf_nan=False)
    output: float = Field(ge=0, allow_inf_nan=False)
    cache_write: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cache_read: float | None = Field(default=None, ge=0, allow_inf_nan=False)
