"""``logging.format`` / ``--log-format``: JSON lines (default) or readable text, for
llmrelay's own loggers and the libraries' (aiohttp, psycopg's pool, OpenTelemetry)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrelay.obs.log import setup_logging
from tests.conftest import base_config, start_gateway


@pytest.fixture
def restore_loggers() -> Iterator[None]:
    names = ("llmrelay", "aiohttp", "psycopg.pool", "opentelemetry")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level) for n in names}
    yield
    for n, (handlers, level) in saved.items():
        logging.getLogger(n).handlers[:] = handlers
        logging.getLogger(n).setLevel(level)


def test_opentelemetry_warnings_are_json_lines_like_ours(
    restore_loggers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("warning")
    logging.getLogger("opentelemetry.sdk.trace.export").warning("Queue full, dropping Span.")
    logging.getLogger("llmrelay").warning("usage store unreachable", extra={"rows": 3})
    lines = capsys.readouterr().err.splitlines()
    otel, ours = (json.loads(line) for line in lines)
    assert otel["logger"] == "opentelemetry.sdk.trace.export"
    assert otel["level"] == "warning" and otel["msg"] == "Queue full, dropping Span."
    assert ours["rows"] == 3


def test_text_lines_carry_the_fields(
    restore_loggers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    logging.getLogger("llmrelay.access").info(
        "request", extra={"status": 200, "model": "local/echo", "error": "a b"}
    )
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith('info llmrelay.access: request status=200 model=local/echo error="a b"')


def test_serve_with_log_format_text(tmp_path: Path) -> None:
    config = base_config(tmp_path, {"local": {"type": "mock", "models": {"echo": "echo"}}})
    config["observability"] = {
        "tracing": {"enabled": True, "endpoint": "http://u:secretpw@127.0.0.1:9/v1/traces"},
        "request_log": {"bodies": "errors"},
    }
    gw = start_gateway(tmp_path, config, "--log-format", "text")
    try:
        listening = next(line for line in gw.log().splitlines() if " listening " in line)
        assert " info llmrelay: listening url=http://" in listening
        assert "metrics=on " in listening and "bodies=errors" in listening
        assert 'tracing="on, http/protobuf to http://u@127.0.0.1:9/v1/traces' in listening
        assert "secretpw" not in gw.log()
    finally:
        gw.stop()
    config["observability"] = {"metrics": {"key": "m" * 24}}
    gw = start_gateway(tmp_path, config)
    try:
        line = next(line for line in gw.log().splitlines() if '"listening"' in line)
        fields = json.loads(line)
        assert fields["logger"] == "llmrelay" and fields["level"] == "info"
        assert fields["metrics"] == "on, key required"
        assert fields["tracing"] == "off" and fields["bodies"] == "none"
    finally:
        gw.stop()
