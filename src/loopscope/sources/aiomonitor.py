"""Tasks seen from outside: the HTTP API of aiomonitor, when the target runs it.

aiomonitor (``aiomonitor.start_monitor(loop)``) serves a web UI on its own thread whose API
lists the monitored loop's tasks: ``POST /api/live-tasks``, ``/api/terminated-tasks`` and
``/api/task-count``, which read form-encoded bodies only (a JSON body is silently ignored and
the defaults apply). Terminated tasks are recorded only with its task factory
(``hook_task_factory=True``), which also gives the running time of live tasks.

The port is found from the target's own listening sockets, never assumed: several monitored
processes on one host all listen on 20102 by default, with ``SO_REUSEPORT``, and the kernel
hands each new connection to any of them. So every answer is kept only if the connection it
came on was accepted by the target itself (its end of the connection is one of the target's
file descriptors); otherwise the request is made again on a new connection.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from loopscope.attach._proc import exists as process_exists
from loopscope.attach._proc import listening, serves
from loopscope.events import Census, Event, ExternalTasks, SourceState, TaskGroup

SOURCE_NAME = "aiomonitor"
DEFAULT_PORT = 20102  # aiomonitor's web UI port by default: probed first
DEFAULT_INTERVAL = 1.0  # seconds between reads of the task lists
_TIMEOUT = 2.0
_PROBE_TIMEOUT = 0.5
_MAX_PROBED = 16  # listening ports probed, at most
# Connections made to reach the target itself, when other processes share its port: each
# lands on one of them at random, so this many misses in a row is very unlikely.
_MAX_TRIES = 24
_MAX_GROUPS = 50
_MAX_NAMES = 5
_MAX_FAILURES = 5  # failed reads in a row before the source says it lost aiomonitor
# aiomonitor's durations: [Ny][Nm][Nd][Nh]MM:SS.fff
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?(\d+):(\d+)(\.\d+)?$")
_UNITS = (365 * 86400, 30 * 86400, 86400, 3600, 60, 1)


class NotServed(Exception):
    """No answer from the target itself (its port is shared, or nobody answered)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    pid: int
    host: str
    port: int
    version: str  # aiomonitor's version, as its API says

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"

    def post(self, path: str, form: dict[str, str], timeout: float = _TIMEOUT) -> Any:
        """The JSON answer of the target's aiomonitor to a form-encoded POST."""
        return request(self.pid, self.host, self.port, "POST", path, form, timeout)


def request(
    pid: int,
    host: str,
    port: int,
    method: str,
    path: str,
    form: dict[str, str] | None = None,
    timeout: float = _TIMEOUT,
) -> Any:
    """The parsed JSON answer of process ``pid``'s server on ``host:port``; NotServed when
    no connection reached the process itself, or the answer is not JSON."""
    body = urlencode(form) if form is not None else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
    for _ in range(_MAX_TRIES):
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            # The server keeps the connection open (HTTP/1.1): whose end is it?
            sock = connection.sock
            mine = sock is not None and serves(pid, port, sock.getsockname()[1])
        except (OSError, http.client.HTTPException) as e:
            raise NotServed(f"{host}:{port}: {e}") from None
        finally:
            connection.close()
        if not mine:
            continue
        if response.status != 200:
            raise NotServed(f"{host}:{port}{path}: HTTP {response.status}")
        try:
            return json.loads(data)
        except ValueError:
            raise NotServed(f"{host}:{port}{path}: not JSON") from None
    raise NotServed(f"{host}:{port}: every connection reached another process")


def find(pid: int, ports: Sequence[tuple[str, int]] | None = None) -> Endpoint | None:
    """The aiomonitor web UI of process ``pid``: the one of its own listening ports whose
    ``/api/version`` and ``/api/task-count`` answer as aiomonitor's do. None if none does."""
    candidates = listening(pid) if ports is None else list(ports)
    candidates.sort(key=lambda a: (a[1] != DEFAULT_PORT, a[1]))
    for host, port in candidates[:_MAX_PROBED]:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        try:
            version = request(pid, host, port, "GET", "/api/version", timeout=_PROBE_TIMEOUT)
            if not isinstance(version, dict) or not isinstance(version.get("value"), str):
                continue
            count = request(pid, host, port, "POST", "/api/task-count", {}, timeout=_PROBE_TIMEOUT)
        except NotServed:
            continue
        if isinstance(count, dict) and isinstance(count.get("value"), int):
            return Endpoint(pid, host, port, version["value"])
    return None


def seconds(text: Any) -> float:
    """aiomonitor's "01:02.500" (or "1d02h03:04.000") in seconds; 0 for "-" or anything else."""
    found = _DURATION.match(text) if isinstance(text, str) else None
    if found is None:
        return 0.0
    *whole, fraction = found.groups()
    total = sum(int(v) * unit for v, unit in zip(whole, _UNITS, strict=True) if v)
    return total + (float(fraction) if fraction else 0.0)


def _coroutine(task: dict[str, Any]) -> str:
    return str(task.get("coro", "?")).removesuffix("()")


def group_live(tasks: Sequence[dict[str, Any]]) -> tuple[TaskGroup, ...]:
    """Live tasks by coroutine: how many, the longest running, where they were created."""
    return _group(tasks, lambda t: seconds(t.get("since")), "created_location")


def group_terminated(tasks: Sequence[dict[str, Any]]) -> tuple[TaskGroup, ...]:
    """Terminated tasks by coroutine, most recently terminated first: how many, the longest
    that one of them ran."""
    return _group(
        tasks,
        lambda t: max(0.0, seconds(t.get("started_since")) - seconds(t.get("terminated_since"))),
        None,
    )


def _group(
    tasks: Sequence[dict[str, Any]], age: Callable[[dict[str, Any]], float], where: str | None
) -> tuple[TaskGroup, ...]:
    counts: Counter[str] = Counter()
    oldest: dict[str, float] = {}
    places: dict[str, Counter[str]] = {}
    names: dict[str, list[str]] = {}
    for task in tasks:
        if not isinstance(task, dict):
            continue
        coro = _coroutine(task)
        counts[coro] += 1
        oldest[coro] = max(oldest.get(coro, 0.0), age(task))
        place = str(task.get(where, "-")) if where else "-"
        if place != "-":
            places.setdefault(coro, Counter())[place] += 1
        listed = names.setdefault(coro, [])
        if len(listed) < _MAX_NAMES:
            listed.append(str(task.get("name", "")))
    return tuple(
        TaskGroup(
            coroutine=coro,
            count=n,
            oldest=oldest[coro],
            created_at=places[coro].most_common(1)[0][0] if coro in places else "",
            names=tuple(names[coro]),
        )
        for coro, n in counts.most_common(_MAX_GROUPS)
    )


class AiomonitorSource:
    """Process ``pid``'s tasks from its aiomonitor, every ``interval`` s: a `Census` (the
    count of live tasks; aiomonitor tells no state or await site) and an `ExternalTasks`
    (live and recently terminated tasks by coroutine).

    Without an aiomonitor in the process, it yields ``SourceState(state="unavailable")`` and
    ends; it ends with "ended" when the process exits.
    """

    def __init__(
        self,
        pid: int,
        *,
        interval: float = DEFAULT_INTERVAL,
        endpoint: Endpoint | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self.pid = pid
        self.interval = interval
        self.endpoint = endpoint
        self._alive = alive or (lambda: process_exists(pid))
        self._closed = threading.Event()
        self.live = False

    def events(self) -> Iterator[Event]:
        endpoint = self.endpoint or find(self.pid)
        if endpoint is None:
            yield self._state("unavailable", f"no aiomonitor web UI among the ports of {self.pid}")
            return
        self.endpoint = endpoint
        failures = 0
        why = ""
        while not self._closed.is_set():
            started = time.monotonic()
            try:
                events = self._read(endpoint)
            except NotServed as e:
                failures += 1
                why = str(e)
                if not self._alive():
                    yield self._state("ended", "the program exited")
                    return
                if failures >= _MAX_FAILURES:
                    yield self._state("lost", why)
                    return
            else:
                failures = 0
                if not self.live:
                    self.live = True
                    yield self._state("live", f"on :{endpoint.port}")
                yield from events
            # Large task lists take aiomonitor a while: never spend over a fifth of the time.
            took = time.monotonic() - started
            self._closed.wait(max(self.interval, 5 * took) - took)
        yield self._state("ended", "closed")

    def _read(self, endpoint: Endpoint) -> list[Event]:
        live = endpoint.post("/api/live-tasks", {"filter": "", "persistent": "false"})
        terminated = endpoint.post("/api/terminated-tasks", {"filter": "", "persistent": "false"})
        count = endpoint.post("/api/task-count", {"task_type": "terminated"})
        tasks = live.get("tasks") if isinstance(live, dict) else None
        ended = terminated.get("tasks") if isinstance(terminated, dict) else None
        if not isinstance(tasks, list) or not isinstance(ended, list):
            raise NotServed(f"{endpoint.label}: not aiomonitor's task lists")
        ended_total = count.get("value") if isinstance(count, dict) else None
        t = time.time()
        return [
            Census(t=t, loop=0, total=len(tasks), inspected=len(tasks)),
            ExternalTasks(
                t=t,
                source=SOURCE_NAME,
                endpoint=endpoint.label,
                total=len(tasks),
                live=group_live(tasks),
                terminated_total=ended_total if isinstance(ended_total, int) else len(ended),
                terminated=group_terminated(ended),
            ),
        ]

    def close(self) -> None:
        self._closed.set()

    def _state(self, state: str, detail: str) -> SourceState:
        return SourceState(t=time.time(), source=SOURCE_NAME, state=state, detail=detail)
