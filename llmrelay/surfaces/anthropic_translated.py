"""Anthropic surface, provider of another wire: decode to canonical, call, encode back.

The client sees exactly the Anthropic wire: a ``Message`` JSON, or an SSE stream with
``event:`` lines that the Anthropic SDK accepts (``message_start`` first, one start/stop
pair per block with increasing indexes, cumulative usage in ``message_delta``). Provider
errors come back in Anthropic's envelope with the provider's status. A streamed
``message_start`` carries the gateway's estimate of the input tokens when the provider
reports none before its end (``_with_input_estimate``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from ..codecs import anthropic as codec
from ..core import wirejson
from ..core.accumulate import fold_usage
from ..core.events import Event, MessageStart
from ..core.replay import aiter_events, response_events
from ..core.sse import encode_event
from ..core.types import Request, Response
from ..core.usage import Usage
from ..errors import InvalidRequestError, status_for_error_type
from ..pipeline.answers import EventsAnswer, JSONAnswer
from ..pipeline.surface import AttemptResult
from ..providers.base import Endpoint
from ..routing.executor import Failure, Success, retry_after_s
from ..routing.gate import MAX_PREAMBLE_EVENTS, aclose, first_event, log_capped, stream_error
from ..routing.table import Route
from ..tokens import TokenCounter, estimate_tokens
from ..translation import WireLimits, call_translated, codec_for
from .anthropic_stream import error_event

__all__ = ["attempt_translated", "decode_canonical"]

_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
_JSON = {"content-type": "application/json"}


def decode_canonical(body: dict[str, Any]) -> Request:
    """The client's Anthropic body as a canonical request.

    Raises:
        InvalidRequestError: it cannot be decoded (400).
    """
    try:
        return codec.decode_request(body)
    except codec.CodecError as err:
        raise InvalidRequestError(str(err)) from None


async def attempt_translated(
    tokens: TokenCounter,
    rid: str,
    endpoint: Endpoint,
    body: dict[str, Any],
    canonical: Request,
    route: Route,
    gate: bool,
    limits: WireLimits,
    upstream_headers: list[tuple[str, str]],
) -> AttemptResult:
    """One attempt at a provider of another wire (see ``call.Attempter.attempt``);
    ``upstream_headers`` go on the provider request (``Call.upstream_headers``)."""
    if endpoint == "count_tokens":
        return Success(await _count_tokens(tokens, body, canonical, route, rid))
    # call_translated lowers max_tokens in place: each attempt starts from the client's request.
    request = dataclasses.replace(canonical) if gate else canonical
    result = await call_translated(
        route.provider,
        request,
        route.provider_model,
        route.max_output_tokens,
        limits=limits,
        upstream_headers=upstream_headers,
    )
    rid_up = result.upstream_request_id
    if result.error is not None:
        error_type, message = result.error
        return Failure(
            result.status,
            error_type,
            message,
            retry_after_s=retry_after_s(result.headers),
            headers=result.headers,
            upstream_request_id=rid_up,
        )
    headers = {**result.headers, "request-id": rid}
    if result.response is not None and not request.stream:
        data = wirejson.dumps(codec.encode_response(result.response))
        return Success(
            JSONAnswer(200, data, {**headers, **_JSON}, rid_up, _usage_of(result.response))
        )
    events = result.events
    if events is None:
        assert result.response is not None
        events = aiter_events(response_events(result.response))
    else:
        events = _with_input_estimate(events, body)
    head: list[Event] = []
    if gate:
        try:
            held = await first_event(events)
        except BaseException:
            await aclose(events)
            raise
        head = held.head
        if held.capped:
            log_capped(route.account, f"{MAX_PREAMBLE_EVENTS} events")
        error = stream_error(held)
        if error is not None:
            await aclose(events)
            return Failure(
                status_for_error_type(error[0]), error[0], error[1], upstream_request_id=rid_up
            )
    return Success(
        EventsAnswer(
            head,
            events,
            {**headers, **_SSE_HEADERS},
            encode=lambda event: encode_event(event.type, codec.encode_event(event)),
            encode_error=error_event,
            upstream_request_id=rid_up,
        )
    )


async def _with_input_estimate(
    events: AsyncIterator[Event], body: dict[str, Any]
) -> AsyncIterator[Event]:
    """``events`` with ``message_start.usage.input_tokens`` set to the gateway's estimate
    when the provider left it 0: an OpenAI-wire stream reports its usage only in its last
    chunk, and clients (Claude Code) read the input count from ``message_start`` for the
    context size. The estimate is :func:`~llmrelay.tokens.estimate_tokens` of the client's
    ``body`` (the upper-leaning estimate ``count_tokens`` answers with when no tokenizer
    applies), made only then: it approximates the final count, which the last
    ``message_delta.usage.input_tokens`` carries and the usage row settles to."""
    try:
        async for event in events:
            if isinstance(event, MessageStart) and event.message.usage.input_tokens == 0:
                event.message.usage.input_tokens = estimate_tokens(body)
            yield event
    finally:
        await aclose(events)


def _usage_of(response: Response) -> Callable[[Usage], None]:
    def read(usage: Usage) -> None:
        fold_usage(MessageStart(message=response), usage)

    return read


async def _count_tokens(
    counter: TokenCounter, body: dict[str, Any], canonical: Request, route: Route, rid: str
) -> JSONAnswer:
    """Counted with the provider model's tokenizer where one is known, else estimated."""
    counted = None
    if route.provider.wire == "openai":
        canonical = dataclasses.replace(canonical, max_tokens=canonical.max_tokens or 1)
        try:
            openai_body = codec_for("openai").encode_request(canonical, route.provider_model)
        except ValueError:
            openai_body = None
        if openai_body is not None:
            counted = await counter.count(openai_body, route.provider_model)
    if counted is None:
        tokens, how = estimate_tokens(body), "estimate"
    else:
        tokens, how = counted[0], f"tiktoken:{counted[1]}"
    headers = {"request-id": rid, "x-llmrelay-token-count": how, **_JSON}
    return JSONAnswer(200, orjson.dumps({"input_tokens": tokens}), headers)
