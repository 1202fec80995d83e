"""Latency samples summarised the same way by every bench script here."""

from __future__ import annotations

import statistics


def summary(took_ms: list[float], what: str) -> str:
    """``"<n> <what>, p50 .. ms, p99 .. ms, max .. ms"`` (p99: the sample below which 99%
    fall), or ``"no <what>"``."""
    if not took_ms:
        return f"no {what}"
    took = sorted(took_ms)
    p99 = took[max(0, int(len(took) * 0.99) - 1)]
    return (
        f"{len(took)} {what}, p50 {statistics.median(took):.1f} ms, p99 {p99:.1f} ms, "
        f"max {took[-1]:.1f} ms"
    )
