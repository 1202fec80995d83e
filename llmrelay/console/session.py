"""Console sessions: a signed, expiring cookie; CSRF tokens; the sign-in throttle.

A session is the cookie value ``v1.<expires>.<id>.<signature>``: ``expires`` in Unix
seconds, ``id`` 32 random hex digits, ``signature`` HMAC-SHA256 (base64url) over the rest
under a key derived from the admin key. Nothing is stored per session, so every instance
sharing the admin key accepts it and changing the admin key ends every session. Signing
out remembers the session's id until it expires (in this process, at most
:data:`MAX_SIGNED_OUT` ids: past that the oldest are forgotten, and the cookie is cleared in
the browser anyway). A state-changing request carries ``csrf``: HMAC of the session id, so
a page from another origin cannot produce it (SameSite=Strict already keeps the cookie off
its requests; the token is the second lock). The sign-in form has its own token, a random
value in a short-lived cookie and the form (double submit), since there is no session yet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "MAX_SIGNED_OUT",
    "MAX_THROTTLED_ADDRESSES",
    "LoginThrottle",
    "Session",
    "Sessions",
]

#: Signed-out session ids remembered per process.
MAX_SIGNED_OUT = 10_000
#: Client addresses the sign-in throttle tracks at once (the oldest is forgotten past it).
MAX_THROTTLED_ADDRESSES = 10_000
#: Longest cookie value read (a session is ~110 characters).
MAX_COOKIE_CHARS = 256


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(slots=True, frozen=True)
class Session:
    """A verified session: its id and when it expires (Unix seconds)."""

    id: str
    expires: int


class Sessions:
    """Issues and checks session cookies and CSRF tokens for one admin key."""

    def __init__(
        self, admin_key: str, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = hmac.new(
            hashlib.sha256(admin_key.encode()).digest(), b"llmrelay-console-v1", hashlib.sha256
        ).digest()
        self._ttl_s = ttl_s
        self._clock = clock
        self._signed_out: OrderedDict[str, int] = OrderedDict()

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def issue(self) -> tuple[str, Session]:
        """A new session: the cookie value and what it stands for."""
        expires = int(self._clock() + self._ttl_s)
        sid = secrets.token_hex(16)
        body = f"v1.{expires}.{sid}"
        return f"{body}.{self._sign(body)}", Session(sid, expires)

    def verify(self, cookie: str | None) -> Session | None:
        """The session of a cookie value, or None: missing, malformed, forged, expired or
        signed out."""
        if not cookie or len(cookie) > MAX_COOKIE_CHARS:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            return None
        body = ".".join(parts[:3])
        if not hmac.compare_digest(self._sign(body), parts[3]):
            return None
        expires, sid = int(parts[1]), parts[2]
        if expires <= self._clock() or sid in self._signed_out:
            return None
        return Session(sid, expires)

    def csrf(self, session: Session) -> str:
        """The CSRF token of ``session`` (the same for its whole life)."""
        return self._sign(f"csrf.{session.id}")

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(session), token or "")

    def sign_out(self, session: Session) -> None:
        """End ``session`` in this process (see the module's note on the bound)."""
        now = self._clock()
        for sid, expires in list(self._signed_out.items()):
            if expires > now:
                break
            del self._signed_out[sid]
        self._signed_out[session.id] = session.expires
        while len(self._signed_out) > MAX_SIGNED_OUT:
            self._signed_out.popitem(last=False)

    @staticmethod
    def new_login_token() -> str:
        """The sign-in form's token (double submit: cookie and form field)."""
        return secrets.token_urlsafe(24)


class LoginThrottle:
    """At most ``per_minute`` failed sign-ins per client address in any 60 s; past that,
    :meth:`retry_after` says how many seconds to wait (the caller answers 429)."""

    WINDOW_S = 60.0

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: now)."""
        times = self._failures.get(address)
        if times is None:
            return 0.0
        horizon = self._clock() - self.WINDOW_S
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[address]
            return 0.0
        if len(times) < self._limit:
            return 0.0
        return max(0.0, times[0] - horizon)

    def failed(self, address: str) -> None:
        """Count a failed sign-in from ``address``."""
        times = self._failures.pop(address, None) or deque(maxlen=self._limit)
        times.append(self._clock())
        self._failures[address] = times  # most recent last
        while len(self._failures) > MAX_THROTTLED_ADDRESSES:
            self._failures.popitem(last=False)
