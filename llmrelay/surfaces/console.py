"""The web console's HTTP side: ``/ui/`` pages, sign-in, sign-out, static assets.

Served when ``console.enabled`` (default: when ``admin.key`` is set). Every page needs a
session (:mod:`llmrelay.console.session`); without one, or with an expired one, a GET is
sent to ``/ui/login?next=<the page asked for>``. Every POST needs the session's CSRF token
and, when the browser sends ``Origin``, this host as its origin. Pages are HTML rendered
here from the same reads the admin API serves (:class:`llmrelay.console.queries.Queries`),
with a Content-Security-Policy that allows only this origin's stylesheet and script.

    GET  /ui/                 Overview         GET  /ui/requests[/{request_id}]
    GET  /ui/keys             Keys             POST /ui/keys (create)
    GET  /ui/keys/{id}/revoke (confirm)        POST /ui/keys/{id}/revoke
    GET  /ui/keys/{id}/rotate (confirm)        POST /ui/keys/{id}/rotate (grace)
    GET  /ui/keys/{id}/edit (the form)         POST /ui/keys/{id}/edit (PATCH's fields)
    GET  /ui/teams            GET /ui/models   GET/POST /ui/login   POST /ui/logout
    GET  /ui/static/console.css, console.js, favicon.svg (no session needed; no secret)

Bounds: a form body is at most :data:`MAX_FORM_BYTES` and arrives within the server's
``body_timeout_s``; ``next`` is at most 2,000 characters and must be a ``/ui/`` path; the
sign-in throttle is ``console.login_failures_per_minute`` per client address (the TCP
peer: behind a proxy, all clients share the proxy's budget).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from ..config import ConsoleConfig
from ..console import html as h
from ..console.forms import edit_spec, key_spec
from ..console.pages_keys import (
    created_page,
    edit_page,
    keys_page,
    revoke_page,
    rotate_page,
    rotated_page,
)
from ..console.pages_models import models_page, teams_page
from ..console.pages_overview import overview_page
from ..console.pages_requests import request_page, requests_page
from ..console.queries import ConsoleGateway, Queries
from ..console.session import LoginThrottle, Session, Sessions
from ..errors import GatewayError
from ..policy.auth import digest
from ..policy.virtual_keys import KeySpecError
from ..stores.keys import KeyNameTaken
from .admin import AdminSurface

__all__ = ["MAX_FORM_BYTES", "ConsoleSurface"]

log = logging.getLogger("llmrelay.console")

COOKIE = "llmrelay_console"
LOGIN_COOKIE = "llmrelay_console_login"
#: Largest form body read (sign-in, key creation), in bytes.
MAX_FORM_BYTES = 16 * 1024
_MAX_NEXT = 2000
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
_STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}

Page = tuple[str, str, str]  # title, active nav path, body HTML
Handler = Callable[[web.Request, Session], Awaitable[Page | web.StreamResponse]]


def _from_database(err: Exception) -> bool:
    """Whether ``err`` is the database's (sqlite3's, psycopg's, or the OS's) rather than a bug."""
    return isinstance(err, sqlite3.Error | OSError) or type(err).__module__.startswith(
        ("psycopg", "psycopg_pool")
    )


def _safe_next(text: str | None) -> str:
    """``text`` when it is a path that stays under ``/ui/`` once a browser resolves it, else
    ``/ui/``: no scheme or host, no ``//``, no backslash, no ``.``/``..`` segment (encoded as
    ``%2e`` or not), at most ``_MAX_NEXT`` characters."""
    if not text or len(text) > _MAX_NEXT or not text.startswith("/ui/"):
        return "/ui/"
    path = text.split("?", 1)[0].split("#", 1)[0]
    decoded = unquote(path)
    if "\\" in decoded or "//" in decoded or any(ord(c) < 0x20 for c in decoded):
        return "/ui/"
    if any(seg in (".", "..") for seg in decoded.split("/")):
        return "/ui/"
    return text


class ConsoleSurface:
    def __init__(
        self,
        gw: ConsoleGateway,
        config: ConsoleConfig,
        admin_key: str,
        admin: AdminSurface,
        queries: Queries,
        body_timeout_s: float,
    ) -> None:
        self._gw = gw
        self._config = config
        self._admin_digest = digest(admin_key)
        self._admin = admin
        self._q = queries
        self._body_timeout_s = body_timeout_s
        self.sessions = Sessions(admin_key, config.session_ttl_s)
        self.throttle: LoginThrottle = admin.throttle
        folder = resources.files("llmrelay.console") / "static"
        self._static = {name: (folder / name).read_bytes() for name in _STATIC}

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/ui", self._to_root)
        r.add_get("/ui/static/{name}", self._asset)
        r.add_get("/ui/login", self._login_form)
        r.add_post("/ui/login", self._login)
        r.add_post("/ui/logout", self._action(self._logout))
        r.add_get("/ui/", self._page(self._overview))
        r.add_get("/ui/requests", self._page(self._requests))
        r.add_get("/ui/requests/{request_id}", self._page(self._request))
        r.add_get("/ui/keys", self._page(self._keys))
        r.add_post("/ui/keys", self._action(self._create_key))
        r.add_get("/ui/keys/{id}/revoke", self._page(self._confirm_revoke))
        r.add_post("/ui/keys/{id}/revoke", self._action(self._revoke))
        r.add_get("/ui/keys/{id}/rotate", self._page(self._confirm_rotate))
        r.add_post("/ui/keys/{id}/rotate", self._action(self._rotate))
        r.add_get("/ui/keys/{id}/edit", self._page(self._edit_form))
        r.add_post("/ui/keys/{id}/edit", self._action(self._edit))
        r.add_get("/ui/teams", self._page(self._teams))
        r.add_get("/ui/models", self._page(self._models))
        r.add_route("*", "/ui/{tail:.*}", self._page(self._not_found))

    # -- responses -----------------------------------------------------------------------

    def _secure(self, request: web.Request) -> bool:
        if request.secure:
            return True
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return self._config.trust_forwarded_proto and proto == "https"

    @staticmethod
    def _html(body: str, status: int = 200) -> web.Response:
        return web.Response(
            status=status, text=body, content_type="text/html", headers=_SECURITY_HEADERS
        )

    @staticmethod
    def _redirect(location: str) -> web.Response:
        return web.Response(status=303, headers={**_SECURITY_HEADERS, "location": location})

    def _set_cookie(
        self, resp: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int
    ) -> None:
        resp.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/ui/",
            httponly=True,
            samesite="Strict",
            secure=self._secure(request),
        )

    def _error(self, err: Exception, csrf: str | None) -> web.Response:
        if isinstance(err, GatewayError):
            status, message = err.status, err.message
        elif isinstance(err, KeySpecError):
            status, message = 400, str(err)
        elif isinstance(err, KeyNameTaken):
            status, message = 409, str(err)
        elif _from_database(err):
            log.error("console read failed", extra={"error": f"{type(err).__name__}: {err}"})
            status = 503
            message = (
                f"the database could not complete the request ({type(err).__name__}); try again"
            )
        else:  # a bug: the log has the traceback, the page says where to look
            log.error("console page failed", exc_info=err)
            status = 500
            message = (
                f"the console could not show this page ({type(err).__name__}); the gateway's"
                " log has the details"
            )
        body = h.notice(message, "error") + '<p><a href="/ui/">Back to the overview</a></p>'
        return self._html(h.page("Something went wrong", body, csrf=csrf), status)

    def _session(self, request: web.Request) -> Session | None:
        return self.sessions.verify(request.cookies.get(COOKIE))

    def _page(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if session is None:
                return self._redirect(
                    "/ui/login?" + urlencode({"next": request.path_qs[:_MAX_NEXT]})
                )
            csrf = self.sessions.csrf(session)
            try:
                result = await handler(request, session)
            except Exception as err:
                return self._error(err, csrf)
            if isinstance(result, web.StreamResponse):
                return result
            title, active, body = result
            return self._html(h.page(title, body, active=active, csrf=csrf))

        return run

    async def _form(self, request: web.Request) -> MultiDictProxy[str | Any]:
        if not request.body_exists:  # no body at all: an empty form (then 403 for CSRF)
            return MultiDictProxy(MultiDict())
        length = request.content_length
        if length is None or length > MAX_FORM_BYTES:
            raise GatewayError(
                f"a console form is at most {MAX_FORM_BYTES} bytes, sent with Content-Length",
                status=413,
            )
        try:
            async with asyncio.timeout(self._body_timeout_s):
                return await request.post()
        except TimeoutError:
            raise GatewayError("the form arrived too slowly", status=408) from None

    def _action(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if session is None:
                return self._redirect("/ui/login")
            csrf = self.sessions.csrf(session)
            try:
                origin = request.headers.get("origin")
                if origin is not None and urlsplit(origin).netloc != request.host:
                    raise GatewayError("cross-origin form refused", status=403)
                form = await self._form(request)
                token = form.get("csrf")
                if not self.sessions.check_csrf(session, token if isinstance(token, str) else None):
                    raise GatewayError(
                        "the form's CSRF token is missing or wrong; reload the page", status=403
                    )
                request["form"] = form
                result = await handler(request, session)
            except Exception as err:
                return self._error(err, csrf)
            if isinstance(result, web.StreamResponse):
                return result
            title, active, body = result
            return self._html(h.page(title, body, active=active, csrf=csrf))

        return run

    # -- public routes -------------------------------------------------------------------

    async def _to_root(self, request: web.Request) -> web.StreamResponse:
        return self._redirect("/ui/")

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _STATIC:
            return self._html(h.page("Not found", h.notice("no such file", "error")), 404)
        return web.Response(
            body=self._static[name],
            content_type=_STATIC[name],
            headers={"x-content-type-options": "nosniff", "cache-control": "no-cache"},
        )

    def _login_page(self, request: web.Request, message: str, status: int) -> web.Response:
        token = self.sessions.new_login_token()
        nxt = _safe_next(request.query.get("next") or request.get("next"))
        body = (
            (h.notice(message, "error") if message else "")
            + '<form method="post" action="/ui/login" class="stack login">'
            f'<input type="hidden" name="login" value="{h.esc(token)}">'
            f'<input type="hidden" name="next" value="{h.esc(nxt)}">'
            '<label>Admin key <input type="password" name="key" required'
            ' autocomplete="current-password" maxlength="512" autofocus></label>'
            '<button type="submit">Sign in</button>'
            '<p class="hint">Sign in with the admin key (<code>admin.key</code> in the config'
            " file). Gateway and virtual keys cannot sign in.</p></form>"
        )
        resp = self._html(h.page("Sign in to llmrelay", body), status)
        self._set_cookie(resp, request, LOGIN_COOKIE, token, 3600)
        return resp

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        if self._session(request) is not None:
            return self._redirect(_safe_next(request.query.get("next")))
        return self._login_page(request, "", 200)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        address = request.remote or "unknown"
        wait = self.throttle.retry_after(address)
        if wait > 0:
            resp = self._login_page(
                request,
                f"Too many failed sign-ins from your address: try again in {wait:.0f} s.",
                429,
            )
            resp.headers["retry-after"] = str(max(1, round(wait)))
            return resp
        try:
            form = await self._form(request)
        except GatewayError as err:
            return self._login_page(request, err.message, err.status)
        nxt, key, token = form.get("next"), form.get("key"), form.get("login")
        request["next"] = nxt if isinstance(nxt, str) else None
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not isinstance(token, str) or not cookie or not hmac.compare_digest(token, cookie):
            return self._login_page(request, "The sign-in form expired; sign in again.", 403)
        if not isinstance(key, str) or not hmac.compare_digest(
            digest(key.strip()), self._admin_digest
        ):
            self.throttle.failed(address)
            log.warning("console sign-in refused", extra={"client": address})
            return self._login_page(
                request,
                "That is not the admin key. Only admin.key signs in; gateway and virtual keys"
                " cannot.",
                401,
            )
        cookie_value, _ = self.sessions.issue()
        resp = self._redirect(_safe_next(request.get("next")))
        self._set_cookie(resp, request, COOKIE, cookie_value, int(self.sessions.ttl_s))
        resp.del_cookie(LOGIN_COOKIE, path="/ui/")
        return resp

    async def _logout(self, request: web.Request, session: Session) -> web.StreamResponse:
        self.sessions.sign_out(session)
        resp = self._redirect("/ui/login")
        resp.del_cookie(COOKIE, path="/ui/")
        return resp

    # -- pages ---------------------------------------------------------------------------

    async def _overview(self, request: web.Request, session: Session) -> Page:
        d = await self._q.overview(request.query)
        return "Overview", "/ui/", overview_page(d)

    async def _requests(self, request: web.Request, session: Session) -> Page:
        query = {k: v for k, v in request.query.items() if v}
        d = await self._q.requests(query)
        return "Requests", "/ui/requests", requests_page(d, query)

    async def _request(self, request: web.Request, session: Session) -> Page:
        d = await self._q.request(request.match_info["request_id"])
        return "Request", "/ui/requests", request_page(d)

    async def _keys(self, request: web.Request, session: Session, message: str = "") -> Page:
        keys = await self._q.keys()
        budgets = await self._q.budgets()
        body = keys_page(
            keys,
            budgets,
            list(self._gw.settings.auth.keys),
            self.sessions.csrf(session),
            request.query.get("q", "")[:128],
            message,
        )
        return "Keys", "/ui/keys", body

    async def _create_key(self, request: web.Request, session: Session) -> Page:
        form = request["form"]
        spec = key_spec(form)
        created = await self._admin.create_key(spec)
        secret = created.pop("key")
        models = created.get("models") or [self._default_model()]
        body = created_page(created, secret, self._base(request), str(models[0]))
        return "Key created", "/ui/keys", body

    def _base(self, request: web.Request) -> str:
        """The gateway's URL as the browser reached it (for the snippets)."""
        return f"{'https' if self._secure(request) else 'http'}://{request.host}"

    async def _confirm_rotate(self, request: web.Request, session: Session) -> Page:
        key = await self._q.key(request.match_info["id"])
        return "Rotate a key", "/ui/keys", rotate_page(key, self.sessions.csrf(session))

    async def _rotate(self, request: web.Request, session: Session) -> Page:
        grace = request["form"].get("grace")
        key_id = request.match_info["id"]
        rotated = await self._admin.rotate_key(key_id, grace if isinstance(grace, str) else "")
        key = await self._q.key(key_id)
        model = (key.get("models") or [self._default_model()])[0]
        body = rotated_page(key, rotated, self._base(request), str(model))
        return "Key rotated", "/ui/keys", body

    def _default_model(self) -> str:
        s = self._gw.settings
        if s.models:
            return next(iter(s.models))
        account, cfg = next(iter(s.providers.items()))
        return f"{account}/{next(iter(cfg.models))}"

    async def _edit_form(self, request: web.Request, session: Session) -> Page:
        key = await self._q.key(request.match_info["id"])
        if key["status"] == "revoked":
            raise GatewayError(
                f"key {key['id']!r} is revoked and can no longer be edited", status=409
            )
        return "Edit a key", "/ui/keys", edit_page(key, self.sessions.csrf(session))

    async def _edit(self, request: web.Request, session: Session) -> Page | web.Response:
        """Save the Edit form through the admin API's update; a refusal (400, 409) shows the
        form again, as sent, with the API's message above it."""
        form = request["form"]
        key_id = request.match_info["id"]
        try:
            key = await self._admin.update_key(key_id, edit_spec(form))
        except (KeySpecError, GatewayError) as err:
            status = err.status if isinstance(err, GatewayError) else 400
            if status not in (400, 409):
                raise
            message = err.message if isinstance(err, GatewayError) else str(err)
            try:
                current = await self._q.key(key_id)
            except GatewayError:  # not a virtual key (one of the config file's): no form
                raise err from None
            sent = {k: v[:2000] for k, v in form.items() if isinstance(v, str) and k != "csrf"}
            csrf = self.sessions.csrf(session)
            body = h.notice(message, "error") + edit_page(current, csrf, sent)
            return self._html(h.page("Edit a key", body, active="/ui/keys", csrf=csrf), status)
        return await self._keys(request, session, f"Key {key['name']} updated.")

    async def _confirm_revoke(self, request: web.Request, session: Session) -> Page:
        key = await self._q.key(request.match_info["id"])
        return "Revoke a key", "/ui/keys", revoke_page(key, self.sessions.csrf(session))

    async def _revoke(self, request: web.Request, session: Session) -> Page:
        key = await self._admin.revoke_key(request.match_info["id"])
        return await self._keys(request, session, f"Key {key['name']} revoked.")

    async def _teams(self, request: web.Request, session: Session) -> Page:
        return "Teams and budgets", "/ui/teams", teams_page(await self._q.budgets())

    async def _models(self, request: web.Request, session: Session) -> Page:
        return "Models and routing", "/ui/models", models_page(self._q.models())

    async def _not_found(self, request: web.Request, session: Session) -> Page:
        raise GatewayError(f"no console page at {request.path[:200]}", status=404)
