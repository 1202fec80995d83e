"""Routing rules: first match wins; key, team, model and metadata criteria."""

from __future__ import annotations

import pytest

from llmrelay.config.routing import RuleConfig
from llmrelay.errors import InvalidRequestError
from llmrelay.routing.rules import Rules, parse_metadata


def rules(*specs: dict) -> Rules:  # type: ignore[type-arg]
    return Rules([RuleConfig.model_validate(s) for s in specs])


def route(r: Rules, key: str = "alice", team: str | None = None, model: str = "m", md=None):  # type: ignore[no-untyped-def]
    return r.route(key=key, team=team, model=model, metadata=md)


def test_first_matching_rule_wins_and_no_match_is_none() -> None:
    r = rules(
        {"match": {"key": "bob"}, "model": "cheap"},
        {"match": {"key": ["bob", "carol"], "model": "claude-*"}, "model": "never-for-bob"},
        {"match": {"key": ["bob", "carol"], "model": "claude-*"}, "model": "fast"},
    )
    assert route(r, key="bob", model="claude-x") == "cheap"
    assert route(r, key="carol", model="claude-x") == "never-for-bob"
    assert route(r, key="carol", model="gpt") is None
    assert route(r, key="alice", model="claude-x") is None
    assert not r.uses_metadata
    assert not rules() and rules({"model": "x"})


def test_empty_match_matches_every_call() -> None:
    assert route(rules({"model": "everything"}), key="anyone") == "everything"


def test_team_must_be_known_to_match() -> None:
    r = rules({"match": {"team": "research"}, "model": "big"})
    assert route(r, team="research") == "big"
    assert route(r, team=None) is None


def test_metadata_values_compare_as_text_and_all_must_match() -> None:
    r = rules(
        {"match": {"metadata": {"tier": "batch", "priority": 3}}, "model": "slow"},
        {"match": {"metadata": {"urgent": True}}, "model": "fast"},
        {"match": {"metadata": {"env": ["dev", "test-*"]}}, "model": "cheap"},
    )
    assert r.uses_metadata
    assert route(r, md={"tier": "batch", "priority": 3}) == "slow"
    assert route(r, md={"tier": "batch", "priority": "3"}) == "slow"
    assert route(r, md={"tier": "batch"}) is None
    assert route(r, md={"urgent": True}) == "fast"
    assert route(r, md={"urgent": "yes"}) is None
    assert route(r, md={"env": "test-7"}) == "cheap"
    assert route(r, md=None) is None


def test_metadata_header_must_be_a_json_object() -> None:
    assert parse_metadata(None) is None
    assert parse_metadata('{"tier": "batch"}') == {"tier": "batch"}
    for bad in ("[1]", "tier=batch", '"x"'):
        with pytest.raises(InvalidRequestError, match="x-llmrelay-metadata"):
            parse_metadata(bad)
