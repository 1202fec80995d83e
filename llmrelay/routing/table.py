"""Public model names (``account/model``) -> the provider and its model id."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..config import Models, model_entry
from ..providers.base import Provider

__all__ = ["Route", "RouteTable"]


@dataclass(slots=True, frozen=True)
class Route:
    """``public_model`` is what clients send (``anthropic/claude-3-5``); ``provider_model`` is
    the id the provider knows (``claude-3-5-sonnet-20241022``)."""

    public_model: str
    provider: Provider
    provider_model: str
    #: Requests asking for more output tokens are lowered to this (None: no cap).
    max_output_tokens: int | None = None
    #: Seconds a whole call served by this route may take (the provider's
    #: ``timeouts.total_s``).
    total_s: float = 600.0

    @property
    def account(self) -> str:
        return self.provider.account

    def cap_body(self, body: dict[str, object], *fields: str) -> None:
        """Lower the output-token ``fields`` of a request body to ``max_output_tokens``."""
        cap = self.max_output_tokens
        if cap is None:
            return
        for name in fields:
            value = body.get(name)
            if isinstance(value, int) and value > cap:
                body[name] = cap


class RouteTable:
    """An immutable lookup built once from the config; O(1) per request."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        models: Mapping[str, Models],
        total_s: Mapping[str, float] | None = None,
    ):
        """``total_s``: each account's whole-call deadline in seconds (default 600)."""
        self._routes: dict[str, Route] = {}
        totals = total_s or {}
        for account, names in models.items():
            for public, entry in names.items():
                name = f"{account}/{public}"
                m = model_entry(entry)
                self._routes[name] = Route(
                    name,
                    providers[account],
                    m.id,
                    m.max_output_tokens,
                    totals.get(account, 600.0),
                )

    def get(self, public_model: str) -> Route | None:
        return self._routes.get(public_model)

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes.values())

    def __len__(self) -> int:
        return len(self._routes)
