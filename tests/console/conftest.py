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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Keep each phase's report on the test item, so a fixture can see a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
