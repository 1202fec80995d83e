"""A fake Amazon Bedrock Runtime (Anthropic models) for llmrelay's tests.

Same machinery as ``FakeAnthropic`` (which it subclasses: background-thread aiohttp server,
``url``, ``requests``, ``enqueue``, ``wait_for_disconnect``, ``max_concurrent_streams``)::

    with FakeBedrock() as fake:
        fake.enqueue(bedrock_stream_reply("text_stream.sse"))
        ...point the gateway at fake.url with TEST_ACCESS_KEY / TEST_SECRET_KEY, TEST_REGION...
        assert fake.requests[-1].model_id == "anthropic.claude-sonnet-4-6-v1:0"

Wire facts (botocore ``data/bedrock-runtime/2023-09-30/service-2.json``, ``botocore/auth.py``
SigV4Auth, ``botocore/eventstream.py``; anthropic SDK ``lib/bedrock/_client.py`` and
``_stream_decoder.py``):

* ``POST /model/{modelId}/invoke``, ``/invoke-with-response-stream``, ``/count-tokens``. The
  model id is one URL path segment, percent-encoded (``/`` of an ARN is ``%2F``).
* Every request is SigV4-signed for service ``bedrock``; the canonical URI is the path *as
  sent*, percent-encoded once more (``quote(path, safe="/~")``), so ``:`` -> ``%3A`` and
  ``%2F`` -> ``%252F``. Failures: 403 + ``x-amzn-ErrorType`` + ``{"message": ...}``.
* Body: the Anthropic Messages body without ``model``/``stream``, plus
  ``anthropic_version: "bedrock-2023-05-31"`` and optional ``anthropic_beta: [str]``.
* Errors: HTTP status from the service model, ``x-amzn-ErrorType: <Shape>``,
  body ``{"message": ...}``.
* Stream: ``application/vnd.amazon.eventstream`` frames; each event frame carries
  ``{"bytes": base64(<Anthropic event JSON>), "p": <padding>}``; the ``message_stop`` event has
  ``amazon-bedrock-invocationMetrics``; an error is an ``exception`` frame named after the
  ResponseStream member (``throttlingException``, ``modelStreamErrorException``, ...).
* CountTokens: ``{"input": {"invokeModel": {"body": base64(InvokeModel body)}}}`` ->
  ``{"inputTokens": N}``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import json
import re
import struct
import urllib.parse
import uuid
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from .anthropic_upstream import (
    WIRE_DIR,
    FakeAnthropic,
    RecordedRequest,
    Reply,
    count_tokens_for,
    hang_reply,
    json_reply,
    slow_reply,
    sse_events,
)

__all__ = [
    "BEDROCK_ANTHROPIC_VERSION", "BEDROCK_ERROR_STATUS", "TEST_ACCESS_KEY", "TEST_REGION",
    "TEST_SECRET_KEY", "TEST_SESSION_TOKEN", "BedrockRequest", "FakeBedrock", "Reply",
    "bedrock_error_reply", "bedrock_message_reply", "bedrock_stream_reply", "chunk_frame",
    "count_tokens_for", "eventstream_frame", "exception_frame", "hang_reply", "slow_reply",
    "verify_sigv4",
]  # fmt: skip

TEST_REGION = "us-east-1"
TEST_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
TEST_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TEST_SESSION_TOKEN = "FwoGZXIvYXdzEFAKESESSIONTOKEN//////////EXAMPLE="
SERVICE = "bedrock"
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
METRICS_KEY = "amazon-bedrock-invocationMetrics"
# error shape -> HTTP status (service-2.json "error": {"httpStatusCode"})
BEDROCK_ERROR_STATUS = {
    "AccessDeniedException": 403, "ResourceNotFoundException": 404, "ThrottlingException": 429,
    "ModelTimeoutException": 408, "InternalServerException": 500, "ValidationException": 400,
    "ServiceUnavailableException": 503, "ServiceQuotaExceededException": 400,
    "ModelNotReadyException": 429, "ModelErrorException": 424, "ModelStreamErrorException": 424,
}  # fmt: skip
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_BAD_TOKEN = "The security token included in the request is invalid."
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_PATH_RE = re.compile(
    r"^/model/(?P<model>[^/]+)/(?P<op>invoke(-with-response-stream)?|count-tokens)$"
)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass
class BedrockRequest(RecordedRequest):
    """A recorded request plus what the fake made of it.

    ``model_id`` is URL-decoded from the path; ``operation`` is ``invoke``,
    ``invoke-with-response-stream`` or ``count-tokens``; ``payload`` is the decoded Anthropic
    body (for count-tokens: the base64-decoded ``input.invokeModel.body``).
    """

    raw_path: str = ""
    model_id: str | None = None
    operation: str | None = None
    payload: Any = None


# -- event-stream encoding ----------------------------------------------------------------------
def _string_header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v  # 7 = string


def eventstream_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (total length, headers length, CRC32), string
    headers, payload, message CRC32 (all big-endian; ``botocore/eventstream.py``)."""
    hdrs = b"".join(_string_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", 12 + len(hdrs) + len(payload) + 4, len(hdrs))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + hdrs + payload
    return message + struct.pack("!I", zlib.crc32(message))


def chunk_frame(event: Mapping[str, Any], pad: int = 0) -> bytes:
    """A ``chunk`` frame carrying one Anthropic stream event (plus Bedrock's ``p`` padding)."""
    b64 = base64.b64encode(_dumps(event).encode()).decode()
    payload = {"bytes": b64, "p": _PAD[: 1 + pad % len(_PAD)]}
    hdrs = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return eventstream_frame(hdrs, _dumps(payload).encode())


def exception_frame(name: str, message: str, **fields: Any) -> bytes:
    """An ``exception`` frame, e.g. ``exception_frame("throttlingException", "Too many requests")``;
    ``name`` is the ResponseStream member name. ``fields`` adds e.g. ``originalStatusCode``."""
    headers = {
        ":exception-type": name,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return eventstream_frame(headers, _dumps({"message": message, **fields}).encode())


# -- reply helpers ------------------------------------------------------------------------------
def _events_of(source: str | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic events from a fixture name (tests/wire/anthropic/*.sse), SSE text or dicts."""
    if not isinstance(source, str):
        return [dict(e) for e in source]
    text = source
    if source.endswith(".sse") and "\n" not in source:
        text = (WIRE_DIR / source).read_text(encoding="utf-8")
    return _sse_to_events(sse_events(text))


def _sse_to_events(events: Sequence[bytes]) -> list[dict[str, Any]]:
    out = []
    for raw in events:
        data = [ln[5:].strip() for ln in raw.decode().splitlines() if ln.startswith("data:")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def _invocation_metrics(events: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    usage: dict[str, Any] = {}
    for ev in events:
        if ev.get("type") == "message_start":
            usage.update(ev.get("message", {}).get("usage") or {})
        elif ev.get("type") == "message_delta":  # cumulative counts
            usage.update({k: v for k, v in (ev.get("usage") or {}).items() if v is not None})
    return {
        "inputTokenCount": int(usage.get("input_tokens") or 0),
        "outputTokenCount": int(usage.get("output_tokens") or 0),
        "invocationLatency": 100 + 10 * len(events),
        "firstByteLatency": 100,
        "cacheReadInputTokenCount": int(usage.get("cache_read_input_tokens") or 0),
        "cacheWriteInputTokenCount": int(usage.get("cache_creation_input_tokens") or 0),
    }


def bedrock_stream_reply(
    events: str | Sequence[Mapping[str, Any]],
    delay_s: float = 0.0,
    exception: tuple[str, str] | tuple[str, str, Mapping[str, Any]] | None = None,
    exception_after: int | None = None,
    hang_after: bool = False,
    metrics: Mapping[str, int] | None = None,
) -> Reply:
    """An InvokeModelWithResponseStream reply: one event-stream frame per Anthropic event.

    ``events``: a fixture name (``"text_stream.sse"``), SSE text, or event dicts. The
    ``message_stop`` event gets ``amazon-bedrock-invocationMetrics`` (derived from the usage in
    the events, overridable via ``metrics``) unless it already has one. ``exception=(name,
    message[, extra_fields])`` sends an exception frame after ``exception_after`` events (0 =
    before any; None = after all) and ends the stream there.
    """
    evs = _events_of(events)
    stats = {**_invocation_metrics(evs), **(metrics or {})}
    for i, ev in enumerate(evs):
        if ev.get("type") == "message_stop" and METRICS_KEY not in ev:
            evs[i] = {**ev, METRICS_KEY: stats}
    frames = [chunk_frame(ev, n) for n, ev in enumerate(evs)]
    if exception is not None:
        cut = len(frames) if exception_after is None else exception_after
        extra = exception[2] if len(exception) == 3 else {}
        frames = [*frames[:cut], exception_frame(exception[0], exception[1], **extra)]
    headers = {
        "content-type": EVENTSTREAM_CONTENT_TYPE,
        "x-amzn-bedrock-content-type": "application/json",
    }
    return Reply(headers=headers, events=tuple(frames), delay_s=delay_s, hang_after=hang_after)


def bedrock_message_reply(message: str | Mapping[str, Any]) -> Reply:
    """An InvokeModel reply: an Anthropic Message (dict, or a ``*.json`` fixture name) plus the
    ``X-Amzn-Bedrock-*-Token-Count`` / ``-Invocation-Latency`` headers."""
    msg = json.loads((WIRE_DIR / message).read_text()) if isinstance(message, str) else message
    usage = msg.get("usage") or {}
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": str(usage.get("input_tokens", 0)),
        "X-Amzn-Bedrock-Output-Token-Count": str(usage.get("output_tokens", 0)),
        "X-Amzn-Bedrock-Invocation-Latency": "250",
    }
    return json_reply(dict(msg), headers=headers)


def bedrock_error_reply(status: int, error_type: str, message: str) -> Reply:
    """An HTTP error as Bedrock sends it: ``x-amzn-ErrorType`` + ``{"message": ...}``."""
    headers = {"x-amzn-ErrorType": error_type}
    return json_reply({"message": message}, status, headers)


def _validation(message: str) -> Reply:
    return bedrock_error_reply(400, "ValidationException", message)


def _malformed(detail: str) -> Reply:
    return _validation(
        f"Malformed input request{detail}, please reformat your input and try again."
    )


def _check_body(raw: bytes, versions: Collection[str]) -> tuple[Any, Reply | None]:
    """Decode and validate an InvokeModel body for Anthropic models."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None, _malformed("")
    if not isinstance(body, dict):
        return body, _malformed(": #: expected type: JSONObject, found: " + type(body).__name__)
    for key in ("model", "stream"):
        if key in body:
            return body, _malformed(f"#: extraneous key [{key}] is not permitted")
    for key in ("anthropic_version", "max_tokens", "messages"):
        if key not in body:
            return body, _malformed(f"#: required key [{key}] not found")
    if body["anthropic_version"] not in versions:
        return body, _validation(f"invalid anthropic_version {body['anthropic_version']!r}")
    beta = body.get("anthropic_beta")
    if beta is not None and not (isinstance(beta, list) and all(isinstance(b, str) for b in beta)):
        return body, _malformed(": #/anthropic_beta: expected type: JSONArray of strings")
    return body, None


# -- SigV4 --------------------------------------------------------------------------------------
def _auth_error(error_type: str, message: str) -> Reply:
    return bedrock_error_reply(403, error_type, message)


def verify_sigv4(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: Mapping[str, str],
    region: str,
    session_token: str | None = None,
    now: datetime.datetime | None = None,
) -> Reply | None:
    """Check a SigV4 ``Authorization`` header by recomputing it with botocore's SigV4Auth.

    ``headers`` must have lower-cased names; ``raw_path`` is the request target as sent
    (path + ``?query``). Returns None if valid, else the 403 reply AWS would send.
    """
    auth = headers.get("authorization", "")
    if not auth:
        return _auth_error("MissingAuthenticationTokenException", "Missing Authentication Token")
    algo, _, rest = auth.partition(" ")
    params = dict(p.strip().partition("=")[::2] for p in rest.split(","))
    if algo != "AWS4-HMAC-SHA256" or not {"Credential", "SignedHeaders", "Signature"} <= {*params}:
        return _auth_error("IncompleteSignatureException", f"Malformed Authorization: {auth!r}")
    scope = params["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return _auth_error("IncompleteSignatureException", "Credential is malformed.")
    akid, date, cred_region, service, _ = scope
    if akid not in keys:
        return _auth_error("UnrecognizedClientException", _BAD_TOKEN)
    if headers.get("x-amz-security-token") != session_token:  # absent when None
        return _auth_error("UnrecognizedClientException", _BAD_TOKEN)
    if cred_region != region:
        msg = "Credential should be scoped to a valid region."
        return _auth_error("InvalidSignatureException", msg)
    if service != SERVICE:
        msg = f"Credential should be scoped to correct service: '{SERVICE}'."
        return _auth_error("InvalidSignatureException", msg)
    signed = [h for h in params["SignedHeaders"].split(";") if h]
    missing = [h for h in ("host", "x-amz-date") if h not in signed]
    missing += [h for h in signed if h not in headers]
    if missing:
        return _auth_error("InvalidSignatureException", f"Missing or unsigned header(s): {missing}")
    amz_date = headers["x-amz-date"]
    try:
        stamp = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return _auth_error("IncompleteSignatureException", f"Invalid X-Amz-Date {amz_date!r}")
    now = now or datetime.datetime.now(datetime.UTC)
    if date != amz_date[:8] or abs((now - stamp).total_seconds()) > 300:
        msg = f"Signature expired or not yet valid: {amz_date} (server time {now:%Y%m%dT%H%M%SZ})"
        return _auth_error("InvalidSignatureException", msg)
    declared = headers.get("x-amz-content-sha256")
    if declared not in (None, "UNSIGNED-PAYLOAD", hashlib.sha256(body).hexdigest()):
        msg = "The provided 'x-amz-content-sha256' header does not match what was computed."
        return _auth_error("InvalidSignatureException", msg)
    request = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{raw_path}",
        headers={h: headers[h] for h in signed},
        data=body,
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(akid, keys[akid], session_token), service, cred_region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(str(expected), params["Signature"]):
        return _auth_error("InvalidSignatureException", _BAD_SIGNATURE)
    return None


# -- the fake -----------------------------------------------------------------------------------
class FakeBedrock(FakeAnthropic):
    """A fake ``bedrock-runtime.{region}.amazonaws.com`` for Anthropic models (module docstring).

    Replies queued with ``enqueue`` serve both invoke operations (FIFO), those queued with
    ``enqueue_count_tokens`` serve count-tokens; validation failures don't consume a reply.
    ``api_key`` additionally accepts ``Authorization: Bearer <api_key>`` (Bedrock API keys).
    ``models``, if given, limits the model ids accepted (else 400 ValidationException);
    ``anthropic_versions`` the body's ``anthropic_version`` values accepted.
    """

    requests: list[BedrockRequest]  # type: ignore[assignment]

    def __init__(
        self,
        *,
        access_key: str = TEST_ACCESS_KEY,
        secret_key: str = TEST_SECRET_KEY,
        session_token: str | None = None,
        region: str = TEST_REGION,
        api_key: str | None = None,
        models: Collection[str] | None = None,
        anthropic_versions: Collection[str] = (BEDROCK_ANTHROPIC_VERSION,),
    ) -> None:
        super().__init__()
        self.keys = {access_key: secret_key}
        self.session_token = session_token
        self.region = region
        self.api_key = api_key
        self.models = models
        self.anthropic_versions = anthropic_versions

    def __enter__(self) -> FakeBedrock:
        self.start()
        return self

    def requests_for(self, operation: str) -> list[BedrockRequest]:
        """Recorded requests for ``invoke`` / ``invoke-with-response-stream`` / ``count-tokens``."""
        return [r for r in self.requests if r.operation == operation]

    # -- server side ------------------------------------------------------------------------
    def _route(self, request: web.Request, headers: dict[str, str], body: bytes) -> Reply:
        raw_path = request.raw_path
        path = raw_path.partition("?")[0]
        match = _PATH_RE.match(path)
        last = self.requests[-1]  # _handle appended the plain record just before calling us
        rec = BedrockRequest(
            **{f.name: getattr(last, f.name) for f in dataclasses.fields(RecordedRequest)},
            raw_path=raw_path,
            model_id=urllib.parse.unquote(match["model"]) if match else None,
            operation=match["op"] if match else None,
        )
        self.requests[-1] = rec
        bearer = headers.get("authorization", "")
        if not (self.api_key is not None and bearer == f"Bearer {self.api_key}"):
            err = verify_sigv4(
                request.method, raw_path, headers, body,
                keys=self.keys, region=self.region, session_token=self.session_token,
            )  # fmt: skip
            if err is not None:
                return err
        if request.method != "POST" or match is None or rec.model_id is None:
            msg = f"Unknown operation: {request.method} {path}"
            return bedrock_error_reply(404, "UnknownOperationException", msg)
        if self.models is not None and rec.model_id not in self.models:
            return _validation("The provided model identifier is invalid.")
        if rec.operation == "count-tokens":
            return self._count_tokens(rec, body)
        payload, err = _check_body(body, self.anthropic_versions)
        rec.payload = payload
        if err is not None:
            return err
        if self._messages_q:
            return self._messages_q.popleft()
        return self._echo(payload, rec.model_id, stream=rec.operation != "invoke")

    def _count_tokens(self, rec: BedrockRequest, body: bytes) -> Reply:
        try:
            outer = json.loads(body)
            inner_raw = base64.b64decode(outer["input"]["invokeModel"]["body"], validate=True)
        except (ValueError, KeyError, TypeError):
            return _validation("1 validation error detected: input.invokeModel.body is required")
        payload, err = _check_body(inner_raw, self.anthropic_versions)
        rec.payload = payload
        if err is not None:
            return err
        if self._count_q:
            return self._count_q.popleft()
        return json_reply({"inputTokens": count_tokens_for(inner_raw)})

    def _echo(self, payload: dict[str, Any], model_id: str, *, stream: bool) -> Reply:
        """The Anthropic fake's deterministic echo, re-framed for Bedrock."""
        as_anthropic = {**payload, "model": model_id, "stream": stream}
        inner = self._default_message(_dumps(as_anthropic).encode())
        if not stream:
            return bedrock_message_reply(json.loads(inner.body or b"{}"))
        events = _sse_to_events(inner.events or ())
        return bedrock_stream_reply(events, delay_s=self.default_stream_delay_s)

    def _response_headers(self, reply: Reply) -> dict[str, str]:
        return {"x-amzn-RequestId": str(uuid.uuid4()), **reply.headers}
