"""The native passthrough's answer: relayed as the provider sends it, read for usage on the
side, and (batch objects only) pointed back at the gateway. See ``proxy.py``."""

from __future__ import annotations

import asyncio
import re
import time

from aiohttp import web

from ..config import AnthropicProviderConfig
from ..core.delivered import Delivered
from ..core.text import MAX_ECHO_CHARS
from ..core.usage import Usage
from ..errors import GatewayError
from ..pipeline.call import Call
from ..policy.prices import BATCH_DISCOUNT
from ..providers.raw import Forwarder, RawRequest, RawResponse
from .proxy_usage import MAX_JSON_BYTES, UsageReader, batch_results_path

__all__ = ["UPSTREAM_ID_HEADER", "ProxyAnswer"]

#: The provider's own request id, as the other surfaces send it.
UPSTREAM_ID_HEADER = "x-llmrelay-upstream-request-id"
_RESULTS_URL = re.compile(rb'("results_url"\s*:\s*")([^"]*)(")')


class ProxyAnswer:
    """One passthrough call's answer. ``prefix`` is the client's path prefix of an SDK path
    ("" or "/anthropic"), None for ``/proxy/{account}/``; ``extra`` are headers the gateway
    adds to the answer (``x-llmrelay-overrides-clamped``)."""

    def __init__(
        self, call: Call, rid: str, prefix: str | None, extra: dict[str, str] | None = None
    ) -> None:
        self.call = call
        self.rid = rid
        self.prefix = prefix
        self.extra = extra or {}
        #: The deltas a stream cut short was charged for (``_settle``), None before.
        self.settled: Delivered | None = None

    async def relay(self, provider: Forwarder, raw: RawRequest, cfg: object) -> web.StreamResponse:
        """Send ``raw`` through ``provider`` and relay its answer to the client."""
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
            headers = {**up.headers, **self.extra, "request-id": self.rid}
            if up.upstream_request_id is not None:
                headers[UPSTREAM_ID_HEADER] = up.upstream_request_id[:MAX_ECHO_CHARS]
            if self._rewrites(raw, cfg, up):
                return await self._whole(up, headers, reader, cfg)
            body = up.arrived()
            if body:
                return await self._at_once(up.status, headers, body, reader, batch)
            resp = web.StreamResponse(status=up.status, headers=headers)
            if up.length is not None:
                resp.content_length = up.length  # a download keeps its size (progress bars)
            await resp.prepare(call.request)
            call.response = resp
            first = True
            try:
                async for chunk in up.iter_chunks():
                    if first:
                        record.ttft_s = time.perf_counter() - call.started
                        first = False
                    await resp.write(chunk)
                    if reader is not None:
                        reader.feed(chunk)  # once delivered: its deltas count (_read)
                await resp.write_eof()
            except GatewayError as err:
                self.broke(err)
                self._read(reader, batch, "stream cut")
                return resp
            except (asyncio.CancelledError, ConnectionResetError):
                # The client went away: the row says so, with the usage read so far.
                record.status = 499
                record.error_type = "client_disconnected"
                self._read(reader, batch, "client disconnected")
                raise
            self._read(reader, batch, "stream ended before its last event")
            return resp
        finally:
            up.close()

    async def _at_once(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        reader: UsageReader | None,
        batch: bool,
    ) -> web.StreamResponse:
        """An answer whose body is all in already (:meth:`RawResponse.arrived`: most JSON
        answers), relayed as :meth:`relay` would, in one write with its headers instead of
        two (headers, then the body): the same bytes on the wire, one system call less."""
        call, record = self.call, self.call.record
        record.ttft_s = time.perf_counter() - call.started
        resp = web.Response(status=status, body=body, headers=headers)
        try:
            await resp.prepare(call.request)
            call.response = resp
            await resp.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            record.status = 499
            record.error_type = "client_disconnected"
            self._read(reader, batch, "client disconnected")
            raise
        if reader is not None:
            reader.feed(body)
        self._read(reader, batch, "stream ended before its last event")
        return resp

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

    def _read(self, reader: UsageReader | None, batch: bool, cut: str | None = None) -> None:
        """Usage and cost from what the reader found (module docstring). ``cut`` says how a
        stream that ends here without its last event ended: it is charged the content it
        delivered (``core/delivered.py``), never less than the provider's last count."""
        record, usage = self.call.record, self.call.usage
        if reader is None:
            record.tokens_known = not (200 <= record.status < 300)
            return
        reader.finish()
        if cut is not None and reader.kind == "sse" and not reader.ended:
            self._settle(reader, cut)
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

    def _settle(self, reader: UsageReader, cut: str) -> None:
        """Charge a stream cut short what it delivered; the row's ``error_message`` says how.
        A stream with no content delta and no count read (not a model's stream, or cut
        before any) is left as read."""
        delivered = reader.delivered
        if delivered.deltas == 0 and delivered.reported is None:
            return
        record = self.call.record
        # Counted by the estimate, never a tokenizer: the model is named only once the
        # stream is under way (its first event), after the first deltas may be counted.
        model = next(iter(reader.by_model), reader.model)
        counted = reader.by_model.setdefault(model, Usage())
        delivered.settle(counted)
        self.settled = delivered
        note = delivered.note(cut)
        record.error_message = f"{record.error_message}; {note}" if record.error_message else note

    def broke(self, err: GatewayError) -> None:
        """A stream that broke after its headers went out: the row says why, the
        connection is closed (the client sees a cut body, as from the provider)."""
        record = self.call.record
        record.error_type = err.error_type
        record.error_message = err.message
        if self.settled is not None:
            # The deadline cut a stream first read as a client's leaving (``relay``).
            record.error_message += "; " + self.settled.note("stream cut")
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
