"""Chat Completions streams (``chat.completion.chunk``) <-> canonical events.

Chunks follow ``openai/types/chat/chat_completion_chunk.py``; how a client folds them is
``openai/lib/streaming/chat/_completions.py`` (``ChatCompletionStreamState``) and
``lib/streaming/_deltas.py`` (``accumulate_delta``). Events follow
:mod:`llmrelay.core.events` (Anthropic's ``RawMessageStreamEvent``).

The hard part is that OpenAI interleaves what Anthropic serialises: one chunk may carry
fragments of several tool calls, and a provider may alternate between them, while an
Anthropic content block must stop before the next one starts. :class:`StreamDecoder` keeps
one block open and streams into it live; content for any other block waits in arrival
order until the open block can close. A text or thinking block can always close (more text
later opens a new block); a tool block closes once its arguments form a complete JSON
object, tracked incrementally, or when the choice finishes. Providers that send tool calls
one after another (OpenAI itself) therefore stream every call live; only truly interleaved
calls wait, and then for no longer than the earlier call takes to finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ...core import wirejson
from ...core.events import (
    BlockDelta,
    BlockStart,
    BlockStop,
    Event,
    InputJSONDelta,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    StreamError,
    TextDelta,
    ThinkingDelta,
)
from ...core.types import Block, Response, StopReason, TextBlock, ThinkingBlock, ToolUseBlock
from ...core.usage import Usage
from .._shape import index, obj, opt_obj, opt_str, seq, string
from ._shared import (
    decode_usage,
    encode_usage,
    finish_reason_from_stop,
    log,
    message_text,
    stop_from_finish_reason,
)
from .errors import error_to_openai, error_type_from_openai, status_for_error_type

__all__ = ["StreamDecoder", "StreamEncoder"]


class _JSONEnd:
    """Says when a JSON object arriving in pieces is complete, in O(1) per character."""

    __slots__ = ("depth", "done", "escape", "in_string", "object")

    def __init__(self) -> None:
        self.depth = 0
        self.done = False
        self.escape = False
        self.in_string = False
        self.object: bool | None = None  # does the text start with "{"?

    def feed(self, piece: str) -> None:
        for ch in piece:
            if self.done or self.object is False:
                return
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif ch == "\\":
                    self.escape = True
                elif ch == '"':
                    self.in_string = False
            elif ch.isspace():
                continue
            elif self.object is None:
                self.object = ch == "{"
                self.depth = 1
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                self.done = self.depth == 0


@dataclass(slots=True, eq=False)
class _Part:
    """One run of content that becomes one Anthropic block: thinking, text or a tool call."""

    kind: Literal["thinking", "text", "tool"]
    key: int = 0  # the OpenAI tool call index (tools only)
    id: str = ""
    name: str = ""
    index: int | None = None  # the Anthropic block index, once started
    closed: bool = False
    pending: list[str] = field(default_factory=list)
    args: _JSONEnd = field(default_factory=_JSONEnd)

    def can_close(self) -> bool:
        return self.kind != "tool" or self.args.done


class StreamDecoder:
    """OpenAI chunks -> canonical events, for an OpenAI-compatible provider's stream.

    Feed every parsed ``data:`` object in order, then call :meth:`finish` at ``[DONE]`` or
    at the end of the body (some providers send no ``[DONE]``). The events always form a
    valid Anthropic sequence: ``message_start`` first (zero usage), blocks with increasing
    indexes that never overlap, then ``message_delta`` (stop reason, cumulative usage) and
    ``message_stop``; or a ``StreamError`` when the provider sends an error chunk.

    Only choice 0 is read. Usage may come on any chunk, the ``choices: []`` one included;
    the last one seen wins (OpenAI's usage is cumulative).
    """

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._id = ""
        self._started = False
        self._done = False
        self._next_index = 0
        self._open: _Part | None = None
        self._waiting: list[_Part] = []
        self._text: _Part | None = None
        self._thinking: _Part | None = None
        self._tools: dict[int, _Part] = {}
        self._tool_keys: dict[str, int] = {}
        self._finish_reason: object = None
        self._usage = Usage()

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """Events for one chunk (``ChatCompletionChunk``, or ``{"error": {...}}``).

        Raises:
            CodecError: a field the events are made from has the wrong shape (``choices``
                not a list, a ``delta`` that is not an object, a malformed tool call, usage
                counts that are not integers...); the message names it.
        """
        if self._done:
            return []
        err = chunk.get("error")
        if err:
            self._done = True
            message = err.get("message") if isinstance(err, dict) else err
            return [
                StreamError(
                    error_type=error_type_from_openai(None, err),
                    message=str(message or "upstream stream error"),
                )
            ]
        choices = seq(chunk.get("choices"), "choices")
        out: list[Event] = []
        if not self._started:
            self._start_message(chunk, out)
        if chunk.get("usage") is not None:
            self._usage = decode_usage(chunk["usage"])
        for i, choice in enumerate(choices):
            where = f"choices[{i}]"
            choice = obj(choice, where)
            n = choice.get("index")
            if n is None or index(n, f"{where}.index") == 0:
                self._choice(choice, where, out)
        return out

    @property
    def finished(self) -> bool:
        """Whether the stream gave a ``finish_reason`` yet."""
        return self._finish_reason is not None

    def finish(self) -> list[Event]:
        """Close what is open, then ``message_delta`` and ``message_stop``; idempotent.

        A stream that ended without a ``finish_reason`` stops as ``tool_use`` if it carried
        tool calls, else ``end_turn``. A stream that carried no chunk at all is an error.
        """
        if self._done:
            return []
        self._done = True
        if not self._started:
            return [StreamError(error_type="api_error", message="upstream stream was empty")]
        out: list[Event] = []
        self._flush(out)
        if self._finish_reason is None:
            log.debug("stream ended without a finish_reason")
        has_calls = bool(self._tools)
        stop = stop_from_finish_reason(self._finish_reason or "stop", has_tool_calls=has_calls)
        out.append(MessageDelta(stop_reason=stop, usage=_copy(self._usage)))
        out.append(MessageStop())
        return out

    # -- chunk parts --------------------------------------------------------------------

    def _start_message(self, chunk: dict[str, Any], out: list[Event]) -> None:
        self._started = True
        self._id = string(chunk.get("id"), "id")
        model = self._model or string(chunk.get("model"), "model")
        out.append(MessageStart(message=Response(id=self._id, model=model)))

    def _choice(self, choice: dict[str, Any], where: str, out: list[Event]) -> None:
        delta = opt_obj(choice.get("delta"), f"{where}.delta")
        if delta is not None:
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:  # other shapes: no field here
                self._thinking = self._deliver(self._thinking, "thinking", reasoning, out)
            for key in ("content", "refusal"):
                text = message_text(delta.get(key), f"{where}.delta.{key}")
                if text:
                    self._text = self._deliver(self._text, "text", text, out)
            calls = seq(delta.get("tool_calls"), f"{where}.delta.tool_calls")
            for k, call in enumerate(calls):
                w = f"{where}.delta.tool_calls[{k}]"
                call = obj(call, w)
                n = call.get("index")
                call_id = opt_str(call.get("id"), f"{w}.id")
                slot = self._tool_key(None if n is None else index(n, f"{w}.index"), call_id)
                fn = opt_obj(call.get("function"), f"{w}.function")
                self._tool_fragment(slot, call_id, fn or {}, f"{w}.function", out)
            legacy = opt_obj(delta.get("function_call"), f"{where}.delta.function_call")
            if legacy is not None:
                self._tool_fragment(-1, None, legacy, f"{where}.delta.function_call", out)
        finish_reason = opt_str(choice.get("finish_reason"), f"{where}.finish_reason")
        if finish_reason:
            self._finish_reason = finish_reason
            self._flush(out)

    def _tool_key(self, index: int | None, call_id: str | None) -> int:
        """The call's ``index``; servers that omit it are followed by ``id``, then order."""
        if index is None:
            if call_id is not None and call_id in self._tool_keys:
                index = self._tool_keys[call_id]
            elif call_id or not self._tools:
                index = len(self._tools)
            else:
                index = max(self._tools)
        if call_id:
            self._tool_keys.setdefault(call_id, index)
        return index

    def _tool_fragment(
        self, key: int, call_id: object, fn: dict[str, Any], where: str, out: list[Event]
    ) -> None:
        part = self._tools.get(key)
        if part is None:
            part = self._tools[key] = _Part(kind="tool", key=key)
        # Some servers repeat id and name on every fragment: the first ones count.
        if not part.id and isinstance(call_id, str):
            part.id = call_id
        name = opt_str(fn.get("name"), f"{where}.name")
        if not part.name and name is not None:
            part.name = name
        arguments = fn.get("arguments")
        if isinstance(arguments, dict):  # a whole object instead of its text: same meaning
            arguments = wirejson.dumps(arguments).decode()
        self._deliver(part, "tool", string(arguments, f"{where}.arguments"), out)

    # -- block scheduling ---------------------------------------------------------------

    def _deliver(self, part: _Part | None, kind: str, piece: str, out: list[Event]) -> _Part:
        """Send ``piece`` to its block now if it is open, else queue it; returns the part."""
        if part is None or (part.closed and part.kind != "tool"):
            part = _Part(kind="thinking" if kind == "thinking" else "text")
        if part is self._open:
            self._emit(part, piece, out)
        elif part.closed:
            if piece.strip():
                log.debug("tool call %d got arguments after it closed; dropped", part.key)
            return part
        else:
            if piece:
                part.pending.append(piece)
            if part not in self._waiting:
                self._waiting.append(part)
        self._advance(out, finishing=False)
        return part

    def _advance(self, out: list[Event], *, finishing: bool) -> None:
        """Start waiting parts, in arrival order, while the open block is able to close."""
        while self._waiting and (self._open is None or self._open.can_close() or finishing):
            nxt = self._waiting[0]
            if nxt.kind == "tool" and not nxt.name and not finishing:
                return  # an Anthropic tool_use block needs its name at the start
            self._waiting.pop(0)
            self._close_open(out)
            self._start(nxt, out)

    def _flush(self, out: list[Event]) -> None:
        self._advance(out, finishing=True)
        self._close_open(out)

    def _start(self, part: _Part, out: list[Event]) -> None:
        part.index = self._next_index
        self._next_index += 1
        block: Block
        if part.kind == "tool":
            call_id = part.id or f"call_{self._id}_{part.key}"
            block = ToolUseBlock(id=call_id, name=part.name, input={})
        elif part.kind == "thinking":
            block = ThinkingBlock(thinking="")
        else:
            block = TextBlock(text="")
        out.append(BlockStart(index=part.index, block=block))
        self._open = part
        pending, part.pending = "".join(part.pending), []
        self._emit(part, pending, out)

    def _emit(self, part: _Part, piece: str, out: list[Event]) -> None:
        if not piece or part.index is None:
            return
        if part.kind == "tool":
            part.args.feed(piece)
            out.append(BlockDelta(index=part.index, delta=InputJSONDelta(partial_json=piece)))
        elif part.kind == "thinking":
            out.append(BlockDelta(index=part.index, delta=ThinkingDelta(thinking=piece)))
        else:
            out.append(BlockDelta(index=part.index, delta=TextDelta(text=piece)))

    def _close_open(self, out: list[Event]) -> None:
        part = self._open
        if part is not None and part.index is not None:
            out.append(BlockStop(index=part.index))
            part.closed = True
        self._open = None


def _copy(u: Usage) -> Usage:
    return Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_creation_input_tokens=u.cache_creation_input_tokens,
        cache_read_input_tokens=u.cache_read_input_tokens,
    )


# -- canonical -> OpenAI ----------------------------------------------------------------


@dataclass(slots=True)
class _ToolOut:
    n: int  # the OpenAI tool call index
    input: dict[str, Any]
    streamed: bool = False


class StreamEncoder:
    """Canonical events -> ``chat.completion.chunk`` dicts, for an OpenAI-surface client.

    Shaped so ``ChatCompletionStreamState`` folds it correctly: ``role`` only in the first
    chunk (the SDK concatenates strings), a tool call's ``id``, ``type`` and
    ``function.name`` only in its first fragment, every tool delta with a ``function``
    object, tool indexes first seen in order 0, 1, ... (the SDK inserts by position); the
    ``finish_reason`` chunk at ``message_stop``, then, with ``include_usage``, the usage
    chunk (``choices: []``) last, because the SDK keeps the last chunk's ``usage``.

    Thinking deltas go out as ``reasoning_content`` (DeepSeek's field, which OpenAI
    clients that show reasoning read); signatures and citations have no field and are
    dropped. The caller sends ``data: [DONE]`` after ``message_stop``.
    """

    def __init__(self, *, id: str, model: str, created: int, include_usage: bool) -> None:
        self._id = id
        self._model = model
        self._created = created
        self._include_usage = include_usage
        self._role_sent = False
        self._tools: dict[int, _ToolOut] = {}
        self._usage = Usage()
        self._stop: StopReason | None = None

    def feed(self, event: Event) -> list[dict[str, Any]]:
        """The chunks (possibly none) one event becomes."""
        if isinstance(event, MessageStart):
            self._merge_usage(event.message.usage)
            return [self._chunk({"content": ""})]
        if isinstance(event, BlockStart):
            return self._block_start(event)
        if isinstance(event, BlockDelta):
            return self._block_delta(event)
        if isinstance(event, BlockStop):
            tool = self._tools.get(event.index)
            if tool is not None and not tool.streamed and tool.input:
                return [self._args(tool, _dumps(tool.input))]
            return []
        if isinstance(event, MessageDelta):
            self._stop = event.stop_reason or self._stop
            self._merge_usage(event.usage)
            return []
        if isinstance(event, MessageStop):
            out = [self._chunk({}, finish_reason=finish_reason_from_stop(self._stop))]
            if self._include_usage:
                out.append(self._base([], usage=encode_usage(self._usage)))
            return out
        if isinstance(event, StreamError):
            status = status_for_error_type(event.error_type)
            return [error_to_openai(status, event.error_type, event.message)]
        assert isinstance(event, Ping)
        return []

    def _block_start(self, event: BlockStart) -> list[dict[str, Any]]:
        b = event.block
        if isinstance(b, ToolUseBlock):
            tool = self._tools[event.index] = _ToolOut(n=len(self._tools), input=dict(b.input))
            call = {
                "index": tool.n,
                "id": b.id,
                "type": "function",
                "function": {"name": b.name, "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(b, TextBlock) and b.text:
            return [self._chunk({"content": b.text})]
        if isinstance(b, ThinkingBlock) and b.thinking:
            return [self._chunk({"reasoning_content": b.thinking})]
        return []

    def _block_delta(self, event: BlockDelta) -> list[dict[str, Any]]:
        d = event.delta
        if isinstance(d, TextDelta) and d.text:
            return [self._chunk({"content": d.text})]
        if isinstance(d, ThinkingDelta) and d.thinking:
            return [self._chunk({"reasoning_content": d.thinking})]
        tool = self._tools.get(event.index)
        if isinstance(d, InputJSONDelta) and tool is not None and d.partial_json:
            tool.streamed = True
            return [self._args(tool, d.partial_json)]
        return []

    def _args(self, tool: _ToolOut, arguments: str) -> dict[str, Any]:
        call = {"index": tool.n, "function": {"arguments": arguments}}
        return self._chunk({"tool_calls": [call]})

    def _merge_usage(self, u: Usage) -> None:
        # Anthropic sends input counts at message_start; a zero later means "not sent".
        self._usage.output_tokens = u.output_tokens or self._usage.output_tokens
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            if getattr(u, name):
                setattr(self._usage, name, getattr(u, name))

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._base([choice])

    def _base(self, choices: list[dict[str, Any]], usage: object = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if self._include_usage:
            out["usage"] = usage
        return out


def _dumps(value: object) -> str:
    return wirejson.dumps(value).decode()
