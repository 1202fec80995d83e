"""What the client surfaces share: which client headers may go upstream, a JSON content
type for bodies the gateway writes, the check that a provider's 200 is JSON, and the
whole-event cut of a relayed stream."""

from __future__ import annotations

from typing import Any

import orjson

from ..core import wirejson
from ..providers.http import mask_secrets
from ..routing.executor import Failure

__all__ = ["WholeEvents", "json_content", "json_object", "not_json"]


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
    # A 200 is not masked as an error body is (read() does its error events): key shapes
    # are, here, in a window longer than the excerpt so no key is cut before its mask.
    start = mask_secrets(data[:200])[:60].decode("utf-8", "replace")
    what = "a stream request with" if stream else "with"
    return Failure(
        502,
        "api_error",
        f"provider {account!r} answered {what} a 200 that is not "
        f"{'an event stream' if stream else 'a JSON object'} (body starts {start!r})",
        upstream_request_id=upstream_request_id,
    )


class WholeEvents:
    """Cuts a relayed SSE stream after its last complete event: :meth:`take` returns the
    bytes of every event that a chunk completes, byte for byte, and holds the start of an
    event still incomplete until its blank line arrives.

    So a stream that ends early (the provider dropped it, an event grew past
    ``server.max_sse_event_mb``, the call's deadline came) never leaves the client half an
    event, which its SDK would try to parse when the gateway's error event follows; SSE
    clients act on whole events only, so holding a partial one back delays nothing they
    use. Event ends are the decoder's (``core/sse.py``): a line end (``\\n``, ``\\r\\n``)
    followed by an empty line.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = bytearray()

    def take(self, chunk: bytes) -> bytes:
        held = self._held
        if not held and chunk.endswith((b"\n\n", b"\n\r\n")):
            return chunk  # whole events, the usual chunk: no copy
        # An event end may start in the last bytes held; the held bytes hold none.
        tail = bytes(held[-2:])
        window = tail + chunk if tail else chunk
        lf, crlf = window.rfind(b"\n\n"), window.rfind(b"\n\r\n")
        end = max(lf + 2 if lf >= 0 else -1, crlf + 3 if crlf >= 0 else -1)
        if end < 0:
            held += chunk
            return b""
        cut = end - len(tail)
        out = bytes(held) + chunk[:cut] if held else chunk[:cut]
        self._held = bytearray(chunk[cut:])
        return out
