"""Which proxy the environment chooses for a provider's upstream (``providers/egress.py``):
``HTTPS_PROXY`` / ``HTTP_PROXY`` by scheme, lower-case first, and ``NO_PROXY`` as curl
reads it."""

from __future__ import annotations

import pytest

from llmrelay.providers.egress import env_proxy

PROXY = "http://proxy.internal:3128"


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        ("https://api.anthropic.com", {}, None),
        ("https://api.anthropic.com", {"HTTPS_PROXY": PROXY}, PROXY),
        ("https://api.anthropic.com", {"https_proxy": PROXY, "HTTPS_PROXY": "http://x:1"}, PROXY),
        ("https://api.anthropic.com", {"HTTP_PROXY": PROXY}, None),
        ("http://vllm:8000/v1", {"HTTP_PROXY": PROXY}, PROXY),
        ("https://api.anthropic.com", {"HTTPS_PROXY": "proxy.internal:3128"}, PROXY),
        ("https://api.anthropic.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": "*"}, None),
        ("https://api.anthropic.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": "anthropic.com"}, None),
        ("https://api.anthropic.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": ".anthropic.com"}, None),
        (
            "https://api.anthropic.com",
            {"HTTPS_PROXY": PROXY, "no_proxy": "x.com, api.anthropic.com"},
            None,
        ),
        ("https://api.anthropic.com", {"HTTPS_PROXY": PROXY, "NO_PROXY": "thropic.com"}, PROXY),
        ("https://h:8443", {"HTTPS_PROXY": PROXY, "NO_PROXY": "h:8443"}, None),
        ("https://h:8443", {"HTTPS_PROXY": PROXY, "NO_PROXY": "h:9443"}, PROXY),
        ("https://127.0.0.1:8443", {"HTTPS_PROXY": PROXY, "NO_PROXY": "127.0.0.1"}, None),
    ],
)
def test_env_proxy(url: str, env: dict[str, str], expected: str | None) -> None:
    assert env_proxy(url, env) == expected
