"""An unroutable model name is masked before it is answered, logged or stored."""

from __future__ import annotations

from llmrelay.pipeline.run import _unrouted_name


def test_the_callers_own_key_is_masked_whatever_its_shape() -> None:
    key = "plainsecret-" + "7" * 20
    assert _unrouted_name(f"my {key}!", {"x-api-key": key}) == "my ***!"
    assert _unrouted_name(key, {"authorization": f"Bearer {key}"}) == "***"


def test_key_shapes_are_masked_and_other_names_kept() -> None:
    assert _unrouted_name("sk-llmrelay-abcdefgh12345678", {}) == "sk-llmrelay-***"
    assert _unrouted_name("anthropic/nope", {"x-api-key": "k" * 20}) == "anthropic/nope"
    assert _unrouted_name("\ud800x", {}) == "\ud800x"  # made storable later, not here


def test_only_the_head_of_a_huge_name_is_scanned() -> None:
    key = "sk-llmrelay-abcdefgh12345678"
    shown = _unrouted_name(key + " " + "a" * 8_000_000 + key, {})
    assert shown.startswith("sk-llmrelay-*** aaa") and shown.endswith(key)  # tail: never shown
    assert len(shown) == 8_000_001 + len(key) + len("sk-llmrelay-***")
