"""The console's forms read into the admin API's shapes."""

from __future__ import annotations

from typing import Any

from multidict import MultiDictProxy

from ..policy.virtual_keys import KeySpecError

__all__ = ["edit_spec", "key_spec"]

_LIMITS = ("rpm", "rph", "rpd", "tpm", "tph", "tpd")


def key_spec(form: MultiDictProxy[str | Any]) -> dict[str, Any]:
    """The admin API's key spec from the create form. Raises ``KeySpecError``."""

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    spec: dict[str, Any] = {"name": text("name")}
    if text("team"):
        spec["team"] = text("team")
    if text("models"):
        spec["models"] = [m.strip() for m in text("models").split(",") if m.strip()]
    if text("rpm"):
        if not text("rpm").isdigit():
            raise KeySpecError("requests per minute: expected a whole number")
        spec["rpm"] = int(text("rpm"))
    if text("budget_usd"):
        try:
            spec["budget_usd"] = float(text("budget_usd"))
        except ValueError:
            raise KeySpecError("budget: expected an amount in USD, like 25 or 12.50") from None
        spec["budget_period"] = text("budget_period") or "month"
    if text("expires_in"):
        spec["expires_in"] = text("expires_in")
    return spec


def edit_spec(form: MultiDictProxy[str | Any]) -> dict[str, Any]:
    """The ``PATCH /admin/keys/{id}`` body from the Edit form, which shows every editable
    field: an empty one is removed (no team, every model, unlimited, no budget). Raises
    ``KeySpecError`` naming the field."""

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def names(name: str) -> list[str] | None:
        return [m.strip() for m in text(name).split(",") if m.strip()] or None

    spec: dict[str, Any] = {
        "team": text("team") or None,
        "models": names("models"),
        "allowed_accounts": names("allowed_accounts"),
    }
    for f in _LIMITS:
        if text(f) and not text(f).isdigit():
            raise KeySpecError(f"{f}: expected a whole number (empty: unlimited)")
        spec[f] = int(text(f)) if text(f) else None
    spec["budget_usd"] = None
    if text("budget_usd"):
        try:
            spec["budget_usd"] = float(text("budget_usd"))
        except ValueError:
            raise KeySpecError("budget_usd: expected an amount in USD, like 25 or 12.50") from None
        spec["budget_period"] = text("budget_period") or "month"
        spec["budget_mode"] = text("budget_mode") or "enforce"
    return spec
