"""Where the Vertex provider sends each endpoint: the account's region, and for
count-tokens a region that serves it when the account is at ``global``."""

from __future__ import annotations

from typing import Any

import pytest

from llmrelay.config import VertexProviderConfig
from llmrelay.providers.vertex.client import count_tokens_region, models_url


def vertex(**kw: Any) -> VertexProviderConfig:
    return VertexProviderConfig.model_validate(
        {"type": "vertex", "project": "p-1", "models": {"c": "claude"}, **kw}
    )


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"region": "global"}, "us-east5"),
        ({"region": "europe-west1"}, "europe-west1"),
        ({"region": "global", "count_tokens_region": "asia-southeast1"}, "asia-southeast1"),
        ({"region": "us-east5", "count_tokens_region": "europe-west1"}, "europe-west1"),
    ],
)
def test_count_tokens_region(kw: dict[str, str], expected: str) -> None:
    assert count_tokens_region(vertex(**kw)) == expected


def test_global_and_regional_hosts() -> None:
    config = vertex(region="global")
    assert models_url(config, "global") == (
        "https://aiplatform.googleapis.com/v1/projects/p-1/locations/global"
        "/publishers/anthropic/models"
    )
    assert models_url(config, "us-east5") == (
        "https://us-east5-aiplatform.googleapis.com/v1/projects/p-1/locations/us-east5"
        "/publishers/anthropic/models"
    )


def test_empty_count_tokens_region_is_refused() -> None:
    with pytest.raises(ValueError, match="count_tokens_region"):
        vertex(region="global", count_tokens_region="")
