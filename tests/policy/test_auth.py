"""Gateway keys as presented: ``x-api-key`` or ``Authorization: Bearer``, both only if they
agree, and a header given twice only with the same value. With two different values the
first one counted and the other was ignored (found by the ingress fuzz)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from llmrelay.errors import AuthenticationError
from llmrelay.policy.auth import KeyRing, Principal

KEY = "sk-test-key-0123456789abcdef"
OTHER = "sk-test-other-0123456789abcdef"


def _ring() -> KeyRing:
    return KeyRing([(KEY, Principal(name="a")), (OTHER, Principal(name="b"))])


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize(
    "pairs",
    [
        [("x-api-key", KEY), ("x-api-key", OTHER)],
        [("x-api-key", KEY), ("x-api-key", "wrong")],
        [("x-api-key", "wrong"), ("x-api-key", KEY)],
        [("authorization", f"Bearer {KEY}"), ("authorization", f"Bearer {OTHER}")],
        [("authorization", f"Bearer {KEY}"), ("authorization", "Basic xyz")],
        [("x-api-key", KEY), ("authorization", f"Bearer {KEY}"), ("authorization", "Bearer x")],
    ],
)
def test_a_key_header_given_twice_with_different_values_is_a_401(
    pairs: list[tuple[str, str]],
) -> None:
    with pytest.raises(AuthenticationError):
        _ring().authenticate(_headers(*pairs))


@pytest.mark.parametrize(
    "pairs",
    [
        [("x-api-key", KEY)],
        [("x-api-key", KEY), ("x-api-key", KEY)],
        [("authorization", f"Bearer {KEY}"), ("authorization", f"Bearer {KEY}")],
        [("x-api-key", KEY), ("authorization", f"bearer {KEY}")],
    ],
)
def test_a_key_given_once_or_repeated_alike_authenticates(pairs: list[tuple[str, str]]) -> None:
    assert _ring().authenticate(_headers(*pairs)).name == "a"
    assert _ring().authenticate(dict(pairs[:1])).name == "a"  # a plain mapping works too
