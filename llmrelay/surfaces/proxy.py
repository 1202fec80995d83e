"""The native passthrough: any other endpoint of a provider account's own API.

Routes (docs/passthrough.md):

* ``/proxy/{account}/{path}``, any method: ``{path}`` (and the query) appended to the
  account's base URL. Errors the gateway itself answers are in the envelope of the
  account's wire (Anthropic's, or OpenAI's for OpenAI and Azure accounts).
* ``/v1/messages/batches*`` and ``/v1/files*`` (also under ``/anthropic``): the Anthropic
  SDK's own paths (``client.messages.batches``, ``client.beta.files``), sent to the account
  the ``x-llmrelay-account`` header names or, when the key may reach only one
  Anthropic-wire account, to that one; otherwise 400 naming the header. A ``/v1/files``
  request without ``anthropic-version`` (the OpenAI SDK's ``client.files``) goes the same
  way among the OpenAI-wire accounts.

Each call: the path is checked (``proxy_path.py``: 400 for any escape, before anything
else), the gateway key authenticated (401), the account checked against the key (403),
the body read within ``server.max_request_body_mb`` and ``body_timeout_s``, the key's and
team's rate limits and budgets applied (429), then the provider's credential replaces the
gateway key and the request goes upstream (:meth:`Forwarder.forward`). The answer is
relayed as it arrives, status, headers and bytes, within the account's
``timeouts.total_s``; a copy is read for usage on the side (``proxy_usage.py``). Two
rewrites only: a batch object's ``results_url`` points back at the gateway (the SDK fetches
that URL as given), and nothing else. Every authenticated call leaves one usage row
(``endpoint`` ``proxy``, ``provider`` the account, ``model`` the model the answer named);
an answer without usage leaves ``tokens_known`` false and no cost; batch results are
priced at :data:`~llmrelay.policy.prices.BATCH_DISCOUNT` of the list price.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from aiohttp import web

from ..config import AnthropicProviderConfig
from ..core.text import MAX_ECHO_CHARS
from ..core.usage import Usage
from ..errors import (
    GatewayError,
    InternalError,
    NotFoundError,
    UpstreamTimeout,
)
from ..pipeline.body import BodyLimits, read_body
from ..pipeline.call import Call, Parts, SurfaceName
from ..pipeline.run import new_request_id
from ..policy.accounts import ACCOUNT_HEADER, check_account, sole_account
from ..policy.auth import caller_credential
from ..policy.prices import BATCH_DISCOUNT
from ..policy.subscription import account_billing, budgeted
from ..providers.base import Provider
from ..providers.headers import HeaderFilter, client_headers
from ..providers.raw import Forwarder, RawRequest, RawResponse
from ..stores.usage import UsageRecord
from .anthropic import error_response
from .openai import openai_error_response
from .proxy_path import proxied_path, split_proxy_target
from .proxy_usage import MAX_JSON_BYTES, UsageReader, batch_results_path

__all__ = ["ProxyParts", "ProxySurface"]

log = logging.getLogger("llmrelay")

#: The Anthropic SDK paths served by the passthrough, under each of these prefixes.
SDK_PREFIXES = ("", "/anthropic")
#: The provider's own request id, as the other surfaces send it.
UPSTREAM_ID_HEADER = "x-llmrelay-upstream-request-id"
_RESULTS_URL = re.compile(rb'("results_url"\s*:\s*")([^"]*)(")')


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
            app.router.add_route("*", f"{p}/v1/messages/batches{{tail:.*}}", self.sdk_path)
            app.router.add_route("*", f"{p}/v1/files{{tail:.*}}", self.sdk_path)

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """``/proxy/{account}/{path}``."""
        target = request.raw_path
        account = target[len("/proxy/") :].partition("/")[0].partition("?")[0]
        return await self._call(request, account, self._wire_of(account), None)

    async def sdk_path(self, request: web.Request) -> web.StreamResponse:
        """``/v1/messages/batches*`` and ``/v1/files*`` (module docstring)."""
        prefix = "/anthropic" if request.path.startswith("/anthropic/") else ""
        wire: SurfaceName = "anthropic"
        if request.path.startswith(("/v1/files", "/anthropic/v1/files")) and (
            "anthropic-version" not in request.headers
        ):
            wire = "openai"
        return await self._call(request, None, wire, prefix)

    def _wire_of(self, account: str) -> SurfaceName:
        provider = self._parts.provider(account)
        return "openai" if provider is not None and provider.wire == "openai" else "anthropic"

    async def _call(
        self, request: web.Request, account: str | None, wire: SurfaceName, prefix: str | None
    ) -> web.StreamResponse:
        started = time.perf_counter()
        rid = new_request_id()
        record = UsageRecord(
            ts=time.time(),
            request_id=rid,
            key_name="",
            model="",
            provider=account or "",
            provider_model="",
            endpoint="proxy",
            stream=False,
            status=499,
            surface=wire,
        )
        call = Call(self._parts, request, wire, record, Usage(), started)
        _notify(call, "call_started")
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
        call, parts, request = self.call, self.s._parts, self.call.request
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
        record.provider = account
        provider = parts.provider(account)
        if provider is None:
            raise NotFoundError(f"no provider account {account[:100]!r} in this gateway")
        check_account(caller, account, accounts_of)
        if not isinstance(provider, Forwarder):
            raise NotFoundError(f"provider account {account!r} has no native API to pass through")
        body = await self._body()
        call.admission = await parts.policy.admit(
            replace(caller, models=None),
            f"{account}/*",
            (),
            {},
            len(body),
            budgets=budgeted(parts.settings, [account]),
        )
        cfg = parts.settings.providers[account]
        total_s = float(getattr(getattr(cfg, "timeouts", None), "total_s", 600.0))
        call.total_s = total_s
        call.deadline = asyncio.get_running_loop().time() + total_s
        headers = client_headers(request.headers, self.s._headers)
        raw = RawRequest(
            request.method,
            path,
            query,
            headers,
            body,
            caller_credential(request.headers),
            request.headers.get("content-type") if body else None,
        )
        try:
            async with asyncio.timeout(total_s):
                return await self._relay(provider, raw, cfg)
        except TimeoutError:
            err = UpstreamTimeout(
                f"provider {account!r} did not finish within {total_s:g}s (timeouts.total_s)"
            )
            if call.response is None:
                raise err from None
            # The deadline cancelled the relay (read as a disconnect there): the client got
            # the provider's status and a cut body.
            call.record.status = call.response.status
            self._broke(err)
            return call.response

    def _accounts_of(self, model: str) -> Iterable[str]:
        router = self.s._parts.router
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
        wire but serve no such path: they are reached by name or through ``/proxy/``."""
        kind = "openai" if surface == "openai" else "anthropic"
        return [a for a, cfg in self.s._parts.settings.providers.items() if cfg.type == kind]

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

    async def _relay(self, provider: Forwarder, raw: RawRequest, cfg: object) -> web.StreamResponse:
        call, record = self.call, self.call.record
        began = time.perf_counter()
        up = await provider.forward(raw)
        try:
            call.provider_s = time.perf_counter() - began
            record.status = up.status
            record.upstream_request_id = up.upstream_request_id
            batch = batch_results_path(raw.path) and isinstance(cfg, AnthropicProviderConfig)
            reader = None
            if 200 <= up.status < 300:
                reader = UsageReader.for_answer(up.content_type, batch)
            record.endpoint = "batch_results" if batch else "proxy"
            record.stream = up.is_event_stream
            headers = {**up.headers, "request-id": self.rid}
            if up.upstream_request_id is not None:
                headers[UPSTREAM_ID_HEADER] = up.upstream_request_id[:MAX_ECHO_CHARS]
            if self._rewrites(raw, cfg, up):
                return await self._whole(up, headers, reader, cfg)
            resp = web.StreamResponse(status=up.status, headers=headers)
            await resp.prepare(call.request)
            call.response = resp
            first = True
            try:
                async for chunk in up.iter_chunks():
                    if first:
                        record.ttft_s = time.perf_counter() - call.started
                        first = False
                    if reader is not None:
                        reader.feed(chunk)
                    await resp.write(chunk)
                await resp.write_eof()
            except GatewayError as err:
                self._read(reader, batch)
                self._broke(err)
                return resp
            except (asyncio.CancelledError, ConnectionResetError):
                # The client went away: the row says so, with the usage read so far.
                record.status = 499
                record.error_type = "client_disconnected"
                self._read(reader, batch)
                raise
            self._read(reader, batch)
            return resp
        finally:
            up.close()

    def _rewrites(self, raw: RawRequest, cfg: object, up: RawResponse) -> bool:
        """True for a batch object (or page of them) whose ``results_url`` must point back
        at the gateway: the SDK's ``results()`` fetches that URL as given."""
        return (
            isinstance(cfg, AnthropicProviderConfig)
            and raw.path.startswith("v1/messages/batches")
            and not batch_results_path(raw.path)
            and up.content_type == "application/json"
            and up.status < 300
        )

    async def _whole(
        self,
        up: RawResponse,
        headers: dict[str, str],
        reader: UsageReader | None,
        cfg: object,
    ) -> web.StreamResponse:
        body = bytearray()
        async for chunk in up.iter_chunks():
            body += chunk
            if len(body) > MAX_JSON_BYTES:
                raise GatewayError(
                    f"a batch listing larger than {MAX_JSON_BYTES} bytes: ask for fewer (limit=)",
                    status=502,
                )
        assert isinstance(cfg, AnthropicProviderConfig)
        out = _point_results_here(bytes(body), cfg.base_url, self._here())
        if reader is not None:
            reader.feed(out)
            self._read(reader, False)
        return web.Response(status=up.status, body=out, headers=headers)

    def _here(self) -> str:
        """The base URL the client reached this account at: the scheme and host it used
        (``x-forwarded-proto`` and ``x-forwarded-host`` when a proxy in front says so, the
        client's own ``Host`` otherwise; these only steer the caller's own request)."""
        request = self.call.request
        forwarded = request.headers.get("x-forwarded-proto", "").partition(",")[0].strip()
        scheme = forwarded if forwarded in ("http", "https") else request.scheme
        host = request.headers.get("x-forwarded-host", "").partition(",")[0].strip()
        origin = f"{scheme}://{host or request.host}"
        if self.prefix is None:
            return f"{origin}/proxy/{self.call.record.provider}"
        return f"{origin}{self.prefix}"

    def _read(self, reader: UsageReader | None, batch: bool) -> None:
        """Usage and cost from what the reader found (module docstring)."""
        record, usage = self.call.record, self.call.usage
        if reader is None:
            record.tokens_known = not (200 <= record.status < 300)
            return
        reader.finish()
        if not reader.by_model:
            record.tokens_known = False
            return
        record.tokens_known = True
        policy = self.call.parts.policy
        cost: float | None = None
        for model, counted in reader.by_model.items():
            usage.input_tokens += counted.input_tokens
            usage.output_tokens += counted.output_tokens
            usage.cache_creation_input_tokens += counted.cache_creation_input_tokens
            usage.cache_read_input_tokens += counted.cache_read_input_tokens
            priced = policy.cost(model, counted) if model else None
            if priced is not None:
                cost = (cost or 0.0) + priced * (BATCH_DISCOUNT if batch else 1.0)
        models = [m for m in reader.by_model if m]
        record.provider_model = ",".join(models)[:256]
        record.model = record.provider_model
        record.cost_usd = cost
        if batch:
            record.billing = "batch"

    def _broke(self, err: GatewayError) -> None:
        """A stream that broke after its headers went out: the row says why, the
        connection is closed (the client sees a cut body, as from the provider)."""
        record = self.call.record
        record.error_type = err.error_type
        record.error_message = err.message
        self.call.error = err
        transport = self.call.request.transport
        if transport is not None:
            transport.close()


def _point_results_here(body: bytes, upstream: str, here: str) -> bytes:
    """``body`` with each ``results_url`` under ``upstream`` moved under ``here``."""
    up = upstream.encode()
    new = here.encode()

    def swap(m: re.Match[bytes]) -> bytes:
        url = m[2]
        if url.startswith(up + b"/"):
            url = new + url[len(up) :]
        return m[1] + url + m[3]

    return _RESULTS_URL.sub(swap, body)


def _error(wire: SurfaceName, err: GatewayError, rid: str) -> web.Response:
    if wire == "openai":
        return openai_error_response(
            err.status, err.error_type, err.message, rid, err.headers, err.openai_type
        )
    return error_response(err, rid)


def _finish(call: Call) -> None:
    """Close the row, settle what admission held, tell the observers."""
    record = call.record
    record.latency_s = time.perf_counter() - call.started
    if record.status == 499 and record.error_type is None:
        record.error_type = "client_disconnected"
    usage = call.usage
    record.input_tokens = usage.input_tokens
    record.output_tokens = usage.output_tokens
    record.cache_creation_input_tokens = usage.cache_creation_input_tokens
    record.cache_read_input_tokens = usage.cache_read_input_tokens
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
    _notify(call, "call_ended")


def _notify(call: Call, event: str) -> None:
    for observer in call.parts.observers:
        try:
            getattr(observer, event)(call)
        except Exception:
            log.exception(
                "call observer failed",
                extra={"request_id": call.record.request_id, "observer": type(observer).__name__},
            )
