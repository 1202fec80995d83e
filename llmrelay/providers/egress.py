"""How the gateway reaches a provider: its connection pool, the proxy it goes through and
the certificate authorities it trusts.

* **proxy**: a provider's ``proxy:`` wins; otherwise ``HTTPS_PROXY`` / ``HTTP_PROXY`` (by
  the upstream's scheme, lower-case names first as curl reads them) unless ``NO_PROXY``
  names the upstream's host (suffixes, ``*``, ``host:port``, as curl reads it). Decided
  once per pool, since a provider talks to one origin: aiohttp's own ``trust_env`` would
  look the environment up in a thread on every request and also apply ``~/.netrc``
  credentials to provider calls. HTTPS goes through the proxy with ``CONNECT`` (TLS stays
  end to end).
* **CAs**: a provider's ``ca_file:`` replaces the system's CAs for that provider; otherwise
  OpenSSL's defaults, which honour ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``.
* **pool**: one ``aiohttp.ClientSession`` per provider account, so that a config reload can
  close the pool of an account it removed or changed once that pool's calls are done
  (``llmrelay/runtime.py``), and keep the pools of unchanged accounts warm.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from .proxy_env import proxy_problem

__all__ = ["Egress", "egress_for", "env_proxy", "open_session"]


@dataclass(frozen=True, slots=True)
class Egress:
    """How one provider account is reached: ``proxy`` (a URL, or None for a direct
    connection) and the TLS context its upstream's certificate is checked with."""

    proxy: str | None
    ssl_context: ssl.SSLContext


def env_proxy(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` in ``env`` choose for
    ``url``, or None (no proxy set for its scheme, or ``NO_PROXY`` names its host).

    Upper- and lower-case names are both read, the lower-case one winning, as curl and
    ``urllib.request.getproxies_environment`` do. A proxy without a scheme is ``http://``.

    Raises:
        ValueError: the variable chosen is not a proxy URL; the message names the variable
            (not its value, which may hold credentials); see ``proxy_env.py``.
    """
    parsed = URL(url)
    scheme = parsed.scheme
    proxies: dict[str, tuple[str, str]] = {}
    for name in ("http", "https", "no"):
        for variant in (f"{name.upper()}_PROXY", f"{name}_proxy"):
            value = env.get(variant)
            if value:
                proxies[name] = (variant, value)
    chosen = proxies.get(scheme)
    if chosen is None:
        return None
    variant, proxy = chosen
    if _bypassed(parsed.host or "", parsed.port, proxies.get("no", ("", ""))[1]):
        return None
    problem = proxy_problem(proxy)
    if problem is not None:
        raise ValueError(f"{variant}: {problem}")
    return proxy if "://" in proxy else f"http://{proxy}"


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """``NO_PROXY``'s rule as curl and ``urllib.request.proxy_bypass_environment`` apply it:
    comma-separated names, ``*`` for every host, a name matching itself and its subdomains
    (a leading dot optional), ``name:port`` only that port."""
    host = host.lower().rstrip(".")
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, want_port = entry.partition(":")
        if want_port and (not want_port.isdigit() or int(want_port) != port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def egress_for(
    upstream_url: str,
    proxy: str | None,
    ca_file: str | None,
    env: Mapping[str, str] | None = None,
) -> Egress:
    """The egress of a provider whose calls go to ``upstream_url``. Reads the CA files:
    call it in a worker thread (loading the system's CAs takes tens of milliseconds).

    Raises:
        ssl.SSLError, OSError: ``ca_file`` is not a readable PEM bundle.
    """
    env = os.environ if env is None else env
    chosen = proxy if proxy is not None else env_proxy(upstream_url, env)
    context = ssl.create_default_context(cafile=ca_file)
    return Egress(chosen, context)


def _split_auth(proxy: str | None) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy URL without its ``user:password@`` and those as ``Proxy-Authorization:
    Basic`` credentials (aiohttp sends none for credentials left in the URL)."""
    if proxy is None:
        return None, None
    url = URL(proxy)
    if url.user is None:
        return url, None
    return url.with_user(None), aiohttp.BasicAuth(url.user, url.password or "")


def open_session(egress: Egress | None) -> aiohttp.ClientSession:
    """A provider's connection pool: no connection limit (the gateway bounds calls itself),
    DNS answers kept 300 s, no ``User-Agent`` of aiohttp's own (the client's is relayed),
    no cookies kept.
    ``egress`` None: direct, the default CAs (a provider with no HTTP upstream)."""
    connector = aiohttp.TCPConnector(
        limit=0, ttl_dns_cache=300, ssl=True if egress is None else egress.ssl_context
    )
    proxy, proxy_auth = _split_auth(None if egress is None else egress.proxy)
    return aiohttp.ClientSession(
        connector=connector,
        skip_auto_headers=("User-Agent",),
        proxy=proxy,
        proxy_auth=proxy_auth,
        trust_env=False,
        # A pool serves every caller of its account: a cookie the provider sets for one call
        # must never ride on another's (and a jar costs a lookup on every request).
        cookie_jar=aiohttp.DummyCookieJar(),
    )
