"""The OpenAPI paths and schemas of the console's admin endpoints (``console_api.py``),
merged into the admin API's document by :mod:`llmrelay.surfaces.admin_openapi`.

Plain data: error responses refer to the admin document's ``#/components/responses/E<status>``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONSOLE_PATHS", "CONSOLE_SCHEMAS"]

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_NULL_NUM = {"type": ["number", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _q(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_TOTALS_PROPS: dict[str, Any] = {
    "requests": _INT,
    "errors": {**_INT, "description": "calls with status >= 400"},
    "error_rate": {**_NUM, "description": "errors / requests (0 to 1)"},
    "input_tokens": _INT,
    "output_tokens": _INT,
    "cache_creation_input_tokens": _INT,
    "cache_read_input_tokens": _INT,
    "tokens": {**_INT, "description": "the four token counts summed"},
    "cost_usd": {**_NUM, "description": "USD (calls without a price count 0)"},
    "avg_latency_ms": _NULL_NUM,
}

CONSOLE_SCHEMAS: dict[str, Any] = {
    "Totals": {"type": "object", "properties": _TOTALS_PROPS},
    "Overview": {
        "type": "object",
        "required": ["range", "since", "until", "bucket", "series", "breakdown", "live"],
        "properties": {
            "range": {"enum": ["24h", "7d", "30d", "custom"]},
            "since": {**_INT, "description": "Unix seconds, a whole hour (inclusive)"},
            "until": {**_INT, "description": "Unix seconds, a whole hour (exclusive)"},
            "bucket": {"enum": ["hour", "day"]},
            "bucket_s": _INT,
            "totals": _ref("Totals"),
            "series": {
                "type": "array",
                "description": "One point per bucket of the range, oldest first, zeros included",
                "items": {
                    "type": "object",
                    "properties": {
                        "start": {**_INT, "description": "Unix seconds"},
                        **_TOTALS_PROPS,
                    },
                },
            },
            "breakdown": {
                "type": "object",
                "properties": {
                    "by": {"enum": ["key", "team", "model", "provider"]},
                    "top": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"value": {"type": "string"}, **_TOTALS_PROPS},
                        },
                    },
                    "other": {
                        "type": ["object", "null"],
                        "description": "The groups past top, summed (null: none)",
                        "properties": {"groups": _INT, **_TOTALS_PROPS},
                    },
                },
            },
            "live": {
                "type": "object",
                "properties": {
                    "in_flight": {
                        "type": ["integer", "null"],
                        "description": "null when metrics are off",
                    },
                    "counters": {
                        "type": "string",
                        "examples": ["in-process", "redis ok", "failed over to in-process"],
                    },
                    "database": {"enum": ["sqlite", "postgresql"]},
                    "usage_writer": {"type": "object", "additionalProperties": _INT},
                    "usage_writer_state": {"type": "string"},
                },
            },
        },
    },
    "BudgetUse": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "budget_usd": _NULL_NUM,
            "spent_usd": _NUM,
            "used": {**_NULL_NUM, "description": "spent / budget"},
            "forecast_usd": {**_NUM, "description": "spend at the period's end at this rate"},
            "period": {"enum": ["day", "week", "month"]},
            "period_label": {"type": "string"},
            "period_start": _NUM,
            "period_end": _NUM,
            "last_used": {**_NULL_NUM, "description": "keys: the newest call, Unix seconds"},
        },
    },
    "Budgets": {
        "type": "object",
        "properties": {
            "keys": {"type": "array", "items": _ref("BudgetUse")},
            "teams": {"type": "array", "items": _ref("BudgetUse")},
            "now": _NUM,
        },
    },
    "TargetState": {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "cooldown_s": {**_NUM, "description": "seconds of cooldown left (0: healthy)"},
            "ms_per_output_token": _NULL_NUM,
            "recent": {
                "type": ["object", "null"],
                "description": "this instance's attempts of the last 5 minutes (at most 200)",
                "properties": {
                    "attempts": _INT,
                    "error_rate": _NUM,
                    "p50_ms": _NUM,
                    "p95_ms": _NUM,
                },
            },
            "price": {
                "type": ["object", "null"],
                "description": "USD per million tokens",
                "properties": {k: _NUM for k in ("input", "output", "cache_write", "cache_read")},
            },
        },
    },
    "Models": {
        "type": "object",
        "properties": {
            "models": {"type": "array", "items": _ref("TargetState")},
            "virtual_models": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string"},
                        "strategy": {"type": "string"},
                        "targets": {"type": "array", "items": _ref("TargetState")},
                    },
                },
            },
        },
    },
}

CONSOLE_PATHS: dict[str, Any] = {
    "/admin/overview": {
        "get": {
            "operationId": "overview",
            "summary": "Requests, tokens, spend and errors over time, a breakdown, live state",
            "parameters": [
                _q(
                    "range",
                    "24h, 7d, 30d or custom",
                    {"enum": ["24h", "7d", "30d", "custom"], "default": "24h"},
                ),
                _q("since", "custom: first UTC date YYYY-MM-DD", {"type": "string"}),
                _q("until", "custom: last UTC date YYYY-MM-DD (included)", {"type": "string"}),
                _q("bucket", "hour or day (default: hour up to 2 days)", {"enum": ["hour", "day"]}),
                _q(
                    "by",
                    "breakdown field",
                    {"enum": ["key", "team", "model", "provider"], "default": "key"},
                ),
                _q(
                    "top",
                    "groups named in the breakdown",
                    {"type": "integer", "minimum": 1, "maximum": 50, "default": 8},
                ),
            ],
            "responses": {"200": _ok(_ref("Overview"), "The overview"), **_errors(400, 401, 503)},
        }
    },
    "/admin/budgets": {
        "get": {
            "operationId": "budgets",
            "summary": "Each key's and team's spend against its budget this period",
            "responses": {
                "200": _ok(_ref("Budgets"), "Spend, budgets, forecasts"),
                **_errors(401, 503),
            },
        }
    },
    "/admin/models": {
        "get": {
            "operationId": "models",
            "summary": "Models and virtual models: targets, cooldowns, speed, prices",
            "responses": {"200": _ok(_ref("Models"), "Models and routing"), **_errors(401)},
        }
    },
}
