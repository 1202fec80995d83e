"""The soak's mixed load (bench/soak.py): what is sent, how each answer is checked, the tally.

Every call is one of the kinds in :func:`kinds` (surface, model, streaming or not, a bad
request, a client that goes away mid-stream), drawn at random by weight by each of N
closed-loop workers on an aiohttp client. Bodies and headers are the harness's, shaped as
the official SDKs send them (``../shared/bench/run.py``'s ``request_for``). A few calls a
minute go through the official ``anthropic`` and ``openai`` SDKs instead, as a check that
answers still parse (:class:`SdkChecks`).

Usage rows: every call to ``/v1/messages``, ``/v1/messages/count_tokens`` or
``/v1/chat/completions`` with the right key leaves exactly one row, whatever its status (a
client that went away: 499); a wrong key (401) and ``GET /v1/models`` leave none. The tally
counts the calls that must have a row (the gateway answered them, or they were cut by us
after the answer started) and, apart, those whose fate is unknown (the connection failed
after it was made: the gateway may or may not have read the request).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from run import SYSTEM, USER, request_for  # the harness's request shapes (see soak.py)

__all__ = ["Kind", "SdkChecks", "Tally", "kinds", "worker"]

Surface = Literal["messages", "chat", "count_tokens", "models"]
MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"
BAD_KEY = "sk-soak-wrong-key"
BAD_JSON = b'{"model": "anthropic/claude", "max_tokens": 64, "messages": [{"role": "us'


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of call. ``expect``: the statuses the load asks for (anything else, or an
    answer that does not parse, is an unexpected error). ``row``: an authenticated call,
    which must leave one usage row. ``cut``: read the first bytes of the stream, then close
    the connection (a client that goes away)."""

    name: str
    weight: int
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    surface: Surface
    stream: bool = False
    expect: frozenset[int] = frozenset({200})
    row: bool = True
    cut: bool = False


OK = frozenset({200})
MSGS = [{"role": "user", "content": USER}]  # the SDK checks' messages


def kinds(key: str) -> list[Kind]:
    """The mix, with weights per about 160 calls. ``anthropic/claude`` and ``openai/gpt``
    reach the fake upstream, ``mock/echo`` and ``mock-down/echo`` stay in the gateway;
    ``soak-mixed`` and ``soak-fallback`` are virtual models (``bench/soak.yaml.tmpl``)."""

    def post(
        name: str,
        weight: int,
        surface: Literal["messages", "chat"],
        model: str,
        stream: bool = False,
        *,
        bad_json: bool = False,
        wrong_key: bool = False,
        expect: frozenset[int] = OK,
        cut: bool = False,
    ) -> Kind:
        body, headers = request_for(surface, stream, model, BAD_KEY if wrong_key else key)
        path = MESSAGES if surface == "messages" else CHAT
        body = BAD_JSON if bad_json else body
        return Kind(
            name, weight, "POST", path, body, headers, surface, stream, expect, not wrong_key, cut
        )

    m, c = "messages", "chat"
    claude, gpt, mock, mixed, fallback = (
        "anthropic/claude",
        "openai/gpt",
        "mock/echo",
        "soak-mixed",
        "soak-fallback",
    )
    count_body = {"system": SYSTEM, "messages": [{"role": "user", "content": USER}]}
    anthropic_headers = request_for("messages", False, claude, key)[1]
    openai_headers = request_for("chat", False, gpt, key)[1]
    return [
        # Anthropic surface: passthrough, translated, routed, fallback, the mock.
        post("messages", 14, m, claude),
        post("messages-stream", 10, m, claude, True),
        post("messages-translated", 6, m, gpt),
        post("messages-translated-stream", 6, m, gpt, True),
        post("messages-routed", 4, m, mixed),
        post("messages-routed-stream", 5, m, mixed, True),
        post("messages-fallback", 3, m, fallback),
        post("messages-fallback-stream", 3, m, fallback, True),
        post("messages-mock", 4, m, mock),
        post("messages-mock-stream", 3, m, mock, True),
        # OpenAI surface: passthrough, translated, routed.
        post("chat", 14, c, gpt),
        post("chat-stream", 10, c, gpt, True),
        post("chat-translated", 6, c, claude),
        post("chat-translated-stream", 6, c, claude, True),
        post("chat-routed", 4, c, mixed),
        post("chat-routed-stream", 4, c, mixed, True),
        # count_tokens: counted by the mock, and by the gateway itself for an OpenAI model.
        *(
            Kind(
                f"count-tokens-{name}",
                3,
                "POST",
                MESSAGES + "/count_tokens",
                json.dumps({"model": model, **count_body}).encode(),
                anthropic_headers,
                "count_tokens",
            )
            for name, model in (("mock", mock), ("openai", gpt))
        ),
        # Model lists (Anthropic's shape, OpenAI's): no usage row.
        Kind("models", 2, "GET", "/v1/models", None, anthropic_headers, "models", row=False),
        Kind("models-openai", 2, "GET", "/v1/models", None, openai_headers, "models", row=False),
        # What the load asks to fail: bad JSON 400, an unknown model 404, a provider's 529
        # (each with a usage row), a wrong key 401 (none).
        post("bad-json", 2, m, claude, bad_json=True, expect=frozenset({400})),
        post("bad-json-chat", 2, c, gpt, bad_json=True, expect=frozenset({400})),
        post("unknown-model", 2, m, "nope/none", expect=frozenset({404})),
        post("unknown-model-chat", 2, c, "nope/none", expect=frozenset({404})),
        post("provider-529", 2, m, "mock-down/echo", expect=frozenset({529})),
        post("wrong-key", 2, m, claude, wrong_key=True, expect=frozenset({401})),
        post("wrong-key-chat", 2, c, gpt, wrong_key=True, expect=frozenset({401})),
        # Clients that go away after the first bytes of a stream (usage row status 499).
        post("cut-messages-stream", 3, m, claude, True, cut=True),
        post("cut-chat-translated-stream", 2, c, claude, True, cut=True),
        post("cut-messages-routed-stream", 2, m, mixed, True, cut=True),
    ]


# What an answer of each surface must contain to count as parsed (cheap byte checks; the SDK
# checks parse fully). Streams: the last event's marker among the last bytes.
_JSON_MARK = {
    "messages": b'"usage"',
    "chat": b'"usage"',
    "count_tokens": b'"input_tokens"',
    "models": b'"data"',
}
_END_MARK = {"messages": b"message_stop", "chat": b"data: [DONE]"}


@dataclass
class Tally:
    """Counts of everything sent and seen. ``classes``: 2xx/4xx/5xx by the status the client
    saw, ``err`` for a call that got no status (connection failed, timed out)."""

    calls: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    rows_expected: int = 0
    rows_unknown: int = 0
    unexpected: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def record(
        self,
        kind: str,
        row: bool,
        expect: frozenset[int],
        status: int | None,
        problem: str = "",
        connected: bool = True,
    ) -> None:
        """One finished call: its status (None: no answer), what was wrong with its answer
        (''), and, when there was no answer, whether a connection had been made."""
        self.calls += 1
        outcome = str(status) if status is not None else problem.split(":", 1)[0]
        self.by_kind.setdefault(kind, Counter())[outcome] += 1
        self.classes[f"{status // 100}xx" if status is not None else "err"] += 1
        if row:
            if status is not None:
                self.rows_expected += 1
            elif connected:
                self.rows_unknown += 1
        if status is None or status not in expect or problem:
            what = f"HTTP {status}" if status is not None else outcome
            if status is not None and status in expect:
                what += " (answer did not parse)"
            self.unexpected[(kind, what)] += 1
            self.examples.setdefault((kind, what), problem[:300])


async def call_once(session: aiohttp.ClientSession, base: str, kind: Kind, tally: Tally) -> None:
    """Send one call of ``kind``, check its answer and record it."""
    status: int | None = None
    problem = ""
    try:
        async with session.request(
            kind.method, base + kind.path, data=kind.body, headers=kind.headers
        ) as r:
            status = r.status
            if kind.cut and status == 200:
                await r.content.readany()  # the first bytes of the stream, then go away
                r.close()
            elif kind.stream and status == 200:
                tail = b""
                async for chunk in r.content.iter_any():
                    tail = (tail + chunk)[-256:]
                if _END_MARK[kind.surface] not in tail:
                    problem = f"stream ended without its last event: {tail[-160:]!r}"
            else:
                data = await r.read()
                if status not in kind.expect:
                    problem = f"{data[:300]!r}"
                elif status == 200 and _JSON_MARK[kind.surface] not in data:
                    problem = f"unexpected body: {data[:200]!r}"
                elif status != 200 and b'"error"' not in data:
                    problem = f"error without an error envelope: {data[:200]!r}"
    except aiohttp.ClientConnectorError as err:
        tally.record(kind.name, kind.row, kind.expect, None, _err(err), connected=False)
        return
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        if status is None:
            tally.record(kind.name, kind.row, kind.expect, None, _err(err))
            return
        problem = f"answer cut: {_err(err)}"
    tally.record(kind.name, kind.row, kind.expect, status, problem)


def _err(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


async def worker(
    session: aiohttp.ClientSession,
    base: str,
    mix: list[Kind],
    rng: random.Random,
    tally: Tally,
    stop: asyncio.Event,
) -> None:
    """Send calls back to back until ``stop`` is set; each call runs to its end."""
    cum: list[float] = []
    total = 0
    for kind in mix:
        total += kind.weight
        cum.append(total)
    while not stop.is_set():
        kind = rng.choices(mix, cum_weights=cum)[0]
        before = tally.classes["err"]
        try:
            await call_once(session, base, kind, tally)
        except Exception as err:  # a bug in this file: count it, do not stop the worker
            tally.record(kind.name, False, kind.expect, None, f"soak bug: {_err(err)}", False)
        if tally.classes["err"] > before:
            await asyncio.sleep(0.05)  # a failing gateway must not turn into a busy loop


class SdkChecks:
    """A round of official-SDK calls (Anthropic and OpenAI), each checked field by field:
    Messages passthrough, a translated Messages stream, a translated Chat Completion, a Chat
    Completions stream with usage, count_tokens, the model list. Retries are off, so each
    call is one call to the gateway."""

    def __init__(self, base: str, key: str, tally: Tally) -> None:
        import anthropic
        import openai

        self._a = anthropic.AsyncAnthropic(api_key=key, base_url=base, max_retries=0, timeout=30)
        self._o = openai.AsyncOpenAI(api_key=key, base_url=base + "/v1", max_retries=0, timeout=30)
        self._tally = tally
        self._errors = (anthropic.APIStatusError, openai.APIStatusError)
        self._no_answer = (anthropic.APIConnectionError, openai.APIConnectionError)

    async def aclose(self) -> None:
        await self._a.close()
        await self._o.close()

    async def run_round(self) -> None:
        checks: list[tuple[str, bool, Callable[[], Awaitable[str]]]] = [
            ("sdk-messages", True, self._messages),
            ("sdk-messages-translated-stream", True, self._messages_stream),
            ("sdk-chat-translated", True, self._chat),
            ("sdk-chat-stream", True, self._chat_stream),
            ("sdk-count-tokens", True, self._count_tokens),
            ("sdk-models", False, self._models),
        ]
        ok = frozenset({200})
        for name, row, check in checks:
            try:
                problem = await check()
            except self._errors as err:
                self._tally.record(name, row, ok, err.status_code, _err(err))
            except self._no_answer as err:
                self._tally.record(name, row, ok, None, _err(err))
            except Exception as err:  # a parse error: the answer came (status 200)
                self._tally.record(name, row, ok, 200, f"SDK could not parse: {_err(err)}")
            else:
                self._tally.record(name, row, ok, 200, problem)

    async def _messages(self) -> str:
        msg = await self._a.messages.create(
            model="anthropic/claude", max_tokens=256, system=SYSTEM, messages=MSGS
        )
        text = msg.content[0].text if msg.content and msg.content[0].type == "text" else ""
        return "" if text and msg.usage.output_tokens > 0 else f"no text or usage: {msg!r:.200}"

    async def _messages_stream(self) -> str:
        async with self._a.messages.stream(
            model="openai/gpt", max_tokens=256, messages=MSGS
        ) as stream:
            msg = await stream.get_final_message()
        text = msg.content[0].text if msg.content and msg.content[0].type == "text" else ""
        good = text and msg.usage.output_tokens > 0 and msg.stop_reason
        return "" if good else f"stream folded to {msg!r:.200}"

    async def _chat(self) -> str:
        r = await self._o.chat.completions.create(
            model="anthropic/claude", max_tokens=256, messages=MSGS
        )
        good = r.choices and r.choices[0].message.content and r.usage and r.usage.total_tokens
        return "" if good else f"no content or usage: {r!r:.200}"

    async def _chat_stream(self) -> str:
        stream = await self._o.chat.completions.create(
            model="openai/gpt",
            max_tokens=256,
            messages=MSGS,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = [], None
        async for chunk in stream:
            text += [c.delta.content or "" for c in chunk.choices]
            usage = chunk.usage or usage
        return "" if "".join(text) and usage else "no text or no usage chunk"

    async def _count_tokens(self) -> str:
        r = await self._a.messages.count_tokens(model="mock/echo", messages=MSGS)
        return "" if r.input_tokens > 0 else f"input_tokens {r.input_tokens}"

    async def _models(self) -> str:
        page = await self._a.models.list()
        ids = [m.id for m in page.data]
        return "" if "soak-mixed" in ids else f"soak-mixed not listed: {ids}"
