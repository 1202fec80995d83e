"""``anthropic-beta`` values per provider: which a cloud accepts, and dropping the rest.

Anthropic's own API takes every beta; Bedrock and Vertex reject ones they do not know
("invalid beta flag"). Clients send betas comma-joined in one header or in repeated headers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

__all__ = ["BEDROCK_BETAS", "VERTEX_BETAS", "filter_betas", "split_betas"]

log = logging.getLogger("llmrelay.providers")

#: Betas Claude on Bedrock accepts (AWS "Anthropic Claude Messages API" parameters page),
#: the shipped default for ``providers.<name>.betas``.
BEDROCK_BETAS = (
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
    "fine-grained-tool-streaming-2025-05-14",
)
#: Betas Claude on Vertex AI accepts; the shipped default for ``providers.<name>.betas``.
VERTEX_BETAS = (
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "computer-use-2025-11-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "fine-grained-tool-streaming-2025-05-14",
    "token-counting-2024-11-01",
)


def split_betas(headers: Iterable[tuple[str, str]]) -> list[str]:
    """Every ``anthropic-beta`` value in order, from comma-joined and repeated headers."""
    out: list[str] = []
    for name, value in headers:
        if name.lower() == "anthropic-beta":
            for beta in value.split(","):
                beta = beta.strip()
                if beta and beta not in out:
                    out.append(beta)
    return out


def filter_betas(betas: list[str], allowed: frozenset[str], account: str) -> list[str]:
    """The betas in ``allowed``; the others are dropped with a debug log naming them."""
    kept = [b for b in betas if b in allowed]
    if len(kept) != len(betas) and log.isEnabledFor(logging.DEBUG):
        dropped = [b for b in betas if b not in allowed]
        log.debug("betas dropped", extra={"provider": account, "betas": dropped})
    return kept
