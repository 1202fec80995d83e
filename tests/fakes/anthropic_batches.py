"""Message Batches and Files for the fake Anthropic API, in the SDK's shapes.

Wire sources (anthropic-sdk-python 2.17): ``resources/messages/batches.py`` (paths; the
SDK fetches ``results_url`` as given, with ``Accept: application/binary``),
``types/messages/message_batch.py``, ``message_batch_individual_response.py``,
``deleted_message_batch.py``; ``resources/beta/files.py`` (multipart upload, ``?beta=true``),
``types/file_metadata.py``, ``types/deleted_file.py``; ``pagination.py`` (``SyncPage``:
``data``, ``has_more``, ``first_id``, ``last_id``; ``SyncPageCursor``: ``next_page``).

A batch ends at once: every request succeeds with the fake's echo message, whose usage is
``input_tokens`` = :data:`BATCH_INPUT_TOKENS` and ``output_tokens`` =
:data:`BATCH_OUTPUT_TOKENS`, so a test knows what the results bill. A request whose
``custom_id`` starts with ``fail`` is ``errored`` instead (not billed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

BATCH_INPUT_TOKENS = 1000
BATCH_OUTPUT_TOKENS = 200
_CREATED = "2026-12-01T00:00:00Z"
_EXPIRES = "2026-12-02T00:00:00Z"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


def _json(obj: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(obj, separators=(",", ":")).encode())


def _not_found(what: str) -> Answer:
    err = {"type": "not_found_error", "message": f"{what} not found"}
    return _json({"type": "error", "error": err, "request_id": "req_fake_nf"}, 404)


def _invalid(message: str) -> Answer:
    err = {"type": "invalid_request_error", "message": message}
    return _json({"type": "error", "error": err, "request_id": "req_fake_bad"}, 400)


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "data": items,
        "has_more": False,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "next_page": None,
    }


@dataclass
class BatchesAndFiles:
    """The state behind ``/v1/messages/batches*`` and ``/v1/files*``; ``base_url`` is the
    fake's own URL (for ``results_url``)."""

    base_url: str = ""
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)
    _n: int = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_fake{self._n:020d}"

    def handles(self, path: str) -> bool:
        return path.startswith(("/v1/messages/batches", "/v1/files"))

    def route(self, method: str, path: str, content_type: str, body: bytes) -> Answer:
        parts = path.strip("/").split("/")
        if parts[:3] == ["v1", "messages", "batches"]:
            return self._batches(method, parts[3:], body)
        return self._files(method, parts[2:], content_type, body)

    # -- batches ----------------------------------------------------------------------------
    def _batches(self, method: str, rest: list[str], body: bytes) -> Answer:
        if method == "POST" and not rest:
            return self._create(body)
        if method == "GET" and not rest:
            return _json(_page(list(reversed(self.batches.values()))))
        batch = self.batches.get(rest[0]) if rest else None
        if batch is None:
            return _not_found("message batch")
        if method == "GET" and len(rest) == 1:
            return _json(batch)
        if method == "DELETE" and len(rest) == 1:
            del self.batches[rest[0]]
            return _json({"id": rest[0], "type": "message_batch_deleted"})
        if method == "POST" and rest[1:] == ["cancel"]:
            batch["cancel_initiated_at"] = _CREATED
            return _json(batch)
        if method == "GET" and rest[1:] == ["results"]:
            lines = b"".join(
                json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in self.results[rest[0]]
            )
            return Answer(200, lines, "application/binary")
        return _not_found("route")

    def _create(self, body: bytes) -> Answer:
        try:
            requests = json.loads(body)["requests"]
        except (ValueError, KeyError, TypeError):
            return _invalid("requests: Field required")
        bid = self._id("msgbatch")
        results = [self._result(r) for r in requests]
        succeeded = sum(1 for r in results if r["result"]["type"] == "succeeded")
        batch = {
            "id": bid,
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": {
                "processing": 0,
                "succeeded": succeeded,
                "errored": len(results) - succeeded,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": _CREATED,
            "ended_at": _CREATED,
            "expires_at": _EXPIRES,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{bid}/results",
        }
        self.batches[bid] = batch
        self.results[bid] = results
        return _json(batch)

    def _result(self, request: dict[str, Any]) -> dict[str, Any]:
        custom_id = str(request.get("custom_id", ""))
        if custom_id.startswith("fail"):
            error = {"type": "invalid_request_error", "message": "max_tokens: too large"}
            return {
                "custom_id": custom_id,
                "result": {"type": "errored", "error": {"type": "error", "error": error}},
            }
        params = request.get("params") or {}
        message = {
            "id": self._id("msg"),
            "type": "message",
            "role": "assistant",
            "model": params.get("model", "claude-sonnet-4-6"),
            "content": [{"type": "text", "text": f"batch answer for {custom_id}"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": BATCH_INPUT_TOKENS,
                "output_tokens": BATCH_OUTPUT_TOKENS,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}

    # -- files ------------------------------------------------------------------------------
    def _files(self, method: str, rest: list[str], content_type: str, body: bytes) -> Answer:
        if method == "POST" and not rest:
            return self._upload(content_type, body)
        if method == "GET" and not rest:
            return _json(_page([meta for meta, _ in reversed(self.files.values())]))
        found = self.files.get(rest[0]) if rest else None
        if found is None:
            return _not_found("file")
        meta, data = found
        if method == "GET" and len(rest) == 1:
            return _json(meta)
        if method == "DELETE" and len(rest) == 1:
            del self.files[rest[0]]
            return _json({"id": rest[0], "type": "file_deleted"})
        if method == "GET" and rest[1:] == ["content"]:
            return Answer(200, data, meta["mime_type"])
        return _not_found("route")

    def _upload(self, content_type: str, body: bytes) -> Answer:
        if not content_type.startswith("multipart/form-data"):
            return _invalid("expected multipart/form-data")
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                data = part.get_payload(decode=True)
                assert isinstance(data, bytes)
                fid = self._id("file")
                meta = {
                    "id": fid,
                    "type": "file",
                    "filename": part.get_filename() or "upload",
                    "mime_type": part.get_content_type(),
                    "size_bytes": len(data),
                    "created_at": _CREATED,
                    "downloadable": True,
                }
                self.files[fid] = (meta, data)
                return _json(meta)
        return _invalid("file: Field required")
