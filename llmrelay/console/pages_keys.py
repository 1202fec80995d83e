"""The Keys pages: the list with budget bars, create (the secret shown once, with a Claude
Code ``settings.json`` snippet and an SDK snippet), edit (team, models, accounts, limits,
budget), revoke with a confirmation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import orjson

from ..config import GatewayKeyConfig
from .html import clip, esc, fmt_time, fmt_usd, notice, short, table

__all__ = [
    "created_page",
    "edit_page",
    "keys_page",
    "revoke_page",
    "rotate_page",
    "rotated_page",
]

_LIMIT_LABELS = (
    ("rpm", "Requests per minute"),
    ("rph", "Requests per hour"),
    ("rpd", "Requests per day"),
    ("tpm", "Tokens per minute"),
    ("tph", "Tokens per hour"),
    ("tpd", "Tokens per day"),
)


def _budget_cell(b: dict[str, Any] | None) -> str:
    if b is None:
        return "-"
    if b["budget_usd"] is None:
        return f"{fmt_usd(b['spent_usd'])} this {esc(b['period'])}, no budget"
    used = min(b["spent_usd"], b["budget_usd"])
    return (
        f'<progress max="{b["budget_usd"]}" value="{used}"></progress> '
        f"{fmt_usd(b['spent_usd'])} of {fmt_usd(b['budget_usd'])} ({esc(b['period'])})"
    )


def _models(models: list[str] | Sequence[str] | None) -> str:
    return "all" if not models else clip(", ".join(models))


def _create_form(csrf: str) -> str:
    return (
        '<details class="create"><summary>Create a key</summary>'
        '<form method="post" action="/ui/keys" class="stack">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        '<label>Name <input name="name" required maxlength="128"></label>'
        '<label>Team <input name="team" maxlength="128"></label>'
        '<label>Models (comma-separated; empty: all) <input name="models" maxlength="2000">'
        "</label>"
        '<label>Requests per minute <input name="rpm" inputmode="numeric" maxlength="16">'
        "</label>"
        '<label>Budget (USD) <input name="budget_usd" inputmode="decimal" maxlength="16">'
        "</label>"
        '<label>Budget period <select name="budget_period"><option>month</option>'
        "<option>week</option><option>day</option></select></label>"
        '<label>Expires in (e.g. 30d; empty: never) <input name="expires_in" maxlength="16">'
        "</label>"
        '<button type="submit">Create key</button></form></details>'
    )


def keys_page(
    keys: list[dict[str, Any]],
    budgets: dict[str, Any],
    config_keys: list[GatewayKeyConfig],
    csrf: str,
    search: str,
    message: str = "",
) -> str:
    """Virtual keys (filtered by ``search`` in name or team) and config-file keys."""
    by_id = {b["id"]: b for b in budgets["keys"]}
    needle = search.lower()
    shown = [
        k
        for k in keys
        if not needle or needle in k["name"].lower() or needle in (k["team"] or "").lower()
    ]
    search_form = (
        '<form method="get" action="/ui/keys" class="inline">'
        f'<label>Search <input name="q" value="{esc(search)}" maxlength="128"></label>'
        '<button type="submit">Search</button></form>'
    )
    out = (notice(message, "ok") if message else "") + _create_form(csrf) + search_form
    if not shown:
        out += notice("No virtual keys yet: create one above." if not needle else "No match.")
    else:
        rows = []
        for k in shown:
            kid = esc(quote(k["id"], safe=""))
            action = (
                f'<a href="/ui/keys/{kid}/rotate">Rotate</a> '
                f'<a href="/ui/keys/{kid}/revoke">Revoke</a>'
                if k["status"] == "active"
                else ""
            )
            if k["status"] != "revoked":
                action = f'<a href="/ui/keys/{kid}/edit">Edit</a> ' + action
            budget = by_id.get(k["id"])
            last = budget.get("last_used") if budget else None
            limits = ", ".join(f"{n} {v:,}" for n, v in k["limits"].items()) or "-"
            rows.append(
                [
                    clip(k["name"]),
                    clip(k["team"] or "-"),
                    _models(k["models"]),
                    esc(limits),
                    _budget_cell(budget),
                    esc(fmt_time(k["expires_at"], False) if k["expires_at"] else "never"),
                    esc(fmt_time(last, False) if last else "never"),
                    esc(k["status"]),
                    action,
                ]
            )
        out += table(
            ["Name", "Team", "Models", "Limits", "Budget", "Expires", "Last used", "Status", ""],
            rows,
            "keys",
        )
    if config_keys:
        rows = [
            [
                clip(k.name),
                clip(k.team or "-"),
                _models(k.models),
                esc(f"${k.budget.usd:,.2f} / {k.budget.period}" if k.budget else "-"),
            ]
            for k in config_keys
        ]
        out += (
            "<h2>Keys from the config file (read-only)</h2>"
            '<p class="hint">Edit them in the config file (auth.keys), then reload.</p>'
        ) + table(["Name", "Team", "Models", "Budget"], rows)
    return out


def _snippets(secret: str, base_url: str, model: str) -> str:
    settings = orjson.dumps(
        {"env": {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_AUTH_TOKEN": secret}},
        option=orjson.OPT_INDENT_2,
    ).decode()
    sdk = (
        "from anthropic import Anthropic\n"
        f"client = Anthropic(base_url={base_url!r}, api_key={secret!r})\n"
        "message = client.messages.create(\n"
        f"    model={model!r}, max_tokens=256,\n"
        '    messages=[{"role": "user", "content": "Hello, llmrelay"}],\n'
        ")\nprint(message.content[0].text)\n"
    )
    return (
        '<p><label>Secret <input id="secret" class="secret" readonly value="'
        + esc(secret)
        + '"></label> <button type="button" data-copy="secret">Copy</button></p>'
        + "<h2>Claude Code: ~/.claude/settings.json</h2>"
        + f'<pre id="settings-json">{esc(settings)}</pre>'
        + '<button type="button" data-copy="settings-json">Copy</button>'
        + "<h2>Python (pip install anthropic)</h2>"
        + f'<pre id="sdk-snippet">{esc(sdk)}</pre>'
        + '<button type="button" data-copy="sdk-snippet">Copy</button>'
        + '<p><a href="/ui/keys">Back to keys</a></p>'
    )


def created_page(key: dict[str, Any], secret: str, base_url: str, model: str) -> str:
    """The secret, once, with a copy button and snippets for Claude Code and the SDKs."""
    return notice(
        f"Key {key['name']} created. Copy the secret now: it is not shown again.", "ok"
    ) + _snippets(secret, base_url, model)


def rotate_page(key: dict[str, Any], csrf: str) -> str:
    """The confirmation before a rotation, with the grace period to choose."""
    kid = esc(quote(key["id"], safe=""))
    graces = "".join(
        f'<option value="{g}"{" selected" if g == "24h" else ""}>{g}</option>'
        for g in ("0s", "1h", "24h", "7d")
    )
    return (
        f"<p>Give key <strong>{short(key['name'], 120)}</strong> ({esc(key['id'])}) a new"
        " secret? The current secret keeps working for the grace period, then stops.</p>"
        f'<form method="post" action="/ui/keys/{kid}/rotate" class="stack">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        f'<label>Grace period <select name="grace">{graces}</select></label>'
        '<button type="submit">Rotate</button> <a href="/ui/keys">Cancel</a></form>'
    )


def rotated_page(key: dict[str, Any], rotated: dict[str, Any], base_url: str, model: str) -> str:
    """The new secret, once, and until when the old one works."""
    return notice(
        f"Key {key['name']} has a new secret: copy it now, it is not shown again. The old"
        f" secret works until {fmt_time(rotated['previous_valid_until'], False)}.",
        "ok",
    ) + _snippets(rotated["key"], base_url, model)


def _select(name: str, options: tuple[str, ...], chosen: str) -> str:
    opts = "".join(
        f"<option{' selected' if o == chosen else ''}>{esc(o)}</option>" for o in options
    )
    return f'<select name="{name}">{opts}</select>'


def edit_page(key: dict[str, Any], csrf: str, values: dict[str, str] | None = None) -> str:
    """The Edit form for a key, filled with its current policy (or with ``values``, the
    form as sent, when the change was refused). An empty field removes the setting."""
    budget = key["budget"] or {}
    current = {
        "team": key["team"] or "",
        "models": ", ".join(key["models"] or []),
        "allowed_accounts": ", ".join(key["allowed_accounts"] or []),
        **{f: str(key["limits"].get(f, "")) for f, _ in _LIMIT_LABELS},
        "budget_usd": f"{budget['usd']:g}" if budget else "",
        "budget_period": budget.get("period", "month"),
        "budget_mode": budget.get("mode", "enforce"),
    }
    v = {**current, **(values or {})}
    kid = esc(quote(key["id"], safe=""))

    def field(name: str, label: str, cap: int, mode: str = "") -> str:
        attrs = f' inputmode="{mode}"' if mode else ""
        return (
            f'<label>{esc(label)} <input name="{name}" value="{esc(v[name])}"'
            f' maxlength="{cap}"{attrs}></label>'
        )

    return (
        f"<p>Key <strong>{short(key['name'], 120)}</strong> ({esc(key['id'])}). An empty"
        " field removes the setting; the change applies to the key's next call.</p>"
        f'<form method="post" action="/ui/keys/{kid}/edit" class="stack edit">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        + field("team", "Team", 128)
        + field("models", "Models (comma-separated; empty: all)", 2000)
        + field(
            "allowed_accounts",
            "Passthrough accounts (comma-separated; empty: those of the models)",
            2000,
        )
        + "".join(field(f, label, 16, "numeric") for f, label in _LIMIT_LABELS)
        + field("budget_usd", "Budget (USD; empty: none)", 16, "decimal")
        + "<label>Budget period "
        + _select("budget_period", ("month", "week", "day"), v["budget_period"])
        + "</label><label>Budget mode "
        + _select("budget_mode", ("enforce", "audit"), v["budget_mode"])
        + '</label><button type="submit">Save changes</button> '
        '<a href="/ui/keys">Cancel</a></form>'
    )


def revoke_page(key: dict[str, Any], csrf: str) -> str:
    """The confirmation before a revoke."""
    kid = esc(quote(key["id"], safe=""))
    return (
        f"<p>Revoke key <strong>{short(key['name'], 120)}</strong> ({esc(key['id'])})?"
        " Calls with its secret get 401 from now on; this cannot be undone.</p>"
        f'<form method="post" action="/ui/keys/{kid}/revoke">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        '<button type="submit" class="danger">Revoke</button> '
        '<a href="/ui/keys">Cancel</a></form>'
    )
