"""Client strings in messages and logs: cut to a bounded length (``docs/limits.md``)."""

from __future__ import annotations

__all__ = ["MAX_ECHO_CHARS", "clip"]

#: Longest client string echoed in an error message or a log line.
MAX_ECHO_CHARS = 120


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis and its full length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"
