"""HTML building blocks of the console: escaping, the page frame, formatting.

Every string that did not come from this package (key, team and model names, request ids,
error messages, captured bodies, query parameters) goes through :func:`esc` before it is
put into HTML; the pages build HTML only from literals and escaped values. The pages are
also served under a Content-Security-Policy without ``unsafe-inline`` (see
:mod:`llmrelay.surfaces.console`), so even a missed escape could not run a script.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

__all__ = [
    "NAV",
    "cell_rows",
    "esc",
    "fmt_int",
    "fmt_ms",
    "fmt_time",
    "fmt_usd",
    "link",
    "page",
    "qs",
]

#: Longest string shown in a table cell, in characters (the full text is in the title).
CELL_CHARS = 120

NAV = (
    ("/ui/", "Overview"),
    ("/ui/requests", "Requests"),
    ("/ui/keys", "Keys"),
    ("/ui/teams", "Teams and budgets"),
    ("/ui/models", "Models and routing"),
)


def esc(value: object) -> str:
    """``value`` as HTML text, quotes included (safe in element text and in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def short(value: object, cap: int = CELL_CHARS) -> str:
    """``value`` escaped and cut to ``cap`` characters (an ellipsis marks the cut)."""
    text = "" if value is None else str(value)
    if len(text) > cap:
        text = text[: cap - 1] + "…"
    return esc(text)


def clip(value: object, title_cap: int = 2000) -> str:
    """``value`` in a one-line ``<span class="clip">`` the stylesheet cuts with an ellipsis
    at the cell's width (``.clip``: 12em), the whole value (up to ``title_cap`` characters)
    in its ``title`` so hovering shows it. For table cells holding user-chosen text."""
    text = "" if value is None else str(value)
    return f'<span class="clip" title="{esc(text[:title_cap])}">{esc(text)}</span>'


def qs(params: Mapping[str, object]) -> str:
    """A query string (``?a=1&b=2``, empty values left out), escaped for an attribute."""
    kept = {k: str(v) for k, v in params.items() if v not in (None, "")}
    return esc("?" + urlencode(kept)) if kept else ""


def link(href: str, text: object) -> str:
    """``<a>`` to a console path built by the caller (escaped) with escaped text."""
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def fmt_int(n: object) -> str:
    return f"{n:,}" if isinstance(n, int) else "-"


def fmt_usd(x: object) -> str:
    if not isinstance(x, int | float):
        return "-"
    return f"${x:,.4f}" if x < 1 else f"${x:,.2f}"


def fmt_ms(x: object) -> str:
    return f"{x:,.0f} ms" if isinstance(x, int | float) else "-"


def fmt_time(ts: object, with_seconds: bool = True) -> str:
    """Unix seconds as UTC ``YYYY-MM-DD HH:MM[:SS]``."""
    if not isinstance(ts, int | float):
        return "-"
    fmt = "%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(ts, UTC).strftime(fmt) + " UTC"


def cell_rows(rows: Iterable[Iterable[str]]) -> str:
    """Table rows of cells that are already HTML."""
    return "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table: literal headers, cells already HTML."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return (
        f'<div class="scroll"><table class="{esc(cls)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{cell_rows(rows)}</tbody></table></div>"
    )


def page(title: str, body: str, *, active: str = "", csrf: str | None = None) -> str:
    """A whole console page: ``body`` is HTML; ``csrf`` (signed in) adds the navigation and
    the sign-out form."""
    nav = ""
    if csrf is not None:
        items = "".join(
            f'<a href="{href}"{" aria-current=page" if href == active else ""}>{name}</a>'
            for href, name in NAV
        )
        nav = (
            f'<nav><span class="brand">llmrelay</span>{items}'
            '<form method="post" action="/ui/logout" class="signout">'
            f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
            '<button type="submit">Sign out</button></form></nav>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · llmrelay</title>"
        '<link rel="stylesheet" href="/ui/static/console.css">'
        '<script type="module" src="/ui/static/console.js"></script>'
        f"</head><body><header>{nav}</header><main><h1>{esc(title)}</h1>{body}</main>"
        "</body></html>"
    )


def notice(text: str, kind: str = "info") -> str:
    """A message box (``kind``: info, error, ok) with escaped text."""
    return f'<p class="notice {esc(kind)}" role="status">{esc(text)}</p>'
