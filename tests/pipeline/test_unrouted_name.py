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


def test_a_huge_name_is_cut_before_it_is_scanned() -> None:
    shown = _unrouted_name("a" * 8_000_000, {})
    assert len(shown) < 500 and shown.endswith("(8000000 characters)")
