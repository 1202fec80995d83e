"""The proxy environment variables (``HTTP_PROXY``, ``HTTPS_PROXY`` and their lower-case
forms), checked: used by ``egress.py`` when a pool is opened and by ``llmrelay serve`` at
start, where an unusable one is an error naming the variable (not its value: it may hold
credentials). Only ``yarl`` (what aiohttp parses the proxy URL with), so the supervisor of
``--workers N`` can check it without loading aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping

from yarl import URL

__all__ = ["env_proxy_errors", "proxy_problem"]

#: The environment variables a proxy is read from, upper- then lower-case (the latter wins).
_PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")


def env_proxy_errors(env: Mapping[str, str]) -> list[str]:
    """One line per proxy variable set in ``env`` (``HTTP_PROXY``, ``https_proxy``...)
    that is not a usable proxy URL, naming the variable and what is wrong (never its
    value, which may hold credentials): checked at start (``llmrelay serve``)."""
    out = []
    for variant in _PROXY_VARIABLES:
        value = env.get(variant)
        if value:
            problem = proxy_problem(value)
            if problem is not None:
                out.append(f"{variant}: {problem}")
    return out


def proxy_problem(value: str) -> str | None:
    """Why ``value`` is not a proxy URL (``http://[user:pass@]host:port``, the scheme
    optional), or None."""
    expected = "expected a proxy URL such as http://proxy.internal:3128"
    try:
        url = URL(value if "://" in value else f"http://{value}")
        url.port  # noqa: B018 - parses the port (out of range raises)
    except ValueError as err:
        return f"not a proxy URL ({err}); {expected}"
    if url.scheme not in ("http", "https"):
        return f"the scheme must be http or https; {expected}"
    if not url.host:
        return f"no host; {expected}"
    return None
