"""The web console's settings (``console:``); see docs/console.md."""

from __future__ import annotations

from pydantic import Field

from ._base import ConfigModel as _Model

__all__ = ["ConsoleConfig"]


class ConsoleConfig(_Model):
    """The console at ``/ui/`` on the gateway's port.

    ``enabled``: None (the default) serves it when ``admin.key`` is set; true without an
    admin key is refused at start with a log line (nobody could sign in). ``session_ttl_s``:
    seconds a sign-in lasts. ``trust_forwarded_proto``: mark the session cookie ``Secure``
    when a proxy's ``X-Forwarded-Proto: https`` says the browser spoke HTTPS (set it only
    behind a proxy that sets the header). ``login_failures_per_minute``: wrong admin keys a
    client address may send in a minute before sign-in answers 429.
    """

    enabled: bool | None = None
    session_ttl_s: float = Field(default=12 * 3600.0, ge=60, le=30 * 86400)
    trust_forwarded_proto: bool = False
    login_failures_per_minute: int = Field(default=5, ge=1, le=1000)
