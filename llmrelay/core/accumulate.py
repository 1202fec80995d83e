"""Fold a canonical event stream into the whole :class:`Response`.

The same rules as the Anthropic SDK's ``accumulate_event``
(``anthropic/lib/streaming/_messages.py``): deltas append to the block at their index,
tool input JSON is parsed when its block stops, ``message_delta`` usage replaces the counts
it carries (they are cumulative).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TypeVar

import orjson

from .events import (
    BlockDelta,
    BlockStart,
    BlockStop,
    CitationsDelta,
    Event,
    InputJSONDelta,
    MessageDelta,
    MessageStart,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
)
from .types import Response, TextBlock, ThinkingBlock, ToolUseBlock
from .usage import Usage

__all__ = ["Accumulator", "StreamFailed", "accumulate", "fold_usage"]

_T = TypeVar("_T")


class StreamFailed(Exception):
    """The stream carried an ``error`` event; ``error_type`` and ``message`` say which."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class Accumulator:
    """Feed events in order; ``response`` is the message so far. The message and blocks of
    ``message_start`` and ``content_block_start`` are copied before they are filled in,
    unless ``owned`` says the events are the caller's to give up (decoded for this fold
    alone), which spares the copies."""

    def __init__(self, *, owned: bool = False) -> None:
        self.response: Response | None = None
        self._json: dict[int, list[str]] = {}
        self._copy = _keep if owned else copy.deepcopy

    def feed(self, event: Event) -> None:
        """Apply one event.

        Raises:
            StreamFailed: on an ``error`` event.
            ValueError: an event before ``message_start``, or a tool input that is not JSON.
        """
        if isinstance(event, MessageStart):
            self.response = self._copy(event.message)
            return
        if isinstance(event, StreamError):
            raise StreamFailed(event.error_type, event.message)
        r = self.response
        if r is None:
            if event.type == "ping":
                return
            raise ValueError(f"{event.type} before message_start")
        if isinstance(event, BlockStart):
            r.content.append(self._copy(event.block))
        elif isinstance(event, BlockDelta):
            self._delta(r, event)
        elif isinstance(event, BlockStop):
            parts = self._json.pop(event.index, None)
            block = r.content[event.index]
            if parts is not None and isinstance(block, ToolUseBlock):
                raw = "".join(parts)
                block.input = orjson.loads(raw) if raw else {}
        elif isinstance(event, MessageDelta):
            r.stop_reason = event.stop_reason
            r.stop_sequence = event.stop_sequence
            u = event.usage
            r.usage.output_tokens = u.output_tokens
            # Input and cache counts ride along only when the provider sends them (non-zero).
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                if getattr(u, name):
                    setattr(r.usage, name, getattr(u, name))

    def _delta(self, r: Response, event: BlockDelta) -> None:
        block = r.content[event.index]
        d = event.delta
        if isinstance(d, TextDelta) and isinstance(block, TextBlock):
            block.text += d.text
        elif isinstance(d, InputJSONDelta) and isinstance(block, ToolUseBlock):
            self._json.setdefault(event.index, []).append(d.partial_json)
        elif isinstance(d, ThinkingDelta) and isinstance(block, ThinkingBlock):
            block.thinking += d.thinking
        elif isinstance(d, SignatureDelta) and isinstance(block, ThinkingBlock):
            block.signature = d.signature
        elif isinstance(d, CitationsDelta) and isinstance(block, TextBlock):
            block.citations = [*(block.citations or []), d.citation]
        else:
            raise ValueError(f"{d.type} does not apply to a {block.type} block")


def _keep(value: _T) -> _T:
    return value


def accumulate(events: Iterable[Event]) -> Response:
    """The whole response a finished event stream describes.

    Raises:
        StreamFailed: the stream carried an ``error`` event.
        ValueError: the stream is out of order or never started.
    """
    acc = Accumulator()
    for event in events:
        acc.feed(event)
    if acc.response is None:
        raise ValueError("stream had no message_start")
    return acc.response


def fold_usage(event: Event, usage: Usage) -> None:
    """Fold one event's usage into ``usage``: ``message_start`` sets every count,
    ``message_delta`` (cumulative) replaces the output count and the others it carries."""
    if isinstance(event, MessageStart):
        u = event.message.usage
        usage.input_tokens = u.input_tokens
        usage.output_tokens = u.output_tokens
        usage.cache_creation_input_tokens = u.cache_creation_input_tokens
        usage.cache_read_input_tokens = u.cache_read_input_tokens
    elif isinstance(event, MessageDelta):
        u = event.usage
        usage.output_tokens = u.output_tokens
        if u.input_tokens:
            usage.input_tokens = u.input_tokens
        if u.cache_creation_input_tokens:
            usage.cache_creation_input_tokens = u.cache_creation_input_tokens
        if u.cache_read_input_tokens:
            usage.cache_read_input_tokens = u.cache_read_input_tokens
