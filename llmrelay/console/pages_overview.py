"""The Overview page, from :func:`llmrelay.console.data.overview`'s dict."""

from __future__ import annotations

from typing import Any

from .charts import column_chart
from .html import esc, fmt_int, fmt_ms, fmt_time, fmt_usd, notice, qs, short, table

__all__ = ["overview_page"]

_BY = (("key", "Key"), ("team", "Team"), ("model", "Model"), ("provider", "Provider"))


def _controls(d: dict[str, Any], by: str) -> str:
    ranges = "".join(
        f'<a href="/ui/{qs({"range": r, "by": by})}"'
        f"{' aria-current=true' if d['range'] == r else ''}>{r}</a>"
        for r in ("24h", "7d", "30d")
    )
    bys = "".join(
        f'<option value="{v}"{" selected" if v == by else ""}>{n}</option>' for v, n in _BY
    )
    return (
        f'<div class="controls"><span class="ranges">{ranges}</span>'
        '<form method="get" action="/ui/" class="inline">'
        '<input type="hidden" name="range" value="custom">'
        '<label>From <input type="date" name="since" required></label>'
        '<label>to <input type="date" name="until" required></label>'
        f'<label>by <select name="by">{bys}</select></label>'
        '<button type="submit">Show</button></form></div>'
    )


def _cards(d: dict[str, Any]) -> str:
    t, live = d["totals"], d["live"]
    in_flight = live["in_flight"]
    items = (
        ("Requests", fmt_int(t["requests"])),
        ("Tokens", fmt_int(t["tokens"])),
        ("Spend", fmt_usd(t["cost_usd"])),
        ("Error rate", f"{100 * t['error_rate']:.1f} %"),
        ("In flight now", fmt_int(in_flight) if in_flight is not None else "n/a (metrics off)"),
        ("Counters", esc(live["counters"])),
        ("Usage writer", esc(live["usage_writer_state"])),
    )
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="label">{name}</div>'
            f'<div class="value">{value}</div></div>'
            for name, value in items
        )
        + "</div>"
    )


def _breakdown(d: dict[str, Any]) -> str:
    b = d["breakdown"]
    rows = list(b["top"])
    if b["other"] is not None:
        rows.append({**b["other"], "value": f"other ({b['other']['groups']} more)"})
    spend = max((r["cost_usd"] for r in rows), default=0.0) or 1.0
    cells = [
        [
            short(r["value"] or "(none)"),
            fmt_int(r["requests"]),
            fmt_int(r["tokens"]),
            f'{fmt_usd(r["cost_usd"])} <meter min="0" max="{spend}" value="{r["cost_usd"]}">'
            "</meter>",
            f"{100 * r['error_rate']:.1f} %",
            fmt_ms(r["avg_latency_ms"]),
        ]
        for r in rows
    ]
    title = dict(_BY)[b["by"]]
    return f"<h2>By {esc(title.lower())}</h2>" + table(
        [title, "Requests", "Tokens", "Spend (USD)", "Error rate", "Mean latency"], cells
    )


def overview_page(d: dict[str, Any]) -> str:
    """The page body: controls, totals, four charts, the breakdown, the live state."""
    by = d["breakdown"]["by"]
    head = _controls(d, by) + (
        f'<p class="range">{esc(fmt_time(d["since"], False))} to '
        f"{esc(fmt_time(d['until'], False))}</p>"
    )
    if d["totals"]["requests"] == 0:
        return (
            head
            + _cards(d)
            + notice(
                "No calls in this range yet: create a key on Keys and run its snippet,"
                " or pick a longer range."
            )
        )
    s, b = d["series"], d["bucket_s"]
    charts = "".join(
        (
            column_chart(
                "Requests",
                "calls",
                [(p["start"], p["requests"]) for p in s],
                b,
                lambda v: f"{v:,.0f}",
            ),
            column_chart(
                "Tokens",
                "tokens",
                [(p["start"], p["tokens"]) for p in s],
                b,
                lambda v: f"{v:,.0f}",
                color="#2a9d8f",
            ),
            column_chart(
                "Spend",
                "USD",
                [(p["start"], p["cost_usd"]) for p in s],
                b,
                lambda v: f"${v:,.2f}",
                color="#e9a23b",
            ),
            column_chart(
                "Error rate",
                "%",
                [(p["start"], 100 * p["error_rate"]) for p in s],
                b,
                lambda v: f"{v:.0f}%",
                color="#d1495b",
            ),
        )
    )
    writer = d["live"]["usage_writer"]
    incident = d["live"].get("database_incident")
    state = (notice(f"Database file: {incident}", "error") if incident else "") + table(
        ["Database", "Rows written", "Queued", "Spilled", "Dropped", "Failed writes"],
        [
            [
                esc(d["live"]["database"]),
                *(
                    fmt_int(writer.get(k))
                    for k in ("written", "queue_depth", "spilled", "dropped", "failed_writes")
                ),
            ]
        ],
    )
    return (
        head
        + _cards(d)
        + f'<div class="charts">{charts}</div>'
        + _breakdown(d)
        + ("<h2>Store state</h2>" + state)
    )
