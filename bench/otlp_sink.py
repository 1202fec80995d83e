"""A minimal OTLP/HTTP sink for benchmarks: accepts ``POST /v1/traces`` and discards it.

    taskset -c 0 python bench/otlp_sink.py --port 4318 &

It stands in for a local collector so the tracing target's figures count the gateway's
export work, not a collector's. Pin it away from the gateway's core.
"""

from __future__ import annotations

import argparse
import http.server


class _Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), _Sink).serve_forever()


if __name__ == "__main__":
    main()
