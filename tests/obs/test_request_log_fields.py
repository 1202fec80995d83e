"""The request log's fields on the usage row: the trace id taken from ``traceparent``, and
the caps the sanitizer puts on the new fields (the attempts stay a list on the request path;
the reduced form of a refused row has no bodies and its attempts as ASCII JSON)."""

from __future__ import annotations

import pytest

from llmrelay.obs.sanitize import TEXT_CAPS, make_storable, reduced
from llmrelay.pipeline.observe import trace_id
from llmrelay.routing.executor import AttemptRecord
from llmrelay.stores.usage import RequestBodies
from tests.obs.support import good

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        (f"01-{TRACE}-00f067aa0ba902b7-00-extra", TRACE),  # a later version may add fields
        (None, None),
        ("", None),
        (f"00-{TRACE}", None),
        (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", TRACE),  # lenient: read as lowercase
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None),  # all zeros is invalid
        (f"00_{TRACE}-00f067aa0ba902b7-01", None),
        (f"00-{TRACE[:-1]}g-00f067aa0ba902b7-01", None),
    ],
)
def test_the_trace_id_of_a_traceparent(header: str | None, expected: str | None) -> None:
    assert trace_id(header) == expected


def test_an_ordinary_request_log_row_is_left_as_it_is() -> None:
    attempts = [AttemptRecord("mock/echo", 200, None, 0.1)]
    row = good(1, attempt_log=attempts, surface="anthropic", routed_model="mock/echo",
               user_agent="Anthropic/Python 0.70.0", trace_id=TRACE, overhead_ms=0.5,
               upstream_ms=12.0, error_message="fine")  # fmt: skip
    assert make_storable(row) is False
    assert row.attempt_log is attempts


def test_the_new_fields_are_capped_and_cleaned() -> None:
    row = good(
        1,
        user_agent="u" * 5000,
        error_message="e\x00" * 2000,
        routed_model="\ud800",
        trace_id="t" * 100,
        overhead_ms=float("nan"),
        upstream_ms=-1.0,
    )
    assert make_storable(row) is True
    assert row.user_agent == "u" * 511 + "…" and len(row.user_agent) == TEXT_CAPS["user_agent"][0]
    assert row.error_message is not None and len(row.error_message) == 1024
    assert "\x00" not in row.error_message
    assert row.routed_model == "\ufffd"
    assert row.trace_id is not None and len(row.trace_id) == 64
    assert (row.overhead_ms, row.upstream_ms) == (None, None)


def test_the_reduced_form_has_no_bodies_and_its_attempts_as_json() -> None:
    row = good(1, attempt_log=[AttemptRecord("a/b", 529, "overloaded_error", 0.1, "ü")])
    row.bodies = RequestBodies("{}", "{}")
    out = reduced(row)
    assert out.bodies is None and row.bodies is not None
    assert isinstance(out.attempt_log, str) and out.attempt_log.isascii()
    assert out.attempt_log.startswith('[{"target":"a/b","status":529')
    assert '"message":"\\xfc"' in out.attempt_log  # escaped, as reduced strings are
