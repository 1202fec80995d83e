"""The canonical stream: typed events, in the order Anthropic's Messages stream sends them.

``message_start`` -> per block (``block_start``, ``block_delta``..., ``block_stop``) ->
``message_delta`` (stop reason, cumulative usage) -> ``message_stop``; ``ping`` anywhere;
``error`` ends a stream that already started. Shapes follow
``anthropic/types/raw_message_stream_event.py`` and ``raw_content_block_delta.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from .types import Block, JSONObject, Response, StopReason
from .usage import Usage

__all__ = [
    "BlockDelta",
    "BlockStart",
    "BlockStop",
    "CitationsDelta",
    "Delta",
    "Event",
    "InputJSONDelta",
    "MessageDelta",
    "MessageStart",
    "MessageStop",
    "Ping",
    "SignatureDelta",
    "StreamError",
    "TextDelta",
    "ThinkingDelta",
]


@dataclass(slots=True, kw_only=True)
class TextDelta:
    text: str
    type: Literal["text_delta"] = "text_delta"


@dataclass(slots=True, kw_only=True)
class InputJSONDelta:
    """A fragment of a tool call's input JSON; fragments concatenate to the whole input."""

    partial_json: str
    type: Literal["input_json_delta"] = "input_json_delta"


@dataclass(slots=True, kw_only=True)
class ThinkingDelta:
    thinking: str
    type: Literal["thinking_delta"] = "thinking_delta"


@dataclass(slots=True, kw_only=True)
class SignatureDelta:
    signature: str
    type: Literal["signature_delta"] = "signature_delta"


@dataclass(slots=True, kw_only=True)
class CitationsDelta:
    citation: JSONObject
    type: Literal["citations_delta"] = "citations_delta"


Delta: TypeAlias = TextDelta | InputJSONDelta | ThinkingDelta | SignatureDelta | CitationsDelta


@dataclass(slots=True, kw_only=True)
class MessageStart:
    """``message`` has empty content, no stop reason, and the usage known so far."""

    message: Response
    type: Literal["message_start"] = "message_start"


@dataclass(slots=True, kw_only=True)
class BlockStart:
    """``block`` is the skeleton: empty text or thinking, a tool_use with ``input`` {}."""

    index: int
    block: Block
    type: Literal["content_block_start"] = "content_block_start"


@dataclass(slots=True, kw_only=True)
class BlockDelta:
    index: int
    delta: Delta
    type: Literal["content_block_delta"] = "content_block_delta"


@dataclass(slots=True, kw_only=True)
class BlockStop:
    index: int
    type: Literal["content_block_stop"] = "content_block_stop"


@dataclass(slots=True, kw_only=True)
class MessageDelta:
    """Usage here is cumulative for the whole message, not an increment."""

    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    type: Literal["message_delta"] = "message_delta"


@dataclass(slots=True, kw_only=True)
class MessageStop:
    type: Literal["message_stop"] = "message_stop"


@dataclass(slots=True, kw_only=True)
class Ping:
    type: Literal["ping"] = "ping"


@dataclass(slots=True, kw_only=True)
class StreamError:
    """An error after the stream started; ``error_type`` as in Anthropic's error table."""

    error_type: str
    message: str
    type: Literal["error"] = "error"


Event: TypeAlias = (
    MessageStart
    | BlockStart
    | BlockDelta
    | BlockStop
    | MessageDelta
    | MessageStop
    | Ping
    | StreamError
)
