"""A raw HTTP/1.1 exchange: the bytes go out as given, the answer comes back whole.

No HTTP client library normalises anything away here: header values with control bytes,
duplicate framing headers and broken chunked bodies are sent as they are. The answer is
parsed with :class:`http.client.HTTPResponse` (strict framing: a truncated chunked body is
an error, not a short body) over a reader that records every byte received.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
from dataclasses import dataclass, field

__all__ = ["Answer", "exchange"]


@dataclass
class Answer:
    """What came back. ``status`` None: no answer (``error`` says why)."""

    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    #: Every byte received on the connection, framing included.
    raw: bytes = b""
    #: Bytes after a HEAD answer's headers (there must be none).
    after_head: bytes = b""
    #: ``reset``, ``timeout``, ``closed`` (no answer) or ``protocol: ...`` (a broken answer).
    error: str | None = None
    #: The request could not be sent whole (the server closed or reset first).
    send_failed: bool = False
    #: The answer said the connection stays open (HTTP/1.1 keep-alive).
    kept_alive: bool = False
    #: The answer to a second request on the same connection (see :func:`exchange`).
    follow: Answer | None = None

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


class _Recorder(io.RawIOBase):
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.record = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview | bytearray) -> int:  # type: ignore[override]
        n = self._sock.recv_into(b)
        self.record += memoryview(b)[:n]
        return n


class _Reader(io.BufferedReader):
    def close(self) -> None:
        """HTTPResponse closes its file when the body is done; a HEAD check reads on."""


class _Conn:
    def __init__(self, fp: _Reader) -> None:
        self._fp = fp

    def makefile(self, mode: str, *args: object, **kwargs: object) -> _Reader:
        return self._fp


def exchange(
    port: int,
    data: bytes,
    *,
    method: str,
    timeout_s: float = 10.0,
    drain_head: bool = True,
    then: bytes | None = None,
    pipelined: bool = False,
) -> Answer:
    """Send ``data`` on a new connection to ``127.0.0.1:port`` and read one answer.

    ``timeout_s`` bounds each read (a gateway that stops sending is a timeout, reported
    as such, never a hang of the test). For HEAD with ``drain_head``, the bytes after the
    answer's headers are read until the server closes (the request should say
    ``connection: close``, and its body be whole: the server waits for the rest of a body
    a while before it closes). ``then``: a second request on the same connection, sent
    with the first (``pipelined``) or once the first answer is read and kept the
    connection open; its answer is ``follow``.
    """
    answer = Answer()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    recorder = _Recorder(sock)
    reader = _Reader(recorder)
    try:
        try:
            sock.sendall(data + (then if then is not None and pipelined else b""))
        except OSError:
            answer.send_failed = True  # a 413 or 400 may already be on its way back
        _read_answer(reader, method, answer, drain_head)
        if then is not None and answer.status is not None and answer.error is None:
            answer.follow = Answer()
            if not pipelined:
                if not answer.kept_alive:
                    answer.follow = None
                else:
                    try:
                        sock.sendall(then)
                    except OSError:
                        answer.follow.send_failed = True
            if answer.follow is not None:
                _read_answer(reader, "GET", answer.follow, False)
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    answer.raw = bytes(recorder.record)
    return answer


def _read_answer(reader: _Reader, method: str, answer: Answer, drain_head: bool) -> None:
    resp = http.client.HTTPResponse(_Conn(reader), method=method)  # type: ignore[arg-type]
    try:
        resp.begin()
        answer.status = resp.status
        answer.headers = list(resp.getheaders())
        answer.kept_alive = not resp.will_close
        answer.body = resp.read()
        if method == "HEAD" and drain_head:
            answer.after_head = _read_rest(reader)
    except TimeoutError:
        answer.error = "timeout"
    except ConnectionResetError:
        answer.error = "reset"
    except http.client.RemoteDisconnected:
        answer.error = "closed"
    except (http.client.HTTPException, ValueError) as err:
        answer.error = f"protocol: {type(err).__name__}: {err}"


def _read_rest(reader: _Reader) -> bytes:
    out = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := reader.read1(65536):
            out += chunk
    return out
