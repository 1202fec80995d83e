"""Fixtures of the console tests: a fake OpenAI upstream and a gateway per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture(scope="module")
def gpt() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()
