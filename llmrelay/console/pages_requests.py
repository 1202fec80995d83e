"""The Requests pages: the request log with the admin API's filters, and one call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .conversation import conversation
from .html import esc, fmt_int, fmt_ms, fmt_time, fmt_usd, notice, qs, short, table

__all__ = ["FILTERS", "request_page", "requests_page"]

#: The filters the page offers (the admin API's query parameters of ``/admin/requests``).
FILTERS = (
    ("key", "Key name"),
    ("team", "Team"),
    ("model", "Model"),
    ("provider", "Provider"),
    ("status", "Status (200, 4xx, 5xx, 400-499)"),
    ("since", "Since (1h, 7d, date)"),
    ("until", "Until"),
    ("request_id", "Request id (prefix)"),
)


def _status(status: int) -> str:
    kind = "ok" if status < 400 else "error"
    return f'<span class="status {kind}">{status}</span>'


def _href(request_id: str) -> str:
    return "/ui/requests/" + quote(request_id, safe="")


def requests_page(data: dict[str, Any], query: Mapping[str, str]) -> str:
    """The filter form, the page of calls (newest first) and the link to older ones."""
    fields = "".join(
        f'<label>{esc(label)} <input name="{name}" value="{esc(query.get(name, "")[:200])}"'
        ' maxlength="200"></label>'
        for name, label in FILTERS
    )
    form = (
        f'<form method="get" action="/ui/requests" class="filters">{fields}'
        '<button type="submit">Filter</button> <a href="/ui/requests">Clear</a></form>'
    )
    items = data["data"]
    if not items:
        return form + notice(
            "No calls match. With no filters set: no calls yet, run the snippet on Keys."
        )
    rows = [
        [
            esc(fmt_time(r["ts"])),
            f'<a href="{esc(_href(r["request_id"]))}">{short(r["request_id"], 40)}</a>',
            short(r["key_name"], 40),
            short(r["model"], 60) + (f" → {short(r['routed_model'], 60)}" if r["rerouted"] else ""),
            short(r["provider"], 40),
            _status(r["status"]),
            f"{fmt_int(r['input_tokens'])} / {fmt_int(r['output_tokens'])}",
            fmt_usd(r["cost_usd"]),
            fmt_ms(r["latency_ms"]),
            fmt_int(r["attempts"]),
        ]
        for r in items
    ]
    out = form + table(
        [
            "Time",
            "Request",
            "Key",
            "Model",
            "Provider",
            "Status",
            "Tokens in / out",
            "Cost",
            "Latency",
            "Attempts",
        ],
        rows,
        "requests",
    )
    if data.get("next_cursor"):
        more = {k: v for k, v in query.items() if k != "cursor"} | {"cursor": data["next_cursor"]}
        out += f'<p class="pager"><a href="/ui/requests{qs(more)}">Older calls →</a></p>'
    return out


def request_page(d: dict[str, Any]) -> str:
    """One call: route decision, attempts, tokens, cost, timings, captured bodies."""
    facts = [
        ("Time", fmt_time(d["ts"])),
        ("Key", d["key_name"]),
        ("Team", d["team"] or "-"),
        (
            "Surface",
            f"{d['surface'] or '-'} {d['endpoint']}" + (" (stream)" if d["stream"] else ""),
        ),
        ("Model asked", d["model"]),
        ("Route decision", d["routed_model"] or "-"),
        (
            "Served by",
            f"{d['provider']} / {d['provider_model']}" if d["provider"] else "—",
        ),
        ("Status", f"{d['status']} {d['error_type'] or ''}"),
        ("Error", d["error_message"] or "-"),
        (
            "Tokens",
            f"{fmt_int(d['input_tokens'])} in, {fmt_int(d['output_tokens'])} out, "
            f"{fmt_int(d['cache_read_input_tokens'])} cache read, "
            f"{fmt_int(d['cache_creation_input_tokens'])} cache write",
        ),
        ("Cost", fmt_usd(d["cost_usd"])),
        (
            "Timings",
            f"overhead {fmt_ms(d['overhead_ms'])}, upstream {fmt_ms(d['upstream_ms'])},"
            f" TTFT {fmt_ms(d['ttft_ms'])}, total {fmt_ms(d['latency_ms'])}",
        ),
        ("User agent", d["user_agent"] or "-"),
        ("Trace id", d["trace_id"] or "-"),
        ("Upstream request id", d["upstream_request_id"] or "-"),
    ]
    dl = (
        '<dl class="facts">'
        + "".join(f"<dt>{esc(k)}</dt><dd>{short(v, 2000)}</dd>" for k, v in facts)
        + "</dl>"
    )
    attempts = d.get("attempt_log")
    if isinstance(attempts, list) and attempts:
        rows = [
            [
                short(a.get("target"), 80),
                _status(int(a.get("status") or 0)),
                fmt_ms(1000 * a["latency_s"])
                if isinstance(a.get("latency_s"), int | float)
                else "-",
                short(a.get("error_type") or "", 64),
                short(a.get("message") or "", 300),
            ]
            if "truncated" not in a
            else [esc(f"… {a['truncated']} more attempts not stored"), "", "", "", ""]
            for a in attempts
            if isinstance(a, dict)
        ]
        att = table(["Target", "Status", "Duration", "Error", "Message"], rows, "attempts")
    else:
        att = f"<pre>{esc(attempts)}</pre>" if attempts else "<p>not recorded</p>"
    bodies = d.get("bodies")
    if bodies is None:
        body_html = notice(
            "Bodies were not captured for this call (observability.request_log.bodies)."
        )
    else:
        body_html = conversation(bodies["request"], bodies["response"])
    return (
        f'<p class="rid">{esc(d["request_id"])}</p>{dl}<h2>Attempts</h2>{att}'
        f"<h2>Bodies</h2>{body_html}"
    )
