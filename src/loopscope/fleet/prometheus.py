"""``/metrics`` (Prometheus' text format, from a `prometheus_client` collector that reads the
members' newest views at scrape time) and ``/healthz``, served over HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from loopscope import __version__
from loopscope.fleet._fleet import LIVE, Fleet, summary
from loopscope.fleet.metrics import (
    BLOCK_DURATION,
    BLOCKS,
    DELAY,
    FINDINGS,
    TASKS,
    UTILIZATION,
    Histogram,
    MetricName,
    Metrics,
)

_BASE = ["pid", "process"]


class FleetCollector:
    """A `prometheus_client` collector of a fleet's metrics."""

    def __init__(self, fleet: Fleet, metrics: Metrics | None = None) -> None:
        self._fleet = fleet
        self._metrics = metrics or Metrics()

    def describe(self) -> list[Metric]:
        return []  # names are known only at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        members = self._fleet.members()
        delay = _family(HistogramMetricFamily, DELAY)
        utilization = _family(GaugeMetricFamily, UTILIZATION)
        tasks = _family(GaugeMetricFamily, TASKS)
        blocks = _family(CounterMetricFamily, BLOCKS)
        duration = _family(HistogramMetricFamily, BLOCK_DURATION)
        findings = _family(GaugeMetricFamily, FINDINGS)
        targets = GaugeMetricFamily(
            "loopscope_targets",
            "Processes loopscope serve follows, by state (live, attaching, no loop, failed, gone)",
            labels=["state"],
        )
        for m in self._metrics.collect(members):
            base = [str(m.pid), m.process]
            _histogram(delay, base, m.delay)
            if m.utilization is not None:
                utilization.add_metric(base, m.utilization)
            for state, n in sorted(m.tasks.items()):
                tasks.add_metric([*base, state], n)
            for b in m.blocks:
                blocks.add_metric([*base, b.function, b.file, b.cause], b.count)
            _histogram(duration, base, m.block_duration)
            for f in m.findings:
                findings.add_metric([*base, f.code, f.severity, f.function], f.count)
        for state, n in sorted(summary(members).items()):
            targets.add_metric([state], n)
        yield from (delay, utilization, tasks, blocks, duration, findings, targets)


def _family(kind: Callable[..., Any], m: MetricName) -> Any:
    """The metric family of ``m``, its help naming it as OpenTelemetry does."""
    help = f"{m.help} ({m.name})"
    return kind(m.prometheus, help, labels=[*_BASE, *m.labels], unit=m.prometheus_unit)


def _histogram(family: HistogramMetricFamily, labels: list[str], h: Histogram) -> None:
    family.add_metric(labels, buckets=h.cumulative(), sum_value=h.sum)


def health(fleet: Fleet) -> dict[str, Any]:
    members = fleet.members()
    return {
        "status": "ok",
        "version": __version__,
        "targets": [
            {
                "pid": m.pid,
                "process": m.name,
                "state": m.state,
                "loop": m.has_loop,
                "detail": m.reason,
                "command": m.command,
            }
            for m in members
        ],
        "live": sum(1 for m in members if m.state == LIVE),
    }


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], registry: CollectorRegistry, healthz: Callable[[], Any]
    ) -> None:
        self.registry = registry
        self.healthz = healthz
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, kind = generate_latest(self.server.registry), CONTENT_TYPE_LATEST
        elif path == "/healthz":
            body = json.dumps(self.server.healthz(), indent=1).encode()
            kind = "application/json"
        else:
            body, kind = b"loopscope serve: see /metrics and /healthz\n", "text/plain"
            self._send(404, body, kind)
            return
        self._send(200, body, kind)

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


def server(address: tuple[str, int], fleet: Fleet) -> MetricsServer:
    """An HTTP server of ``fleet``'s /metrics and /healthz, bound (OSError when the address is
    taken) but not yet serving."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(fleet))
    return MetricsServer(address, registry, lambda: health(fleet))
