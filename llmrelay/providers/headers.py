"""Which of a client's request headers go to a provider.

Two lists, both matched on the lower-cased name:

* :data:`NEVER_FORWARDED`: hop-by-hop and framing headers (the provider client sets its
  own), and the headers that carry the *gateway's* key. No config can forward these.
* :data:`DROPPED_BY_DEFAULT`: identity and credentials meant for other systems: the
  client's address as proxies record it (``x-forwarded-for``, ``x-real-ip``,
  ``forwarded``...), cookies, another vendor's key or token (``x-goog-api-key``,
  ``x-amz-security-token``, ``openai-organization``...). Every name starting with
  :data:`DROPPED_PREFIXES` (AWS signing, Google) goes too. A provider's
  ``forward_headers:`` lets named ones through to that provider.

Everything else passes: ``anthropic-beta``, ``anthropic-version``, ``user-agent``,
unknown ``x-`` headers (``x-claude-code-session-id``, a tracing id...). A provider's
``drop_headers:`` names more to drop.

The filter runs twice on a call: once where the call pipeline reads the client's
headers (:func:`client_headers`), and once in each provider client as it builds the
upstream request (its :class:`HeaderFilter`, from its config). Each is one ``lower()``
and one frozenset lookup per header (plus a prefix test for those that pass).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "DROPPED_BY_DEFAULT",
    "DROPPED_PREFIXES",
    "NEVER_FORWARDED",
    "HeaderFilter",
    "client_filter",
    "client_headers",
    "never_forwarded",
]

#: Never sent upstream, whatever the config says.
NEVER_FORWARDED = frozenset(
    {
        # Framing and hop-by-hop (RFC 9110 section 7.6.1); the provider client sets its own.
        "host",
        "content-length",
        "content-type",
        # aiohttp decodes a compressed request body as it reads it; the provider gets the
        # decoded body (re-encoded as JSON), never compressed.
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "accept-encoding",
        "proxy-authorization",
        "proxy-authenticate",
        # The gateway's key, however the client sent it (policy/auth.py reads the first
        # two; Azure-style SDKs send api-key).
        "authorization",
        "x-api-key",
        "api-key",
        # The gateway's own (routing metadata); every x-llmrelay-* name, see the prefixes.
        "x-llmrelay-metadata",
    }
)

#: Dropped unless a provider's ``forward_headers`` names them.
DROPPED_BY_DEFAULT = frozenset(
    {
        # The client's address and the path its request took.
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-server",
        "x-forwarded-client-cert",
        "x-original-forwarded-for",
        "x-real-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "forwarded",
        "via",
        # Session state for other sites.
        "cookie",
        # Keys and tokens for other services, and the account they bill.
        "x-goog-api-key",
        "x-amz-security-token",
        "openai-organization",
        "openai-project",
        "anthropic-admin-key",
        "x-auth-token",
        "x-access-token",
        "x-csrf-token",
        "x-xsrf-token",
        "ocp-apim-subscription-key",
    }
)

#: Name prefixes dropped by default: AWS request signing and credentials (``x-amz-date``,
#: ``x-amz-content-sha256``...), Google API keys and billing projects
#: (``x-goog-user-project``...), and this gateway's own headers (never forwarded).
DROPPED_PREFIXES = ("x-amz-", "x-goog-", "x-llmrelay-")
_NEVER_PREFIX = "x-llmrelay-"


def never_forwarded(name: str) -> bool:
    """True for a header name no config may forward (the gateway's key, hop-by-hop...)."""
    name = name.lower()
    return name in NEVER_FORWARDED or name.startswith(_NEVER_PREFIX)


class HeaderFilter:
    """Drops :data:`NEVER_FORWARDED` and :data:`DROPPED_BY_DEFAULT` headers (and the
    :data:`DROPPED_PREFIXES`), except ``forward`` names, plus ``drop`` names.

    Calling it on ``(name, value)`` pairs returns the pairs that pass, names lower-cased
    (HTTP header names are case-insensitive), in order, repeated names kept.
    """

    __slots__ = ("_drop", "_forward")

    def __init__(self, forward: Iterable[str] = (), drop: Iterable[str] = ()) -> None:
        fwd = frozenset(n.lower() for n in forward if not never_forwarded(n))
        self._forward = fwd
        self._drop = (
            NEVER_FORWARDED | DROPPED_BY_DEFAULT | frozenset(n.lower() for n in drop)
        ) - fwd

    def __call__(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        drop = self._drop
        forward = self._forward
        out = []
        for k, v in headers:
            name = k.lower()
            if name in drop:
                continue
            if name.startswith(DROPPED_PREFIXES) and name not in forward:
                continue
            out.append((name, v))
        return out


_DEFAULT = HeaderFilter()


def client_filter(forward: Iterable[Iterable[str]]) -> HeaderFilter:
    """The filter for :func:`client_headers` when providers forward some of the headers
    dropped by default: ``forward`` is each provider config's ``forward_headers``. Build it
    once, at start-up; each provider still drops what it does not forward itself."""
    return HeaderFilter(name for names in forward for name in names)


def client_headers(
    headers: Mapping[str, str], rules: HeaderFilter = _DEFAULT
) -> list[tuple[str, str]]:
    """The client's request headers that may go upstream, as ``(lower-case name, value)``
    pairs in order, repeated names kept (``headers`` is aiohttp's ``request.headers``).

    With the default ``rules`` the headers dropped by default go too, whatever a
    provider's ``forward_headers`` says; pass :func:`client_filter`'s to honour those.
    """
    return rules(headers.items())
