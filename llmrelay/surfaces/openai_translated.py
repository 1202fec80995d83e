"""OpenAI surface, provider of another wire (Anthropic, Bedrock, Vertex, mock): decode the
Chat Completions request to canonical, call, encode the answer back as a
``chat.completion`` or ``chat.completion.chunk`` stream. Provider errors come back in
OpenAI's envelope with the provider's status.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from ..codecs import openai as codec
from ..core import wirejson
from ..core.accumulate import fold_usage
from ..core.events import Event, MessageStart
from ..core.replay import aiter_events, response_events
from ..core.types import Request, Response
from ..core.usage import Usage
from ..errors import InvalidRequestError, status_for_error_type
from ..pipeline.answers import EventsAnswer, JSONAnswer
from ..pipeline.surface import AttemptResult
from ..routing.executor import Failure, Success, retry_after_s
from ..routing.gate import MAX_PREAMBLE_EVENTS, aclose, first_event, log_capped, stream_error
from ..routing.table import Route
from ..translation import WireLimits, call_translated
from .openai_stream import DONE, error_chunk

__all__ = ["attempt_translated", "decode_canonical"]

_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
_JSON = {"content-type": "application/json"}


def decode_canonical(body: dict[str, Any], model: str, default_max_tokens: int) -> Request:
    """The client's Chat Completions body as a canonical request for ``model`` (the name the
    client asked for); ``default_max_tokens`` when the client set no output limit.

    Raises:
        InvalidRequestError: it cannot be decoded (400).
    """
    try:
        canonical = codec.decode_request(body)
    except ValueError as err:
        raise InvalidRequestError(str(err)) from None
    canonical.model = model
    if canonical.max_tokens is None:
        canonical.max_tokens = default_max_tokens
    return canonical


async def attempt_translated(
    rid: str,
    body: dict[str, Any],
    canonical: Request,
    route: Route,
    gate: bool,
    limits: WireLimits,
    upstream_headers: list[tuple[str, str]],
) -> AttemptResult:
    """One attempt at a provider of another wire (see ``call.Attempter.attempt``);
    ``upstream_headers`` go on the provider request (``Call.upstream_headers``)."""
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
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
    headers = {**result.headers, "x-request-id": rid, "request-id": rid}
    created = int(time.time())
    if result.response is not None and not request.stream:
        out = codec.encode_response(result.response, model=request.model, created=created)
        answer = JSONAnswer(
            200, wirejson.dumps(out), {**headers, **_JSON}, rid_up, _usage_of(result.response)
        )
        return Success(answer)
    events = result.events
    if events is None:
        assert result.response is not None
        events = aiter_events(response_events(result.response))
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
    encoder = codec.StreamEncoder(
        id="chatcmpl-" + rid.removeprefix("req_"),
        model=request.model,
        created=created,
        include_usage=include_usage,
    )
    return Success(
        EventsAnswer(
            head,
            events,
            {**headers, **_SSE_HEADERS},
            encode=lambda event: b"".join(
                b"data: " + wirejson.dumps(chunk) + b"\n\n" for chunk in encoder.feed(event)
            ),
            encode_error=error_chunk,
            end=DONE,
            upstream_request_id=rid_up,
        )
    )


def _usage_of(response: Response) -> Callable[[Usage], None]:
    def read(usage: Usage) -> None:
        fold_usage(MessageStart(message=response), usage)

    return read
