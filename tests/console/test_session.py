"""Session cookies, CSRF tokens and the sign-in throttle, on a clock the test moves."""

from __future__ import annotations

from llmrelay.console import session as s
from llmrelay.console.session import LoginThrottle, Sessions

KEY = "sk-admin-0123456789abcdef"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_session_lasts_its_ttl_then_is_no_session() -> None:
    clock = Clock()
    sessions = Sessions(KEY, 3600, clock)
    cookie, issued = sessions.issue()
    assert sessions.verify(cookie) == issued
    clock.now += 3599
    assert sessions.verify(cookie) == issued
    clock.now += 1
    assert sessions.verify(cookie) is None


def test_a_cookie_changed_anywhere_or_signed_by_another_admin_key_is_refused() -> None:
    sessions = Sessions(KEY, 3600, Clock())
    cookie, _ = sessions.issue()
    prefix, expires, sid, sig = cookie.split(".")
    for forged in (
        f"{prefix}.{int(expires) + 999}.{sid}.{sig}",
        f"{prefix}.{expires}.{'0' * 32}.{sig}",
        f"{prefix}.{expires}.{sid}.{sig[:-1]}A",
        f"v2.{expires}.{sid}.{sig}",
        "",
        "a" * 1000,
    ):
        assert sessions.verify(forged) is None, forged
    assert Sessions(KEY + "x", 3600, Clock()).verify(cookie) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    sessions = Sessions(KEY, 3600, Clock())
    _, one = sessions.issue()
    _, two = sessions.issue()
    assert sessions.check_csrf(one, sessions.csrf(one))
    assert not sessions.check_csrf(one, sessions.csrf(two))
    assert not sessions.check_csrf(one, None) and not sessions.check_csrf(one, "")


def test_signing_out_ends_the_session_and_the_list_is_bounded(monkeypatch: object) -> None:
    clock = Clock()
    sessions = Sessions(KEY, 3600, clock)
    cookie, session = sessions.issue()
    sessions.sign_out(session)
    assert sessions.verify(cookie) is None
    # Past the bound the oldest signed-out ids are forgotten, and expired ones go first.
    import pytest

    mp = pytest.MonkeyPatch()
    mp.setattr(s, "MAX_SIGNED_OUT", 3)
    try:
        later = [sessions.issue() for _ in range(4)]
        for _, sess in later:
            sessions.sign_out(sess)
        assert len(sessions._signed_out) == 3
        clock.now += 7200
        _, fresh = sessions.issue()
        sessions.sign_out(fresh)
        assert list(sessions._signed_out) == [fresh.id]
    finally:
        mp.undo()


def test_the_throttle_allows_n_failures_a_minute_per_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(5, clock)
    for _ in range(4):
        throttle.failed("10.0.0.1")
        clock.now += 1
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert 55 < throttle.retry_after("10.0.0.1") <= 60
    assert throttle.retry_after("10.0.0.2") == 0  # another address
    clock.now += 57  # the first failure is now more than a minute old
    assert throttle.retry_after("10.0.0.1") == 0


def test_the_throttle_forgets_the_oldest_address_past_its_bound() -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    mp.setattr(s, "MAX_THROTTLED_ADDRESSES", 2)
    try:
        throttle = LoginThrottle(1, Clock())
        for address in ("a", "b", "c"):
            throttle.failed(address)
        assert throttle.retry_after("a") == 0
        assert throttle.retry_after("b") > 0 and throttle.retry_after("c") > 0
    finally:
        mp.undo()


def test_a_reload_cannot_change_the_console_it_was_built_with() -> None:
    from llmrelay.config import parse_settings
    from llmrelay.reload import restart_only_changes

    base = {
        "auth": {"keys": [{"name": "a", "key": "sk-test-0123456789"}]},
        "providers": {"mock": {"type": "mock", "models": {"echo": "echo"}}},
        "admin": {"key": KEY},
    }
    old = parse_settings(base)
    new = parse_settings({**base, "console": {"session_ttl_s": 600}})
    assert restart_only_changes(old, new) == ["console.session_ttl_s"]
