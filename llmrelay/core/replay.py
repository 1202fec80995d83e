"""A whole :class:`Response` as the event stream that would have produced it.

Used when a client asked for a stream and the provider answered with one JSON body.
The inverse of :func:`llmrelay.core.accumulate.accumulate`.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator

from . import wirejson
from .events import (
    BlockDelta,
    BlockStart,
    BlockStop,
    Event,
    InputJSONDelta,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
)
from .types import Block, Response, TextBlock, ThinkingBlock, ToolUseBlock
from .usage import Usage

__all__ = ["aiter_events", "response_events"]


def _skeleton(block: Block) -> Block:
    """The block as ``content_block_start`` carries it: empty text, thinking or input."""
    if isinstance(block, TextBlock):
        text = copy.copy(block)
        text.text = ""
        return text
    if isinstance(block, ThinkingBlock):
        return ThinkingBlock(thinking="", signature="", extra=dict(block.extra))
    if isinstance(block, ToolUseBlock):
        tool = copy.copy(block)
        tool.input = {}
        return tool
    return block


def response_events(r: Response) -> list[Event]:
    """``message_start``, each block as start/delta/stop, ``message_delta``, ``message_stop``."""
    start = copy.deepcopy(r)
    start.content = []
    start.stop_reason = None
    start.stop_sequence = None
    events: list[Event] = [MessageStart(message=start)]
    for i, block in enumerate(r.content):
        events.append(BlockStart(index=i, block=_skeleton(block)))
        if isinstance(block, TextBlock) and block.text:
            events.append(BlockDelta(index=i, delta=TextDelta(text=block.text)))
        elif isinstance(block, ThinkingBlock):
            if block.thinking:
                events.append(BlockDelta(index=i, delta=ThinkingDelta(thinking=block.thinking)))
            if block.signature:
                events.append(BlockDelta(index=i, delta=SignatureDelta(signature=block.signature)))
        elif isinstance(block, ToolUseBlock):
            raw = wirejson.dumps(block.input).decode()
            events.append(BlockDelta(index=i, delta=InputJSONDelta(partial_json=raw)))
        events.append(BlockStop(index=i))
    usage = Usage(
        **{
            k: getattr(r.usage, k)
            for k in (
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            )
        }
    )
    events.append(
        MessageDelta(stop_reason=r.stop_reason, stop_sequence=r.stop_sequence, usage=usage)
    )
    events.append(MessageStop())
    return events


async def aiter_events(events: list[Event]) -> AsyncIterator[Event]:
    """A list of events as an async iterator, the type live streams have."""
    for event in events:
        yield event
