"""Reading a key edit (PATCH /admin/keys/{id}, the console's Edit form, ``keys update``)."""

from __future__ import annotations

from typing import Any

import pytest

from llmrelay.policy.virtual_keys import KeySpecError, key_edit_from_spec
from llmrelay.stores.keys import KEEP, BudgetSpec, KeyEdit, Limits, VirtualKey

KEY = VirtualKey(
    id="vk_1",
    name="dev",
    team="core",
    models=("a",),
    limits=Limits(rpm=60, tpm=1000),
    budget=BudgetSpec(usd=5.0, period="week"),
    allowed_accounts=("x",),
)


def test_fields_not_named_are_kept() -> None:
    edit = key_edit_from_spec({"models": ["a", "b"]})
    assert edit == KeyEdit(models=("a", "b"))
    assert edit.team is KEEP and edit.budget is KEEP
    assert edit.apply(KEY) == VirtualKey(
        id="vk_1",
        name="dev",
        team="core",
        models=("a", "b"),
        limits=Limits(rpm=60, tpm=1000),
        budget=BudgetSpec(usd=5.0, period="week"),
        allowed_accounts=("x",),
    )


def test_limits_merge_and_null_removes_one() -> None:
    edit = key_edit_from_spec({"rpm": 5, "limits": {"tpm": None, "rpd": 9}})
    assert edit.apply(KEY).limits == Limits(rpm=5, rpd=9)
    assert key_edit_from_spec({"limits": None}).apply(KEY).limits == Limits()
    # null limits with one given back: only that one stays.
    assert key_edit_from_spec({"limits": None, "rph": 3}).apply(KEY).limits == Limits(rph=3)


def test_null_removes_team_models_accounts_and_budget() -> None:
    edit = key_edit_from_spec(
        {"team": None, "models": None, "allowed_accounts": None, "budget_usd": None}
    )
    got = edit.apply(KEY)
    assert (got.team, got.models, got.allowed_accounts, got.budget) == (None, (), None, None)
    assert key_edit_from_spec({"models": []}).apply(KEY).models == ()


def test_a_comma_list_is_read_as_create_reads_it() -> None:
    assert key_edit_from_spec({"models": "a, b,"}).models == ("a", "b")
    assert key_edit_from_spec({"allowed_accounts": "x"}).allowed_accounts == ("x",)


def test_budget_usd_replaces_the_whole_budget() -> None:
    got = key_edit_from_spec({"budget_usd": 20}).apply(KEY)
    assert got.budget == BudgetSpec(usd=20.0, period="month", mode="enforce")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "nothing to change"),
        ({"name": "other"}, "name: not editable"),
        ({"expires_in": "30d"}, "expires_in: not editable"),
        ({"colour": "red"}, "colour"),
        ({"models": [1]}, "models:"),
        ({"team": ""}, "team:"),
        ({"allowed_accounts": [""]}, "allowed_accounts:"),
        ({"rpm": 0}, "rpm:"),
        ({"rpm": True}, "rpm:"),
        ({"limits": {"rpx": 1}}, "limits.rpx"),
        ({"limits": [1]}, "limits:"),
        ({"rpm": 1, "limits": {"rpm": 2}}, "rpm: given both"),
        ({"budget_usd": -1}, "budget_usd:"),
        ({"budget_usd": float("inf")}, "budget_usd:"),
        ({"budget_usd": 1, "budget_period": "year"}, "budget_period:"),
        ({"budget_mode": "audit"}, "need budget_usd"),
        ({"budget_usd": None, "budget_period": "day"}, "need budget_usd"),
    ],
)
def test_bad_values_are_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(KeySpecError, match=field):
        key_edit_from_spec(spec)
