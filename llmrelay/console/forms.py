"""The console's forms read into the admin API's shapes."""

from __future__ import annotations

from typing import Any

from multidict import MultiDictProxy

from ..policy.virtual_keys import KeySpecError

__all__ = ["key_spec"]


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
