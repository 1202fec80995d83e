"""make_storable cleans and caps what a store cannot take and leaves an ordinary row alone;
reduced is ASCII only."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import orjson
import pytest

from llmrelay.obs.sanitize import MAX_TOKENS, TEXT_CAPS, make_storable, reduced
from llmrelay.stores.usage import UsageRecord
from tests.obs.support import good


def full_row() -> UsageRecord:
    return good(
        1,
        ttft_s=0.002,
        error_type="overloaded_error",
        upstream_request_id="req_up",
        key_id="vk_1",
        team="t",
        cost_usd=0.5,
        attempts=2,
        attempt_log='[{"target":"a/b","status":529}]',
    )


def test_an_ordinary_row_is_left_alone() -> None:
    row = full_row()
    before = replace(row)
    assert make_storable(row) is False
    assert row == before
    unicode_names = good(2, key_name="dév 日本", team="équipe")
    assert make_storable(unicode_names) is False
    assert (unicode_names.key_name, unicode_names.team) == ("dév 日本", "équipe")


@pytest.mark.parametrize("name", list(TEXT_CAPS))
def test_a_string_at_its_cap_is_kept_and_a_longer_one_truncated_and_marked(name: str) -> None:
    cap = TEXT_CAPS[name][0]
    at_cap = replace(full_row(), **{name: "x" * cap})
    assert make_storable(at_cap) is False
    assert getattr(at_cap, name) == "x" * cap
    past = replace(full_row(), **{name: "x" * (cap + 1)})
    assert make_storable(past) is True
    assert getattr(past, name) == "x" * (cap - 1) + "…"


@pytest.mark.parametrize("name", list(TEXT_CAPS))
def test_lone_surrogates_and_nul_become_replacement_characters(name: str) -> None:
    row = replace(full_row(), **{name: "a\ud800b\x00c\udcff"})
    assert make_storable(row) is True
    assert getattr(row, name) == "a\ufffdb\ufffdc\ufffd"
    ascii_nul = replace(full_row(), **{name: "a\x00"})
    make_storable(ascii_nul)
    assert getattr(ascii_nul, name) == "a\ufffd"


def test_a_long_attempt_log_stays_a_json_list_of_its_first_entries() -> None:
    entries = [{"target": "p/" + "m" * 100, "status": 529, "error_type": "x"}] * 200
    row = replace(full_row(), attempt_log=orjson.dumps(entries).decode())
    make_storable(row)
    assert row.attempt_log is not None and len(row.attempt_log) <= TEXT_CAPS["attempt_log"][0]
    kept = orjson.loads(row.attempt_log)
    assert kept[:-1] == entries[: len(kept) - 1]
    assert kept[-1] == {"truncated": 200 - (len(kept) - 1)}


def test_counts_are_clamped_and_made_integers() -> None:
    row = replace(
        full_row(),
        input_tokens=-5,
        output_tokens=2**70,
        cache_creation_input_tokens=12.0,
        cache_read_input_tokens=float("nan"),
        status=-1,
        attempts=10**9,
    )
    assert make_storable(row) is True
    assert (row.input_tokens, row.output_tokens) == (0, MAX_TOKENS)
    assert (row.cache_creation_input_tokens, row.cache_read_input_tokens) == (12, 0)
    assert (row.status, row.attempts) == (0, 1_000_000)
    assert all(type(getattr(row, f)) is int for f in ("output_tokens", "status"))


def test_times_and_cost_are_finite_and_not_negative() -> None:
    row = replace(full_row(), ts=float("inf"), latency_s=-1.0, ttft_s=float("nan"), cost_usd=-0.5)
    assert make_storable(row) is True
    assert math.isfinite(row.ts) and row.ts > 1_700_000_000  # now
    assert (row.latency_s, row.ttft_s, row.cost_usd) == (0.0, None, None)
    ints = replace(full_row(), ts=5, latency_s=2)
    assert make_storable(ints) is False  # ints are storable as they are


def test_missing_and_wrongly_typed_values_get_storable_ones() -> None:
    row = replace(full_row(), request_id=None, model=42, stream=1, error_type=b"x")
    assert make_storable(row) is True
    assert (row.request_id, row.model, row.stream, row.error_type) == ("", "42", True, "b'x'")


def test_reduced_is_ascii_only_and_leaves_the_row_as_it_was() -> None:
    row = replace(full_row(), model="ü\ud800\x00" + "é" * 300, team="日本")
    before = replace(row)
    out = reduced(row)
    assert row == before
    for f in fields(UsageRecord):
        v = getattr(out, f.name)
        assert not isinstance(v, str) or (v.isascii() and "\x00" not in v), f.name
    assert out.model.startswith("\\xfc\\ufffd\\ufffd\\xe9")
    assert len(out.model) == 256 and out.model.endswith("...")
    assert out.team == "\\u65e5\\u672c"
    assert out.request_id == row.request_id
