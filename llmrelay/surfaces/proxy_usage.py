"""Reading usage out of a native passthrough's answer, on the side, without changing it.

The passthrough relays whatever the provider's API answers (a file, a batch listing, a
Messages answer, batch results); this module looks at copies of the chunks for what the
bill needs. What it understands:

* a JSON body (``application/json``) with a top-level ``usage``, the Anthropic Messages
  shape (``input_tokens``, ``output_tokens``, ``cache_*``; ``anthropic/types/usage.py``),
  OpenAI Chat Completions' (``prompt_tokens``, ``completion_tokens``,
  ``prompt_tokens_details.cached_tokens``; ``openai/types/completion_usage.py``) or the
  Responses API's (``input_tokens``, ``output_tokens``,
  ``input_tokens_details.cached_tokens``; ``openai/types/responses/response_usage.py``);
  and its ``model``;
* a server-sent event stream whose ``data:`` objects carry ``usage`` at the top level or
  under ``message`` (Anthropic ``message_start``) or ``response`` (Responses API events);
  the latest value of each count wins, as Anthropic's ``message_delta`` counts are
  cumulative;
* Message Batches results (``GET /v1/messages/batches/{id}/results``, JSON Lines of
  ``MessageBatchIndividualResponse``; ``anthropic/types/messages/
  message_batch_individual_response.py``): the usage of every ``succeeded`` result, summed
  per model.

A stream's content deltas are counted as they are read (``UsageReader.delivered``, the
counting of ``core/delivered.py``): Anthropic's ``content_block_delta`` (``text``,
``thinking``, ``partial_json``), a Chat Completions chunk's ``choices[].delta`` (``content``,
``refusal``, ``reasoning_content``/``reasoning``, tool-call ``arguments``) and the Responses
API's ``response.*.delta`` events (their ``delta`` string). Most of a stream is read without
a parse: Anthropic's block starts and stops and pings are told by their ``event:`` line and
skipped; its deltas, and Chat Completions chunks with one ``content`` delta, have their text
found by its key and counted from its bytes, which count as the text does (an escape-free
JSON string is its text's UTF-8; one with escapes is decoded alone); any other shape is
parsed. ``UsageReader.ended`` says the
stream's last event came (``message_stop``, ``data: [DONE]``, ``response.completed`` /
``failed`` / ``incomplete``); a stream cut before it is charged what it delivered
(``proxy_answer.py``).

Bounds: a JSON body is read for usage only up to :data:`MAX_JSON_BYTES`, one event or one
JSONL line up to :data:`MAX_LINE_BYTES`; past either the answer still goes through whole and
its tokens are *unknown* (``UsageRecord.tokens_known`` false), never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from ..core.delivered import Delivered
from ..core.usage import Usage
from .openai_stream import delta_texts as chat_delta_texts

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_LINE_BYTES",
    "UsageReader",
    "batch_results_path",
    "delta_texts",
]

#: Largest JSON answer read for its usage, in bytes (larger ones relay untouched, unread).
MAX_JSON_BYTES = 4 * 1024 * 1024
#: Largest server-sent event or JSON Lines line read for its usage, in bytes.
MAX_LINE_BYTES = 8 * 1024 * 1024


def batch_results_path(path: str) -> bool:
    """True for ``v1/messages/batches/{id}/results`` (a path as :class:`RawRequest` has it)."""
    parts = path.split("/")
    return (
        len(parts) == 5
        and parts[:3] == ["v1", "messages", "batches"]
        and parts[4] == "results"
        and bool(parts[3])
    )


def _int(v: object) -> int:
    return max(v, 0) if isinstance(v, int) and not isinstance(v, bool) else 0


def _cached(usage: Mapping[str, object], details: str) -> int:
    d = usage.get(details)
    return _int(d.get("cached_tokens")) if isinstance(d, Mapping) else 0


def usage_of(obj: Mapping[str, object]) -> Usage | None:
    """The four counts of one provider ``usage`` object, whichever shape (module docstring);
    None when it has none of them."""
    if "prompt_tokens" in obj or "completion_tokens" in obj:
        cached = _cached(obj, "prompt_tokens_details")
        return Usage(
            input_tokens=max(_int(obj.get("prompt_tokens")) - cached, 0),
            output_tokens=_int(obj.get("completion_tokens")),
            cache_read_input_tokens=cached,
        )
    if "input_tokens" not in obj and "output_tokens" not in obj:
        return None
    if "input_tokens_details" in obj:  # the Responses API: cached tokens are part of input
        cached = _cached(obj, "input_tokens_details")
        return Usage(
            input_tokens=max(_int(obj.get("input_tokens")) - cached, 0),
            output_tokens=_int(obj.get("output_tokens")),
            cache_read_input_tokens=cached,
        )
    usage = Usage()
    usage.update_from_anthropic(obj)
    return usage


def _usage_in(event: object) -> Mapping[str, object] | None:
    """The ``usage`` object of an answer or a stream event, where the wires put it."""
    if not isinstance(event, dict):
        return None
    for holder in (event, event.get("message"), event.get("response")):
        if isinstance(holder, dict):
            usage = holder.get("usage")
            if isinstance(usage, dict):
                return usage
    return None


def _model_in(event: object) -> str | None:
    if not isinstance(event, dict):
        return None
    for holder in (event, event.get("message"), event.get("response")):
        if isinstance(holder, dict) and isinstance(holder.get("model"), str):
            model: str = holder["model"]
            return model
    return None


#: Where an Anthropic ``content_block_delta``'s generated text is, by its delta's type.
_ANTHROPIC_DELTA_TEXT = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
#: Events after which a stream is whole (Anthropic; the Responses API).
_LAST_EVENTS = frozenset(
    {"message_stop", "response.completed", "response.failed", "response.incomplete"}
)


#: Anthropic events that carry neither usage nor generated text, by their first bytes.
_ANTHROPIC_SKIP = (
    b"event: content_block_start\n",
    b"event: content_block_stop\n",
    b"event: ping\n",
)
_ANTHROPIC_DELTA = b"event: content_block_delta\n"
#: Each Anthropic delta type that carries generated text, and the key of that text as
#: Anthropic sends it (no spaces).
_DELTA_TEXT_KEYS = (
    (b'"text_delta"', b'"text":"'),
    (b'"input_json_delta"', b'"partial_json":"'),
    (b'"thinking_delta"', b'"thinking":"'),
)
#: The usual Anthropic delta, as it sends it: its type, then its text without escapes, last
#: in the event.
_ANTHROPIC_TEXT = re.compile(
    rb'"delta":\{"type":"(?:text_delta","text|input_json_delta","partial_json'
    rb'|thinking_delta","thinking)":"([^"\\]*)"\}\}$'
)
#: A Chat Completions chunk's first choice's delta with only ``content``, without escapes
#: (the usual chunk, as OpenAI sends it: no spaces).
_CHAT_CONTENT = re.compile(rb'"choices":\[\{"index":\d+,"delta":\{"content":"([^"\\]*)"\}')


def _count_raw(raw: bytes, delivered: Delivered) -> bool:
    """Count one delta whose text is ``raw``, the inside of its JSON string as sent; False
    when ``raw`` is not one JSON string (the caller parses the event instead). Without an
    escape the bytes are the text's UTF-8, which :meth:`Delivered.delta_bytes` counts as
    :meth:`Delivered.delta` counts the text; with one, only the string is decoded."""
    if b"\\" not in raw:
        if b'"' in raw:
            return False
        delivered.delta_bytes(raw)
        return True
    try:
        text = orjson.loads(b'"' + raw + b'"')
    except orjson.JSONDecodeError:
        return False
    if not isinstance(text, str):
        return False
    delivered.delta(text)
    return True


def count_anthropic_delta(event: bytes, delivered: Delivered) -> bool:
    """Count one Anthropic ``content_block_delta`` event (its raw lines) as delivered
    without parsing it: its text is found by its key, after the delta's type, and ends at
    the event's last quote (a text with escapes is decoded alone). False when that is not
    how it reads (a signature or citation delta, a field after the text): the caller
    parses it."""
    m = _ANTHROPIC_TEXT.search(event)
    if m is not None:
        delivered.delta_bytes(m[1])  # no escape: the text's own UTF-8 bytes
        return True
    for kind, key in _DELTA_TEXT_KEYS:
        if kind in event:
            at = event.find(key)
            if at < 0:
                return False
            at += len(key)
            end = event.rfind(b'"')
            return end >= at and _count_raw(event[at:end], delivered)
    return False


def _data_of(event: bytes) -> bytes:
    """The data of one event's lines (without the blank line): its ``data:`` lines'
    values, joined."""
    if event.startswith(b"data:"):
        if b"\n" not in event:
            return event[5:].lstrip(b" ")
    elif event.startswith(b"event:"):
        nl = event.find(b"\n")
        if event.startswith(b"data:", nl + 1) and event.find(b"\n", nl + 1) < 0:
            return event[nl + 6 :].lstrip(b" ")
    return b"".join(
        line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
    )


def delta_texts(event: Mapping[str, object]) -> list[str]:
    """The generated text of one stream event, whichever wire (module docstring); empty for
    an event that carries none (starts, stops, pings, usage, signatures, citations)."""
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = event.get("delta")
        if isinstance(delta, dict):
            field = _ANTHROPIC_DELTA_TEXT.get(str(delta.get("type")))
            text = delta.get(field) if field is not None else None
            if isinstance(text, str):
                return [text]
        return []
    if isinstance(kind, str) and kind.startswith("response.") and kind.endswith(".delta"):
        text = event.get("delta")
        return [text] if isinstance(text, str) else []
    out: list[str] = []
    chat_delta_texts(event.get("choices"), out)
    return out


def _provider_count(event: Mapping[str, object], usage: Mapping[str, object]) -> int | None:
    """The cumulative output count a stream event reports (never ``message_start``'s
    placeholder)."""
    if event.get("type") == "message_start":
        return None
    value = usage.get("completion_tokens", usage.get("output_tokens"))
    return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class UsageReader:
    """Fed every chunk of one answer (:meth:`feed`), then :meth:`finish`; afterwards
    ``by_model`` maps each model named in the answer ("" when none is named) to its usage,
    empty when the answer carried none (tokens unknown)."""

    kind: str
    by_model: dict[str, Usage] = field(default_factory=dict)
    #: A stream's content deltas read so far (module docstring).
    delivered: Delivered = field(default_factory=Delivered)
    #: A stream's last event was read.
    ended: bool = False
    #: The first model a stream named, usage or not.
    model: str = ""
    _buf: bytearray = field(default_factory=bytearray)
    _over: bool = False
    #: A chunk ended in ``\r``: the next may start with its ``\n``.
    _cr: bool = False

    @classmethod
    def for_answer(cls, content_type: str, batch_results: bool) -> UsageReader | None:
        """A reader for an answer of ``content_type`` (lower-case, no parameters), or None
        when nothing in it is read (a file, an image, an AWS event stream)."""
        if batch_results:
            return cls("jsonl")
        if content_type == "application/json":
            return cls("json")
        if content_type == "text/event-stream":
            return cls("sse")
        return None

    def feed(self, chunk: bytes) -> None:
        """Read ``chunk`` (a copy of what went to the client). Costs one scan of the chunk
        until an event or line is complete, then one parse of it."""
        buf = self._buf
        if self.kind == "json":
            if not self._over:
                buf += chunk
                if len(buf) > MAX_JSON_BYTES:
                    self._over = True
                    buf.clear()
            return
        if self._cr or b"\r" in chunk:
            chunk = self._lf(chunk)
        sep = b"\n" if self.kind == "jsonl" else b"\n\n"
        if self._over:
            # A line or event past the cap: skip to its end, then read on.
            cut = chunk.find(sep)
            if cut < 0:
                return
            self._over = False
            chunk = chunk[cut + len(sep) :]
        if buf:
            start = len(buf) - 1  # a separator may start in the last byte held
            buf += chunk
            if buf.find(sep, start) < 0:
                if len(buf) > MAX_LINE_BYTES:
                    self._over = True
                    buf.clear()
                return
            chunk = bytes(buf)
            buf.clear()
        elif chunk.find(sep) < 0:
            # The usual chunk holds whole events: no copy into the buffer for those.
            if len(chunk) > MAX_LINE_BYTES:
                self._over = True
            else:
                buf += chunk
            return
        *whole, rest = chunk.split(sep)
        for item in whole:
            self._item(item)
        if len(rest) > MAX_LINE_BYTES:
            self._over = True
        else:
            buf += rest

    def _lf(self, chunk: bytes) -> bytes:
        """``chunk`` with its line ends as one "\\n" (SSE also allows "\\r\\n"), also
        across chunk edges."""
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._cr = True
        return chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk

    def finish(self) -> None:
        """The answer ended: read what is left."""
        if self.kind == "json":
            if not self._over and self._buf:
                self._json(bytes(self._buf))
            self._buf.clear()
            return
        self._drain(final=True)

    def _drain(self, final: bool) -> None:
        sep = b"\n" if self.kind == "jsonl" else b"\n\n"
        *whole, rest = bytes(self._buf).split(sep)
        for item in whole:
            self._item(item)
        if final:
            # The stream's last bytes, an event perhaps cut short: read in full, so a delta
            # cut before its text ends counts only if it parses, as it always did.
            if self.kind == "jsonl":
                self._result(rest)
            else:
                self._event(rest)
            rest = b""
        self._buf = bytearray(rest)
        if len(self._buf) > MAX_LINE_BYTES:
            self._over = True
            self._buf.clear()

    def _item(self, item: bytes) -> None:
        if self.kind == "jsonl":
            self._result(item)
            return
        # Most events are told by their first bytes (Anthropic's event: line comes first)
        # and read without a parse (module docstring).
        if item.startswith(_ANTHROPIC_DELTA):
            delivered = self.delivered
            if delivered.estimating and count_anthropic_delta(item, delivered):
                return
        elif item.startswith(_ANTHROPIC_SKIP) or (
            self.model
            and item.startswith(b"data: {")
            and self.delivered.estimating
            and self._chat_delta(item)
        ):
            return
        self._event(item)

    def _chat_delta(self, item: bytes) -> bool:
        """Count a Chat Completions chunk that carries only one delta's ``content`` (most of
        such a stream) without parsing it; False for any other event (the caller parses
        it). Only once the stream named its model: it names no other thing to read."""
        m = _CHAT_CONTENT.search(item)
        if m is None or b"\n" in item or b'"type"' in item or item.count(b'"delta"') != 1:
            return False
        usage = item.count(b'"usage"')
        if usage and (usage > 1 or b'"usage":null' not in item):
            return False
        raw = m[1]
        if raw:  # an empty content is no delta
            self.delivered.delta_bytes(raw)
        return True

    def _event(self, item: bytes) -> None:
        """Read one event's lines (without the blank line), whatever its wire."""
        data = _data_of(item)
        if data == b"[DONE]":
            self.ended = True
        elif data:
            self._json(data, cumulative=True)

    def _json(self, raw: bytes, cumulative: bool = False) -> None:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if cumulative and isinstance(obj, dict):
            self._stream_event(obj)
        usage = _usage_in(obj)
        if usage is None:
            return
        model = _model_in(obj)
        if model is None:
            # A stream's later events name no model: they count for the one named first.
            model = next(iter(self.by_model), "")
        counted = self.by_model.get(model)
        if counted is not None and cumulative:
            if "prompt_tokens" in usage or "input_tokens_details" in usage:
                read = usage_of(usage)
                if read is not None:
                    self.by_model[model] = read
            else:
                counted.update_from_anthropic(usage)
            return
        read = usage_of(usage)
        if read is not None:
            self.by_model[model] = read

    def _stream_event(self, event: dict[str, object]) -> None:
        """Count one stream event's deltas and reported output; note its last event."""
        for text in delta_texts(event):
            self.delivered.delta(text)
        if event.get("type") in _LAST_EVENTS:
            self.ended = True
        if not self.model:
            self.model = _model_in(event) or ""
        usage = _usage_in(event)
        count = _provider_count(event, usage) if usage is not None else None
        if count is not None:
            self.delivered.provider_count(count)

    def _result(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        result = obj.get("result") if isinstance(obj, dict) else None
        if not isinstance(result, dict) or result.get("type") != "succeeded":
            return  # errored, canceled and expired requests are not billed
        message = result.get("message")
        usage = _usage_in({"message": message})
        if usage is None:
            return
        read = usage_of(usage)
        if read is None:
            return
        model = _model_in(message) or ""
        total = self.by_model.setdefault(model, Usage())
        total.input_tokens += read.input_tokens
        total.output_tokens += read.output_tokens
        total.cache_creation_input_tokens += read.cache_creation_input_tokens
        total.cache_read_input_tokens += read.cache_read_input_tokens
