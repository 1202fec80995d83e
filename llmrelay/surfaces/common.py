"""What the client surfaces share: which client headers may go upstream, a JSON content
type for bodies the gateway writes, and the check that a provider's 200 is JSON."""

from __future__ import annotations

from typing import Any

import orjson

from ..core import wirejson
from ..routing.executor import Failure

__all__ = ["json_content", "json_object", "not_json"]


def json_content(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with ``content-type: application/json`` (any other content type dropped)."""
    out = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    out["content-type"] = "application/json"
    return out


def json_object(data: bytes) -> dict[str, Any] | None:
    """A provider body's JSON object, or None when it is not one (orjson first; the exact
    parser for what orjson refuses, such as lone surrogates)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            value = wirejson.loads(data)
        except wirejson.InvalidJSON:
            return None
    return value if isinstance(value, dict) else None


def not_json(account: str, data: bytes, stream: bool, upstream_request_id: str | None) -> Failure:
    """A provider's 200 that is neither the JSON object nor the stream its wire promises:
    a 502 that falls back like one. The message shows the body's first bytes, bounded."""
    start = data[:60].decode("utf-8", "replace")
    what = "a stream request with" if stream else "with"
    return Failure(
        502,
        "api_error",
        f"provider {account!r} answered {what} a 200 that is not "
        f"{'an event stream' if stream else 'a JSON object'} (body starts {start!r})",
        upstream_request_id=upstream_request_id,
    )
