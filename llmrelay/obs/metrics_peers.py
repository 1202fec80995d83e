"""``/metrics`` for the whole instance when ``llmrelay serve --workers N`` runs N workers.

Each worker keeps its own figures (:class:`~llmrelay.obs.metrics.Metrics`: plain numbers on
its event loop, nothing shared on the request path) and serves its metric families, as
JSON, on a Unix socket in the supervisor's private run directory
(``metrics-<index>.sock``). The worker a scrape lands on collects its own families and asks
every sibling for theirs (all at once, each within ``PEER_TIMEOUT_S`` and at most
``MAX_PEER_BYTES``), then merges them:

* counters and histograms (``llmrelay_requests_total``, tokens, durations, ``process_cpu_*``,
  ``python_gc_*``) and most gauges (in-flight calls, usage queue depth, resident memory,
  open fds) are **summed** over workers;
* gauges that describe the instance rather than add up take the **max**
  (``llmrelay_counter_store_fallback``, ``llmrelay_target_cooldown``, ``python_info``) or
  the **min** (``process_start_time_seconds``, ``process_max_fds``).

``llmrelay_workers_scraped`` says how many workers' figures the answer holds: a worker
being restarted (or not answering in time) is left out of that scrape, and a replaced
worker starts its counters from zero (Prometheus's ``rate()`` reads that as a counter
reset).

A scrape costs each sibling one collection of its families (about what a single-process
scrape costs it) plus the JSON; nothing is added to calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence

import orjson
from prometheus_client.core import GaugeMetricFamily, Metric

from ..workers import Worker

__all__ = ["MAX_PEER_BYTES", "PEER_TIMEOUT_S", "PeerMetrics", "merge"]

log = logging.getLogger("llmrelay.metrics")

#: Seconds a scrape waits for each sibling worker's families.
PEER_TIMEOUT_S = 2.0
#: Largest answer read from a sibling, in bytes (370 series are ~60 KiB of JSON).
MAX_PEER_BYTES = 32 << 20

_MAX_GAUGES = frozenset(
    {"llmrelay_counter_store_fallback", "llmrelay_target_cooldown", "python_info"}
)
_MIN_GAUGES = frozenset({"process_start_time_seconds", "process_max_fds"})


def _dump(families: Iterable[Metric]) -> bytes:
    return orjson.dumps(
        [
            [
                f.name,
                f.documentation,
                f.type,
                f.unit,
                [[s.name, s.labels, s.value] for s in f.samples],
            ]
            for f in families
        ]
    )


def _load(raw: bytes) -> list[Metric]:
    out: list[Metric] = []
    for name, doc, kind, unit, samples in orjson.loads(raw):
        family = Metric(str(name), str(doc), str(kind), str(unit))
        for sample_name, labels, value in samples:
            if value is not None:
                family.add_sample(str(sample_name), dict(labels), float(value))
        out.append(family)
    return out


def merge(workers: Sequence[Sequence[Metric]]) -> list[Metric]:
    """One instance's families from each worker's (see the module docstring for how each
    series combines). Families keep the first worker's order, help text and type."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in workers:
        for f in families:
            if f.name not in merged:
                merged[f.name] = Metric(f.name, f.documentation, f.type, f.unit)
                values[f.name] = {}
            combine = _combiner(f)
            series = values[f.name]
            for s in f.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                old = series.get(key)
                series[key] = s.value if old is None else combine(old, s.value)
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


def _combiner(family: Metric) -> Callable[[float, float], float]:
    if family.type == "gauge" and family.name in _MAX_GAUGES:
        return max
    if family.type == "gauge" and family.name in _MIN_GAUGES:
        return min
    return _add


def _add(a: float, b: float) -> float:
    return a + b


async def _read_all(reader: asyncio.StreamReader, limit: int) -> bytes:
    """Everything up to end of stream; ValueError past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await reader.read(1 << 16):
        size += len(chunk)
        if size > limit:
            raise ValueError(f"answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class PeerMetrics:
    """Serves this worker's families to its siblings and gathers theirs for a scrape.
    ``collect`` returns this worker's families (its registry's ``collect``)."""

    def __init__(self, worker: Worker, collect: Callable[[], Iterable[Metric]]) -> None:
        self._worker = worker
        self._collect = collect
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen on ``metrics-<index>.sock`` (replacing what a dead predecessor left)."""
        path = self._worker.metrics_socket(self._worker.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._server = await asyncio.start_unix_server(self._answer, path=str(path))

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._worker.metrics_socket(self._worker.index))

    async def gather(self, own: list[Metric]) -> list[Metric]:
        """``own`` merged with every sibling's families that arrived in time, and
        ``llmrelay_workers_scraped``."""
        others = [i for i in range(self._worker.count) if i != self._worker.index]
        answers = await asyncio.gather(*(self._ask(i) for i in others))
        got = [a for a in answers if a is not None]
        scraped = GaugeMetricFamily(
            "llmrelay_workers_scraped", "Worker processes whose figures this scrape holds."
        )
        scraped.add_metric([], 1 + len(got))
        configured = GaugeMetricFamily("llmrelay_workers", "Worker processes configured.")
        configured.add_metric([], self._worker.count)
        return [*merge([own, *got]), scraped, configured]

    async def _ask(self, index: int) -> list[Metric] | None:
        path = self._worker.metrics_socket(index)
        try:
            async with asyncio.timeout(PEER_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(str(path))
                try:
                    raw = await _read_all(reader, MAX_PEER_BYTES)
                finally:
                    writer.close()
            return _load(raw)
        except (OSError, TimeoutError, ValueError) as err:
            log.info(
                "a worker's metrics were left out of a scrape",
                extra={"worker": index, "error": f"{type(err).__name__}: {err}"},
            )
            return None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(_dump(self._collect()))
            async with asyncio.timeout(PEER_TIMEOUT_S):
                await writer.drain()
        except (OSError, TimeoutError):
            pass  # the asking worker gave up
        finally:
            writer.close()
