"""Self-test: official clients (anthropic's AnthropicBedrock / AnthropicVertex, boto3, google-auth)
pointed directly at the Bedrock and Vertex fakes accept their wire."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import boto3  # type: ignore[import-untyped]
import pytest
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from botocore.eventstream import EventStreamBuffer  # type: ignore[import-untyped]
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account

from .anthropic_upstream import WIRE_DIR, fixture_reply
from .bedrock_upstream import (
    BEDROCK_ANTHROPIC_VERSION,
    TEST_ACCESS_KEY,
    TEST_REGION,
    TEST_SECRET_KEY,
    TEST_SESSION_TOKEN,
    FakeBedrock,
    bedrock_error_reply,
    bedrock_message_reply,
    bedrock_stream_reply,
    count_tokens_for,
)
from .vertex_upstream import (
    VERTEX_ANTHROPIC_VERSION,
    FakeGoogleToken,
    FakeVertex,
    google_error_reply,
    write_service_account_file,
)

# The third-party clients this file drives (google-auth's token refresh inside AnthropicVertex,
# boto3's connection pool) leave sockets for the garbage collector to close; whichever test
# runs when that happens would fail on the ResourceWarning. llmrelay's own code closes its
# sessions; this file only checks the fakes.
pytestmark = pytest.mark.filterwarnings(
    "ignore:unclosed <socket:ResourceWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
)

MODEL_ID = "anthropic.claude-sonnet-4-6-v1:0"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us." + MODEL_ID
MSGS: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hello there"}]
# The installed SDK fills anthropic_version with its own API version; send the platform's.
BEDROCK_BODY = {"anthropic_version": BEDROCK_ANTHROPIC_VERSION}
VERTEX_BODY = {"anthropic_version": VERTEX_ANTHROPIC_VERSION}
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


# -- Bedrock ------------------------------------------------------------------------------------
@pytest.fixture
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock() as f:
        yield f


def _bedrock_client(fake: FakeBedrock, **kw: Any) -> anthropic.AnthropicBedrock:
    kw.setdefault("aws_access_key", TEST_ACCESS_KEY)
    kw.setdefault("aws_secret_key", TEST_SECRET_KEY)
    return anthropic.AnthropicBedrock(
        aws_region=TEST_REGION, base_url=fake.url, max_retries=0, **kw
    )


@pytest.fixture
def bclient(bedrock: FakeBedrock) -> Iterator[anthropic.AnthropicBedrock]:
    with _bedrock_client(bedrock) as c:
        yield c


def _bstream(client: anthropic.AnthropicBedrock, model: str = MODEL_ID) -> anthropic.types.Message:
    with client.messages.stream(
        model=model, max_tokens=64, messages=MSGS, extra_body=BEDROCK_BODY
    ) as stream:
        return stream.get_final_message()


def _signed_post(
    fake: FakeBedrock, path: str, body: bytes, secret: str = TEST_SECRET_KEY
) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` to ``path`` (sent as given), SigV4-signed with botocore like boto3 does."""
    req = AWSRequest(method="POST", url=fake.url + path, data=body,
                     headers={"content-type": "application/json"})  # fmt: skip
    SigV4Auth(Credentials(TEST_ACCESS_KEY, secret), "bedrock", TEST_REGION).add_auth(req)
    out = urllib.request.Request(fake.url + path, data=body, headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(out, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers.items()), e.read()


def _invoke_body(**extra: Any) -> dict[str, Any]:
    return {**BEDROCK_BODY, "max_tokens": 16, "messages": MSGS, **extra}


def test_frames_are_real_eventstream() -> None:
    reply = bedrock_stream_reply("text_stream.sse", exception=("throttlingException", "slow"))
    assert reply.headers["content-type"] == "application/vnd.amazon.eventstream"
    buf = EventStreamBuffer()
    for frame in reply.events or ():
        buf.add_data(frame)  # botocore checks lengths and both CRC32s
    messages = list(buf)
    assert len(messages) == len(reply.events or ())
    *chunks, exc = messages
    for m in chunks:
        assert m.headers == {":event-type": "chunk", ":content-type": "application/json",
                             ":message-type": "event"}  # fmt: skip
        assert set(json.loads(m.payload)) == {"bytes", "p"}
    events = [json.loads(base64.b64decode(json.loads(m.payload)["bytes"])) for m in chunks]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert events[-1]["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": 25, "outputTokenCount": 15, "invocationLatency": 100 + 10 * len(events),
        "firstByteLatency": 100, "cacheReadInputTokenCount": 11, "cacheWriteInputTokenCount": 7,
    }  # fmt: skip
    assert exc.headers[":message-type"] == "exception"
    assert exc.headers[":exception-type"] == "throttlingException"
    assert json.loads(exc.payload) == {"message": "slow"}


def test_bedrock_invoke_echo(bedrock: FakeBedrock, bclient: anthropic.AnthropicBedrock) -> None:
    msg = bclient.messages.create(model=MODEL_ID, max_tokens=16, messages=MSGS,
                                  extra_body=BEDROCK_BODY)  # fmt: skip
    block = msg.content[0]
    assert block.type == "text" and block.text == "echo: Hello there"
    assert msg.model == MODEL_ID
    rec = bedrock.requests[-1]
    assert (rec.operation, rec.model_id) == ("invoke", MODEL_ID)
    assert rec.raw_path == f"/model/{MODEL_ID}/invoke"
    assert rec.payload == _invoke_body(max_tokens=16)
    assert rec.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY}/"
    )


@pytest.mark.parametrize("name", ["text_stream.sse", "tool_use_stream.sse", "thinking_stream.sse"])
def test_bedrock_stream_fixtures(
    bedrock: FakeBedrock, bclient: anthropic.AnthropicBedrock, name: str
) -> None:
    bedrock.enqueue(bedrock_stream_reply(name, delay_s=0.001))
    msg = _bstream(bclient)
    ref = {"text_stream.sse": (["text"], 15), "tool_use_stream.sse": (["text", "tool_use"], 89),
           "thinking_stream.sse": (["thinking", "text"], 58)}[name]  # fmt: skip
    assert ([b.type for b in msg.content], msg.usage.output_tokens) == ref
    if name == "text_stream.sse":
        assert msg.usage.input_tokens == 25 and msg.usage.cache_read_input_tokens == 11
    if name == "tool_use_stream.sse":
        tool = msg.content[1]
        assert tool.type == "tool_use"
        assert tool.input == {"location": "San Francisco, CA", "unit": "celsius"}
    assert bedrock.requests[-1].operation == "invoke-with-response-stream"
    assert bedrock.max_concurrent_streams == 1


def test_bedrock_default_stream_and_arn(
    bedrock: FakeBedrock, bclient: anthropic.AnthropicBedrock
) -> None:
    msg = _bstream(bclient, PROFILE_ARN)
    assert msg.content[0].type == "text" and msg.content[0].text == "echo: Hello there"
    rec = bedrock.requests[-1]
    assert rec.model_id == PROFILE_ARN  # decoded; sent with "/" as %2F, signed double-encoded
    assert "inference-profile%2Fus." in rec.raw_path


def test_bedrock_client_disconnect(
    bedrock: FakeBedrock, bclient: anthropic.AnthropicBedrock
) -> None:
    bedrock.enqueue(bedrock_stream_reply("text_stream.sse", hang_after=True))
    with bclient.messages.stream(
        model=MODEL_ID, max_tokens=64, messages=MSGS, extra_body=BEDROCK_BODY
    ) as stream:
        assert next(iter(stream.text_stream)) == "Hello"
    assert bedrock.wait_for_disconnect(5)


@pytest.mark.parametrize("after", [0, 3])
def test_bedrock_exception_frame(
    bedrock: FakeBedrock, bclient: anthropic.AnthropicBedrock, after: int
) -> None:
    exc = ("throttlingException", "Too many requests, please wait before trying again.")
    bedrock.enqueue(bedrock_stream_reply("text_stream.sse", exception=exc, exception_after=after))
    with pytest.raises(anthropic.APIStatusError) as info:
        _bstream(bclient)
    body: Any = info.value.body
    assert body["error"] == {"type": exc[0], "message": exc[1]}


@pytest.mark.parametrize(
    ("status", "etype", "cls"),
    [(429, "ThrottlingException", anthropic.RateLimitError),
     (403, "AccessDeniedException", anthropic.PermissionDeniedError),
     (400, "ValidationException", anthropic.BadRequestError),
     (404, "ResourceNotFoundException", anthropic.NotFoundError),
     (503, "ServiceUnavailableException", anthropic.InternalServerError)],
)  # fmt: skip
def test_bedrock_http_errors(
    bedrock: FakeBedrock, bclient: anthropic.AnthropicBedrock, status: int, etype: str, cls: type
) -> None:
    bedrock.enqueue(bedrock_error_reply(status, etype, "Too many requests"))
    with pytest.raises(cls) as info:
        bclient.messages.create(
            model=MODEL_ID, max_tokens=8, messages=MSGS, extra_body=BEDROCK_BODY
        )
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert info.value.response.headers["x-amzn-errortype"] == etype  # type: ignore[attr-defined]
    assert info.value.body == {"message": "Too many requests"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kw", "etype"),
    [({"aws_secret_key": "wrong-secret"}, "InvalidSignatureException"),
     ({"aws_access_key": "AKIAUNKNOWN000000000"}, "UnrecognizedClientException")],
)  # fmt: skip
def test_bedrock_bad_credentials(bedrock: FakeBedrock, kw: dict[str, str], etype: str) -> None:
    bedrock.enqueue(bedrock_message_reply("message.json"))
    with (
        _bedrock_client(bedrock, **kw) as client,
        pytest.raises(anthropic.PermissionDeniedError) as info,
    ):
        client.messages.create(model=MODEL_ID, max_tokens=8, messages=MSGS, extra_body=BEDROCK_BODY)
    assert info.value.response.headers["x-amzn-errortype"] == etype
    body: Any = info.value.body
    assert set(body) == {"message"}
    with _bedrock_client(bedrock) as client:  # the queued reply was not consumed
        msg = client.messages.create(model=MODEL_ID, max_tokens=8, messages=MSGS,
                                     extra_body=BEDROCK_BODY)  # fmt: skip
    assert msg.id == json.loads((WIRE_DIR / "message.json").read_text())["id"]


def test_bedrock_session_token() -> None:
    with FakeBedrock(session_token=TEST_SESSION_TOKEN) as fake:
        with _bedrock_client(fake, aws_session_token=TEST_SESSION_TOKEN) as client:
            _bstream(client)
        assert "x-amz-security-token" in fake.requests[-1].headers["authorization"]
        with _bedrock_client(fake) as client, pytest.raises(anthropic.PermissionDeniedError):
            _bstream(client)


def test_bedrock_tampering_and_validation(bedrock: FakeBedrock) -> None:
    path = f"/model/{MODEL_ID}/invoke"
    body = json.dumps(_invoke_body()).encode()
    assert _signed_post(bedrock, path, body)[0] == 200
    status, headers, raw = _signed_post(bedrock, path, body, secret="nope")
    assert (status, headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")
    assert json.loads(raw)["message"].startswith("The request signature we calculated")
    # the path is signed as sent: "%3A" instead of ":" is a different canonical URI
    req = AWSRequest(method="POST", url=bedrock.url + path, data=body)
    SigV4Auth(Credentials(TEST_ACCESS_KEY, TEST_SECRET_KEY), "bedrock", TEST_REGION).add_auth(req)
    enc = urllib.request.Request(bedrock.url + path.replace(":", "%3A"), data=body,
                                 headers=dict(req.headers.items()))  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(enc, timeout=10)
    info.value.close()
    assert info.value.code == 403
    for bad in (
        _invoke_body(model=MODEL_ID),
        _invoke_body(stream=True),
        _invoke_body(anthropic_version="2023-06-01"),
        _invoke_body(anthropic_beta="x"),
    ):
        status, headers, raw = _signed_post(bedrock, path, json.dumps(bad).encode())
        assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException"), bad
        assert set(json.loads(raw)) == {"message"}


def test_boto3_clients(bedrock: FakeBedrock) -> None:
    """botocore's own serializers/parsers (incl. its event-stream parser) accept the fake."""
    client = boto3.client(
        "bedrock-runtime", region_name=TEST_REGION, endpoint_url=bedrock.url,
        aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=TEST_SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip
    try:
        inner = json.dumps(_invoke_body()).encode()
        out = client.count_tokens(modelId=MODEL_ID, input={"invokeModel": {"body": inner}})
        assert out["inputTokens"] == count_tokens_for(inner)
        assert bedrock.requests[-1].payload == _invoke_body()
        resp = client.invoke_model(modelId=MODEL_ID, body=inner)
        assert json.loads(resp["body"].read())["content"][0]["text"] == "echo: Hello there"
        bedrock.enqueue(bedrock_stream_reply("tool_use_stream.sse"))
        stream = client.invoke_model_with_response_stream(modelId=PROFILE_ARN, body=inner)
        events = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
        assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 89
        bedrock.enqueue(bedrock_error_reply(429, "ThrottlingException", "Too many requests"))
        with pytest.raises(client.exceptions.ThrottlingException):
            client.invoke_model(modelId=MODEL_ID, body=inner)
        bedrock.enqueue(
            bedrock_stream_reply(
                "text_stream.sse",
                exception=("modelStreamErrorException", "overloaded", {"originalStatusCode": 529}),
            )
        )
        stream = client.invoke_model_with_response_stream(modelId=MODEL_ID, body=inner)
        with pytest.raises(Exception, match="modelStreamErrorException"):
            list(stream["body"])
    finally:
        client.close()


# -- Vertex -------------------------------------------------------------------------------------
@pytest.fixture
def google() -> Iterator[FakeGoogleToken]:
    with FakeGoogleToken() as f:
        yield f


@pytest.fixture
def vertex(google: FakeGoogleToken) -> Iterator[FakeVertex]:
    with FakeVertex(google) as f:
        yield f


def _vertex_client(fake: FakeVertex, sa_file: Path) -> anthropic.AnthropicVertex:
    creds = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(sa_file), scopes=SCOPES
    )
    return anthropic.AnthropicVertex(project_id="p", region="us-east5", base_url=fake.url + "/v1",
                                     credentials=creds, max_retries=0)  # fmt: skip


@pytest.fixture
def vclient(
    google: FakeGoogleToken, vertex: FakeVertex, tmp_path: Path
) -> Iterator[anthropic.AnthropicVertex]:
    with _vertex_client(vertex, google.write_service_account_file(tmp_path / "sa.json")) as c:
        yield c


def test_vertex_create_stream_count(
    google: FakeGoogleToken, vertex: FakeVertex, vclient: anthropic.AnthropicVertex
) -> None:
    model = "claude-sonnet-4-6@20260101"
    msg = vclient.messages.create(model=model, max_tokens=16, messages=MSGS, extra_body=VERTEX_BODY)
    assert msg.content[0].type == "text" and msg.content[0].text == "echo: Hello there"
    assert msg.model == model
    vertex.enqueue(fixture_reply("thinking_stream.sse"))
    with vclient.messages.stream(model=model, max_tokens=16, messages=MSGS,
                                 extra_body=VERTEX_BODY) as stream:  # fmt: skip
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    count = vclient.messages.count_tokens(model=model, messages=MSGS)
    assert count.input_tokens == count_tokens_for(vertex.requests[-1].body)
    got = [(r.project, r.region, r.model, r.specifier) for r in vertex.requests]
    assert got == [
        ("p", "us-east5", model, "rawPredict"),
        ("p", "us-east5", model, "streamRawPredict"),
        ("p", "us-east5", "count-tokens", "rawPredict"),
    ]
    assert vertex.requests[0].json() == {**VERTEX_BODY, "max_tokens": 16, "messages": MSGS}
    assert vertex.requests[1].json()["stream"] is True
    assert vertex.requests[2].json()["model"] == model
    assert google.tokens_issued == 1  # cached by google-auth for the following calls
    assert {r.headers["authorization"] for r in vertex.requests} == {"Bearer ya29.fake-1"}
    form = google.requests[0].body.decode()
    assert "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in form.split("&")


def test_vertex_errors(
    google: FakeGoogleToken, vertex: FakeVertex, vclient: anthropic.AnthropicVertex
) -> None:
    vertex.enqueue(google_error_reply(429, "RESOURCE_EXHAUSTED", "Quota exceeded"))
    with pytest.raises(anthropic.RateLimitError) as info:
        vclient.messages.create(model="m", max_tokens=8, messages=MSGS, extra_body=VERTEX_BODY)
    body = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    assert info.value.body == body
    with pytest.raises(anthropic.BadRequestError) as bad:  # the SDK's own anthropic_version
        vclient.messages.create(model="m", max_tokens=8, messages=MSGS)
    assert bad.value.body["error"]["status"] == "INVALID_ARGUMENT"  # type: ignore[index]
    google.revoke_all()
    with pytest.raises(anthropic.AuthenticationError) as auth:
        vclient.messages.create(model="m", max_tokens=8, messages=MSGS, extra_body=VERTEX_BODY)
    assert auth.value.body["error"]["status"] == "UNAUTHENTICATED"  # type: ignore[index]


def test_vertex_rejects_foreign_tokens_and_keys(
    google: FakeGoogleToken, vertex: FakeVertex, tmp_path: Path
) -> None:
    with (
        anthropic.AnthropicVertex(
            project_id="p", region="us-east5", base_url=vertex.url + "/v1",
            access_token="ya29.made-up", max_retries=0,
        ) as client,
        pytest.raises(anthropic.AuthenticationError),
    ):  # fmt: skip
        client.messages.create(model="m", max_tokens=8, messages=MSGS, extra_body=VERTEX_BODY)
    untrusted = write_service_account_file(tmp_path / "other.json", google.token_url)
    with (
        _vertex_client(vertex, untrusted) as client,
        pytest.raises(RefreshError, match="invalid_grant"),
    ):
        client.messages.create(model="m", max_tokens=8, messages=MSGS, extra_body=VERTEX_BODY)
    assert google.tokens_issued == 0
