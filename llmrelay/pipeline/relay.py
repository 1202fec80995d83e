"""Sending a 200 stream to the client as it arrives: the one stream writer every answer uses.

Bytes go out as the provider sends them (a passthrough) or as canonical events are encoded
(a translation). Whatever ends the stream early is sent as the surface's in-stream error
(the headers are gone): a provider failure (:class:`~llmrelay.errors.GatewayError`), the
call's deadline (``timeouts.total_s``), the end of a shutdown's drain
(:class:`~llmrelay.drain.GatewayRestarting`), or a bug (logged once with its traceback, the
row marked 500). A client that went away marks the row 499 and is charged the output it was
delivered (:class:`~llmrelay.core.delivered.Delivered`: the content deltas that went out,
never less than the provider's last count that did), not ``message_start``'s placeholder;
so is a stream that ended early for any of the other reasons once it delivered content
(the row keeps its status and error type; ``error_message`` adds how the output was
counted).
The provider's stream is closed in every case.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import web

from ..core.accumulate import fold_usage
from ..core.delivered import Delivered
from ..core.events import (
    BlockDelta,
    Event,
    InputJSONDelta,
    MessageDelta,
    MessageStop,
    StreamError,
    TextDelta,
    ThinkingDelta,
)
from ..drain import StreamWatch
from ..errors import GatewayError, InternalError, UpstreamProtocolError, UpstreamTimeout
from .call import Call

__all__ = ["OVERHEAD_HEADER", "Tap", "internal_error", "overhead_ms", "relay", "relay_events"]

#: Milliseconds the gateway itself took (to the response headers, for streams).
OVERHEAD_HEADER = "x-llmrelay-overhead-ms"

log = logging.getLogger("llmrelay")


class Tap(Protocol):
    """Reads what accounting needs out of a passthrough stream without changing it (except
    where ``filter`` says)."""

    #: The error type of an ``error`` event the provider sent, if any.
    error_type: str | None
    #: The content deltas that went out, counted in :meth:`observe`.
    delivered: Delivered

    def filter(self, chunk: bytes) -> bytes:
        """The bytes of ``chunk`` to send on (usually all of them), before sending."""
        ...

    def observe(self, chunk: bytes) -> None:
        """Read ``chunk`` after it was sent (usage, errors), so bookkeeping never holds
        bytes back."""
        ...

    def finish(self) -> GatewayError | None:
        """At the end of the provider's stream: an error when it ended incomplete."""
        ...


def overhead_ms(call: Call) -> str:
    """The gateway's own time so far, for :data:`OVERHEAD_HEADER`."""
    return f"{call.overhead_s(time.perf_counter()) * 1000:.2f}"


def internal_error(call: Call, where: str) -> InternalError:
    """Log the exception being handled once, with its traceback, and make the error the
    client gets for it (500 ``api_error`` naming the request id)."""
    rid = call.record.request_id
    log.exception("internal error", extra={"request_id": rid, "where": where})
    call.record.status = 500
    call.record.error_type = "api_error"
    return InternalError(f"the gateway failed to handle this request ({rid})")


async def relay(
    call: Call,
    headers: dict[str, str],
    chunks: AsyncIterator[bytes],
    encode_error: Callable[[GatewayError], bytes],
    *,
    tap: Tap | None = None,
    end: bytes = b"",
    close: Callable[[], object] | None = None,
    capture_bytes: bool = True,
    delivered: Delivered | None = None,
) -> web.StreamResponse:
    """Send ``chunks`` as a 200 stream; ``end`` closes a stream that finished (OpenAI's
    ``data: [DONE]``); ``close`` releases the provider's response (it may be a coroutine
    function). Sets the row's status (200, 499, or 500 for a bug) and ``ttft_s``. A client
    that leaves is charged what ``delivered`` (else the tap's) counted."""
    record = call.record
    if delivered is None and tap is not None:
        delivered = tap.delivered
    if delivered is not None:
        counter = call.parts.tokens.text_counter(record.provider_model)
        if counter is not None:
            delivered.use(*counter)
    # A translation's events go to the capture as events (``_encoded``), not as bytes.
    capture = call.capture if capture_bytes else None
    headers[OVERHEAD_HEADER] = overhead_ms(call)
    resp = web.StreamResponse(status=200, headers=headers)
    try:
        await resp.prepare(call.request)
        call.response = resp
        error: GatewayError | None = None
        watch: StreamWatch | None = None
        try:
            # The call's deadline, which a drain that runs out moves to now (drain.py).
            async with call.parts.drain.deadline(call.deadline) as watch:
                waiting = time.perf_counter()
                async for chunk in chunks:
                    if record.ttft_s is None:
                        now = time.perf_counter()
                        # The wait for the first chunk is the provider's time.
                        call.provider_s += now - waiting
                        record.ttft_s = now - call.started
                    if tap is None:
                        await resp.write(chunk)
                        if capture is not None:
                            capture.chunk(chunk)
                        continue
                    out = tap.filter(chunk)
                    if out:
                        await resp.write(out)
                        if capture is not None:
                            capture.chunk(out)
                    tap.observe(chunk)
                if tap is not None:
                    error = tap.finish()
        except TimeoutError:
            if watch is not None and watch.cut:
                error = call.parts.drain.error()
            else:
                error = UpstreamTimeout(_deadline_message(call))
        except GatewayError as err:
            error = err
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            error = internal_error(call, "stream")
        if error is not None:
            if record.status != 500:
                record.error_type = error.error_type
            record.error_message = error.message
            if delivered is not None and (delivered.deltas or delivered.reported is not None):
                # Cut before its last event: charged what went out (core/delivered.py);
                # one cut before any content keeps the counts it read.
                delivered.settle(call.usage)
                record.error_message += "; " + delivered.note("stream cut")
            await resp.write(encode_error(error))
        elif tap is not None and tap.error_type is not None:
            record.error_type = tap.error_type
        if end:
            # After an error too: OpenAI clients wait for [DONE] to stop reading.
            await resp.write(end)
        if record.status != 500:
            record.status = 200
        await resp.write_eof()
    except ConnectionResetError:
        record.status = 499
        record.error_type = "client_disconnected"
    finally:
        if record.status == 499 and delivered is not None:
            # The client left mid-stream (a reset, or aiohttp cancelled the handler).
            delivered.settle(call.usage)
            record.error_message = delivered.note()
        await _close(close, chunks)
    return resp


def _deadline_message(call: Call) -> str:
    return (
        f"the call took longer than {call.total_s:g}s (timeouts.total_s of provider "
        f"{call.record.provider!r})"
    )


async def _close(close: Callable[[], object] | None, chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
    if close is not None:
        result = close()
        if inspect.isawaitable(result):
            await result


async def relay_events(
    call: Call,
    headers: dict[str, str],
    events: AsyncIterator[Event],
    encode: Callable[[Event], bytes],
    encode_error: Callable[[GatewayError], bytes],
    end: bytes = b"",
) -> web.StreamResponse:
    """Send a canonical event stream in a surface's wire (``encode`` turns one event into
    bytes, maybe none), folding usage and ``error`` events into the row as they pass."""
    delivered = Delivered()
    return await relay(
        call,
        headers,
        _encoded(call, events, encode, delivered),
        encode_error,
        end=end,
        capture_bytes=False,
        delivered=delivered,
    )


async def _encoded(
    call: Call,
    events: AsyncIterator[Event],
    encode: Callable[[Event], bytes],
    delivered: Delivered,
) -> AsyncIterator[bytes]:
    try:
        capture = call.capture
        ended = False
        async for event in events:
            if capture is not None:
                capture.event(event)
            fold_usage(event, call.usage)
            if isinstance(event, StreamError):
                call.record.error_type = event.error_type
                call.record.error_message = event.message
                ended = True
            elif isinstance(event, MessageStop):
                ended = True
            if isinstance(event, MessageDelta):
                delivered.provider_count(event.usage.output_tokens)
            out = encode(event)
            if out:
                yield out
                # Resumed: the relay wrote ``out`` to the client.
                if isinstance(event, BlockDelta):
                    text = _delta_text(event)
                    if text is not None:
                        delivered.delta(text)
        if not ended:
            raise UpstreamProtocolError(
                f"provider {call.record.provider!r} ended the stream before message_stop"
            )
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def _delta_text(event: BlockDelta) -> str | None:
    """The generated text a delta carries (None for a signature or a citation)."""
    d = event.delta
    if isinstance(d, TextDelta):
        return d.text
    if isinstance(d, ThinkingDelta):
        return d.thinking
    if isinstance(d, InputJSONDelta):
        return d.partial_json
    return None
