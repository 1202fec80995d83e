"""A fake Google OAuth token endpoint and a fake Vertex AI (Anthropic publisher models).

Both reuse ``FakeAnthropic``'s machinery (background-thread aiohttp server, ``url``,
``requests``, ``enqueue``, ``wait_for_disconnect``, ``max_concurrent_streams``)::

    with FakeGoogleToken() as tokens, FakeVertex(tokens) as vertex:
        sa_file = tokens.write_service_account_file(tmp_path / "sa.json")
        vertex.enqueue(fixture_reply("text_stream.sse"))
        ...point the gateway at vertex.url + "/v1" with the service-account file...

Wire facts (google-auth ``google/oauth2/service_account.py`` + ``_client.py``, anthropic SDK
``lib/vertex/_client.py``):

* Token: google-auth POSTs form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&
  assertion=<RS256 JWT>`` to the file's ``token_uri``; JWT header ``{"alg": "RS256", "typ":
  "JWT", "kid": private_key_id}``, claims ``iss`` (client_email), ``aud`` (always
  ``https://oauth2.googleapis.com/token``, not token_uri), ``scope``, ``iat``, ``exp`` (iat+3600).
  Answer ``{"access_token", "expires_in", "token_type": "Bearer"}``; errors are OAuth-style
  ``{"error": "invalid_grant", "error_description": ...}`` with 400.
* Vertex: ``POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict``
  (``:streamRawPredict`` when streaming); body = Anthropic body without ``model``, with
  ``anthropic_version: "vertex-2023-10-16"`` (``stream`` stays in the body). count_tokens:
  ``.../models/count-tokens:rawPredict`` with ``model`` in the body. Replies are Anthropic JSON /
  SSE; Google-side errors are ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .anthropic_upstream import (
    FakeAnthropic,
    RecordedRequest,
    Reply,
    count_tokens_for,
    fixture_reply,
    hang_reply,
    json_reply,
    slow_reply,
    sse_reply,
)

__all__ = [
    "GOOGLE_TOKEN_AUDIENCE",
    "JWT_BEARER_GRANT",
    "VERTEX_ANTHROPIC_VERSION",
    "FakeGoogleToken",
    "FakeVertex",
    "Reply",
    "VertexRequest",
    "count_tokens_for",
    "fixture_reply",
    "google_error_reply",
    "hang_reply",
    "json_reply",
    "slow_reply",
    "sse_reply",
    "write_service_account_file",
]

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_PATH_RE = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)"
    r"/publishers/anthropic/models/(?P<model>[^/:]+):(?P<specifier>[A-Za-z]+)$"
)


def _fields_of(rec: RecordedRequest) -> dict[str, Any]:
    return {f.name: getattr(rec, f.name) for f in dataclasses.fields(RecordedRequest)}


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def write_service_account_file(
    path: str | Path, token_uri: str, project_id: str = "fake-project"
) -> Path:
    """Write a service-account key file with a freshly generated 2048-bit RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    email = f"llmrelay-test@{project_id}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(100000000000000000000 + secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + urllib.parse.quote(email),
        "universe_domain": "googleapis.com",
    }
    out = Path(path)
    out.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out


def google_error_reply(code: int, status: str, message: str) -> Reply:
    """A Google API error: ``{"error": {"code", "message", "status"}}`` with HTTP ``code``
    (e.g. 403 PERMISSION_DENIED, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 500 INTERNAL,
    503 UNAVAILABLE)."""
    return json_reply({"error": {"code": code, "message": message, "status": status}}, code)


def _oauth_error(error: str, description: str, status: int = 400) -> Reply:
    return json_reply({"error": error, "error_description": description}, status)


class FakeGoogleToken(FakeAnthropic):
    """A fake ``oauth2.googleapis.com/token`` for service-account JWT-bearer grants.

    Trusts the keys of files written by ``write_service_account_file`` (or passed to
    ``trust``); verifies each assertion's RS256 signature and claims; issues
    ``ya29.fake-<n>``. ``token_url`` is the endpoint; ``issued`` lists the tokens handed out.
    """

    def __init__(self, expires_in: int = 3600) -> None:
        super().__init__()
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self._keys: dict[str, tuple[str, rsa.RSAPublicKey]] = {}  # kid -> (email, public key)
        self._serial = itertools.count(1)

    def __enter__(self) -> FakeGoogleToken:
        self.start()
        return self

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def tokens_issued(self) -> int:
        return len(self.issued)

    def write_service_account_file(
        self, path: str | Path, project_id: str = "fake-project"
    ) -> Path:
        """``write_service_account_file(path, self.token_url)``, and trust its key."""
        out = write_service_account_file(path, self.token_url, project_id)
        self.trust(out)
        return out

    def trust(self, service_account_file: str | Path) -> None:
        info = json.loads(Path(service_account_file).read_text(encoding="utf-8"))
        key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._keys[info["private_key_id"]] = (info["client_email"], key.public_key())

    def is_valid(self, token: str) -> bool:
        """True for a token this endpoint issued and that was not revoked."""
        return token in self.issued and token not in self.revoked

    def revoke_all(self) -> None:
        """Make every token issued so far invalid (FakeVertex then answers 401)."""
        self.revoked.update(self.issued)

    # -- server side ------------------------------------------------------------------------
    def _route(self, request: web.Request, headers: dict[str, str], body: bytes) -> Reply:
        if request.method != "POST" or request.path != "/token":
            return json_reply({"error": "not_found"}, 404)
        form = urllib.parse.parse_qs(body.decode(errors="replace"))
        grant = form.get("grant_type", [""])[0]
        if grant != JWT_BEARER_GRANT:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant}")
        err = self._check_assertion(form.get("assertion", [""])[0])
        if err is not None:
            return err
        token = f"ya29.fake-{next(self._serial)}"
        self.issued.append(token)
        reply = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        return json_reply(reply)

    def _check_assertion(self, assertion: str) -> Reply | None:
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            head = json.loads(_b64url_decode(head_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            sig = _b64url_decode(sig_b64)
        except ValueError:
            return _oauth_error("invalid_grant", "Invalid JWT: malformed assertion.")
        if head.get("alg") != "RS256":
            return _oauth_error("invalid_grant", "Invalid JWT: alg must be RS256.")
        email, public_key = self._keys.get(str(head.get("kid")), ("", None))
        if public_key is None:
            return _oauth_error("invalid_grant", "Invalid grant: account not found")
        try:
            signing_input = f"{head_b64}.{claims_b64}".encode()
            public_key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        if claims.get("iss") != email:
            return _oauth_error("invalid_grant", "Invalid JWT: iss does not match the key.")
        if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_url):
            msg = "Invalid JWT: Failed audience check. The right audience is "
            return _oauth_error("invalid_grant", msg + GOOGLE_TOKEN_AUDIENCE)
        now, iat, exp = time.time(), claims.get("iat"), claims.get("exp")
        if not (
            isinstance(iat, int)
            and isinstance(exp, int)
            and 0 < exp - iat <= 3600
            and iat - 300 <= now <= exp + 300
        ):
            msg = (
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim."
            )
            return _oauth_error("invalid_grant", msg)
        if not claims.get("scope"):
            msg = "Invalid OAuth scope or ID token audience provided."
            return _oauth_error("invalid_scope", msg)
        return None

    def _response_headers(self, reply: Reply) -> dict[str, str]:
        return {"cache-control": "no-cache, no-store, max-age=0, must-revalidate", **reply.headers}


@dataclass
class VertexRequest(RecordedRequest):
    """A recorded request plus the parts of its path (``None`` when the path didn't match)."""

    project: str | None = None
    region: str | None = None
    model: str | None = None
    specifier: str | None = None


class FakeVertex(FakeAnthropic):
    """A fake ``{region}-aiplatform.googleapis.com`` serving Anthropic publisher models.

    ``url + "/v1"`` is the SDK's ``base_url``. Bearer tokens must be ones ``token_server``
    issued (and did not revoke) or in ``access_tokens``; with neither, any bearer is accepted.
    ``enqueue`` feeds rawPredict/streamRawPredict, ``enqueue_count_tokens`` count-tokens.
    """

    requests: list[VertexRequest]  # type: ignore[assignment]

    def __init__(
        self,
        token_server: FakeGoogleToken | None = None,
        access_tokens: Iterable[str] = (),
        anthropic_versions: Iterable[str] = (VERTEX_ANTHROPIC_VERSION,),
    ) -> None:
        super().__init__()
        self.token_server = token_server
        self.access_tokens = set(access_tokens)
        self.anthropic_versions = set(anthropic_versions)

    def __enter__(self) -> FakeVertex:
        self.start()
        return self

    def requests_for(self, specifier: str) -> list[VertexRequest]:
        """Recorded requests whose path ended in ``:<specifier>`` (count-tokens has model
        ``count-tokens``)."""
        return [r for r in self.requests if r.specifier == specifier]

    def _token_ok(self, token: str) -> bool:
        if self.token_server is None and not self.access_tokens:
            return bool(token)
        ts = self.token_server
        return token in self.access_tokens or (ts is not None and ts.is_valid(token))

    # -- server side ------------------------------------------------------------------------
    def _route(self, request: web.Request, headers: dict[str, str], body: bytes) -> Reply:
        match = _PATH_RE.match(request.path)
        parts: dict[str, str] = match.groupdict() if match else {}
        last = self.requests[-1]  # _handle appended the plain record just before calling us
        self.requests[-1] = VertexRequest(**_fields_of(last), **parts)  # type: ignore[arg-type]
        auth = headers.get("authorization", "")
        if not (auth.lower().startswith("bearer ") and self._token_ok(auth[7:].strip())):
            return google_error_reply(401, "UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE)
        if request.method != "POST" or match is None:
            msg = f"The requested URL {request.path} was not found."
            return google_error_reply(404, "NOT_FOUND", msg)
        model, specifier = parts["model"], parts["specifier"]
        try:
            req = json.loads(body)
        except ValueError:
            req = None
        if not isinstance(req, dict):
            return self._invalid("Invalid JSON payload received. Expected a JSON object.")
        if model == "count-tokens":
            if specifier != "rawPredict":
                return google_error_reply(404, "NOT_FOUND", f"Unknown method :{specifier}.")
            if not isinstance(req.get("model"), str):
                return self._invalid("count-tokens requires `model` in the request body.")
            if self._count_q:
                return self._count_q.popleft()
            return json_reply({"input_tokens": count_tokens_for(body)})
        if specifier not in ("rawPredict", "streamRawPredict"):
            return google_error_reply(404, "NOT_FOUND", f"Unknown method :{specifier}.")
        if "model" in req:
            return self._invalid("Invalid JSON payload received. Unknown name \"model\": the model "
                                 "is given by the URL.")  # fmt: skip
        if req.get("anthropic_version") not in self.anthropic_versions:
            version = req.get("anthropic_version")
            return self._invalid(f"anthropic_version: {version!r} is not supported; expected "
                                 f"{VERTEX_ANTHROPIC_VERSION!r}.")  # fmt: skip
        if self._messages_q:
            return self._messages_q.popleft()
        return self._default_message(json.dumps({**req, "model": model}).encode())

    def _invalid(self, message: str) -> Reply:
        return google_error_reply(400, "INVALID_ARGUMENT", message)

    def _response_headers(self, reply: Reply) -> dict[str, str]:
        return dict(reply.headers)
