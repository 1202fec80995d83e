"""Making virtual keys: ids, secrets, durations, and their JSON view. Used by the admin API
and by ``llmrelay keys``; both write through the :class:`~llmrelay.stores.keys.KeyStore`.

A secret is ``sk-llmrelay-`` followed by 43 URL-safe characters (256 random bits); it is
shown once and stored only as its SHA-256 digest.

A virtual key's name is unique among keys that are not revoked and never repeats a key of
the config file (:func:`check_name`; the store enforces the first part race-free, see
:mod:`llmrelay.stores.keys`). :func:`name_clashes` finds keys that break the rule in a
database written before it.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, cast

from ..config.governance import MAX_LIMIT
from ..stores.keys import (
    BudgetMode,
    BudgetPeriod,
    BudgetSpec,
    KeyEdit,
    KeyNameTaken,
    KeySecret,
    Limits,
    VirtualKey,
)
from .auth import digest

__all__ = [
    "EDITABLE",
    "MAX_BUDGET_USD",
    "MAX_MODELS",
    "MAX_NAME_CHARS",
    "MAX_TEAM_CHARS",
    "KeySpecError",
    "check_models",
    "check_name",
    "key_edit_from_spec",
    "key_json",
    "name_clashes",
    "new_secret",
    "parse_duration",
    "virtual_key_from_spec",
]

#: 9999-12-31T23:59:59Z: later expiry times are refused (and cannot be printed).
_LAST_TIME = 253402300799.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LIMIT_FIELDS = ("rpm", "rph", "rpd", "tpm", "tph", "tpd")
#: Longest key name and team, in characters (the console's form says the same).
MAX_NAME_CHARS = 128
MAX_TEAM_CHARS = 128
#: Largest budget, in US dollars (larger is a typo, and 1e308 would overflow sums).
MAX_BUDGET_USD = 1e9
#: Most model names one key may list, and the longest name, in characters.
MAX_MODELS = 100
_MAX_MODEL_CHARS = 256


class KeySpecError(ValueError):
    """A key specification that cannot be used; the message names the field."""


def parse_duration(text: str) -> float:
    """Seconds for ``90s``, ``15m``, ``24h``, ``30d``, ``2w``.

    Raises:
        KeySpecError: anything else.
    """
    m = _DURATION.match(text)
    if m is None:
        raise KeySpecError(f"expected a duration such as 30d, 24h or 15m, got {text!r}")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > 100 * 365 * 86400:
        raise KeySpecError(f"{text!r}: a duration of at most 100 years")
    return seconds


def new_secret(key_id: str, expires_at: float | None = None) -> tuple[str, KeySecret]:
    """A fresh secret and the row that stores its digest."""
    secret = "sk-llmrelay-" + secrets.token_urlsafe(32)
    return secret, KeySecret(digest(secret), key_id, expires_at)


def virtual_key_from_spec(spec: Mapping[str, Any], now: float | None = None) -> VirtualKey:
    """A new key from a JSON-like spec: ``{"name", "team"?, "models"?: [..],
    "allowed_accounts"?: [..] (provider accounts the passthrough may reach), "rpm"? ...,
    "budget_usd"?, "budget_period"? (day|week|month), "budget_mode"? (enforce|audit),
    "expires_in"? ("30d") | "expires_at"? (Unix seconds)}``. Limits may also be nested
    as ``"limits": {"rpm": ...}``.

    Raises:
        KeySpecError: a missing name, an unknown field, or a value of the wrong shape.
    """
    now = time.time() if now is None else now
    known = {
        "name",
        "team",
        "models",
        "limits",
        "budget_usd",
        "budget_period",
        "budget_mode",
        "expires_in",
        "expires_at",
        "allowed_accounts",
        *_LIMIT_FIELDS,
    }
    unknown = sorted(set(spec) - known)
    if unknown:
        raise KeySpecError(
            f"unknown field(s): {', '.join(unknown)}; expected some of {sorted(known)}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise KeySpecError("name: expected a non-empty string of printable characters")
    if len(name.strip()) > MAX_NAME_CHARS:
        raise KeySpecError(f"name: at most {MAX_NAME_CHARS} characters, got {len(name.strip())}")
    team = _team(spec.get("team"))
    models = _models(spec.get("models") or [])
    accounts = _accounts(spec.get("allowed_accounts"))
    limit_values = _limit_values(spec)
    budget = _budget(spec)
    expires_at = spec.get("expires_at")
    if spec.get("expires_in") is not None:
        if expires_at is not None:
            raise KeySpecError("expires_in and expires_at: give one of them")
        expires_at = now + parse_duration(str(spec["expires_in"]))
    if expires_at is not None and (
        not isinstance(expires_at, int | float)
        or isinstance(expires_at, bool)
        or not now < expires_at < _LAST_TIME
    ):
        raise KeySpecError("expires_at: expected a time in the future, in Unix seconds")
    return VirtualKey(
        id="vk_" + secrets.token_hex(8),
        name=name.strip(),
        team=team,
        models=models,
        limits=Limits(**limit_values),
        budget=budget,
        created_at=now,
        expires_at=float(expires_at) if expires_at is not None else None,
        allowed_accounts=accounts,
    )


# Each field's check, shared by create (virtual_key_from_spec) and edit (key_edit.py).


def _team(team: Any) -> str | None:
    if team is not None and (not isinstance(team, str) or not team or not team.isprintable()):
        raise KeySpecError("team: expected a non-empty string of printable characters")
    if team is not None and len(team) > MAX_TEAM_CHARS:
        raise KeySpecError(f"team: at most {MAX_TEAM_CHARS} characters, got {len(team)}")
    return team


def _models(models: Any) -> tuple[str, ...]:
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise KeySpecError("models: expected a list of model names")
    if len(models) > MAX_MODELS:
        raise KeySpecError(f"models: at most {MAX_MODELS} names, got {len(models)}")
    if any(len(m) > _MAX_MODEL_CHARS for m in models):
        raise KeySpecError(f"models: a model name is at most {_MAX_MODEL_CHARS} characters")
    return tuple(models)


def check_models(models: Iterable[str], routable: Callable[[str], bool]) -> None:
    """Refuse a key's ``models`` that name a model the gateway does not route (an
    ``account/model``, a virtual model or a name a routing rule covers:
    :func:`llmrelay.routing.names.is_routable`).

    Raises:
        KeySpecError: naming the first unroutable model (at most 200 characters of it).
    """
    for m in models:
        if not routable(m):
            raise KeySpecError(
                f"models: {m[:200]!r} is not a model this gateway routes (an account/model"
                " of providers:, a virtual model of models:, or a name a routing rule covers)"
            )


def _accounts(accounts: Any) -> tuple[str, ...] | None:
    if isinstance(accounts, str):
        accounts = [a.strip() for a in accounts.split(",") if a.strip()]
    if accounts is not None and (
        not isinstance(accounts, list) or not all(isinstance(a, str) and a for a in accounts)
    ):
        raise KeySpecError("allowed_accounts: expected a list of provider account names")
    return tuple(accounts) if accounts is not None else None


def _limit_values(spec: Mapping[str, Any]) -> dict[str, int | None]:
    """The limits given at the top level or nested under ``limits`` (a value may be None)."""
    nested = spec.get("limits") or {}
    if not isinstance(nested, Mapping):
        raise KeySpecError('limits: expected an object such as {"rpm": 60}')
    limit_values = dict(nested)
    for f in _LIMIT_FIELDS:
        if spec.get(f) is not None:
            if nested.get(f) is not None:
                raise KeySpecError(f"{f}: given both at the top level and in limits")
            limit_values[f] = spec[f]
    for f, v in limit_values.items():
        _check_limit(f, v)
    return limit_values


def _check_limit(f: str, v: Any) -> None:
    if f not in _LIMIT_FIELDS:
        raise KeySpecError(f"limits.{f}: unknown limit; expected one of {list(_LIMIT_FIELDS)}")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_LIMIT):
        raise KeySpecError(f"{f}: expected a positive integer up to {MAX_LIMIT:.0e}")


def _budget(spec: Mapping[str, Any]) -> BudgetSpec | None:
    if spec.get("budget_usd") is not None:
        usd = spec["budget_usd"]
        if (
            not isinstance(usd, int | float)
            or isinstance(usd, bool)
            or not 0 < usd <= MAX_BUDGET_USD  # also refuses nan and inf
            or not math.isfinite(usd)
        ):
            raise KeySpecError(
                f"budget_usd: expected a positive number of US dollars up to {MAX_BUDGET_USD:.0e}"
            )
        period = spec.get("budget_period") or "month"
        if period not in ("day", "week", "month"):
            raise KeySpecError("budget_period: expected day, week or month")
        mode = spec.get("budget_mode") or "enforce"
        if mode not in ("enforce", "audit"):
            raise KeySpecError("budget_mode: expected enforce or audit")
        return BudgetSpec(float(usd), cast(BudgetPeriod, period), cast(BudgetMode, mode))
    if spec.get("budget_period") is not None or spec.get("budget_mode") is not None:
        raise KeySpecError("budget_period/budget_mode need budget_usd")
    return None


#: What ``PATCH /admin/keys/{id}`` may change (docs/admin-api.md).
EDITABLE = (
    "team",
    "models",
    "allowed_accounts",
    "limits",
    *_LIMIT_FIELDS,
    "budget_usd",
    "budget_period",
    "budget_mode",
)
_FIXED = {
    "name": "it names the key in usage reports and routing rules",
    "id": "it identifies the key",
    "expires_in": "a key's lifetime is set when it is made",
    "expires_at": "a key's lifetime is set when it is made",
}


def key_edit_from_spec(spec: Mapping[str, Any]) -> KeyEdit:
    """An edit from a JSON-like spec with some of :data:`EDITABLE`, each checked as
    :func:`virtual_key_from_spec` checks it. A field given as ``null`` is removed: ``team``
    (no team), ``models`` (every model; ``[]`` too), ``allowed_accounts`` (those of
    ``models``), a limit (unlimited; ``"limits": null`` removes them all), ``budget_usd``
    (no budget). Limits not named stay as they are; ``budget_usd`` replaces the whole
    budget (``budget_period`` and ``budget_mode`` default to month and enforce).

    Raises:
        KeySpecError: an empty edit, a field that is not editable or unknown, or a value of
            the wrong shape; the message names the field.
    """
    for name, why in _FIXED.items():
        if name in spec:
            raise KeySpecError(f"{name}: not editable ({why}); create a new key instead")
    unknown = sorted(set(spec) - set(EDITABLE))
    if unknown:
        raise KeySpecError(
            f"unknown field(s): {', '.join(unknown)}; expected some of {list(EDITABLE)}"
        )
    if not spec:
        raise KeySpecError(f"nothing to change: give some of {list(EDITABLE)}")
    edit: dict[str, Any] = {}
    if "team" in spec:
        edit["team"] = _team(spec["team"])
    if "models" in spec:
        edit["models"] = _models(spec["models"] or [])
    if "allowed_accounts" in spec:
        edit["allowed_accounts"] = _accounts(spec["allowed_accounts"])
    given: dict[str, Any] = {}
    clear: set[str] = set()
    nested = spec.get("limits", {})
    if nested is None:
        clear.update(_LIMIT_FIELDS)
        nested = {}
    if not isinstance(nested, Mapping):
        raise KeySpecError('limits: expected an object such as {"rpm": 60}')
    for f, v in [*nested.items(), *((f, spec[f]) for f in _LIMIT_FIELDS if f in spec)]:
        if f in given or (f in clear and f in nested):
            raise KeySpecError(f"{f}: given both at the top level and in limits")
        _check_limit(f, v)
        if v is None:
            clear.add(f)
        else:
            given[f] = v
            clear.discard(f)
    edit["limits"] = Limits(**given)
    edit["clear_limits"] = frozenset(clear)
    if "budget_usd" in spec and spec["budget_usd"] is None:
        if spec.get("budget_period") is not None or spec.get("budget_mode") is not None:
            raise KeySpecError("budget_period/budget_mode need budget_usd")
        edit["budget"] = None
    elif any(f in spec for f in ("budget_usd", "budget_period", "budget_mode")):
        edit["budget"] = _budget(spec)
    return KeyEdit(**edit)


def check_name(key: VirtualKey, config_names: Collection[str]) -> None:
    """Raises :class:`~llmrelay.stores.keys.KeyNameTaken` if ``key``'s name is a config-file
    key's (``config_names``). Clashes between virtual keys are the store's to find."""
    if key.name in config_names:
        raise KeyNameTaken(key.name, None)


def name_clashes(keys: Iterable[VirtualKey], config_names: Collection[str]) -> list[str]:
    """One line per name that more than one key uses: virtual keys that are not revoked
    sharing a name, or one named like a key of the config file (``config_names``)."""
    by_name: dict[str, list[str]] = {}
    for k in keys:
        if k.revoked_at is None:
            by_name.setdefault(k.name, []).append(k.id)
    problems: list[str] = []
    for name, ids in sorted(by_name.items()):
        if name in config_names:
            problems.append(
                f"virtual key{'s' if len(ids) > 1 else ''} {', '.join(ids)} named {name!r}"
                " like a key of the config file: usage reports and routing rules merge them;"
                " revoke the virtual key and create it under another name"
            )
        elif len(ids) > 1:
            problems.append(
                f"{len(ids)} virtual keys are named {name!r} ({', '.join(ids)}): usage reports"
                " and routing rules merge them; revoke all but one (llmrelay keys revoke ID)"
                " and create the others under new names"
            )
    return problems


def key_json(key: VirtualKey, now: float | None = None) -> dict[str, Any]:
    """A key as the admin API and ``llmrelay keys list --json`` show it (never a secret)."""
    now = time.time() if now is None else now
    if key.revoked_at is not None:
        status = "revoked"
    elif key.expires_at is not None and now >= key.expires_at:
        status = "expired"
    else:
        status = "active"
    limits = {f: getattr(key.limits, f) for f in _LIMIT_FIELDS if getattr(key.limits, f)}
    return {
        "id": key.id,
        "name": key.name,
        "team": key.team,
        "models": list(key.models) or None,
        "allowed_accounts": (
            list(key.allowed_accounts) if key.allowed_accounts is not None else None
        ),
        "limits": limits,
        "budget": (
            {"usd": key.budget.usd, "period": key.budget.period, "mode": key.budget.mode}
            if key.budget is not None
            else None
        ),
        "status": status,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    }
