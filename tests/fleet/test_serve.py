"""`loopscope serve` end to end, with real parts: a two-worker uvicorn server, `serve --children`
on its supervisor, a real Prometheus server scraping it, and an OTLP/HTTP endpoint that decodes
what it receives with opentelemetry-proto."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.fleet._procs import descendants

pytestmark = pytest.mark.timeout(150)

T = TypeVar("T")

# A tiny ASGI app: /block holds the loop for 60 ms with time.sleep, in `slow_handler`.
APP = r"""
import time


def slow_handler():
    time.sleep(0.06)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/block":
        slow_handler()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _poll(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """``probe()`` until it returns something other than None (or fails with ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _get(url: str, timeout: float = 5.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bytes(response.read())
    except OSError:
        return None


def _workers(supervisor: int) -> list[int]:
    """The uvicorn workers below ``supervisor`` (multiprocessing's spawned children)."""
    out = []
    for pid in descendants(supervisor):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            out.append(pid)
    return out


@dataclass
class Uvicorn:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def workers(self) -> list[int]:
        return _workers(self.pid)

    def hit(self, path: str, times: int) -> None:
        for _ in range(times):
            _get(f"http://127.0.0.1:{self.port}{path}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    pytest.importorskip("uvicorn")
    where = tmp_path_factory.mktemp("uvicorn")
    (where / "tinyapp.py").write_text(APP)
    port = _free_port()
    with open(where / "uvicorn.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tinyapp:app",
                "--workers",
                "2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--loop",
                "asyncio",
            ],
            cwd=where,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    server = Uvicorn(proc, port)
    try:
        _poll("two uvicorn workers", lambda: True if len(server.workers()) == 2 else None)
        _poll("uvicorn to answer", lambda: _get(f"http://127.0.0.1:{port}/"))
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Otlp:
    """An OTLP/HTTP metrics endpoint: every request body it received, decoded."""

    port: int
    requests: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every data point of metric ``name`` received."""
        out = []
        with self.lock:
            requests = list(self.requests)
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name != name:
                            continue
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            attributes = {a.key: _value(a.value) for a in point.attributes}
                            out.append((attributes, point))
        return out


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind)


@pytest.fixture(scope="module")
def otlp() -> Iterator[Otlp]:
    pb = pytest.importorskip(
        "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
        reason="opentelemetry-proto is not installed",
    )
    received = Otlp(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = pb.ExportMetricsServiceRequest()
            request.ParseFromString(body)
            with received.lock:
                received.requests.append(request)
            reply = pb.ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200 if self.path == "/v1/metrics" else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.port = http.server_address[1]
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield received
    http.shutdown()
    http.server_close()


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    port: int
    log: Path

    def metrics(self) -> str | None:
        body = _get(f"http://127.0.0.1:{self.port}/metrics")
        return None if body is None else body.decode()

    def health(self) -> dict[str, Any]:
        body = _get(f"http://127.0.0.1:{self.port}/healthz")
        assert body is not None
        return dict(json.loads(body))

    def state_of(self, pid: int) -> str | None:
        return next((t["state"] for t in self.health()["targets"] if t["pid"] == pid), None)


@pytest.fixture(scope="module")
def serve(server: Uvicorn, otlp: Otlp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    where = tmp_path_factory.mktemp("serve")
    port = _free_port()
    log = where / "serve.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loopscope",
                "serve",
                "--children",
                "--listen",
                f"127.0.0.1:{port}",
                "--otlp",
                f"http://127.0.0.1:{otlp.port}",
                "--otlp-interval",
                "1",
                str(server.pid),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            env=dict(os.environ, XDG_STATE_HOME=str(where)),
        )
    running = Serve(proc, port, log)
    try:
        _poll("serve's /metrics", running.metrics)
        workers = server.workers()
        _poll(
            "every worker in /metrics",
            lambda: (
                True if all(f'pid="{w}"' in (running.metrics() or "") for w in workers) else None
            ),
        )
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("no prometheus binary (make prometheus installs Debian's package)")
    return found


@pytest.fixture(scope="module")
def prometheus(serve: Serve, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = _prometheus_binary()
    where = tmp_path_factory.mktemp("prometheus")
    (where / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: loopscope\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{serve.port}']\n"
    )
    port = _free_port()
    with open(where / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={where / 'prometheus.yml'}",
                f"--storage.tsdb.path={where / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _poll("prometheus to be ready", lambda: _get(f"{url}/-/ready"))
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    body = _get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    if body is None:
        return []
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def test_prometheus_has_the_loop_delay_of_each_worker(
    server: Uvicorn, serve: Serve, prometheus: str
) -> None:
    workers = server.workers()
    assert len(workers) == 2

    def series() -> list[dict[str, Any]] | None:
        found = _query(prometheus, "python_asyncio_eventloop_delay_seconds_count > 0")
        pids = {r["metric"]["pid"] for r in found}
        return found if {str(w) for w in workers} <= pids else None

    found = _poll("both workers' loop delay in prometheus", series)
    by_pid = {r["metric"]["pid"]: r["metric"] for r in found}
    for worker in workers:
        assert by_pid[str(worker)]["process"] == "uvicorn"
        assert by_pid[str(worker)]["job"] == "loopscope"
    # The supervisor runs no loop: no delay series of its own.
    assert str(server.pid) not in by_pid
    buckets = _query(
        prometheus,
        f'python_asyncio_eventloop_delay_seconds_bucket{{pid="{workers[0]}",le="+Inf"}}',
    )
    assert len(buckets) == 1 and float(buckets[0]["value"][1]) > 0


DASHBOARD = Path(__file__).parents[2] / "docs" / "fleet" / "grafana-dashboard.json"


def test_the_grafana_dashboards_queries_run_in_prometheus(
    server: Uvicorn, serve: Serve, prometheus: str
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 8
    workers = {str(w) for w in server.workers()}
    for expr in exprs:
        promql = expr.replace("$process", ".*").replace("$pid", ".*")
        _query(prometheus, promql)  # asserts status "success": the query parses and runs
    delay = next(e for e in exprs if "eventloop_delay" in e and "0.99" in e)
    promql = delay.replace("$process", ".*").replace("$pid", ".*").replace("[1m]", "[30s]")

    def p99() -> list[dict[str, Any]] | None:
        found = _query(prometheus, promql)
        return found if workers <= {r["metric"]["pid"] for r in found} else None

    _poll("the dashboard's p99 delay of each worker", p99)


def test_metrics_name_the_blocking_function_with_bounded_labels(
    server: Uvicorn, serve: Serve
) -> None:
    server.hit("/block", 12)

    # The block's series comes with the first block; the LS101 finding when the rule has seen
    # as many blocks as it needs, a scrape or more later on a loaded machine: wait for both.
    def blocks() -> str | None:
        text = serve.metrics() or ""
        lines = [ln for ln in text.splitlines() if ln.startswith("python_asyncio_blocks_total{")]
        named = any('function="slow_handler"' in ln for ln in lines)
        return text if named and 'loopscope_findings{code="LS101"' in text else None

    text = _poll("a block of slow_handler and its LS101 finding in /metrics", blocks)
    block_lines = [ln for ln in text.splitlines() if ln.startswith("python_asyncio_blocks_total{")]
    named = [ln for ln in block_lines if 'function="slow_handler"' in ln]
    assert all('cause="sleep"' in ln and 'file="' in ln and "tinyapp.py" in ln for ln in named)
    assert all('process="uvicorn"' in ln and 'pid="' in ln for ln in block_lines)
    # Every series carries pid and process.
    for line in text.splitlines():
        if line.startswith(("python_asyncio_", "loopscope_findings")):
            assert 'pid="' in line and 'process="' in line, line
    assert "python_asyncio_block_duration_seconds_bucket{" in text
    assert "python_asyncio_tasks{" in text and 'state="' in text
    assert 'loopscope_findings{code="LS101"' in text


def test_healthz_lists_every_process_and_what_it_is(server: Uvicorn, serve: Serve) -> None:
    health = serve.health()
    assert health["status"] == "ok"
    targets = {t["pid"]: t for t in health["targets"]}
    for worker in server.workers():
        assert targets[worker]["state"] == "live" and targets[worker]["loop"] is True
    assert targets[server.pid]["loop"] is False  # the supervisor runs no loop
    trackers = [t for t in targets.values() if t["process"] == "resource_tracker"]
    assert [t["state"] for t in trackers] in ([], ["no loop"])


def test_otlp_export_decodes_with_the_delay_of_each_worker(
    server: Uvicorn, serve: Serve, otlp: Otlp
) -> None:
    workers = {str(w) for w in server.workers()}

    def delays() -> list[tuple[dict[str, Any], Any]] | None:
        points = otlp.points("python.asyncio.eventloop.delay")
        pids = {str(a["pid"]) for a, p in points if p.count > 0}
        return points if workers <= pids else None

    points = _poll("both workers' delay over OTLP", delays)
    attributes, point = next((a, p) for a, p in points if str(a["pid"]) in workers)
    assert attributes["process"] == "uvicorn"
    assert sum(point.bucket_counts) == point.count
    assert list(point.explicit_bounds)[:2] == pytest.approx([0.0002, 0.0004], rel=1e-6)
    # The blocks of slow_handler (see the test above) go out as well, once they are seen.
    wanted = {
        "python.asyncio.eventloop.delay",
        "python.asyncio.tasks",
        "python.asyncio.blocks",
        "python.asyncio.block.duration",
        "loopscope.findings",
    }
    _poll("every metric over OTLP", lambda: True if wanted <= _metric_names(otlp) else None)
    blocks = [a for a, p in otlp.points("python.asyncio.blocks") if p.as_int > 0]
    assert any(a["function"] == "slow_handler" and a["cause"] == "sleep" for a in blocks)


def _metric_names(otlp: Otlp) -> set[str]:
    with otlp.lock:
        return {
            m.name
            for r in otlp.requests
            for rm in r.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }


def test_a_dying_worker_is_marked_gone_and_its_replacement_attached(
    server: Uvicorn, serve: Serve
) -> None:
    victim, survivor = server.workers()
    os.kill(victim, signal.SIGKILL)
    _poll("the dead worker marked gone", lambda: True if serve.state_of(victim) == "gone" else None)
    text = serve.metrics()
    assert text is not None and f'pid="{survivor}"' in text
    assert f'python_asyncio_eventloop_delay_seconds_count{{pid="{victim}"' not in text
    # uvicorn starts a new worker; serve attaches to it when it appears.
    replacement = _poll(
        "a replacement worker",
        lambda: next((w for w in server.workers() if w not in (victim, survivor)), None),
    )
    series = f'python_asyncio_eventloop_delay_seconds_count{{pid="{replacement}"'
    _poll(
        "the replacement in /metrics",
        lambda: True if series in (serve.metrics() or "") else None,
    )


def test_sigterm_detaches_from_every_process(server: Uvicorn, serve: Serve) -> None:
    # Runs last in this module: it ends serve.
    watched = [t["pid"] for t in serve.health()["targets"] if t["state"] == "live"]
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(30) == 0
    log = serve.log.read_text()
    assert_no_loopscope_traceback(log)
    assert "detached from" in log
    sockets = Path(f"/tmp/loopscope-{os.getuid()}")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    for pid in watched:
        for d in (sockets, Path(xdg, "loopscope") if xdg else sockets):
            assert not (d / f"{pid}.sock").exists(), log
    assert server.proc.poll() is None  # the server runs on
    assert _get(f"http://127.0.0.1:{server.port}/") == b"ok"


# -- bad input ---------------------------------------------------------------------------------


def test_a_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = loopscope("serve", "--listen", f"127.0.0.1:{port}", "1", state=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"loopscope: serve: --listen 127.0.0.1:{port}: the address is already in use"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the PIDs to watch, or --match REGEX"),
        (("--match", "("), "is not a regular expression"),
        (("--listen", "nowhere", "1"), "give HOST:PORT"),
        (("--otlp", "collector:4318", "1"), "is not an http:// or https:// URL"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    out = loopscope("serve", *args, state=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_process_that_is_not_python_is_named_and_serve_ends(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        out = loopscope(
            "serve", "--listen", f"127.0.0.1:{_free_port()}", str(sleeper.pid), state=tmp_path
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    assert out.returncode == 1
    assert f"process {sleeper.pid} (sleep 30) is not a Python process" in out.stderr
    assert "none of the given processes can be watched" in out.stderr
    assert_no_loopscope_traceback(out.stderr)
