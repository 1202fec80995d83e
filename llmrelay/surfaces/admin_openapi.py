"""The admin API as an OpenAPI 3.1 document, written by hand (``GET /admin/openapi.json``).

Kept beside the handlers in ``admin.py``; ``docs/admin-api.md`` is the prose reference.
A test validates it with ``openapi-spec-validator`` and checks that every admin route is
in it.
"""

from __future__ import annotations

from typing import Any

from .console_openapi import CONSOLE_PATHS, CONSOLE_SCHEMAS

__all__ = ["openapi_json"]

_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_NUM = {"type": ["number", "null"]}
_TIME = {"type": ["number", "null"], "description": "Unix seconds"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_LIMITS = {
    name: {"type": "integer", "minimum": 1, "description": desc}
    for name, desc in (
        ("rpm", "requests per minute"),
        ("rph", "requests per hour"),
        ("rpd", "requests per day"),
        ("tpm", "tokens per minute"),
        ("tph", "tokens per hour"),
        ("tpd", "tokens per day"),
    )
}

_KEY_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The key's id (vk_...)",
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema or {"type": "string"},
        "description": description,
    }


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {"type": "string", "examples": ["invalid_request_error"]},
                    "message": {"type": "string"},
                },
            },
            "request_id": {"type": "string"},
        },
    },
    "KeySpec": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "team": {"type": "string", "minLength": 1},
            "models": {
                "oneOf": [
                    {"type": "array", "items": {"type": "string"}},
                    {"type": "string", "description": "comma-separated"},
                ],
                "description": "Models the key may use (empty or absent: every model)",
            },
            "allowed_accounts": {
                "oneOf": [
                    {"type": "array", "items": {"type": "string"}},
                    {"type": "string", "description": "comma-separated"},
                ],
                "description": "Provider accounts the native passthrough (/proxy/{account}/...) "
                "may reach (absent: the accounts of the key's models, every one without models)",
            },
            "limits": {"type": "object", "properties": _LIMITS, "additionalProperties": False},
            **_LIMITS,
            "budget_usd": {"type": "number", "exclusiveMinimum": 0},
            "budget_period": {"enum": ["day", "week", "month"], "default": "month"},
            "budget_mode": {"enum": ["enforce", "audit"], "default": "enforce"},
            "expires_in": {"type": "string", "examples": ["30d"]},
            "expires_at": {"type": "number", "description": "Unix seconds"},
        },
    },
    "KeyEdit": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "description": "The fields to change; null removes one (no team, every model, the "
        "accounts of the models, unlimited, no budget). Limits not named stay; budget_usd "
        "replaces the whole budget. name, expiry and secrets are not editable.",
        "properties": {
            "team": {"type": ["string", "null"], "minLength": 1},
            "models": {
                "oneOf": [
                    {"type": "array", "items": {"type": "string"}},
                    {"type": "string", "description": "comma-separated"},
                    {"type": "null"},
                ],
                "description": "Models the key may use (empty or null: every model)",
            },
            "allowed_accounts": {
                "oneOf": [
                    {"type": "array", "items": {"type": "string"}},
                    {"type": "string", "description": "comma-separated"},
                    {"type": "null"},
                ],
                "description": "Provider accounts the native passthrough may reach (null: "
                "those of the key's models)",
            },
            "limits": {
                "type": ["object", "null"],
                "properties": {n: {**v, "type": ["integer", "null"]} for n, v in _LIMITS.items()},
                "additionalProperties": False,
                "description": "Merged into the key's limits (null: remove them all)",
            },
            **{n: {**v, "type": ["integer", "null"]} for n, v in _LIMITS.items()},
            "budget_usd": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "budget_period": {"enum": ["day", "week", "month"], "default": "month"},
            "budget_mode": {"enum": ["enforce", "audit"], "default": "enforce"},
        },
    },
    "Key": {
        "type": "object",
        "required": ["id", "name", "status", "created_at"],
        "properties": {
            "id": {"type": "string", "examples": ["vk_0123456789abcdef"]},
            "name": {"type": "string"},
            "team": _NULLABLE_STR,
            "models": {"type": ["array", "null"], "items": {"type": "string"}},
            "allowed_accounts": {"type": ["array", "null"], "items": {"type": "string"}},
            "limits": {"type": "object", "properties": _LIMITS},
            "budget": {
                "type": ["object", "null"],
                "properties": {
                    "usd": {"type": "number"},
                    "period": {"enum": ["day", "week", "month"]},
                    "mode": {"enum": ["enforce", "audit"]},
                },
            },
            "status": {"enum": ["active", "revoked", "expired"]},
            "created_at": {"type": "number", "description": "Unix seconds"},
            "expires_at": _TIME,
            "revoked_at": _TIME,
        },
    },
    "CreatedKey": {
        "allOf": [
            _ref("Key"),
            {
                "type": "object",
                "required": ["key"],
                "properties": {
                    "key": {"type": "string", "description": "The secret, shown only here"}
                },
            },
        ]
    },
    "Rotated": {
        "type": "object",
        "required": ["id", "key", "previous_valid_until"],
        "properties": {
            "id": {"type": "string"},
            "key": {"type": "string", "description": "The new secret, shown only here"},
            "previous_valid_until": {"type": "number", "description": "Unix seconds"},
        },
    },
    "Reloaded": {
        "type": "object",
        "required": ["reloaded", "config", "providers", "models", "virtual_models"],
        "properties": {
            "reloaded": {"const": True},
            "config": {"type": "string", "description": "The config file read"},
            "providers": {"type": "integer", "description": "Provider accounts in force"},
            "models": {"type": "integer", "description": "Models of those accounts"},
            "virtual_models": {"type": "integer"},
        },
    },
    "UsageSummary": {
        "type": "object",
        "required": ["data", "by", "since"],
        "properties": {
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string"},
                        "team": {"type": "string"},
                        "model": {"type": "string"},
                        "day": {"type": "string", "format": "date"},
                        "requests": {"type": "integer"},
                        "errors": {"type": "integer"},
                        "input_tokens": {"type": "integer"},
                        "output_tokens": {"type": "integer"},
                        "cache_creation_input_tokens": {"type": "integer"},
                        "cache_read_input_tokens": {"type": "integer"},
                        "cost_usd": _NULLABLE_NUM,
                        "avg_latency_s": {"type": "number"},
                    },
                },
            },
            "by": {"type": "array", "items": {"enum": ["key", "team", "model", "day"]}},
            "since": _TIME,
        },
    },
    "Request": {
        "type": "object",
        "description": "One call as the request log lists it; times in milliseconds",
        "required": ["request_id", "time", "status", "key_name", "model"],
        "properties": {
            "request_id": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "ts": {"type": "number", "description": "Unix seconds"},
            "surface": {"type": ["string", "null"], "enum": ["anthropic", "openai", None]},
            "endpoint": {"type": "string"},
            "stream": {"type": "boolean"},
            "key_name": {"type": "string"},
            "key_id": _NULLABLE_STR,
            "team": _NULLABLE_STR,
            "model": {"type": "string", "description": "As the client asked"},
            "routed_model": {
                "type": ["string", "null"],
                "description": "The configured name that served (the route decision)",
            },
            "rerouted": {
                "type": "boolean",
                "description": "A routing rule sent the call to another model than asked",
            },
            "provider": {"type": "string"},
            "provider_model": {"type": "string"},
            "status": {"type": "integer"},
            "error_type": _NULLABLE_STR,
            "error_message": _NULLABLE_STR,
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "cache_creation_input_tokens": {"type": "integer"},
            "cache_read_input_tokens": {"type": "integer"},
            "cost_usd": _NULLABLE_NUM,
            "tokens_known": {
                "type": ["boolean", "null"],
                "description": "false: the provider's answer had no usage (a passthrough "
                "call); the token counts are 0 for unknown. null: /v1 calls and older rows, "
                "counts real",
            },
            "billing": {
                "enum": [None, "subscription", "subscription_budgeted", "batch"],
                "description": "null: the account's API key at list price; subscription: "
                "the caller's Claude seat paid; batch: batch results at the batch price",
            },
            "latency_ms": {"type": "number"},
            "ttft_ms": _NULLABLE_NUM,
            "overhead_ms": _NULLABLE_NUM,
            "upstream_ms": _NULLABLE_NUM,
            "attempts": {"type": "integer"},
            "user_agent": _NULLABLE_STR,
            "trace_id": _NULLABLE_STR,
            "upstream_request_id": _NULLABLE_STR,
            "has_bodies": {"type": "boolean"},
        },
    },
    "Attempt": {
        "type": "object",
        "properties": {
            "target": {"type": "string"},
            "status": {"type": "integer"},
            "error_type": _NULLABLE_STR,
            "latency_s": {"type": "number"},
            "message": {"type": "string"},
            "truncated": {"type": "integer", "description": "Attempts left out (last entry)"},
        },
    },
    "RequestDetail": {
        "allOf": [
            _ref("Request"),
            {
                "type": "object",
                "properties": {
                    "attempt_log": {"type": ["array", "null"], "items": _ref("Attempt")},
                    "bodies": {
                        "type": ["object", "null"],
                        "description": "Captured bodies as stored (text: JSON, redacted, cut)",
                        "properties": {
                            "request": _NULLABLE_STR,
                            "response": _NULLABLE_STR,
                            "request_truncated": {"type": "boolean"},
                            "response_truncated": {"type": "boolean"},
                        },
                    },
                },
            },
        ]
    },
    "RequestPage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref("Request")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as cursor for the next page; null on the last page",
            },
        },
    },
}

_RESPONSES = {
    f"E{status}": _json(_ref("Error"), text)
    for status, text in (
        (400, "Invalid request (the message names the field or parameter)"),
        (401, "Missing or wrong admin key"),
        (404, "Not found"),
        (408, "The body did not arrive in time"),
        (409, "Conflict (see the message)"),
        (413, "Body too large"),
        (503, "The database could not complete the request; try again"),
    )
}


def _op(
    summary: str,
    ok: dict[str, Any],
    errors: tuple[int, ...],
    *,
    status: str = "200",
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    operation_id: str,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": {
            status: ok,
            **{str(s): {"$ref": f"#/components/responses/E{s}"} for s in errors},
        },
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    return op


_REQUEST_PARAMETERS = [
    _query("key", "Key name"),
    _query("team", "Team"),
    _query("model", "Model as the client asked"),
    _query("provider", "Provider account that served"),
    _query("status", "A code (429) or a class (5xx)", {"type": "string", "examples": ["5xx"]}),
    _query("since", "From (inclusive): 15m, 1h, 7d, a UTC date, ISO 8601 time or Unix seconds"),
    _query("until", "To (exclusive): same forms as since"),
    _query("request_id", "A prefix of the request id"),
    _query(
        "limit", "Rows per page", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
    ),
    _query("cursor", "next_cursor of the previous page"),
]

_PATHS: dict[str, Any] = {
    "/admin/keys": {
        "post": _op(
            "Create a virtual key",
            _json(_ref("CreatedKey"), "The key, with its secret (shown once)"),
            (400, 401, 408, 409, 413, 503),
            status="201",
            body={"required": True, "content": {"application/json": {"schema": _ref("KeySpec")}}},
            operation_id="createKey",
        ),
        "get": _op(
            "List virtual keys",
            _json(
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "array", "items": _ref("Key")}},
                },
                "Every key (never a secret)",
            ),
            (401, 503),
            operation_id="listKeys",
        ),
    },
    "/admin/keys/{id}": {
        "parameters": [_KEY_ID],
        "get": _op(
            "Get a key", _json(_ref("Key"), "The key"), (401, 404, 503), operation_id="getKey"
        ),
        "patch": _op(
            "Edit a key's team, models, allowed accounts, limits or budget (409: revoked, or a"
            " key of the config file)",
            _json(_ref("Key"), "The key as it is now"),
            (400, 401, 404, 408, 409, 413, 503),
            body={"required": True, "content": {"application/json": {"schema": _ref("KeyEdit")}}},
            operation_id="updateKey",
        ),
        "delete": _op(
            "Revoke a key (as POST .../revoke)",
            _json(_ref("Key"), "The revoked key"),
            (401, 404, 503),
            operation_id="deleteKey",
        ),
    },
    "/admin/keys/{id}/revoke": {
        "parameters": [_KEY_ID],
        "post": _op(
            "Revoke a key",
            _json(_ref("Key"), "The revoked key"),
            (401, 404, 503),
            operation_id="revokeKey",
        ),
    },
    "/admin/keys/{id}/rotate": {
        "parameters": [_KEY_ID],
        "post": _op(
            "Give a key a new secret; the old one stays valid for the grace period",
            _json(_ref("Rotated"), "The new secret (shown once)"),
            (400, 401, 404, 408, 409, 413, 503),
            body={
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"grace": {"type": "string", "default": "24h"}},
                        }
                    }
                },
            },
            operation_id="rotateKey",
        ),
    },
    "/admin/usage": {
        "get": _op(
            "Usage and cost totals per group",
            _json(_ref("UsageSummary"), "Totals, ordered by group"),
            (400, 401, 503),
            parameters=[
                _query(
                    "by",
                    "Comma list of key, team, model, day",
                    {"type": "string", "default": "key,model"},
                ),
                _query("since", "7d, 24h (ago) or a UTC date YYYY-MM-DD"),
            ],
            operation_id="usageSummary",
        ),
    },
    "/admin/requests": {
        "get": _op(
            "The request log, newest first",
            _json(_ref("RequestPage"), "A page of calls"),
            (400, 401, 503),
            parameters=_REQUEST_PARAMETERS,
            operation_id="listRequests",
        ),
    },
    "/admin/requests/{request_id}": {
        "get": _op(
            "One call: its record, attempts and captured bodies",
            _json(_ref("RequestDetail"), "The call"),
            (401, 404, 503),
            parameters=[
                {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            operation_id="getRequest",
        ),
    },
    "/admin/reload": {
        "post": _op(
            "Reload the config file (docs/reload.md); 400 names the file, key and problem,"
            " and the configuration in force stays",
            _json(_ref("Reloaded"), "The new configuration is in force for new calls"),
            (400, 401),
            operation_id="reloadConfig",
        ),
    },
    "/admin/openapi.json": {
        "get": _op(
            "This document",
            _json({"type": "object"}, "OpenAPI 3.1"),
            (401,),
            operation_id="openapi",
        ),
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "llmrelay admin API",
        "version": "1",
        "description": (
            "Virtual keys, usage totals, the request log and what the web console shows of an"
            " llmrelay gateway. Served "
            "only when admin.key is set; every path needs the admin key. Errors use "
            "Anthropic's envelope. Reference: docs/admin-api.md."
        ),
    },
    "security": [{"bearer": []}, {"apiKey": []}],
    "paths": {**_PATHS, **CONSOLE_PATHS},
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "The admin key"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        },
        "schemas": {**_SCHEMAS, **CONSOLE_SCHEMAS},
        "responses": _RESPONSES,
    },
}


def openapi_json() -> dict[str, Any]:
    """The document (a shared object: do not change it)."""
    return _DOCUMENT
