"""The Models and routing page and the Teams and budgets page."""

from __future__ import annotations

from typing import Any

from .html import esc, fmt_time, fmt_usd, notice, short, table

__all__ = ["models_page", "teams_page"]


def _price(p: dict[str, Any] | None) -> str:
    if p is None:
        return "unknown"
    return esc(f"${p['input']:g} in / ${p['output']:g} out per Mtok")


def _health(t: dict[str, Any]) -> str:
    if t["cooldown_s"] > 0:
        return f'<span class="status error">cooling down, {t["cooldown_s"]:.0f} s left</span>'
    return '<span class="status ok">ok</span>'


def _speed(t: dict[str, Any]) -> str:
    ms = t["ms_per_output_token"]
    return "-" if ms is None else esc(f"{ms:.1f} ms/token")


def _recent(t: dict[str, Any]) -> str:
    r = t.get("recent")
    if r is None:
        return "-"
    return esc(
        f"{r['attempts']} attempt{'' if r['attempts'] == 1 else 's'},"
        f" {100 * r['error_rate']:.0f} % errors,"
        f" p50 {r['p50_ms']:,.0f} ms, p95 {r['p95_ms']:,.0f} ms"
    )


def models_page(d: dict[str, Any]) -> str:
    """Virtual models with their targets, then every ``account/model``."""
    out = ""
    if d["virtual_models"]:
        for vm in d["virtual_models"]:
            rows = [
                [
                    short(t["model"], 80),
                    esc(t["priority"]),
                    esc(f"{t['weight']:g}"),
                    _health(t),
                    _recent(t),
                    _speed(t),
                    _price(t["price"]),
                ]
                for t in vm["targets"]
            ]
            out += f"<h2>{short(vm['model'], 80)} <small>({esc(vm['strategy'])})</small></h2>"
            out += table(
                ["Target", "Priority", "Weight", "Health", "Last 5 min", "Speed", "Price"], rows
            )
    else:
        out += notice("No virtual models configured (models: in the config file).")
    rows = [
        [
            short(m["model"], 80),
            short(m["provider_model"], 80),
            _health(m),
            _recent(m),
            _speed(m),
            _price(m["price"]),
        ]
        for m in d["models"]
    ]
    out += "<h2>Provider models</h2>" + table(
        ["Model", "Provider model id", "Health", "Last 5 min", "Speed", "Price"], rows
    )
    return out + (
        '<p class="hint">Health (cooldowns) and speed are what this instance learnt from'
        " recent calls to virtual models; the last 5 minutes count every attempt this instance"
        " made (at most 200 a target). All in memory, per instance.</p>"
    )


def teams_page(d: dict[str, Any]) -> str:
    """Each team's spend against its budget this period, with the forecast."""
    if not d["teams"]:
        return notice("No teams configured (teams: in the config file).")
    rows = []
    for t in d["teams"]:
        if t["budget_usd"] is None:
            bar = "no budget"
        else:
            used = min(t["spent_usd"], t["budget_usd"])
            bar = f'<progress max="{t["budget_usd"]}" value="{used}"></progress> ' + esc(
                f"{100 * (t['used'] or 0):.0f} % of {fmt_usd(t['budget_usd'])}"
            )
        over = t["budget_usd"] is not None and t["forecast_usd"] > t["budget_usd"]
        forecast = fmt_usd(t["forecast_usd"]) + (" (over budget)" if over else "")
        rows.append(
            [
                short(t["name"], 60),
                esc(f"{t['period']} {t['period_label']}"),
                fmt_usd(t["spent_usd"]),
                bar,
                esc(forecast),
                esc(fmt_time(t["period_end"], False)),
            ]
        )
    return table(["Team", "Period", "Spent", "Budget", "Forecast at this rate", "Ends"], rows)
