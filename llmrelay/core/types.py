"""The canonical model: one provider-neutral request, response and content-block shape.

Shaped like Anthropic's Messages API (``anthropic/types/message_create_params.py``,
``content_block.py``), which is the superset the gateway translates through: thinking with
signatures, redacted thinking, ``cache_control`` on any block, citations. Every request
and block keeps an ``extra`` mapping, so fields this code does not know survive a round
trip. Surfaces decode into these types; provider codecs encode from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from .usage import Usage

__all__ = [
    "JSON",
    "Block",
    "DocumentBlock",
    "ImageBlock",
    "JSONObject",
    "Message",
    "OpaqueBlock",
    "RedactedThinkingBlock",
    "Request",
    "Response",
    "Role",
    "StopReason",
    "TextBlock",
    "ThinkingBlock",
    "ThinkingConfig",
    "Tool",
    "ToolChoice",
    "ToolResultBlock",
    "ToolUseBlock",
]

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"
JSONObject: TypeAlias = "dict[str, JSON]"

#: ``anthropic/types/stop_reason.py``.
StopReason = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
]
Role = Literal["user", "assistant", "system"]


@dataclass(slots=True, kw_only=True)
class TextBlock:
    text: str
    cache_control: JSONObject | None = None
    citations: list[JSONObject] | None = None
    extra: JSONObject = field(default_factory=dict)
    type: Literal["text"] = "text"


@dataclass(slots=True, kw_only=True)
class ImageBlock:
    """``source`` as Anthropic spells it: ``{"type": "base64", "media_type", "data"}``,
    ``{"type": "url", "url"}`` or ``{"type": "file", "file_id"}``."""

    source: JSONObject
    cache_control: JSONObject | None = None
    extra: JSONObject = field(default_factory=dict)
    type: Literal["image"] = "image"


@dataclass(slots=True, kw_only=True)
class DocumentBlock:
    """A document (PDF, plain text, content blocks); ``source`` as Anthropic spells it."""

    source: JSONObject
    cache_control: JSONObject | None = None
    extra: JSONObject = field(default_factory=dict)
    type: Literal["document"] = "document"


@dataclass(slots=True, kw_only=True)
class ToolUseBlock:
    id: str
    name: str
    input: JSONObject
    cache_control: JSONObject | None = None
    extra: JSONObject = field(default_factory=dict)
    type: Literal["tool_use"] = "tool_use"


@dataclass(slots=True, kw_only=True)
class ToolResultBlock:
    tool_use_id: str
    content: list[Block] = field(default_factory=list)
    is_error: bool | None = None
    cache_control: JSONObject | None = None
    extra: JSONObject = field(default_factory=dict)
    type: Literal["tool_result"] = "tool_result"


@dataclass(slots=True, kw_only=True)
class ThinkingBlock:
    """Model reasoning; ``signature`` must go back to the provider unchanged."""

    thinking: str
    signature: str = ""
    extra: JSONObject = field(default_factory=dict)
    type: Literal["thinking"] = "thinking"


@dataclass(slots=True, kw_only=True)
class RedactedThinkingBlock:
    data: str
    extra: JSONObject = field(default_factory=dict)
    type: Literal["redacted_thinking"] = "redacted_thinking"


@dataclass(slots=True, kw_only=True)
class OpaqueBlock:
    """A block of a type this code does not model (server tool results, container uploads,
    search results...): kept verbatim as its JSON object, ``type`` included."""

    raw: JSONObject

    @property
    def type(self) -> str:
        return str(self.raw.get("type"))


Block: TypeAlias = (
    "TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock"
    " | ThinkingBlock | RedactedThinkingBlock | OpaqueBlock"
)


@dataclass(slots=True, kw_only=True)
class Message:
    """One turn. ``system`` turns only come from clients that put them in ``messages``."""

    role: Role
    content: list[Block]
    extra: JSONObject = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Tool:
    """A client tool (``type`` None or ``"custom"``) or a provider's server tool (any other
    ``type``, e.g. ``web_search_20250305``, whose settings stay in ``extra``)."""

    name: str
    description: str | None = None
    input_schema: JSONObject | None = None
    type: str | None = None
    cache_control: JSONObject | None = None
    extra: JSONObject = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class ToolChoice:
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


@dataclass(slots=True, kw_only=True)
class ThinkingConfig:
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None
    extra: JSONObject = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Request:
    """A model call. Counts are tokens; ``temperature``/``top_p`` as the provider takes them.

    ``output_schema`` is a JSON Schema the answer must follow (OpenAI's ``response_format``
    ``json_schema``, Anthropic's ``output_config.format``), named ``output_schema_name``.
    """

    model: str
    messages: list[Message]
    max_tokens: int | None = None
    system: list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stream: bool = False
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    user: str | None = None
    output_schema: JSONObject | None = None
    output_schema_name: str | None = None
    extra: JSONObject = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class Response:
    """A whole answer (``anthropic/types/message.py``)."""

    id: str
    model: str
    content: list[Block] = field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    extra: JSONObject = field(default_factory=dict)
