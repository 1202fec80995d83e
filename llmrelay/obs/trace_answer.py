"""What a traced call's answer said: its id, model and finish reasons, and, when content
capture is on, the answer itself (for ``gen_ai.output.messages``).

:class:`AnswerReader` is the call's :class:`~llmrelay.pipeline.call.Capture` while it is
traced; it hands every feed on to the capture it wraps (the request log's). It keeps
references and parses nothing until :meth:`AnswerReader.read`, once, at the end of a
sampled call:

- a whole JSON answer (up to 64 KiB unless content is captured) is parsed for its top-level
  ``id``, ``model`` and ``stop_reason`` (Anthropic) or ``choices[].finish_reason`` (OpenAI);
- a passthrough stream keeps its first and last 4 KiB, which hold ``message_start`` /
  ``message_delta`` (Anthropic) or the first chunk and the ``finish_reason`` one (OpenAI);
  an event split at the edge of those windows is missed (best effort). The windows are
  searched for those events' bytes and only they are parsed, not every delta;
- a translated stream's canonical events are read as they pass (``message_start``,
  ``message_delta``; their stop reasons are the canonical, Anthropic, names).

With content capture, streams are kept whole (up to a bound) and folded into a canonical
:class:`~llmrelay.core.types.Response`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..codecs import anthropic as anthropic_codec
from ..codecs import openai as openai_codec
from ..core.accumulate import Accumulator
from ..core.events import Event, MessageDelta, MessageStart
from ..core.sse import SSEDecoder, parse_block
from ..core.types import Response
from ..pipeline.call import Capture, SurfaceName

__all__ = ["Answer", "AnswerReader"]

_WINDOW = 4096
_MAX_WHOLE = 64 * 1024


@dataclass(slots=True)
class Answer:
    """What :meth:`AnswerReader.read` found; ``response`` only with content capture."""

    id: str | None = None
    model: str | None = None
    finish_reasons: dict[int, str] = field(default_factory=dict)
    response: Response | None = None


class AnswerReader:
    """A traced call's capture (see the module docstring). ``keep`` is the most stream bytes
    kept for content (0: content is not captured)."""

    __slots__ = (
        "_body",
        "_events",
        "_fold",
        "_head",
        "_head_n",
        "_inner",
        "_keep",
        "_surface",
        "_tail",
        "_tail_n",
    )

    def __init__(self, inner: Capture | None, surface: SurfaceName, keep: int) -> None:
        self._inner = inner
        self._surface = surface
        self._keep = keep
        self._body: bytes | None = None
        self._head: list[bytes] = []
        self._head_n = 0
        # A passthrough stream's last 4 KiB, once its head is full.
        self._tail: deque[bytes] = deque()
        self._tail_n = 0
        # What a translated stream's events said so far.
        self._events: Answer | None = None
        self._fold = _Fold() if keep else None

    # -- Capture ----------------------------------------------------------------------------
    def request(self, raw: bytes) -> None:
        """The client's body: the trace reads it from the call (``Call.body``)."""
        if self._inner is not None:
            self._inner.request(raw)

    def whole(self, body: bytes) -> None:
        self._body = body
        if self._inner is not None:
            self._inner.whole(body)

    def chunk(self, data: bytes) -> None:
        if self._head_n < (self._keep or _WINDOW):
            self._head.append(data)
            self._head_n += len(data)
        else:
            tail = self._tail
            tail.append(data)
            self._tail_n += len(data)
            while len(tail) > 1 and self._tail_n - len(tail[0]) >= _WINDOW:
                self._tail_n -= len(tail.popleft())
        if self._inner is not None:
            self._inner.chunk(data)

    def event(self, event: Event) -> None:
        if isinstance(event, MessageStart | MessageDelta):
            seen = self._events
            if seen is None:
                seen = self._events = Answer()
            if isinstance(event, MessageStart):
                seen.id, seen.model = event.message.id, event.message.model
            elif event.stop_reason is not None:
                seen.finish_reasons[0] = event.stop_reason
        if self._fold is not None:
            self._fold.feed(event)
        if self._inner is not None:
            self._inner.event(event)

    # -- at the end of the call ---------------------------------------------------------------
    def read(self) -> Answer:
        """What the answer said (parsed now, once)."""
        if self._events is not None:
            answer = self._events
            if self._fold is not None:
                answer.response = self._fold.acc.response
            return answer
        answer = Answer()
        if self._body is not None:
            self._read_whole(self._body, answer)
        elif self._head:
            self._read_stream(answer)
        return answer

    def _read_whole(self, body: bytes, answer: Answer) -> None:
        if len(body) > _MAX_WHOLE and not self._keep:
            return
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict):
            return
        _note(obj, answer)
        if self._keep and answer.id is not None:
            try:
                if self._surface == "openai":
                    answer.response = openai_codec.decode_response(obj)
                else:
                    answer.response = anthropic_codec.decode_response(obj)
            except Exception:  # best effort: an answer the codec cannot read has no content
                pass

    def _read_stream(self, answer: Answer) -> None:
        windows = [b"".join(self._head)]
        if self._tail:
            windows.append(b"".join(self._tail))
        fold = self._fold
        decoder = None
        if fold is not None and self._surface == "openai":
            decoder = openai_codec.StreamDecoder(model="")
        for i, window in enumerate(windows):
            folding = fold is not None and i == 0  # the answer's start, unbroken
            blocks = SSEDecoder().blocks(window) if folding else _noted_blocks(window, answer)
            for block in blocks:
                ev = parse_block(block)
                if ev is None:
                    continue
                try:
                    obj = orjson.loads(ev.data)
                except orjson.JSONDecodeError:
                    continue  # [DONE], or an event cut at the window's edge
                if not isinstance(obj, dict):
                    continue
                _note(obj, answer)
                if folding and fold is not None:
                    fold.feed_json(obj, decoder)
        if fold is not None:
            if decoder is not None:
                for event in decoder.finish():
                    fold.feed(event)
            answer.response = fold.acc.response


class _Fold:
    """Folds a stream into a canonical answer until it cannot (an error event, events out
    of order): what came before stays in ``acc.response``."""

    __slots__ = ("acc", "broken")

    def __init__(self) -> None:
        self.acc = Accumulator()
        self.broken = False

    def feed(self, event: Event) -> None:
        if self.broken:
            return
        try:
            self.acc.feed(event)
        except Exception:
            self.broken = True

    def feed_json(self, obj: dict[str, Any], decoder: openai_codec.StreamDecoder | None) -> None:
        """One stream event's data: OpenAI's through ``decoder``, else Anthropic's."""
        try:
            if decoder is not None:
                events = decoder.feed(obj)
            else:
                one = anthropic_codec.decode_event(obj)
                events = [] if one is None else [one]
        except ValueError:
            return
        for event in events:
            self.feed(event)


def _note(obj: dict[str, Any], answer: Answer) -> None:
    """Read the facts of one JSON object of either wire: a whole answer, or one stream
    event's data."""
    kind = obj.get("type")
    if kind == "message_start":
        message = obj.get("message")
        if isinstance(message, dict):
            _ids(message, answer)
    elif kind == "message_delta":
        delta = obj.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            answer.finish_reasons[0] = delta["stop_reason"]
    elif kind == "message":
        _ids(obj, answer)
        if isinstance(obj.get("stop_reason"), str):
            answer.finish_reasons[0] = obj["stop_reason"]
    elif isinstance(obj.get("choices"), list):
        _ids(obj, answer)
        for i, choice in enumerate(obj["choices"]):
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                index = choice.get("index")
                answer.finish_reasons[index if isinstance(index, int) else i] = choice[
                    "finish_reason"
                ]


#: What :func:`_note` reads sits under these (unescaped, as providers send them):
#: ``"message`` starts every ``type`` it reads of Anthropic's, ``"finish_reason"`` is
#: OpenAI's, and ``"choices"`` marks an OpenAI chunk (its ``id`` and ``model``).
_MESSAGE = b'"message'
_FINISH = b'"finish_reason"'
_NULL_FINISH = b'"finish_reason":null'
_CHOICES = b'"choices"'


def _noted_blocks(window: bytes, answer: Answer) -> Iterator[bytes]:
    """The complete SSE event blocks of ``window`` that :func:`_note` can learn from, found
    by searching the window's bytes instead of splitting it into every event: most of a
    stream is deltas that say nothing the spans need. ``answer`` is read as it fills (an
    OpenAI chunk is wanted for its ids only until they are known). Blocks as
    :meth:`SSEDecoder.blocks` makes them (the piece before the first blank line included,
    the one after the last left out), the others skipped."""
    if window.find(b"\r") >= 0:
        window = window.replace(b"\r\n", b"\n")
    last = window.rfind(b"\n\n")
    # The next place of each mark at or after ``pos`` (-1: none left), searched again only
    # once ``pos`` passed it: a mark a stream never has (Anthropic's has no
    # ``finish_reason``) costs one search of the window, not one a block.
    message = window.find(_MESSAGE)
    choices = window.find(_CHOICES)
    finish = _next_finish(window, 0)
    pos = 0
    while pos < last:
        if 0 <= message < pos:
            message = window.find(_MESSAGE, pos)
        if 0 <= choices < pos:
            choices = window.find(_CHOICES, pos)
        if 0 <= finish < pos:
            finish = _next_finish(window, pos)
        hits = [h for h in (message, finish) if h >= 0]
        if choices >= 0 and (answer.id is None or answer.model is None):
            hits.append(choices)
        if not hits:
            return
        hit = min(hits)
        if hit >= last:
            return
        start = window.rfind(b"\n\n", 0, hit)
        start = 0 if start < 0 else start + 2  # no blank line before: the first block
        end = window.find(b"\n\n", hit)
        pos = end + 2
        block = window[start:end]
        if _may_note(block, answer):
            yield block


def _next_finish(window: bytes, pos: int) -> int:
    """Where the next ``"finish_reason"`` that is not ``null`` is, from ``pos`` (-1: none)."""
    at = window.find(_FINISH, pos)
    while at >= 0 and window.startswith(_NULL_FINISH, at):
        at = window.find(_FINISH, at + len(_NULL_FINISH))
    return at


def _may_note(block: bytes, answer: Answer) -> bool:
    """Whether :func:`_note` could learn anything from the event ``block``, judged on its
    bytes (see :data:`_MESSAGE`): an Anthropic ``message*`` event, an OpenAI chunk while the
    id or model is missing, or one with a ``finish_reason`` that is not ``null``."""
    if block.find(_MESSAGE) >= 0:
        return True
    if block.find(_CHOICES) < 0:
        return False
    if answer.id is None or answer.model is None:
        return True
    reasons = block.count(_FINISH)
    return reasons > block.count(_NULL_FINISH)


def _ids(obj: dict[str, Any], answer: Answer) -> None:
    if answer.id is None and isinstance(obj.get("id"), str):
        answer.id = obj["id"]
    if answer.model is None and isinstance(obj.get("model"), str):
        answer.model = obj["model"]
