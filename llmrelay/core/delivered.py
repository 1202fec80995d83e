"""What a stream delivered to the client, for billing a client that left before the end.

A stream's usage normally comes from the provider's last ``message_delta`` (Anthropic) or
usage chunk (OpenAI). A client that goes away mid-stream never lets it arrive: the last
count seen may be ``message_start``'s placeholder (``output_tokens: 1``). So every content
delta that reached the client is counted as it goes out, and a stream cut short (by the
client, or by the provider or the call's deadline before its last event: the client got
those tokens, and the provider bills them, as Bedrock bills a whole interrupted stream) is
charged :meth:`Delivered.output_tokens`: the larger of

* the **delivered count**: each delivered delta's text (``text_delta.text``,
  ``thinking_delta.thinking``, ``input_json_delta.partial_json``; an OpenAI chunk's
  ``content``, ``refusal``, ``reasoning_content``/``reasoning`` and tool-call
  ``arguments``) counted with the model's tokenizer when the gateway has it loaded
  (``TokenCounter.text_counter``: OpenAI models, once ``count_tokens`` loaded tiktoken's
  vocabulary), else by :func:`text_tokens`, one token at least per delta that is not empty
  (providers stream whole tokens);
* the **provider's count**: the last cumulative ``output_tokens`` of a ``message_delta`` or
  usage chunk that reached the client (never ``message_start``'s placeholder).

The estimate is the one ``tokens.estimate_tokens`` uses for requests (four ASCII bytes or
two other bytes a token): no tokenizer of Claude's is public, and loading tiktoken's
vocabulary (~70 MB) only to bill disconnects is not worth it. The usage row's
``error_message`` says which count was charged and how (:meth:`Delivered.note`). Counting
costs an addition (or one short tiktoken call) a delta; nothing is buffered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .usage import Usage

__all__ = ["Delivered", "text_tokens"]

_NOT_ASCII = bytes(range(0x80, 0x100))


def text_tokens(text: str) -> int:
    """An estimate of the tokens in one delta's ``text``: ASCII bytes / 4 plus other UTF-8
    bytes / 2, at least 1 for a text that is not empty (the rule of
    ``tokens.estimate_tokens``)."""
    if not text:
        return 0
    total = len(text.encode("utf-8", "surrogatepass"))
    ascii_bytes = total if total == len(text) else len(text.encode("ascii", "ignore"))
    return max(1, ascii_bytes // 4 + (total - ascii_bytes) // 2)


@dataclass(slots=True)
class Delivered:
    """Counts of one stream's content deltas that went out to the client."""

    #: Content deltas delivered.
    deltas: int = 0
    #: Their estimated tokens (:func:`text_tokens` each).
    estimated: int = 0
    #: The provider's last cumulative ``output_tokens`` delivered, None before any.
    reported: int | None = None
    #: How a delta's text is counted, and the method's name for :meth:`note`.
    count: Callable[[str], int] = field(default=text_tokens, repr=False)
    method: str = "estimated from the delivered text (4 ASCII bytes or 2 other bytes a token)"

    def use(self, count: Callable[[str], int], encoding: str) -> None:
        """Count with a tokenizer (``encoding`` names it) instead of the estimate."""
        self.count = count
        self.method = f"the delivered text counted with tiktoken {encoding}"

    def delta(self, text: str) -> None:
        """One content delta carrying ``text`` reached the client."""
        self.deltas += 1
        self.estimated += self.count(text)

    @property
    def estimating(self) -> bool:
        """Whether deltas are counted by the estimate (no tokenizer in use), so a caller may
        pass their encoded bytes to :meth:`delta_bytes` instead of decoding them."""
        return self.count is text_tokens

    def delta_bytes(self, raw: bytes) -> None:
        """One content delta reached the client, its text given as the UTF-8 bytes of its
        JSON string (escapes included): :func:`text_tokens` of those bytes."""
        self.deltas += 1
        if not raw:
            return
        total = len(raw)
        ascii_bytes = total if raw.isascii() else len(raw.translate(None, _NOT_ASCII))
        self.estimated += max(1, ascii_bytes // 4 + (total - ascii_bytes) // 2)

    def delta_span(self, block: bytes, start: int, end: int) -> None:
        """:meth:`delta_bytes` of ``block[start:end]``, without the copy when ``block`` is
        all ASCII (the usual delta)."""
        if 0 <= start < end <= len(block) and block.isascii():
            self.deltas += 1
            self.estimated += max(1, (end - start) // 4)
        else:
            self.delta_bytes(block[start:end])

    def provider_count(self, output_tokens: int) -> None:
        """A ``message_delta`` (or usage chunk) with this cumulative count reached the client."""
        self.reported = output_tokens

    def output_tokens(self) -> int:
        """The output tokens a client that left is charged (module docstring)."""
        return max(self.estimated, self.reported or 0)

    def settle(self, usage: Usage) -> None:
        """Charge ``usage`` for what was delivered: its output count becomes
        :meth:`output_tokens` (input and cache counts stay as the provider sent them)."""
        usage.output_tokens = self.output_tokens()

    def note(self, cause: str = "client disconnected") -> str:
        """How the charged count was made, for the usage row's ``error_message``; ``cause``
        says what ended the stream (a client that left, a provider that cut it)."""
        how = (
            "the provider's own count"
            if self.reported is not None and self.reported >= self.estimated
            else self.method
        )
        return (
            f"{cause} after {self.deltas} content deltas; "
            f"output_tokens={self.output_tokens()} ({how})"
        )
