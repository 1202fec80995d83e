"""Which accounts a key reaches through the passthrough, and the x-llmrelay-key header."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from multidict import CIMultiDict

from llmrelay.errors import AuthenticationError, InvalidRequestError, PermissionDeniedError
from llmrelay.policy.accounts import check_account, reachable, sole_account
from llmrelay.policy.auth import KeyRing, Principal, caller_credential

SERVED = {"anthropic/claude": ["anthropic"], "fast": ["anthropic", "bedrock"]}


def accounts_of(model: str) -> Iterable[str]:
    return SERVED.get(model, ())


def test_models_grant_their_accounts_and_allowed_accounts_override() -> None:
    assert reachable(Principal("all"), accounts_of) is None
    assert reachable(Principal("m", models=frozenset({"fast"})), accounts_of) == {
        "anthropic",
        "bedrock",
    }
    explicit = Principal("x", models=frozenset({"fast"}), accounts=frozenset({"vertex"}))
    assert reachable(explicit, accounts_of) == {"vertex"}
    with pytest.raises(PermissionDeniedError, match="'bedrock'"):
        check_account(
            Principal("m", models=frozenset({"anthropic/claude"})), "bedrock", accounts_of
        )
    check_account(Principal("all"), "bedrock", accounts_of)


def test_the_sole_account_or_a_400_naming_the_header() -> None:
    one = Principal("m", models=frozenset({"anthropic/claude"}))
    assert sole_account(one, ["anthropic", "second"], accounts_of, "/v1/files") == "anthropic"
    with pytest.raises(InvalidRequestError, match=r"x-llmrelay-account.*anthropic, second"):
        sole_account(Principal("all"), ["anthropic", "second"], accounts_of, "/v1/files")
    with pytest.raises(InvalidRequestError, match="x-llmrelay-account"):
        sole_account(Principal("n", accounts=frozenset()), ["anthropic"], accounts_of, "/v1")


def test_x_llmrelay_key_is_the_gateway_key_and_frees_authorization() -> None:
    ring = KeyRing([("sk-gateway-key-123", Principal("alice"))])
    headers = CIMultiDict(
        {"x-llmrelay-key": "sk-gateway-key-123", "authorization": "Bearer sk-ant-oat01-abc"}
    )
    assert ring.authenticate(headers).name == "alice"
    assert caller_credential(headers) == "Bearer sk-ant-oat01-abc"
    # Without x-llmrelay-key, Authorization is the gateway key and never the caller's own.
    plain = CIMultiDict({"authorization": "Bearer sk-gateway-key-123"})
    assert ring.authenticate(plain).name == "alice"
    assert caller_credential(plain) is None
    with pytest.raises(AuthenticationError, match="invalid gateway key"):
        ring.authenticate(CIMultiDict({"x-llmrelay-key": "nope-nope-nope"}))
    two = CIMultiDict([("x-llmrelay-key", "sk-gateway-key-123"), ("x-llmrelay-key", "other")])
    with pytest.raises(AuthenticationError, match="several"):
        ring.authenticate(two)


def test_a_callers_token_is_not_in_a_requests_repr() -> None:
    from llmrelay.providers.base import ProviderRequest
    from llmrelay.providers.raw import RawRequest

    token = "Bearer sk-ant-oat01-secret-token"
    assert "oat01" not in repr(ProviderRequest("messages", {}, [], "", False, token))
    assert "oat01" not in repr(RawRequest("GET", "v1/files", "", [], b"", token))
