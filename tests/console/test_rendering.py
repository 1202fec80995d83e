"""Rendering: every user-supplied string is escaped (key names, models, request ids, bodies,
query parameters), conversations are read from both wire shapes, and overview parameters
are checked with messages naming them."""

from __future__ import annotations

import re

import orjson
import pytest

from llmrelay.console.charts import column_chart
from llmrelay.console.conversation import conversation
from llmrelay.console.data import overview_query
from llmrelay.console.pages_keys import keys_page, revoke_page
from llmrelay.console.pages_requests import requests_page

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def no_markup_from_input(html: str) -> None:
    """No element or attribute came from the input (the page's own markup has neither)."""
    assert "<script" not in html and "<img" not in html
    assert '"><img' not in html and "onerror=alert(2)>" not in html
    assert "&lt;script&gt;" in html or "%3Cscript" in html


def test_a_conversation_of_anthropic_blocks_escapes_every_text() -> None:
    request = {
        "system": XSS,
        "messages": [
            {"role": "user", "content": XSS},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": XSS, "signature": "s"},
                    {"type": "tool_use", "id": "t", "name": XSS, "input": {"q": XSS}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": XSS}],
                    }
                ],
            },
        ],
    }
    response = {"content": [{"type": "text", "text": XSS}, {"type": "redacted_thinking"}]}
    html = conversation(orjson.dumps(request).decode(), orjson.dumps(response).decode())
    no_markup_from_input(html)
    for kind in ("system", "thinking", "tool call", "tool result", "assistant"):
        assert kind in html
    assert html.count("&lt;script&gt;") >= 7
    assert "<details><summary>Raw JSON</summary>" in html


def test_a_conversation_of_openai_messages_and_of_text_that_is_not_json() -> None:
    request = {"messages": [{"role": "system", "content": XSS}, {"role": "user", "content": "hi"}]}
    response = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": XSS, "arguments": "{}"},
                        }
                    ],
                }
            }
        ]
    }
    html = conversation(orjson.dumps(request).decode(), orjson.dumps(response).decode())
    no_markup_from_input(html)
    assert "tool call" in html and "role-system" in html
    cut = conversation('{"messages": [{"role": "user", "content": "' + XSS, None)
    no_markup_from_input(cut)
    assert "not captured" in cut


def test_key_and_request_tables_escape_names_models_and_ids() -> None:
    key = {
        "id": XSS,
        "name": XSS,
        "team": XSS,
        "models": [XSS],
        "limits": {},
        "status": "active",
        "expires_at": None,
    }
    html = keys_page([key], {"keys": []}, [], "tok", XSS) + revoke_page(key, "tok")
    no_markup_from_input(html)
    record = {
        "ts": 0,
        "request_id": XSS,
        "key_name": XSS,
        "model": XSS,
        "routed_model": XSS,
        "rerouted": True,
        "provider": XSS,
        "status": 500,
        "input_tokens": 1,
        "output_tokens": 1,
        "cost_usd": None,
        "latency_ms": 1.0,
        "attempts": 1,
    }
    html = requests_page({"data": [record], "next_cursor": XSS}, {"model": XSS})
    no_markup_from_input(html)
    assert re.search(r'href="/ui/requests/%3Cscript', html)


def test_a_chart_has_axes_units_and_a_legend() -> None:
    svg = column_chart("Spend", "USD", [(0, 0.0), (3600, 2.5)], 3600, lambda v: f"${v:.2f}")
    assert "(USD, per hour, UTC)" in svg and "$2.50" in svg and "$0.00" in svg
    assert "Spend (USD)" in svg and svg.count("<rect") == 2  # one column and the legend


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"range": "1y"}, "range: expected 24h, 7d, 30d or custom"),
        ({"range": "custom", "since": "2026-01-01"}, "until: expected a date"),
        ({"range": "custom", "since": "2026-02-01", "until": "2026-01-01"}, "on or after"),
        ({"range": "custom", "since": "2020-01-01", "until": "2026-01-01"}, "at most 366 days"),
        ({"bucket": "minute"}, "bucket: expected hour or day"),
        (
            {"range": "custom", "since": "2026-01-01", "until": "2026-02-09", "bucket": "hour"},
            "more than 800",
        ),
        ({"by": "colour"}, "by: expected key, team, model or provider"),
        ({"top": "0"}, "top: expected an integer from 1 to 50"),
    ],
)
def test_overview_parameters_are_checked(query: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        overview_query(query, now=1_790_000_000)


def test_overview_ranges_end_after_the_current_hour() -> None:
    q = overview_query({"range": "7d"}, now=1_790_000_123)
    assert q.until == 1_790_002_800 and q.until - q.since == 7 * 86400
    assert (q.bucket, q.bucket_s, q.by, q.top) == ("day", 86400, "key", 8)
    q = overview_query({"range": "custom", "since": "2026-01-01", "until": "2026-01-01"})
    assert q.until - q.since == 86400 and q.bucket == "hour"
