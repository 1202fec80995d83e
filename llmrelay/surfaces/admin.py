"""The admin API: virtual keys and usage, JSON over HTTP, behind the admin key.

Served only when ``admin.key`` is set. Authenticate with ``Authorization: Bearer <admin
key>`` or ``x-api-key``. Errors use Anthropic's envelope. Reference: docs/admin-api.md.

    POST   /admin/keys                 create -> 201 {..key, "key": "<secret, shown once>"}
    GET    /admin/keys                 list   -> {"data": [key, ...]}
    GET    /admin/keys/{id}            one key
    PATCH  /admin/keys/{id}            edit models, limits, budget, team -> the key
    POST   /admin/keys/{id}/revoke     revoke (also DELETE /admin/keys/{id})
    POST   /admin/keys/{id}/rotate     {"grace": "24h"} -> {"id", "key", "previous_valid_until"}
    GET    /admin/usage?by=key,model&since=7d   totals per group
    GET    /admin/requests?key=&model=&status=5xx&since=1h&limit=50&cursor=
                                       the request log, newest first -> {"data", "next_cursor"}
    GET    /admin/requests/{request_id}  one call: record, attempts, captured bodies
    GET    /admin/openapi.json         this API as an OpenAPI 3.1 document
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar, cast

import orjson
from aiohttp import web

from ..config import ConfigError, Settings
from ..console.session import LoginThrottle
from ..core.text import clip
from ..errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailable,
)
from ..obs.request_log import detail_json, encode_cursor, filter_from, record_json
from ..pipeline.body import BodyLimits, read_json
from ..pipeline.run import new_request_id
from ..policy.auth import digest, header_values
from ..policy.keycache import KeyCache
from ..policy.virtual_keys import (
    KeySpecError,
    check_models,
    check_name,
    key_edit_from_spec,
    key_json,
    new_secret,
    parse_duration,
    virtual_key_from_spec,
)
from ..stores.database import Stores
from ..stores.keys import KeyNameTaken, KeyRevoked
from ..stores.offload import in_daemon_thread
from ..stores.usage import SummaryField
from .admin_openapi import openapi_json
from .anthropic import error_response

__all__ = ["AdminSurface", "parse_since"]

log = logging.getLogger("llmrelay.admin")

_SUMMARY_FIELDS = ("key", "team", "model", "day")

T = TypeVar("T")


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """Unix seconds for ``7d`` / ``24h`` (ago) or a UTC date ``YYYY-MM-DD``; None for None.

    Raises:
        KeySpecError: anything else.
    """
    if text is None or text == "":
        return None
    now = time.time() if now is None else now
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return now - parse_duration(text)


class Reloaded(Protocol):
    def as_json(self) -> dict[str, object]:
        """What is in force after a reload, for the answer's body."""
        ...


class ConfigReloader(Protocol):
    """Reloads the config file (``llmrelay/reload.py``)."""

    async def reload(self, trigger: Literal["admin"]) -> Reloaded:
        """Raises ConfigError (the configuration in force stays)."""
        ...


class AdminParts(Protocol):
    """What the admin API needs of the gateway."""

    key_cache: KeyCache | None

    @property
    def settings(self) -> Settings: ...

    def stores(self) -> Stores: ...


#: Admin request bodies are small and sent by tools (a key spec, a rotation's grace): these
#: bounds, or the server's where they are tighter.
_SPEC_BYTES = 1 << 20
_ROTATE_BYTES = 1 << 16
_BODY_TIMEOUT_S = 30.0


class AdminSurface:
    def __init__(
        self,
        gateway: AdminParts,
        admin_key: str,
        *,
        store_timeout_s: float = 5.0,
        config_key_names: Collection[str] = (),
        body: BodyLimits | None = None,
        reloader: ConfigReloader | None = None,
        throttle: LoginThrottle | None = None,
        routable: Callable[[str], bool] | None = None,
    ) -> None:
        """``store_timeout_s``: how long a key write waits for the database before it
        answers 503 (``governance.admin_store_timeout_s``); ``config_key_names``: the names
        of the config file's keys, which a virtual key may not take (read at each check: a
        live view follows config reloads); ``body``: the server's
        body limits (``server.max_request_body_mb``, ``body_timeout_s``, ``max_json_depth``),
        which admin bodies keep too where they are tighter than the admin API's own;
        ``reloader``: what ``POST /admin/reload`` runs (None: the route answers 404);
        ``throttle``: wrong admin keys per client address, shared with the console's sign-in
        and ``/metrics`` (default: its own, 5 a minute); ``routable``: whether the gateway
        routes a model name (a key's ``models`` may name only those; None: not checked)."""
        body = body or BodyLimits(_SPEC_BYTES, _BODY_TIMEOUT_S)
        timeout_s = min(body.timeout_s, _BODY_TIMEOUT_S)
        self._spec = BodyLimits(min(body.max_bytes, _SPEC_BYTES), timeout_s, body.max_depth)
        self._rotate = BodyLimits(min(body.max_bytes, _ROTATE_BYTES), timeout_s, body.max_depth)
        self._gw = gateway
        self._store_timeout_s = store_timeout_s
        self._config_key_names = config_key_names
        self._digest = digest(admin_key)
        self._reloader = reloader
        self.throttle = throttle or LoginThrottle(5)
        self._routable = routable

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/admin/keys", self._wrap(self.create))
        app.router.add_get("/admin/keys", self._wrap(self.list))
        app.router.add_get("/admin/keys/{id}", self._wrap(self.get))
        app.router.add_patch("/admin/keys/{id}", self._wrap(self.update))
        app.router.add_post("/admin/keys/{id}/revoke", self._wrap(self.revoke))
        app.router.add_delete("/admin/keys/{id}", self._wrap(self.revoke))
        app.router.add_post("/admin/keys/{id}/rotate", self._wrap(self.rotate))
        app.router.add_get("/admin/usage", self._wrap(self.usage))
        app.router.add_get("/admin/requests", self._wrap(self.list_requests))
        app.router.add_get("/admin/requests/{request_id}", self._wrap(self.get_request))
        app.router.add_get("/admin/openapi.json", self._wrap(self.openapi))
        if self._reloader is not None:
            app.router.add_post("/admin/reload", self._wrap(self.reload))

    def _wrap(self, handler: Any) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            rid = new_request_id()
            try:
                self._authenticate(request)
                status, body = await handler(request)
            except GatewayError as err:
                resp = error_response(err, rid)
                if err.closes_connection:
                    resp.force_close()
                return resp
            except KeySpecError as err:
                return error_response(InvalidRequestError(str(err)), rid)
            except KeyNameTaken as err:
                return error_response(GatewayError(str(err), status=409), rid)
            except Exception as err:
                # The database (sqlite3/psycopg errors, timeouts) or a bug: the admin gets
                # JSON in the usual envelope and the log says what happened.
                log.error(
                    "admin request failed",
                    extra={"path": request.path, "error": f"{type(err).__name__}: {err}"},
                )
                return error_response(
                    ServiceUnavailable(
                        f"the database could not complete the request ({type(err).__name__});"
                        " try again"
                    ),
                    rid,
                )
            return web.Response(
                status=status,
                body=orjson.dumps(body),
                content_type="application/json",
                headers={"request-id": rid},
            )

        return run

    async def reload(self, request: web.Request) -> tuple[int, Any]:
        """``POST /admin/reload``: 200 with what is in force, or 400 ``invalid_request_error``
        whose message names the file, the key path and what was expected (nothing changed)."""
        assert self._reloader is not None
        try:
            result = await self._reloader.reload("admin")
        except ConfigError as err:
            raise InvalidRequestError(f"config reload refused: {err}") from None
        return 200, result.as_json()

    def _authenticate(self, request: web.Request) -> None:
        """The admin key, or AuthenticationError (401); past ``throttle``'s wrong keys from
        this client address, RateLimitedError (429 with retry-after) even for the right key."""
        address = request.remote or "unknown"
        wait = self.throttle.retry_after(address)
        if wait > 0:
            raise RateLimitedError(
                f"too many wrong admin keys from your address; try again in {wait:.0f} s",
                headers={"retry-after": str(max(1, round(wait)))},
            )
        keys = header_values(request.headers, "x-api-key")
        for auth in header_values(request.headers, "authorization"):
            # As for gateway keys (policy/auth.py): another scheme is refused, not ignored.
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("Authorization header must be 'Bearer <admin key>'")
            keys.append(token.strip())
        if not keys:
            raise AuthenticationError("missing admin key: send it as Authorization: Bearer")
        # Every key presented must be the admin key (no mixing a gateway key with it).
        if not all(hmac.compare_digest(digest(k), self._digest) for k in keys):
            self.throttle.failed(address)
            log.warning("admin key refused", extra={"client": address, "path": request.path})
            raise AuthenticationError("invalid admin key")

    async def _write(self, fn: Callable[..., T], *args: object) -> T:
        """A key-store call of an admin write: at most ``governance.admin_store_timeout_s``,
        then 503 (the call may still complete: a retried create makes another key)."""
        timeout = self._store_timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await in_daemon_thread(fn, *args)
        except TimeoutError:
            log.error("admin write timed out", extra={"timeout_s": timeout})
            raise ServiceUnavailable(
                f"the database did not answer within {timeout:g} s; try again"
            ) from None

    async def _after_write(self) -> None:
        # This instance sees the change at once; others on their next refresh. The write is
        # done: a cache that cannot refresh now catches up on its next round.
        if self._gw.key_cache is not None:
            try:
                await self._gw.key_cache.refresh(self._store_timeout_s)
            except Exception as err:
                log.warning(
                    "key written; this instance's key cache will pick it up on its next refresh",
                    extra={"error": f"{type(err).__name__}: {err}"},
                )

    def guarded(self, handler: Any) -> Any:
        """``handler`` (request -> (status, JSON body)) as an admin route: the admin key
        checked, errors in the admin API's envelope. For endpoints defined elsewhere (the
        console's, :mod:`llmrelay.surfaces.console`)."""
        return self._wrap(handler)

    async def create_key(self, spec: Any) -> dict[str, Any]:
        """Create a virtual key from a key spec (docs/admin-api.md): the key as JSON with
        its secret under ``"key"`` (shown once). Raises ``KeySpecError``, ``KeyNameTaken``,
        :class:`ServiceUnavailable` (the database did not answer in time)."""
        key = virtual_key_from_spec(spec)
        self._check_accounts(key.allowed_accounts)
        check_name(key, self._config_key_names)
        if self._routable is not None:
            check_models(key.models, self._routable)
        secret, row = new_secret(key.id)
        await self._write(self._gw.stores().keys.create, key, row)
        await self._after_write()
        return {**key_json(key), "key": secret}

    async def update_key(self, key_id: str, spec: Any) -> dict[str, Any]:
        """Edit a key's team, models, allowed accounts, limits or budget (the fields of
        :func:`~llmrelay.policy.virtual_keys.key_edit_from_spec`): the key as JSON. This
        instance applies it before answering; others within ``governance.key_refresh_s``.

        Raises ``KeySpecError`` (400), :class:`NotFoundError`, a 409 :class:`GatewayError`
        (a revoked key, or a key of the config file: read-only), :class:`ServiceUnavailable`.
        """
        if not isinstance(spec, dict):
            raise KeySpecError("expected a JSON object of the fields to change")
        edit = key_edit_from_spec(spec)
        if isinstance(edit.allowed_accounts, tuple):
            self._check_accounts(edit.allowed_accounts)
        if self._routable is not None and isinstance(edit.models, tuple):
            check_models(edit.models, self._routable)
        try:
            key = await self._write(self._gw.stores().keys.update, key_id, edit)
        except KeyRevoked as err:
            raise GatewayError(f"{err}; create a new key", status=409) from None
        if key is None:
            if key_id in self._config_key_names:
                raise GatewayError(
                    f"key {key_id!r} is from the config file (auth.keys) and read-only here:"
                    " edit the file and reload (POST /admin/reload)",
                    status=409,
                )
            raise NotFoundError(f"no key with id {key_id!r}")
        log.info("virtual key edited", extra={"key_id": key_id, "fields": sorted(spec)[:20]})
        await self._after_write()
        return key_json(key)

    def _check_accounts(self, accounts: tuple[str, ...] | None) -> None:
        """``KeySpecError`` (400) unless every name in ``allowed_accounts`` is a configured
        provider account, as the config file's keys are checked; up to 10 unknown names are
        echoed, each cut to 60 characters."""
        providers = self._gw.settings.providers
        unknown = [a for a in accounts or () if a not in providers]
        if unknown:
            named = ", ".join(repr(clip(a, 60)) for a in unknown[:10])
            raise KeySpecError(
                f"allowed_accounts: {named} not among the provider accounts "
                f"(configured: {', '.join(sorted(providers)[:20])})"
            )

    async def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revoke a key now: the key as JSON. Raises :class:`NotFoundError`,
        :class:`ServiceUnavailable`."""
        store = self._gw.stores().keys
        if not await self._write(store.revoke, key_id, time.time()):
            raise NotFoundError(f"no key with id {key_id!r}")
        await self._after_write()
        key = await self._write(store.get, key_id)
        assert key is not None
        return key_json(key)

    async def create(self, request: web.Request) -> tuple[int, Any]:
        spec = await read_json(request, self._spec)
        return 201, await self.create_key(spec)

    async def update(self, request: web.Request) -> tuple[int, Any]:
        spec = await read_json(request, self._spec)
        return 200, await self.update_key(request.match_info["id"], spec)

    async def list(self, request: web.Request) -> tuple[int, Any]:
        keys = await asyncio.to_thread(self._gw.stores().keys.list)
        now = time.time()
        return 200, {"data": [key_json(k, now) for k in keys]}

    async def get(self, request: web.Request) -> tuple[int, Any]:
        key_id = request.match_info["id"]
        key = await asyncio.to_thread(self._gw.stores().keys.get, key_id)
        if key is None:
            raise NotFoundError(f"no key with id {key_id!r}")
        return 200, key_json(key)

    async def revoke(self, request: web.Request) -> tuple[int, Any]:
        return 200, await self.revoke_key(request.match_info["id"])

    async def rotate(self, request: web.Request) -> tuple[int, Any]:
        key_id = request.match_info["id"]
        spec: dict[str, Any] = {}
        if request.can_read_body:
            spec = await read_json(request, self._rotate)
        return 200, await self.rotate_key(key_id, str(spec.get("grace", "24h")))

    async def rotate_key(self, key_id: str, grace_text: str) -> dict[str, Any]:
        """Give a key a new secret; the old ones stay valid for ``grace_text`` (``24h``):
        ``{"id", "key": <new secret, shown once>, "previous_valid_until": Unix seconds}``.
        Raises ``KeySpecError`` (the grace), :class:`NotFoundError`, a 409
        :class:`GatewayError` (a revoked key), :class:`ServiceUnavailable`."""
        grace = parse_duration(grace_text)
        until = time.time() + grace
        secret, row = new_secret(key_id)
        store = self._gw.stores().keys
        key = await self._write(store.get, key_id)
        if key is None:
            raise NotFoundError(f"no key with id {key_id!r}")
        if key.revoked_at is not None:
            raise GatewayError(f"key {key_id!r} is revoked; create a new key", status=409)
        if not await self._write(store.rotate, key_id, row, until):
            raise NotFoundError(f"no key with id {key_id!r}")
        await self._after_write()
        return {"id": key_id, "key": secret, "previous_valid_until": until}

    async def usage(self, request: web.Request) -> tuple[int, Any]:
        by = [f.strip() for f in request.query.get("by", "key,model").split(",") if f.strip()]
        bad = [f for f in by if f not in _SUMMARY_FIELDS]
        if bad or not by:
            raise InvalidRequestError(f"by: expected a comma list of {', '.join(_SUMMARY_FIELDS)}")
        since = parse_since(request.query.get("since"))
        usage = self._gw.stores().usage
        rows = await asyncio.to_thread(usage.summary, cast(list[SummaryField], by), since)
        data = [
            {
                **dict(zip(by, r.group, strict=True)),
                "requests": r.requests,
                "errors": r.errors,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cache_creation_input_tokens": r.cache_creation_input_tokens,
                "cache_read_input_tokens": r.cache_read_input_tokens,
                "cost_usd": r.cost_usd,
                "avg_latency_s": r.avg_latency_s,
            }
            for r in rows
        ]
        return 200, {"data": data, "by": by, "since": since}

    async def list_requests(self, request: web.Request) -> tuple[int, Any]:
        """The request log, newest first (see :mod:`llmrelay.obs.request_log`)."""
        try:
            where = filter_from(request.query)
        except ValueError as err:
            raise InvalidRequestError(str(err)) from None
        page = await asyncio.to_thread(self._gw.stores().usage.requests, where)
        return 200, {
            "data": [record_json(item) for item in page.items],
            "next_cursor": encode_cursor(page.next_before_id),
        }

    async def get_request(self, request: web.Request) -> tuple[int, Any]:
        """One call: its record, attempts and captured bodies."""
        request_id = request.match_info["request_id"]
        found = await asyncio.to_thread(self._gw.stores().usage.request, request_id)
        if found is None:
            raise NotFoundError(f"no request with id {request_id!r} in the request log")
        return 200, detail_json(*found)

    async def openapi(self, request: web.Request) -> tuple[int, Any]:
        return 200, openapi_json()
