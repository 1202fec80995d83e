"""Whole requests: a route, a method, headers, a body and its framing, with what the fuzz
knows about them beforehand (who they authenticate as, whether the HTTP parser may refuse
them, which upstream fault they meet).

Routes are the gateway's: the three call endpoints under ``/``, ``/anthropic`` and
``/openai``, the model lists, ``/admin/*``, ``/metrics``, ``/health``, ``/``,
``/api/hello`` and paths nothing serves. Every method is tried on every route.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from hypothesis import strategies as st

from . import bodies as b
from .bodies import chance
from .env import ADMIN_KEY, ALL_MODELS, GATEWAY_KEYS, MAX_BODY

__all__ = ["CALL_PATHS", "RECENT", "Case", "Fault", "cases"]

#: Headers aiohttp's parser refuses to see twice (RFC 9110 singletons).
SINGLETON_HEADERS = (
    b"content-length",
    b"content-type",
    b"host",
    b"transfer-encoding",
    b"user-agent",
)

#: Stands for the request id of the last billed call (``/admin/requests/{id}``); the test
#: puts the id in before sending.
RECENT = "req_RECENT"

#: aiohttp's ``max_line_size``: a longer request line is refused by its parser.
MAX_REQUEST_LINE = 8190

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")

#: Paths whose POST is a call (a usage row when authenticated).
CALL_PATHS = {
    "/v1/messages": "messages",
    "/anthropic/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
    "/anthropic/v1/messages/count_tokens": "count_tokens",
    "/v1/chat/completions": "chat",
    "/openai/v1/chat/completions": "chat",
}

OTHER_PATHS = (
    ("GET", "/v1/models"),
    ("GET", "/anthropic/v1/models"),
    ("GET", "/openai/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("GET", "/anthropic/v1/models/{model}"),
    ("GET", "/openai/v1/models/{model}"),
    ("GET", "/metrics"),
    ("GET", "/health"),
    ("HEAD", "/"),
    ("GET", "/api/hello"),
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys"),
    ("GET", "/admin/keys/{id}"),
    ("PATCH", "/admin/keys/{id}"),
    ("DELETE", "/admin/keys/{id}"),
    ("POST", "/admin/keys/{id}/revoke"),
    ("POST", "/admin/keys/{id}/rotate"),
    ("GET", "/admin/usage"),
    ("GET", "/admin/requests"),
    ("GET", "/admin/requests/{request_id}"),
    ("GET", "/admin/openapi.json"),
    ("GET", "/v1/messages/"),
    ("GET", "/v1/message"),
    ("POST", "/V1/messages"),
    ("POST", "/anthropic/anthropic/v1/messages"),
    ("POST", "/openai/v1/messages"),
    ("POST", "/anthropic/v1/chat/completions"),
    ("POST", "/v1/chat/completions/x"),
    ("POST", "/v1/messages/count_tokens/x"),
    ("GET", "/openai"),
    ("GET", "/v1/chat/"),
    ("GET", "/favicon.ico"),
    ("GET", "/" + "p" * 5000),
)

QUERIES = st.sampled_from(
    [
        "",
        "",
        "",
        "?beta=true",
        "?x=%ZZ",
        "?limit=5",
        "?limit=0",
        "?limit=abc",
        "?after_id=local/echo",
        "?before_id=nope",
        "?" + "a" * 5000,
        "?by=key,model&since=7d",
        "?by=nope&since=x",
        "?since=99999999999d",
        "?status=5xx&limit=2",
        "?status=abc&limit=%C2%B2",
        "?cursor=bm9wZQ==&model=%00",
        "?until=1e999&since=-1",
        "?unknown=1",
        "?key=%FF",
    ]
)


@dataclass(frozen=True)
class Fault:
    """What a fake upstream answers the next request it gets (then the defaults again)."""

    name: str
    #: Statuses the client may see because of it (the fake's own, relayed or mapped).
    statuses: frozenset[int]


FAULTS: tuple[Fault, ...] = (
    Fault("status_400", frozenset({400})),
    Fault("status_401_echo_key", frozenset({401, 502})),
    Fault("status_404", frozenset({404})),
    Fault("status_429", frozenset({429})),
    Fault("status_500", frozenset({500, 502})),
    Fault("status_503", frozenset({503, 502, 529})),
    Fault("status_529", frozenset({529, 503, 502})),
    Fault("not_json_200", frozenset({502})),
    Fault("html_502", frozenset({502})),
    Fault("bad_usage", frozenset({502})),
    Fault("stream_cut", frozenset({502})),
    Fault("stream_error_echo_key", frozenset({502, 503, 529})),
    Fault("slow", frozenset({504, 502})),
)


@dataclass
class Case:
    """One request and what is known of it before it is sent."""

    label: str
    method: str
    #: The path as routed (decoded), for classification.
    path: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    framing: str
    version: bytes = b"HTTP/1.1"
    #: The config key name this request authenticates as on a gateway route (None: none).
    auth: str | None = None
    #: The admin key authenticates it on an admin route.
    admin: bool = False
    #: Bytes the HTTP parser may refuse (a 400 from the server, before any route).
    raw_junk: bool = False
    #: The server answers before the request is whole (a timeout or an early refusal).
    slow: str | None = None
    fault: Fault | None = None
    #: A ``GET /health`` after it on the same connection: ``sequential`` (once its answer
    #: is read) or ``pipelined`` (sent with it); None: the connection carries one request.
    follow: str | None = None
    #: Sent while ``server.max_connections`` other connections are open: the server
    #: refuses it (503) before any route.
    crowd: bool = False
    model: object = None

    @property
    def expects_junk(self) -> bool:
        """An ``Expect`` other than ``100-continue``: HTTP/1.1 answers it 417 before any
        route runs."""
        return self.version == b"HTTP/1.1" and any(
            k.lower() == b"expect" and v.lower() != b"100-continue" for k, v in self.headers
        )

    @property
    def call(self) -> str | None:
        """The call endpoint this request reaches (None: not a call)."""
        return CALL_PATHS.get(self.path) if self.method == "POST" else None

    def wire(self) -> bytes:
        """The request as bytes, framed as ``framing`` says."""
        head = [self.method.encode() + b" " + self.target + b" " + self.version]
        body = self.body
        extra: list[tuple[bytes, bytes]] = []
        if self.framing == "length":
            if body or self.method in ("POST", "PUT", "PATCH"):
                extra.append((b"content-length", str(len(body)).encode()))
        elif self.framing == "chunked":
            extra.append((b"transfer-encoding", b"chunked"))
            body = _chunked(body)
        elif self.framing == "bad_chunked":
            extra.append((b"transfer-encoding", b"chunked"))
            body = b"zz\r\n" + body[:10] + b"\r\n0\r\n\r\n"
        elif self.framing == "short":
            extra.append((b"content-length", str(len(body) + 100).encode()))
        elif self.framing == "huge_length":
            extra.append((b"content-length", b"1000000000000"))
        elif self.framing == "both":
            extra += [
                (b"content-length", str(len(body)).encode()),
                (b"transfer-encoding", b"chunked"),
            ]
        elif self.framing == "two_lengths":
            extra += [(b"content-length", str(len(body)).encode()), (b"content-length", b"3")]
        for name, value in [*self.headers, *extra]:
            head.append(name + b": " + value)
        if self.framing == "partial_headers":
            return b"\r\n".join(head) + b"\r\nx-partial: "
        return b"\r\n".join(head) + b"\r\n\r\n" + body


def _chunked(body: bytes, size: int = 7000) -> bytes:
    out = b""
    for i in range(0, len(body), size):
        piece = body[i : i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


# -- headers ------------------------------------------------------------------------------------


@st.composite
def _auth(draw: st.DrawFn, admin_route: bool) -> tuple[list[tuple[bytes, bytes]], str | None, bool]:
    """Auth headers, the config key they authenticate as, and whether they are the admin
    key's (alone or agreeing)."""
    name = draw(st.sampled_from(sorted(GATEWAY_KEYS)))
    key = GATEWAY_KEYS[name]
    other = GATEWAY_KEYS["metered" if name == "narrow" else "narrow"]
    if admin_route and draw(st.booleans()):
        name, key = "admin", ADMIN_KEY
    shape = draw(
        st.sampled_from(
            [
                "x-api-key",
                "bearer",
                "both",
                "x-api-key",
                "bearer",
                "x-api-key",
                "bearer",
                "x-api-key",
                "none",
                "disagree",
                "wrong",
                "near_miss",
                "prefix",
                "basic",
                "bearer_empty",
                "bearer_lower",
                "upper_names",
                "padded",
                "admin_on_gateway",
                "duplicate_same",
                "duplicate_differ",
            ]
        )
    )
    ok = name if name != "admin" else None
    admin = name == "admin"
    k = key.encode()
    if shape == "x-api-key":
        return [(b"x-api-key", k)], ok, admin
    if shape == "bearer":
        return [(b"authorization", b"Bearer " + k)], ok, admin
    if shape == "both":
        return [(b"x-api-key", k), (b"authorization", b"Bearer " + k)], ok, admin
    if shape == "bearer_lower":
        return [(b"authorization", b"bearer " + k)], ok, admin
    if shape == "upper_names":
        return [(b"X-API-KEY", k)], ok, admin
    if shape == "padded":
        return [(b"x-api-key", b"  " + k + b" ")], ok, admin
    if shape == "duplicate_same":
        return [(b"x-api-key", k), (b"x-api-key", k)], ok, admin
    if shape == "duplicate_differ":
        return [(b"x-api-key", k), (b"x-api-key", other.encode())], None, False
    if shape == "disagree":
        return [(b"x-api-key", k), (b"authorization", b"Bearer " + other.encode())], None, False
    if shape == "wrong":
        return [(b"x-api-key", b"sk-wrong-" + b"0" * 20)], None, False
    if shape == "near_miss":
        return [(b"authorization", b"Bearer " + k + b"x")], None, False
    if shape == "prefix":
        return [(b"x-api-key", k[:-1])], None, False
    if shape == "basic":
        return [(b"x-api-key", k), (b"authorization", b"Basic " + k)], None, False
    if shape == "bearer_empty":
        return [(b"authorization", b"Bearer   ")], None, False
    if shape == "admin_on_gateway":
        return [(b"x-api-key", ADMIN_KEY.encode())], None, admin_route
    return [], None, False


CONTENT_TYPES = (
    b"application/json",
    b"application/json",
    b"text/plain; charset=latin-1",
    b"multipart/form-data; boundary=x",
    b"application/json; charset=utf-16",
    b"",
)
USER_AGENTS = (b"fuzz/1.0", b"Anthropic/Python 0.70.0", b"u" * 8000, "ü".encode())
OPTIONAL_HEADERS = (
    (b"anthropic-version", b"2023-06-01"),
    (b"anthropic-beta", b"prompt-caching-2024-07-31,nope"),
    (b"x-llmrelay-metadata", b'{"route":"cheap"}'),
    (b"x-llmrelay-metadata", b'{"route":"other","user":"u-1"}'),
    (b"x-llmrelay-metadata", b'{"route":"cheap"}'),
    (b"x-llmrelay-metadata", b"{not json"),
    (b"x-llmrelay-metadata", b'["route","cheap"]'),
    (b"x-llmrelay-metadata", b'{"route":{"deep":[1,2]}}'),
    (b"x-claude-code-session-id", b"sess-1"),
    (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    (b"traceparent", b"00-zz-zz-01"),
    (b"accept-encoding", b"gzip, br"),
    (b"x-forwarded-for", b"10.0.0.1"),
    (b"cookie", b"session=abc"),
    (b"accept", b"text/html"),
    (b"expect", b"100-continue"),
    (b"x-stainless-retry-count", b"0"),
)

#: Header lines the HTTP parser may refuse.
JUNK_HEADERS = (
    (b"x-junk", "ünïcödé ✓".encode()),
    (b"x-junk", b"ctl\x01byte"),
    (b"x-junk", b"del\x7fbyte"),
    (b"x-junk", b"nul\x00byte"),
    (b"x-junk", b"cr\rin value"),
    (b"x-junk", b"v" * 70_000),
    (b"x junk", b"space in name"),
    (b"x-junk", b"folded\r\n continued"),
    (b"", b"no name"),
    (b"x-api-key", "ключ".encode()),
    (b"x-api-key", b"\xff\xfe\xfd"),
    (b"authorization", b"Bearer \x01\x02"),
    (b"expect", b"200-ok"),
    (b"content-length", b"abc"),
    (b"transfer-encoding", b"gzip, chunked"),
    (b"host", b"a\x00b"),
    (b"content-type", b"application/json"),  # a second one, if there is one
    (b"x-llmrelay-metadata", b'{"route":"cheap"}'),
)


@st.composite
def _headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    out = [] if draw(chance(1, 20)) else [(b"host", b"127.0.0.1")]
    if draw(st.booleans()):
        out.append((b"content-type", draw(st.sampled_from(CONTENT_TYPES))))
    if draw(st.booleans()):
        out.append((b"user-agent", draw(st.sampled_from(USER_AGENTS))))
    names: set[bytes] = set()
    for name, value in draw(st.lists(st.sampled_from(OPTIONAL_HEADERS), max_size=4)):
        if name not in names:  # one of each: a repeated metadata header is another case
            names.add(name)
            out.append((name, value))
    return out


# -- routes and bodies ----------------------------------------------------------------------------


@st.composite
def _call_body(draw: st.DrawFn, endpoint: str) -> b.Body:
    base: st.SearchStrategy[Any] = {
        "messages": b.anthropic_message(),
        "count_tokens": b.anthropic_count(),
        "chat": b.openai_chat(),
    }[endpoint]
    if draw(chance(1, 8)):  # the other surface's shape
        base = b.openai_chat() if endpoint != "chat" else b.anthropic_message()
    return draw(b.bodies(base))


@st.composite
def _route(draw: st.DrawFn) -> tuple[str, str, bytes, b.Body | None]:
    """(method the route serves, path, raw target, body for it)."""
    if draw(chance(6, 10)):
        path = draw(st.sampled_from(sorted(CALL_PATHS)))
        target = path.encode()
        if draw(chance(1, 20)):
            target = b"http://127.0.0.1" + target  # absolute-form
        body = draw(_call_body(CALL_PATHS[path]))
        return "POST", path, target + draw(QUERIES).encode(), body
    method, template = draw(st.sampled_from(OTHER_PATHS))
    model = draw(
        st.one_of(
            st.sampled_from(ALL_MODELS),
            st.sampled_from(["nope", "local%2Fecho", "%FF", "a" * 3000]),
        )
    )
    ident = draw(
        st.sampled_from(
            [RECENT, "vk_0123", RECENT, "nope", "%00", "x" * 600, "req_000000000000000000000000"]
        )
    )
    path = template.format(model=model, id=ident, request_id=ident)
    body: b.Body | None = None
    if template == "/admin/keys" and method == "POST":
        body = draw(b.bodies(b.admin_spec()))
    elif template == "/admin/keys/{id}" and method == "PATCH":
        body = draw(b.bodies(b.admin_edit()))
    elif template.endswith("/rotate"):
        body = draw(
            st.sampled_from(
                [b.Body(b'{"grace":"1h"}'), b.Body(b'{"grace":"x"}'), b.Body(b"[]"), b.Body(b"")]
            )
        )
    return method, path, path.encode() + draw(QUERIES).encode(), body


def _decoded(path: str) -> str:
    """What the router sees: aiohttp decodes percent escapes in the path."""
    return unquote(path, errors="surrogateescape")


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A request over the whole ingress."""
    method, path, target, body = draw(_route())
    if draw(chance(1, 8)):
        method = draw(st.sampled_from(METHODS))
    admin_route = path.startswith("/admin/")
    auth_headers, auth, admin = draw(_auth(admin_route))
    headers = draw(_headers()) + auth_headers
    raw_junk = False
    if draw(chance(1, 15)):
        junk = draw(st.sampled_from(JUNK_HEADERS))
        headers.insert(draw(st.integers(0, len(headers))), junk)
        raw_junk = True
        if junk[0] in (b"x-api-key", b"authorization"):
            auth, admin = None, False  # a second, different key: refused wherever it is
    if draw(chance(1, 50)):
        target = draw(
            st.sampled_from(
                [
                    b"/v1/messages\x00",
                    "/v1/mëssages".encode(),
                    b"/v1/ messages",
                    b"*",
                    b"/" + b"t" * 70_000,
                ]
            )
        )
        raw_junk = True
        path = "<junk target>"
    if method == "HEAD" or draw(st.booleans()):
        headers.append((b"connection", b"close"))
    data = body.data if body is not None else b""
    if body is None and draw(chance(1, 5)):
        data = draw(b.bodies(b.anthropic_message())).data  # a body nobody reads
    framing = draw(st.sampled_from(["length", "length", "chunked", "length"]))
    if draw(chance(1, 10)):
        framing = draw(st.sampled_from(["bad_chunked", "huge_length", "both", "two_lengths"]))
    slow = None
    if draw(chance(1, 100)):
        framing = draw(st.sampled_from(["short", "partial_headers"]))
        slow = framing
    encoding = None
    if draw(chance(1, 10)):
        encoding = draw(st.sampled_from(["gzip", "deflate", "gzip_bomb", "bad_gzip", "br"]))
    if encoding is not None and framing in ("length", "chunked"):
        data, value = _encode(data, encoding)
        headers.append((b"content-encoding", value))
        # Without the brotli package aiohttp's parser refuses "br" with the headers.
        raw_junk = raw_junk or encoding == "br"
    names = [k.lower() for k, _ in headers]
    if any(names.count(n) > 1 for n in SINGLETON_HEADERS):
        raw_junk = True  # aiohttp refuses a second Host, User-Agent, Content-Type...
    version = b"HTTP/1.0" if draw(chance(1, 20)) else b"HTTP/1.1"
    if len(method) + len(target) + len(version) + 2 > MAX_REQUEST_LINE:
        raw_junk = True
    if version == b"HTTP/1.0" and framing == "chunked":
        raw_junk = True  # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing
    if version == b"HTTP/1.1" and not any(k == b"host" for k, _ in headers):
        raw_junk = True  # RFC 9112 3.2: an HTTP/1.1 request without Host is answered 400
    fault = None
    if body is not None and draw(chance(1, 5)):
        fault = draw(st.sampled_from(FAULTS))
    follow = draw(st.sampled_from([None, None, None, "sequential", None, "pipelined", None]))
    if (
        (b"connection", b"close") in headers
        or version != b"HTTP/1.1"
        or framing not in ("length", "chunked")
        or slow is not None
        or raw_junk  # junk framing headers may make the next request this one's body
    ):
        follow = None
    return Case(
        label=_label(method, path),
        method=method,
        path=_decoded(path.split("?")[0]),
        target=target,
        headers=headers,
        body=data,
        framing=framing,
        version=version,
        auth=auth,
        admin=admin,
        raw_junk=raw_junk or framing in ("bad_chunked", "both", "two_lengths"),
        slow=slow,
        fault=fault,
        follow=follow,
        crowd=draw(chance(1, 100)),
        model=body.model if body is not None else None,
    )


def _encode(data: bytes, encoding: str) -> tuple[bytes, bytes]:
    if encoding == "gzip":
        return gzip.compress(data), b"gzip"
    if encoding == "deflate":
        return zlib.compress(data), b"deflate"
    if encoding == "gzip_bomb":
        return gzip.compress(b"{" + b" " * (4 * MAX_BODY) + b"}"), b"gzip"
    if encoding == "bad_gzip":
        return b"\x1f\x8bnot gzip at all" + data[:20], b"gzip"
    return data, b"br"


def _label(method: str, path: str) -> str:
    for prefix in ("/admin/keys", "/admin/requests", "/v1/models/", "/anthropic/v1/models/"):
        if path.startswith(prefix) and path != prefix.rstrip("/"):
            return f"{method} {prefix}*"
    if len(path) > 40:
        path = path[:40] + "..."
    return f"{method} {path.split('?')[0]}"
