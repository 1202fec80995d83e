"""Passthrough paths: what reaches the account's base URL, and every escape refused."""

from __future__ import annotations

import pytest

from llmrelay.errors import InvalidRequestError
from llmrelay.surfaces.proxy_path import MAX_PATH_CHARS, proxied_path, split_proxy_target


def test_a_proxy_target_splits_into_account_path_and_query() -> None:
    assert split_proxy_target("/proxy/anthropic/v1/files?limit=2") == (
        "anthropic",
        "v1/files",
        "limit=2",
    )
    assert split_proxy_target("/proxy/bedrock/model/us.anthropic.claude-v1%3A0/invoke") == (
        "bedrock",
        "model/us.anthropic.claude-v1%3A0/invoke",
        "",
    )


def test_an_sdk_path_keeps_its_encoding() -> None:
    assert proxied_path("/v1/files/file_1/content", "/") == ("v1/files/file_1/content", "")
    assert proxied_path("/anthropic/v1/files?beta=true", "/anthropic/") == ("v1/files", "beta=true")
    assert proxied_path("/v1/files/a%40b", "/") == ("v1/files/a%40b", "")


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("http://evil.example/proxy/a/v1/files", "absolute URL"),
        ("/proxy/a/../b/v1", "'..'"),
        ("/proxy/a/./v1", "'..'"),
        ("/proxy/a/..;x/b/v1", "'..'"),
        ("/proxy/a/%2e%2e/v1", "encoded"),
        ("/proxy/a/v1%2Ffiles", "encoded"),
        ("/proxy/a/v1%5cfiles", "encoded"),
        ("/proxy/a/v1/%252e%252e", "encoded"),
        ("/proxy/a/v1/%00", "encoded"),
        ("/proxy/a//v1", "empty segment"),
        ("/proxy/a/v1//files", "empty segment"),
        ("/proxy/a/v1\\files", "backslash"),
        ("/proxy/a/v1 files", "backslash"),
        ("/proxy/a/v1/files?x=\x01", "control character"),
        ("/proxy/../a/v1", "account"),
        ("/proxy/%2e%2e/a/v1", "account"),
        ("/proxy/a", "expected /proxy/"),
        ("/proxy//v1/files", "expected /proxy/"),
        ("/proxy/a/" + "x" * MAX_PATH_CHARS, "longer than"),
    ],
)
def test_escapes_are_refused(target: str, why: str) -> None:
    with pytest.raises(InvalidRequestError, match="passthrough path refused") as e:
        split_proxy_target(target)
    assert why in e.value.message
    assert e.value.status == 400
