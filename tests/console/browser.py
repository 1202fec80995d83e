"""Driving Debian's chromium with Playwright (never ``playwright install``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LLMRELAY_TEST_CHROMIUM", "/usr/bin/chromium")


def chromium_or_skip() -> str:
    """The chromium binary; skips the test when it is missing (``.ci/run`` installs it)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    return CHROMIUM


def sign_in(page: object, admin_key: str) -> None:
    """Fill the sign-in form the page shows and submit it."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.fill("input[name=key]", admin_key)
    page.click("button[type=submit]")


def card(page: object, label: str) -> str:
    """The value of an overview card."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    return (
        page.locator(".card", has_text=re.compile("^" + re.escape(label)))
        .locator(".value")
        .inner_text()
    )
