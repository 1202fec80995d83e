"""The native passthrough: any other endpoint of a provider account's own API.

Routes (docs/passthrough.md):

* ``/proxy/{account}/{path}``, any method: ``{path}`` (and the query) appended to the
  account's base URL. Errors the gateway itself answers are in the envelope of the
  account's wire (Anthropic's, or OpenAI's for OpenAI and Azure accounts).
* ``/v1/messages/batches*`` and ``/v1/files*`` (also under ``/anthropic``, and after a
  doubled ``/v1`` as the surfaces serve it): the Anthropic
  SDK's own paths (``client.messages.batches``, ``client.beta.files``), sent to the account
  the ``x-llmrelay-account`` header names or, when the key may reach only one
  Anthropic-wire account, to that one; otherwise 400 naming the header. A ``/v1/files``
  request without ``anthropic-version`` (the OpenAI SDK's ``client.files``) goes the same
  way among the OpenAI-wire accounts. An account of another ``type`` (the other family,
  or Azure, Bedrock, Vertex: reached through ``/proxy/{account}/`` only) named by the
  header is a 400 naming its type and the header; nothing is sent.

Each call: the path is checked (``proxy_path.py``: 400 for any escape, before anything
else), the gateway key authenticated (401), the account checked against the key (403), the
body read within ``server.max_request_body_mb`` and ``body_timeout_s``, the key's and
team's rate limits and budgets applied (429), then the provider's credential replaces the
gateway key and the request goes upstream (:meth:`Forwarder.forward`). The answer is
relayed as it arrives, status, headers and bytes, within the account's
``timeouts.total_s`` or the request's shorter ``x-llmrelay-timeout-ms`` (clamped by the
key's allowance; the only override the passthrough applies) (``proxy_answer.py``); a copy
is read for usage on the side (``proxy_usage.py``). One rewrite only: a batch object's
``results_url`` points back at the gateway (the SDK fetches that URL as given). Every
authenticated call leaves one usage row (``endpoint`` ``proxy``, ``provider`` the account,
``model`` the model the answer named); an answer without usage leaves ``tokens_known``
false and no cost; batch results are priced at
:data:`~llmrelay.policy.prices.BATCH_DISCOUNT` of the list price.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol, cast

from aiohttp import web

from ..core.text import clip
from ..core.usage import Usage
from ..drain import StreamWatch
from ..errors import (
    GatewayError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    UpstreamTimeout,
)
from ..pipeline.body import BodyLimits, read_body
from ..pipeline.call import Call, Parts, SurfaceName
from ..pipeline.run import close_row, new_request_id, notify
from ..policy.accounts import ACCOUNT_HEADER, check_account, sole_account
from ..policy.auth import caller_credential
from ..policy.overrides import TIMEOUT_HEADER, read_overrides
from ..policy.subscription import account_billing, budgeted
from ..providers.base import Provider
from ..providers.headers import HeaderFilter, client_headers
from ..providers.raw import RawRequest, as_forwarder
from ..stores.usage import UsageRecord
from .anthropic import error_response
from .openai import openai_error_response
from .proxy_answer import ProxyAnswer
from .proxy_path import proxied_path, split_proxy_target

__all__ = ["ProxyParts", "ProxySurface"]

log = logging.getLogger("llmrelay")

#: The Anthropic SDK paths served by the passthrough, under each of these prefixes.
SDK_PREFIXES = ("", "/anthropic")


class ProxyParts(Parts, Protocol):
    """What the passthrough needs of the gateway beyond a call's parts."""

    def provider(self, account: str) -> Provider | None:
        """The started provider of ``account`` (None: no such account)."""
        ...


class ProxySurface:
    """Serves the passthrough routes (module docstring)."""

    def __init__(self, parts: ProxyParts, limits: BodyLimits, headers: HeaderFilter) -> None:
        self._parts = parts
        self._limits = limits
        self._headers = headers

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/proxy/{tail:.*}", self.proxy)
        for p in SDK_PREFIXES:
            for v in ("/v1", "/v1/v1"):  # /v1/v1: an SDK base_url ending in /v1, as surfaces
                app.router.add_route("*", f"{p}{v}/messages/batches{{tail:.*}}", self.sdk_path)
                app.router.add_route("*", f"{p}{v}/files{{tail:.*}}", self.sdk_path)

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """``/proxy/{account}/{path}``."""
        target = request.raw_path
        account = target[len("/proxy/") :].partition("/")[0].partition("?")[0]
        return await self._call(request, self._wire_of(account), None)

    async def sdk_path(self, request: web.Request) -> web.StreamResponse:
        """``/v1/messages/batches*`` and ``/v1/files*`` (module docstring)."""
        path = request.path
        prefix = "/anthropic" if path.startswith("/anthropic/") else ""
        if path[len(prefix) :].startswith("/v1/v1/"):
            prefix += "/v1"  # the client's base URL ends in /v1
        wire: SurfaceName = "anthropic"
        if path[len(prefix) :].startswith("/v1/files") and (
            "anthropic-version" not in request.headers
        ):
            wire = "openai"
        return await self._call(request, wire, prefix)

    def _wire_of(self, account: str) -> SurfaceName:
        provider = self._parts.provider(account)
        return "openai" if provider is not None and provider.wire == "openai" else "anthropic"

    async def _call(
        self, request: web.Request, wire: SurfaceName, prefix: str | None
    ) -> web.StreamResponse:
        started = time.perf_counter()
        rid = new_request_id()
        record = UsageRecord(
            ts=time.time(),
            request_id=rid,
            key_name="",
            model="",
            provider="",
            provider_model="",
            endpoint="proxy",
            stream=False,
            status=499,
            surface=wire,
        )
        call = Call(self._parts.pin(), request, wire, record, Usage(), started)
        notify(call, "call_started")
        try:
            try:
                return await _Passthrough(self, call, rid, prefix).run()
            except GatewayError as err:
                record.status = err.status
                record.error_type = err.error_type
                record.error_message = err.message
                call.error = err
                if call.response is not None:
                    return call.response
                return _error(wire, err, rid)
            except (asyncio.CancelledError, ConnectionResetError):
                raise
            except Exception:
                log.exception("passthrough failed", extra={"request_id": rid})
                bug = InternalError(f"the gateway failed to handle this request ({rid})")
                record.status = 500
                record.error_type = bug.error_type
                record.error_message = bug.message
                if call.response is not None:
                    return call.response
                return _error(wire, bug, rid)
        finally:
            _finish(call)


class _Passthrough:
    """One passthrough call's steps (the module docstring's order)."""

    def __init__(self, surface: ProxySurface, call: Call, rid: str, prefix: str | None) -> None:
        self.s = surface
        self.call = call
        self.rid = rid
        #: The client's path prefix of an SDK path ("" or "/anthropic"); None: ``/proxy/``.
        self.prefix = prefix

    async def run(self) -> web.StreamResponse:
        call, request = self.call, self.call.request
        parts = cast(ProxyParts, call.parts)  # the pinned runtime
        record = call.record
        if self.prefix is None:
            account, path, query = split_proxy_target(request.raw_path)
        else:
            path, query = proxied_path(request.raw_path, f"{self.prefix}/")
            account = ""
        caller = parts.keys.authenticate(request.headers)
        call.caller = caller
        record.key_name = caller.name
        record.key_id = caller.key_id
        record.team = caller.team
        accounts_of = self._accounts_of
        if self.prefix is not None:
            named = request.headers.get(ACCOUNT_HEADER)
            if named is not None:
                account = named.strip()
            else:
                account = sole_account(
                    caller, self._sdk_accounts(call.surface), accounts_of, f"/{path}"
                )
            if call.surface == "openai":
                # An OpenAI account's base_url ends in /v1 already.
                path = path.removeprefix("v1/")
        provider = parts.provider(account)
        if provider is None:
            # Not recorded: a client's made-up name must not become a row's or a metric's.
            raise NotFoundError(f"no provider account {clip(account)!r} in this gateway")
        record.provider = account
        check_account(caller, account, accounts_of)
        if self.prefix is not None:
            self._same_family(account, call.surface)
        # Only x-llmrelay-timeout-ms applies (one attempt, no stream gate): a 400 when it
        # does not parse, clamped to the key's allowance, never past timeouts.total_s.
        overrides = read_overrides(request.headers, caller.overrides)
        forwarder = as_forwarder(provider)
        if forwarder is None:
            raise NotFoundError(f"provider account {account!r} has no native API to pass through")
        body = await self._body()
        call.admission = await parts.policy.admit(
            # No model is named: the key's model list does not apply (its accounts did).
            caller if caller.models is None else replace(caller, models=None),
            f"{account}/*",
            (),
            {},
            len(body),
            budgets=budgeted(parts.settings, [account]),
        )
        cfg = parts.settings.providers[account]
        total_s = float(getattr(getattr(cfg, "timeouts", None), "total_s", 600.0))
        limit = "timeouts.total_s"
        asked = overrides.timeout_s if overrides is not None else None
        if asked is not None and asked < total_s:
            total_s, limit = asked, TIMEOUT_HEADER
        call.total_s = total_s
        call.deadline = asyncio.get_running_loop().time() + total_s
        headers = client_headers(request.headers, self.s._headers)
        raw = RawRequest(
            request.method,
            path,
            query,
            headers,
            body,
            caller_credential(request.headers, parts.keys),
            request.headers.get("content-type") if body else None,
        )
        clamped = overrides.headers() if overrides is not None else {}
        answer = ProxyAnswer(call, self.rid, self.prefix, clamped)
        watch: StreamWatch | None = None
        try:
            # The call's deadline, which a shutdown's drain that runs out moves to now.
            async with parts.drain.deadline(call.deadline) as watch:
                return await answer.relay(forwarder, raw, cfg)
        except TimeoutError:
            err: GatewayError = UpstreamTimeout(
                f"provider {account!r} did not finish within {total_s:g}s ({limit})"
            )
            if watch is not None and watch.cut:
                err = parts.drain.error()
            if call.response is None:
                raise err from None
            # The deadline cancelled the relay (read as a disconnect there): the client got
            # the provider's status and a cut body.
            call.record.status = call.response.status
            answer.broke(err)
            return call.response

    def _accounts_of(self, model: str) -> Iterable[str]:
        router = self.call.parts.router
        route = router.table.get(model)
        if route is not None:
            return (route.account,)
        virtual = router.virtual.get(model)
        if virtual is not None:
            return {t.route.account for t in virtual.targets}
        return ()

    def _sdk_accounts(self, surface: SurfaceName) -> list[str]:
        """The accounts an SDK path without ``x-llmrelay-account`` may go to: those of the
        API the path belongs to (``type: anthropic`` for the Anthropic SDK's, ``type:
        openai`` for the OpenAI SDK's ``/v1/files``). Bedrock, Vertex and Azure speak a
        wire but serve no such path: they are reached through ``/proxy/`` only."""
        kind = "openai" if surface == "openai" else "anthropic"
        return [a for a, cfg in self.call.parts.settings.providers.items() if cfg.type == kind]

    def _same_family(self, account: str, surface: SurfaceName) -> None:
        """400 unless ``account`` (named by ``x-llmrelay-account`` on an SDK path) has the
        ``type`` that serves the path (:meth:`_sdk_accounts`): its path would be wrong."""
        kind = "openai" if surface == "openai" else "anthropic"
        have = self.call.parts.settings.providers[account].type
        if have == kind:
            return
        paths = (
            "the OpenAI SDK's /v1/files"
            if kind == "openai"
            else "the Anthropic SDK's /v1/messages/batches and /v1/files"
        )
        raise InvalidRequestError(
            f"{ACCOUNT_HEADER}: {account!r} is a type: {have} account, and {paths} go to "
            f"type: {kind} accounts only; reach {account!r} at /proxy/{account}/..."
        )

    async def _body(self) -> bytes:
        call, limits = self.call, self.s._limits
        request = call.request
        if request.content.is_eof() and not request.can_read_body:
            return b""
        began = time.perf_counter()
        try:
            return await read_body(request, limits.max_bytes, limits.timeout_s)
        finally:
            call.upload_s = time.perf_counter() - began


def _error(wire: SurfaceName, err: GatewayError, rid: str) -> web.Response:
    if wire == "openai":
        return openai_error_response(
            err.status, err.error_type, err.message, rid, err.headers, err.openai_type
        )
    return error_response(err, rid)


def _finish(call: Call) -> None:
    """Close the row, settle what admission held, tell the observers."""
    record = call.record
    usage = call.usage
    close_row(call)
    record.overhead_ms = call.overhead_s() * 1000
    record.upstream_ms = call.provider_s * 1000
    record.user_agent = call.request.headers.get("user-agent")
    settings = call.parts.settings
    budgeted = True
    if record.provider in settings.providers:
        billing, budgeted = account_billing(settings, record.provider)
        record.billing = billing or record.billing
    try:
        if call.admission is not None:
            cost = record.cost_usd if budgeted else 0.0
            call.parts.policy.settle_soon(call.admission, usage, cost)
    except Exception:
        log.exception("settling a call failed", extra={"request_id": record.request_id})
    notify(call, "call_ended")
