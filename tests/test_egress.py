"""Outbound proxies and TLS: provider calls through a ``CONNECT`` proxy (a provider's
``proxy:``, or ``HTTPS_PROXY`` with ``NO_PROXY``), upstream certificates checked against a
provider's ``ca_file:`` or ``SSL_CERT_FILE``, and TLS on the gateway's own listener
(``server.tls``) serving the official SDKs. Certificates are made here with
``cryptography``; the HTTPS upstream is the fake Anthropic API."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from llmrelay.config import ConfigError, load_settings
from tests.conftest import ALICE_KEY, GatewayProcess, base_config, free_port, start_gateway
from tests.connect_proxy import ConnectProxy
from tests.fakes.anthropic_upstream import FakeAnthropic

UPSTREAM_KEY = "sk-ant-upstream-egress-42"
PROVIDER_MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "hello"}]


@dataclass
class Certs:
    ca: Path  # the test CA's certificate (PEM), what clients trust
    cert: Path  # the server's certificate chain for localhost and 127.0.0.1
    key: Path  # its private key

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA and a server certificate it signed, for ``localhost`` and ``127.0.0.1``."""
    tmp = tmp_path_factory.mktemp("certs")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("llmrelay test CA"))
        .issuer_name(_name("llmrelay test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = Certs(tmp / "ca.pem", tmp / "server.pem", tmp / "server.key")
    out.ca.write_bytes(_pem(ca))
    out.cert.write_bytes(_pem(cert))
    out.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out


@pytest.fixture
def upstream(certs: Certs) -> Iterator[FakeAnthropic]:
    """The fake Anthropic API over HTTPS (``https://localhost:<port>``)."""
    with FakeAnthropic(expected_api_key=UPSTREAM_KEY, ssl_context=certs.server_context()) as f:
        yield f


def _anthropic(base_url: str, **provider: Any) -> dict[str, Any]:
    return {
        "type": "anthropic",
        "base_url": base_url,
        "api_key": UPSTREAM_KEY,
        "models": {"claude": PROVIDER_MODEL},
        "timeouts": {"connect_s": 5, "read_s": 10},
        **provider,
    }


def _ask(gw: GatewayProcess, model: str) -> anthropic.types.Message:
    with anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0) as client:
        return client.messages.create(model=model, max_tokens=20, messages=HELLO)


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


def test_a_providers_proxy_and_ca_file_carry_its_calls(
    tmp_path: Path, certs: Certs, upstream: FakeAnthropic
) -> None:
    with ConnectProxy() as proxy:
        with_user = proxy.url.replace("http://", "http://relay:s%40cret@")
        provider = _anthropic(upstream.url, proxy=with_user, ca_file=str(certs.ca))
        gw = start_gateway(tmp_path, base_config(tmp_path, {"anthropic": provider}))
        try:
            msg = _ask(gw, "anthropic/claude")
            assert msg.content[0].type == "text" and msg.content[0].text == "echo: hello"
            assert proxy.connects == [f"localhost:{_port(upstream.url)}"]
            # The URL's credentials go as Proxy-Authorization (decoded: s@cret).
            assert proxy.authorizations == ["Basic " + base64.b64encode(b"relay:s@cret").decode()]
            assert len(upstream.requests_to("/v1/messages")) == 1
        finally:
            gw.stop()


def test_https_proxy_from_the_environment_with_no_proxy_and_ssl_cert_file(
    tmp_path: Path, certs: Certs, upstream: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct_url = upstream.url.replace("localhost", "127.0.0.1")
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.internal, 127.0.0.1")
        monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
        providers = {"proxied": _anthropic(upstream.url), "direct": _anthropic(direct_url)}
        gw = start_gateway(tmp_path, base_config(tmp_path, providers))
        try:
            assert _ask(gw, "proxied/claude").content[0].type == "text"
            assert _ask(gw, "direct/claude").content[0].type == "text"
            # Only the call to a host NO_PROXY does not name went through the proxy.
            assert proxy.connects == [f"localhost:{_port(upstream.url)}"]
            assert proxy.authorizations == [None]
            assert len(upstream.requests_to("/v1/messages")) == 2
        finally:
            gw.stop()


def test_an_untrusted_upstream_certificate_is_a_502(
    tmp_path: Path, upstream: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    gw = start_gateway(tmp_path, base_config(tmp_path, {"anthropic": _anthropic(upstream.url)}))
    try:
        with pytest.raises(anthropic.APIStatusError) as e:
            _ask(gw, "anthropic/claude")
        assert e.value.status_code == 502
        assert "'anthropic' could not be reached" in e.value.message
        assert not upstream.requests_to("/v1/messages")
    finally:
        gw.stop()


def test_unusable_proxy_and_tls_settings_are_config_errors(tmp_path: Path) -> None:
    provider = _anthropic("https://localhost:1", ca_file=str(tmp_path / "nope.pem"))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path, {"anthropic": provider})))
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert f"{path}: providers.anthropic.ca_file: CA file" in str(e.value)
    proxy = _anthropic("https://localhost:1", proxy="socks5://proxy:1080")
    path.write_text(yaml.safe_dump(base_config(tmp_path, {"anthropic": proxy})))
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert f"{path}: providers.anthropic.proxy: expected an http:// proxy URL" in str(e.value)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    provider = _anthropic("https://localhost:1", ca_file=str(not_pem))
    tls = {"cert_file": str(not_pem), "key_file": str(not_pem)}
    path.write_text(yaml.safe_dump(base_config(tmp_path, {"a": provider}, server={"tls": tls})))
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert f"{path}: providers.a.ca_file: CA file '{not_pem}' is not a PEM bundle" in str(e.value)
    assert f"{path}: server.tls: cert_file and key_file must be a PEM" in str(e.value)


def _start_tls_gateway(tmp: Path, config: dict[str, Any], ca: ssl.SSLContext) -> GatewayProcess:
    """``start_gateway`` for an HTTPS listener (its readiness check speaks TLS)."""
    port = free_port()
    cfg_path = tmp / f"llmrelay-{port}.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = tmp / f"llmrelay-{port}.log"
    with log_path.open("wb") as log:
        args = ["serve", "--config", str(cfg_path), "--port", str(port)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmrelay", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    gw = GatewayProcess(f"https://localhost:{port}", cfg_path, log_path, proc, tmp / "usage.db")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{gw.log()}")
        try:
            with urllib.request.urlopen(gw.url + "/health", timeout=1, context=ca) as r:
                if r.status == 200:
                    return gw
        except OSError:
            time.sleep(0.05)
    gw.stop()
    raise RuntimeError(f"gateway did not start:\n{gw.log()}")


def test_the_gateway_listener_serves_both_sdks_over_tls(tmp_path: Path, certs: Certs) -> None:
    mock = {"local": {"type": "mock", "models": {"echo": "echo"}}}
    tls = {"cert_file": str(certs.cert), "key_file": str(certs.key)}
    config = base_config(tmp_path, mock, server={"tls": tls})
    gw = _start_tls_gateway(tmp_path, config, certs.client_context())
    try:
        assert '"url":"https://' in gw.log().replace(" ", "")
        with (
            httpx2.Client(verify=certs.client_context()) as http,
            anthropic.Anthropic(
                api_key=ALICE_KEY, base_url=gw.url, max_retries=0, http_client=http
            ) as client,
        ):
            msg = client.messages.create(model="local/echo", max_tokens=20, messages=HELLO)
            assert msg.content[0].type == "text"
        with (
            httpx2.Client(verify=certs.client_context()) as http,
            openai.OpenAI(
                api_key=ALICE_KEY, base_url=gw.url + "/v1", max_retries=0, http_client=http
            ) as oai,
        ):
            chat = oai.chat.completions.create(model="local/echo", messages=HELLO)
            assert chat.choices[0].message.content
        # A client that does not trust the gateway's CA is refused by its own TLS check.
        with (
            httpx2.Client(verify=ssl.create_default_context()) as http,
            anthropic.Anthropic(
                api_key=ALICE_KEY, base_url=gw.url, max_retries=0, http_client=http
            ) as client,
            pytest.raises(anthropic.APIConnectionError),
        ):
            client.messages.create(model="local/echo", max_tokens=20, messages=HELLO)
    finally:
        gw.stop()


def test_a_proxy_that_cannot_be_reached_is_named_in_the_502(
    tmp_path: Path, upstream: FakeAnthropic
) -> None:
    dead = free_port()  # nothing listens there
    provider = _anthropic(upstream.url, proxy=f"http://relay:s3cret@127.0.0.1:{dead}")
    gw = start_gateway(tmp_path, base_config(tmp_path, {"anthropic": provider}))
    try:
        with pytest.raises(anthropic.APIStatusError) as e:
            _ask(gw, "anthropic/claude")
        assert e.value.status_code == 502
        assert "'anthropic' could not be reached" in e.value.message
        assert f"(via proxy http://127.0.0.1:{dead})" in e.value.message
        assert "s3cret" not in e.value.message
        assert not upstream.requests_to("/v1/messages")
    finally:
        gw.stop()
