"""Routing rules: who calls and what they send -> the model the call is routed to.

Rules are checked in order, before the requested model is looked up; the first whose every
given criterion matches wins and its ``model`` replaces the requested one. Criteria:
``key`` (the gateway key's name), ``team``, ``model`` (as requested) and ``metadata`` (fields
of the ``x-llmrelay-metadata`` JSON object header). A criterion is one value or a list of
values (any may match); values with ``*``, ``?`` or ``[`` are glob patterns
(:func:`fnmatch.fnmatchcase`). Metadata values compare as text: strings as they are, other
JSON values as their JSON (``true``, ``3``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import orjson

from ..config.routing import Pattern, RuleConfig
from ..errors import InvalidRequestError

__all__ = ["METADATA_HEADER", "Rules", "parse_metadata"]

METADATA_HEADER = "x-llmrelay-metadata"
_GLOB = re.compile(r"[*?\[]")


def _patterns(value: Pattern | int | float | bool | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(value)
    return (_text(value),)


def _text(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _matches(patterns: tuple[str, ...] | None, value: str | None) -> bool:
    if patterns is None:
        return True
    if value is None:
        return False
    return any(p == value or (_GLOB.search(p) and fnmatchcase(value, p)) for p in patterns)


@dataclass(slots=True, frozen=True)
class _Rule:
    key: tuple[str, ...] | None
    team: tuple[str, ...] | None
    model: tuple[str, ...] | None
    metadata: tuple[tuple[str, tuple[str, ...]], ...] | None
    target: str


def parse_metadata(raw: str | None) -> Mapping[str, object] | None:
    """The ``x-llmrelay-metadata`` header as a JSON object (None when absent).

    Raises:
        InvalidRequestError: the header is not a JSON object (400).
    """
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{METADATA_HEADER}: expected a JSON object")
    return value


class Rules:
    def __init__(self, rules: Sequence[RuleConfig]) -> None:
        self._rules = [
            _Rule(
                _patterns(r.match.key),
                _patterns(r.match.team),
                _patterns(r.match.model),
                None
                if r.match.metadata is None
                else tuple((k, _patterns(v) or ()) for k, v in r.match.metadata.items()),
                r.model,
            )
            for r in rules
        ]
        #: Whether any rule reads the metadata header (else it is never parsed).
        self.uses_metadata = any(r.metadata is not None for r in self._rules)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def route(
        self,
        *,
        key: str,
        team: str | None,
        model: str,
        metadata: Mapping[str, object] | None,
    ) -> str | None:
        """The model the first matching rule routes to, or None when no rule matches."""
        for r in self._rules:
            if not (_matches(r.key, key) and _matches(r.team, team) and _matches(r.model, model)):
                continue
            if r.metadata is not None:
                if metadata is None:
                    continue
                if not all(
                    k in metadata and _matches(p, _text(metadata[k])) for k, p in r.metadata
                ):
                    continue
            return r.target
        return None
