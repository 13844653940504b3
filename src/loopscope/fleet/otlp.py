"""The fleet's metrics sent as OTLP over HTTP, through `opentelemetry-sdk` and its OTLP exporter.

Gauges and the blocks counter are observed at each export. The two histograms are recorded:
every `interval` the new heartbeats and blocks of each process since the last pass are
recorded, each at the middle of its agent bucket, into explicit buckets that are the same
bounds as the Prometheus ones (so the counts per bucket are exact; the sums are estimates).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from loopscope import __version__
from loopscope.fleet._fleet import Fleet
from loopscope.fleet.metrics import (
    BLOCK_DURATION,
    BLOCKS,
    BOUNDS,
    DELAY,
    FINDINGS,
    TASKS,
    UTILIZATION,
    Metrics,
    ProcessMetrics,
    representative,
)

_MAX_RECORDS = 100_000  # per process and pass: a backlog after a stall is sent, within reason


class OtlpExporter:
    """Sends ``fleet``'s metrics to the OTLP/HTTP endpoint ``url`` every ``interval`` seconds."""

    def __init__(
        self,
        fleet: Fleet,
        url: str,
        *,
        interval: float = 10.0,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self._fleet = fleet
        self._metrics = Metrics()
        self._interval = interval
        self._log = log
        self._stop = threading.Event()
        self._latest: list[ProcessMetrics] = []
        self._sent: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        exporter = OTLPMetricExporter(endpoint=_metrics_url(url), timeout=5)
        self._reader = PeriodicExportingMetricReader(
            exporter, export_interval_millis=interval * 1000
        )
        buckets = ExplicitBucketHistogramAggregation(boundaries=list(BOUNDS))
        self._provider = MeterProvider(
            resource=Resource.create({"service.name": "loopscope", "service.version": __version__}),
            metric_readers=[self._reader],
            views=[
                View(instrument_name=DELAY.name, aggregation=buckets),
                View(instrument_name=BLOCK_DURATION.name, aggregation=buckets),
            ],
        )
        meter = self._provider.get_meter("loopscope", __version__)
        self._delay = meter.create_histogram(DELAY.name, unit=DELAY.unit, description=DELAY.help)
        self._duration = meter.create_histogram(
            BLOCK_DURATION.name, unit=BLOCK_DURATION.unit, description=BLOCK_DURATION.help
        )
        for m, observe in (
            (UTILIZATION, self._utilization),
            (TASKS, self._tasks),
            (FINDINGS, self._findings),
        ):
            meter.create_observable_gauge(m.name, [observe], unit=m.unit, description=m.help)
        meter.create_observable_counter(
            BLOCKS.name, [self._blocks], unit=BLOCKS.unit, description=BLOCKS.help
        )
        self._thread = threading.Thread(target=self._run, name="loopscope-otlp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self._interval)):
            self.record()

    def record(self) -> None:
        """Take every process's newest metrics; record what the histograms got since."""
        try:
            latest = list(self._metrics.collect(self._fleet.members()))
        except Exception as e:
            self._log(f"OTLP: reading the processes failed: {type(e).__name__}: {e}")
            return
        self._latest = latest
        for m in latest:
            lag = _fine(self._fleet, m.pid)
            if lag is None:
                continue
            before = self._sent.get(m.pid, ((), ()))
            attributes = {"pid": m.pid, "process": m.process}
            _record(self._delay, before[0], lag[0], attributes)
            _record(self._duration, before[1], lag[1], attributes)
            self._sent[m.pid] = lag
        for pid in set(self._sent) - {m.pid for m in latest}:
            del self._sent[pid]

    def _utilization(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(m.utilization, _attrs(m)) for m in self._latest if m.utilization]

    def _tasks(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {**_attrs(m), "state": state})
            for m in self._latest
            for state, n in sorted(m.tasks.items())
        ]

    def _blocks(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(
                b.count, {**_attrs(m), "function": b.function, "file": b.file, "cause": b.cause}
            )
            for m in self._latest
            for b in m.blocks
        ]

    def _findings(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(
                f.count,
                {**_attrs(m), "code": f.code, "severity": f.severity, "function": f.function},
            )
            for m in self._latest
            for f in m.findings
        ]

    def close(self) -> None:
        """Record and send what is left, then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.record()
        try:
            self._provider.shutdown(timeout_millis=5000)
        except Exception as e:
            self._log(f"OTLP: the last export failed: {type(e).__name__}: {e}")


def _attrs(m: ProcessMetrics) -> dict[str, str | int]:
    return {"pid": m.pid, "process": m.process}


def _fine(fleet: Fleet, pid: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The session's lag buckets and block-duration buckets of member ``pid``'s newest view."""
    for member in fleet.members():
        if member.pid == pid and member.view is not None:
            snap = member.view.snapshot
            return snap.lag.session_buckets, snap.blocks.durations
    return None


def _record(
    histogram: object, before: tuple[int, ...], now: tuple[int, ...], attributes: dict[str, object]
) -> None:
    record = histogram.record  # type: ignore[attr-defined]
    budget = _MAX_RECORDS
    for i, n in enumerate(now):
        new = n - (before[i] if i < len(before) else 0)
        value = representative(i)
        for _ in range(max(0, min(new, budget))):
            record(value, attributes)
        budget -= max(0, new)
        if budget <= 0:
            return


def _metrics_url(url: str) -> str:
    """The URL to post metrics to: ``url`` itself when it names a path, else its
    ``/v1/metrics`` (as OTEL_EXPORTER_OTLP_ENDPOINT is read)."""
    _, _, rest = url.partition("://")
    if "/" in rest.strip("/"):
        return url
    return url.rstrip("/") + "/v1/metrics"
