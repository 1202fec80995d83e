"""wirejson: nesting is bounded on the way in and never a RecursionError on the way out."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.core.wirejson import InvalidJSON, TooDeep, check_depth, dumps, loads

MESSAGE = "request body nests JSON deeper than 128 levels (server.max_json_depth)"


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def objects(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def mixed(depth: int) -> bytes:
    opens = [b'{"k":' if i % 2 else b"[" for i in range(depth - 1)]
    closes = [b"}" if i % 2 else b"]" for i in reversed(range(depth - 1))]
    return b"".join(opens) + b"[1]" + b"".join(closes)


@pytest.mark.parametrize("shape", [arrays, objects, mixed])
@pytest.mark.parametrize("depth", [1, 127, 128])
def test_nesting_up_to_the_limit_parses(shape: Any, depth: int) -> None:
    raw = shape(depth)
    assert loads(raw, max_depth=128) == loads(raw)


@pytest.mark.parametrize("shape", [arrays, objects, mixed])
@pytest.mark.parametrize("depth", [129, 255, 1000, 1023, 1100, 5000])
def test_nesting_past_the_limit_is_too_deep(shape: Any, depth: int) -> None:
    with pytest.raises(TooDeep) as info:
        loads(shape(depth), max_depth=128)
    assert str(info.value) == MESSAGE
    assert info.value.max_depth == 128
    assert isinstance(info.value, InvalidJSON)  # surfaces that catch InvalidJSON answer 400


def test_deep_nesting_on_the_standard_library_path_is_too_deep() -> None:
    # A long integer sends the body to the standard library, which recurses.
    raw = b"[" * 1100 + b"123456789012345678901234567890" + b"]" * 1100
    with pytest.raises(TooDeep):
        loads(raw, max_depth=128)
    with pytest.raises(TooDeep):
        loads(b"[" * 200 + b'"\\ud800"' + b"]" * 200, max_depth=128)
    assert loads(b"[" * 50 + b'"\\ud800"' + b"]" * 50, max_depth=128)


def test_brackets_inside_strings_do_not_count() -> None:
    deep_text = "[" * 1000 + '\\"{' * 300 + "]" * 5
    body = {"messages": [{"role": "user", "content": deep_text}], "s": '\\"' + "{" * 200}
    assert loads(dumps(body), max_depth=3) == body
    raw = b'{"a": "' + b"[" * 500 + b'\\"' + b"]" * 500 + b'"}'
    assert loads(raw, max_depth=1) == {"a": "[" * 500 + '"' + "]" * 500}


def test_a_deep_value_after_a_long_flat_array_is_found() -> None:
    value: list[Any] = [1] * 40 + ["x"] * 40
    inner: list[Any] = value
    for _ in range(128):
        inner.append([])
        inner = inner[-1]
    with pytest.raises(TooDeep):
        check_depth(value, 128)
    check_depth(value, 129)


def test_without_a_bound_loads_is_unchanged() -> None:
    assert loads(arrays(1000))
    with pytest.raises(InvalidJSON) as info:
        loads(arrays(5000))
    assert not isinstance(info.value, TooDeep)
    with pytest.raises(InvalidJSON):
        loads(b"", max_depth=128)
    with pytest.raises(InvalidJSON):
        loads(b"[1,]", max_depth=128)


def test_dumps_writes_what_orjson_cannot_and_never_raises_recursion_error() -> None:
    value: list[Any] = []
    for _ in range(299):  # 300 levels: past orjson's 254, within the standard library's
        value = [value]
    assert dumps(value) == arrays(300)
    for _ in range(5000):
        value = [value]
    with pytest.raises(TooDeep, match="too deeply"):
        dumps(value)
    assert dumps({"a": "\ud800", "n": 2**70}) == b'{"a":"\\ud800","n":1180591620717411303424}'


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=5),
    lambda inner: st.lists(inner, max_size=40) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(value=_json, bound=st.integers(min_value=1, max_value=8))
def test_check_depth_agrees_with_a_recursive_count(value: Any, bound: int) -> None:
    raw = dumps(value)
    if _depth(value) > bound:
        with pytest.raises(TooDeep):
            loads(raw, max_depth=bound)
    else:
        assert loads(raw, max_depth=bound) == value
