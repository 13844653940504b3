"""sgrud's interactive screen beside loopscope, on the loaded program of benchmarks/anchors.py.

sgrud (a Textual TUI for Python 3.15) is driven as a user would drive it, with Textual's Pilot
(`App.run_test()`) in a script that the target's own 3.15 interpreter runs inside the target's
root: the app is sgrud's `SgrudApp` on `Monitor.attach(PID)` with the options of `sgrud PID`.
The script reads what the screen shows, from the rendered screen and from the widgets behind it:

- Tasks tab (key 2): the task tree, by each task's innermost function (what a row shows); the
  cursor moved down (key down) to the first task in `Lock.acquire` and to the first in
  `Event.wait`, and the stack panel it then shows (the await chain);
- Threads tab (key 1): the main thread's stack as each refresh shows it, for the rest of the
  window: how many refreshes caught `blocking_checksum`;
- Hotspots tab (key 5): the table of sampled functions (sgrud samples in the background from the
  start), at the end of the window.

Then loopscope attaches to the same target for a window of the same length (`attach --headless
--json --record`), and the census, blocks and findings it recorded are put beside it. Each tool's
window has the same paced load; the target's CPU per request is measured as in anchors.py.

    .venv/bin/python benchmarks/sgrud_screen.py [--window 8] [--rate 100] [--raw out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchors import BLOCK_EVERY, LOAD, REPO, SGRUD_PATH, TARGET, cpu_ticks, in_root

from loopscope.agent.events import Block, Census, TaskList
from loopscope.record.reader import Recording
from pythons import find_pythons, missing_reason, sid_root

VERSION = "3.15"

# Run by the target's 3.15 in its root, with sgrud on PYTHONPATH: argv = PID WINDOW.
DRIVER = r"""
import asyncio, json, re, sys, time
from collections import Counter
from collections.abc import Callable
from sgrud.monitor import Monitor
from sgrud.tui import SgrudApp, StackPanel
from textual.widgets import DataTable, Tree

pid, window = int(sys.argv[1]), float(sys.argv[2])
ROW = re.compile(r"Task-\d+ ")  # a row of the task tree


def screen(app):
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())


def frames(panel):
    return [f"{f.funcname} {f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in panel.last_frames]


async def main():
    out = {"first_data_s": None}
    start, cpu = time.perf_counter(), time.process_time()
    monitor = Monitor.attach(pid)
    app = SgrudApp(monitor)  # the options of `sgrud PID`: refresh 1 s, 100 samples/s, wall
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("2")
            while out["first_data_s"] is None and time.perf_counter() - start < 30:
                await pilot.pause(0.05)
                if ROW.search(screen(app)):
                    out["first_data_s"] = time.perf_counter() - start
            tree = app.query_one("#tasks-tree", Tree)
            labels = [node.label.plain for node in tree.root.children]
            out["tree_tasks"] = len(labels)
            out["tree_root"] = str(tree.root.label)
            out["tree_nested"] = sum(bool(node.children) for node in tree.root.children)
            leaves = Counter((label.split() + ["?", "?"])[1] for label in labels)
            out["by_leaf"] = leaves.most_common()
            panel = app.query_one("#task-stack", StackPanel)
            for want in ("Lock.acquire", "Event.wait"):
                presses = 0
                while presses < 60 and [f.funcname for f in panel.last_frames[:1]] != [want]:
                    await pilot.press("down")
                    await pilot.pause(0.02)
                    presses += 1
                out[want] = {"presses": presses, "title": panel.last_title, "chain": frames(panel),
                             "screen": screen(app)}
            out["tasks_tab_s"] = time.perf_counter() - start
            await pilot.press("1")
            looks, caught, seen = 0, 0, set()
            stack = app.query_one("#thread-stack", StackPanel)
            watch = time.perf_counter()
            while time.perf_counter() - watch < window:
                await pilot.pause(0.05)
                if app.snapshot is not None and id(app.snapshot) not in seen:
                    seen.add(id(app.snapshot))
                    looks += 1
                    caught += any(f.funcname == "blocking_checksum" for f in stack.last_frames)
            out["threads"] = {"refreshes": looks, "caught_blocking": caught, "screen": screen(app)}
            await pilot.press("5")
            await pilot.pause(0.3)
            table = app.query_one("#hot-table", DataTable)
            rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
            out["hotspots"] = {"rows": rows[:25], "screen": screen(app)}
    finally:
        monitor.close()
    out["seconds"] = time.perf_counter() - start
    out["own_cpu_s"] = time.process_time() - cpu
    print(json.dumps(out))


asyncio.run(main())
"""


def _phase(pid: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()`` beside the paced load: its result, with the target's CPU per second of the
    phase (at a paced load, proportional to its CPU per request) and the tool's own CPU."""
    start, before = time.perf_counter(), cpu_ticks(pid)
    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = time.perf_counter() - start
    result["phase_s"] = seconds
    result["target_cpu_per_s"] = (cpu_ticks(pid) - before) / os.sysconf("SC_CLK_TCK") / seconds
    result["tool_cpu_per_s"] = (
        after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
    ) / seconds
    return result


def _idle(window: float) -> dict[str, Any]:
    time.sleep(window)
    return {}


def _sgrud(pid: int, window: float) -> dict[str, Any]:
    argv = in_root(pid, VERSION, "-c", DRIVER, str(pid), str(window))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=window + 120)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _loopscope(pid: int, window: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        recording = Path(directory) / "session.lsrec"
        start = time.perf_counter()
        out = subprocess.run(
            [
                str(REPO / ".venv/bin/loopscope"),
                "attach",
                "--headless",
                "--json",
                "--duration",
                str(window),
                "--record",
                str(recording),
                str(pid),
            ],
            capture_output=True,
            text=True,
            timeout=window + 60,
        )
        seconds = time.perf_counter() - start
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
        report = json.loads(out.stdout)
        with Recording.open(recording) as rec:
            events = list(rec.events())
    censuses = [e for e in events if isinstance(e, Census)]
    blocks = [e for e in events if isinstance(e, Block)]
    lists = [e for e in events if isinstance(e, TaskList)]
    listed = lists[-1] if lists else None
    in_lock = [t for t in listed.tasks if t.kind == "lock"] if listed else []
    last = censuses[-1] if censuses else None
    named = Counter(
        next((f.function for f in b.stacks[0].frames if f.function == "blocking_checksum"), "?")
        for b in blocks
        if b.stacks
    )
    return {
        "seconds": seconds,
        "findings": [
            (f["code"], f["title"]) for f in report["findings"] if f["severity"] != "info"
        ],
        "census_total": last.total if last else None,
        "by_kind": dict(last.by_kind) if last else {},
        "inspected": last.inspected if last else None,
        "task_lists": len(lists),
        "listed": (listed.total, listed.sampled, len(listed.tasks)) if listed else None,
        "lock_waiters_listed": len(in_lock),
        "lock_chain": [f"{f.function} {Path(f.file).name}:{f.line}" for f in in_lock[0].chain]
        if in_lock
        else [],
        "sites": [(s.function, s.kind, s.count) for s in last.sites[:6]] if last else [],
        "resources": [(r.type, r.label, r.waiters) for r in last.resources[:3]] if last else [],
        "blocks": len(blocks),
        "blocks_named": dict(named),
        "block_ms": sorted(round(b.duration * 1000) for b in blocks),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--raw", help="write everything read (JSON, with the screens) here")
    args = parser.parse_args()
    python = find_pythons().get(VERSION)
    if python is None:
        print(f"skipped: {missing_reason(VERSION)}")
        return 0
    if not (sid_root() / SGRUD_PATH.lstrip("/") / "sgrud").is_dir():
        print(f"skipped: sgrud is not unpacked in {sid_root()}{SGRUD_PATH} (see BENCHMARKS.md)")
        return 0
    target = subprocess.Popen(
        [python, "-c", TARGET, str(BLOCK_EVERY)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the load's connections reset at the end
        text=True,
    )
    try:
        assert target.stdout is not None
        port = int(target.stdout.readline())
        pid = target.pid
        # One paced load through every phase (ended below): sgrud first, while the
        # connections' handler tasks are still near the top of its task tree.
        load = subprocess.Popen(
            [sys.executable, "-c", LOAD, str(port), str(args.rate), str(args.window * 3 + 120)],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        results = {
            "sgrud": _phase(pid, lambda: _sgrud(pid, args.window)),
            "none": _phase(pid, lambda: _idle(args.window)),
            "loopscope": _phase(pid, lambda: _loopscope(pid, args.window)),
        }
        load.kill()
        load.wait()
    finally:
        target.kill()
        target.wait()
    if args.raw:
        Path(args.raw).write_text(json.dumps(results, indent=1))
    _print(results)
    return 0


def _print(results: dict[str, dict[str, Any]]) -> None:
    base = results["none"]["target_cpu_per_s"]
    for name in ("sgrud", "loopscope"):
        r = results[name]
        cost = r["target_cpu_per_s"] / base if base else float("nan")
        print(
            f"== {name}: target CPU {cost:.2f}x of no tool; the tool's own CPU "
            f"{r['tool_cpu_per_s']:.0%} of a core over {r['phase_s']:.1f} s"
        )
        if "error" in r:
            print(f"   error: {r['error']}")
            continue
        if name == "sgrud":
            print(
                f"   first screen with the target's tasks: {r['first_data_s']:.1f} s; "
                f"Tasks tab read and driven by {r['tasks_tab_s']:.1f} s"
            )
            print(f"   Tasks tab: {r['tree_root']}, {r['tree_nested']} with children; by row:")
            print(f"     {r['by_leaf'][:6]}")
            for want in ("Lock.acquire", "Event.wait"):
                chosen = r[want]
                print(f"   cursor on a task in {want} ({chosen['presses']} x down):")
                print(f"     {chosen['title']}: {' <- '.join(chosen['chain'])}")
            t = r["threads"]
            print(
                f"   Threads tab: blocking_checksum on the main thread's stack in "
                f"{t['caught_blocking']} of {t['refreshes']} refreshes"
            )
            print("   Hotspots tab (self%, total%, function):")
            for row in r["hotspots"]["rows"][:8]:
                print(f"     {row[0]:>6} {row[1]:>6}  {row[4]}")
        else:
            print(f"   findings: {r['findings']}")
            print(
                f"   census: {r['census_total']} tasks ({r['inspected']} inspected), "
                f"by kind {r['by_kind']}"
            )
            print(
                f"   task lists: {r['task_lists']}, the last (total, sampled, listed) "
                f"{r['listed']}; in Lock.acquire: {r['lock_waiters_listed']} {r['lock_chain']}"
            )
            print(f"   await sites: {r['sites']}")
            print(f"   resources: {r['resources']}")
            print(f"   blocks: {r['blocks']}, named {r['blocks_named']}, ms {r['block_ms']}")


if __name__ == "__main__":
    raise SystemExit(main())
