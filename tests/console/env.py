"""A gateway with the console on, the mock provider, a provider that answers 529, a fake
OpenAI upstream and a virtual model that falls back from the busy one to the mock."""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import base_config

ADMIN_KEY = "sk-admin-console-0123456789abcdef"


def console_config(tmp: Path, openai_url: str, **extra: Any) -> dict[str, Any]:
    providers = {
        "mock": {"type": "mock", "models": {"echo": "echo"}},
        "busy": {"type": "mock", "models": {"echo": "echo"}, "error_status": 529},
        "openai": {
            "type": "openai",
            "base_url": openai_url + "/v1",
            "api_key": "sk-openai-upstream",
            "models": {"gpt": "gpt-4o-mini"},
        },
    }
    cfg = base_config(
        tmp,
        providers,
        models={
            "fallback": {
                "targets": [
                    {"model": "busy/echo", "priority": 1},
                    {"model": "mock/echo", "priority": 2},
                ]
            }
        },
        routing={"cooldown": {"failures": 1, "seconds": 600, "max_retry_after_s": 0}},
        admin={"key": ADMIN_KEY},
        teams={"red": {"budget": {"usd": 50, "period": "month"}}},
        observability={"request_log": {"bodies": "all"}},
        # A price for the mock's model, so calls cost something and budget bars move.
        pricing={"echo": {"input": 1000, "output": 1000}},
    )
    cfg["auth"]["keys"][0]["team"] = "red"
    cfg.update(extra)
    return cfg


def _headers(msg: Any) -> dict[str, str]:
    """Lower-case names; repeated headers (Set-Cookie) joined by newlines."""
    out: dict[str, str] = {}
    for name, value in msg.items():
        key = name.lower()
        out[key] = f"{out[key]}\n{value}" if key in out else value
    return out


class Browserless:
    """A cookie-keeping HTTP client that does not follow redirects (to see them)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kw: Any) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect
        )

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers or {}
        )
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, _headers(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, _headers(err.headers), err.read().decode()

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)
