"""The one code map: whose code a file is, and which frame of a stack is blamed."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import pytest

from loopscope.agent import _codemap
from loopscope.agent._census import CensusCollector
from loopscope.agent._guard import Guard
from loopscope.agent._periodic import LoopContext
from loopscope.codemap import (
    APP,
    FRAMEWORK,
    LIBRARY,
    LOOPSCOPE,
    NATIVE,
    STDLIB,
    CodeMap,
    named_function,
)
from loopscope.events import Block, Census, Event, Frame, Stack, TaskError, TaskErrors
from loopscope.model._blocks import BlockState
from loopscope.model._errors import ErrorState

STDLIB_DIR = "/usr/lib/python3.11"
SITE = "/srv/venv/lib/python3.11/site-packages"
CODE = CodeMap([STDLIB_DIR], [SITE])


@pytest.mark.parametrize(
    ("file", "kind"),
    [
        ("/srv/app/shop.py", APP),
        ("/work/loopscope/src/loopscope/demos/shop.py", APP),  # demos are applications
        (f"{SITE}/loopscope/demos/shop.py", APP),
        (f"{STDLIB_DIR}/asyncio/tasks.py", STDLIB),
        (f"{STDLIB_DIR}/json/decoder.py", STDLIB),
        ("<frozen importlib._bootstrap>", STDLIB),
        (f"{SITE}/starlette/routing.py", FRAMEWORK),
        (f"{SITE}/fastapi/routing.py", FRAMEWORK),
        (f"{SITE}/uvicorn/protocols/http/h11_impl.py", FRAMEWORK),
        (f"{SITE}/anyio/_backends/_asyncio.py", FRAMEWORK),
        (f"{SITE}/aiohttp/web_protocol.py", FRAMEWORK),
        (f"{SITE}/sniffio/_impl.py", FRAMEWORK),
        (f"{SITE}/h11/_connection.py", FRAMEWORK),
        (f"{SITE}/requests/sessions.py", LIBRARY),
        (f"{SITE}/six.py", LIBRARY),
        ("/other/env/lib/python3.12/site-packages/httpx/_client.py", LIBRARY),
        ("/other/env/lib/python3.12/site-packages/starlette/routing.py", FRAMEWORK),
        (f"{SITE}/loopscope/agent/_census.py", LOOPSCOPE),
        ("/x/loopscope/agent/_census.py", LOOPSCOPE),
        ("<loopscope agent>", LOOPSCOPE),
        ("/usr/lib/libc.so.6", NATIVE),
        ("0x7f3a2c", NATIVE),
    ],
)
def test_each_file_has_one_kind(file: str, kind: str) -> None:
    assert CODE.kind(file) == kind


def test_without_paths_the_usual_layouts_are_recognised() -> None:
    guess = CodeMap()
    assert guess.kind("/usr/lib/python3.12/asyncio/tasks.py") == STDLIB
    assert guess.kind("/venv/lib/python3.12/site-packages/anyio/to_thread.py") == FRAMEWORK
    assert guess.kind("/home/me/svc/app.py") == APP


def test_own_paths_are_loopscope_and_the_module_of_a_library_frame_is_known() -> None:
    code = CodeMap([STDLIB_DIR], [SITE], ["/opt/ls/loopscope"])
    assert code.kind("/opt/ls/loopscope/_watch.py") == LOOPSCOPE
    assert code.module(f"{STDLIB_DIR}/http/client.py") == "http"
    assert code.module(f"{SITE}/requests/api.py") == "requests"
    assert code.module("/srv/app/shop.py") is None


def test_the_agent_map_knows_this_interpreter() -> None:
    code = _codemap.local_map()
    assert code.kind(asyncio.__file__) == STDLIB
    assert code.kind(_codemap.__file__) == LOOPSCOPE
    assert code.kind(__file__) == APP
    import aiohttp

    assert code.kind(aiohttp.__file__) == FRAMEWORK


@pytest.mark.parametrize(
    ("qualname", "named"),
    [
        ("build_leaderboard.<locals>.<genexpr>", "build_leaderboard"),
        ("Board.rank.<locals>.<lambda>", "Board.rank"),
        ("f.<locals>.<listcomp>.<genexpr>", "f"),
        ("f.<locals>.helper", "f.<locals>.helper"),
        ("<genexpr>", "<genexpr>"),
        ("handle", "handle"),
    ],
)
def test_anonymous_functions_belong_to_the_named_one(qualname: str, named: str) -> None:
    assert named_function(qualname) == named


def _frames(*spec: tuple[str, int, str]) -> tuple[Frame, ...]:
    return tuple(Frame(f, line, fn) for f, line, fn in spec)


def test_the_blamed_frame_is_the_named_function_at_the_exact_line() -> None:
    app = "/srv/app/board.py"
    stack = _frames(
        (f"{STDLIB_DIR}/re/__init__.py", 10, "match"),
        (app, 14, "build.<locals>.<genexpr>"),
        (app, 14, "build"),
        (f"{SITE}/starlette/routing.py", 70, "request_response.<locals>.app"),
    )
    assert CODE.locate(stack) == Frame(app, 14, "build")
    # 3.10 has no qualified names: the caller in the same file names the expression.
    old = _frames((app, 14, "<genexpr>"), (app, 14, "build"))
    assert CODE.locate(old) == Frame(app, 14, "build")
    # A nested helper belongs to the function that defines and calls it...
    nested = _frames((app, 30, "build.<locals>.score"), (app, 33, "build"))
    assert CODE.locate(nested) == Frame(app, 30, "build")
    # ...but a handler a factory made, called by the framework, is its own.
    made = _frames(
        (app, 50, "make_route.<locals>.handler"), (f"{SITE}/aiohttp/web_app.py", 5, "_handle")
    )
    assert CODE.locate(made) == Frame(app, 50, "make_route.<locals>.handler")


def test_framework_frames_are_never_blamed_when_the_application_has_one() -> None:
    app = "/srv/app/api.py"
    stack = _frames(
        (f"{SITE}/anyio/_backends/_asyncio.py", 900, "run_sync_in_worker_thread"),
        (f"{SITE}/starlette/concurrency.py", 40, "run_in_threadpool"),
        (app, 12, "product"),
        (f"{SITE}/fastapi/routing.py", 200, "run_endpoint_function"),
    )
    assert CODE.locate(stack) == Frame(app, 12, "product")
    only_framework = stack[:2]
    assert CODE.locate(only_framework) == only_framework[0]
    with_library = _frames((f"{SITE}/requests/api.py", 3, "get"), *((f, 1, "x") for f in [app]))
    assert CODE.locate(with_library) == Frame(app, 1, "x")


def test_the_script_that_started_the_loop_is_not_blamed_for_its_callbacks() -> None:
    script = "/srv/app/serve.py"
    h11 = f"{SITE}/uvicorn/protocols/http/h11_impl.py"
    stack = _frames(
        (h11, 230, "H11Protocol.data_received"),
        (f"{STDLIB_DIR}/asyncio/events.py", 80, "Handle._run"),
        (f"{STDLIB_DIR}/asyncio/base_events.py", 1922, "BaseEventLoop._run_once"),
        (f"{STDLIB_DIR}/asyncio/base_events.py", 607, "BaseEventLoop.run_forever"),
        (f"{SITE}/uvicorn/server.py", 60, "Server.run"),
        (script, 46, "<module>"),
    )
    assert CODE.locate(stack) == stack[0]
    in_app = _frames((script, 12, "handler"), *((f.file, f.line, f.function) for f in stack[1:]))
    assert CODE.locate(in_app) == Frame(script, 12, "handler")
    # uvloop runs the loop in C: asyncio's runner is the last Python frame of the loop's.
    uvloop = _frames(
        (f"{SITE}/uvicorn/config.py", 450, "Config.load"),
        (f"{SITE}/uvicorn/server.py", 90, "Server.serve"),
        (f"{STDLIB_DIR}/asyncio/runners.py", 118, "Runner.run"),
        (f"{SITE}/uvicorn/server.py", 86, "Server.run"),
        (script, 58, "<module>"),
    )
    assert CODE.locate(uvloop) == uvloop[0]
    # With no Python frame inside the loop's (uvloop at work in C), the loop's own frame is named,
    # not the script: it did not do that work.
    in_c = uvloop[2:]
    assert CODE.locate(in_c) == uvloop[2]
    # With only asyncio's own frames inside (a transport reading), the innermost is named.
    transport = _frames(
        (f"{STDLIB_DIR}/asyncio/selector_events.py", 970, "_SelectorSocketTransport._read_ready"),
        *((f.file, f.line, f.function) for f in stack[1:]),
    )
    assert CODE.locate(transport) == transport[0]


def test_two_collectors_blame_the_same_frame() -> None:
    """The blocks and the task errors of one stack name one frame: both ask the map."""
    app = "/srv/app/board.py"
    stack = _frames(
        (app, 14, "build.<locals>.<genexpr>"),
        (app, 14, "build"),
        (f"{SITE}/starlette/routing.py", 70, "app"),
    )
    blocks = BlockState(30.0, lambda file, line: "")
    blocks.code = CODE
    blocks.apply(
        Block(
            t=1.0, loop=1, duration=0.1, task=None, cpu=0.1, samples=20, stacks=(Stack(20, stack),)
        )
    )
    errors = ErrorState()
    errors.code = CODE
    errors.task_errors(
        TaskErrors(
            t=1.0,
            loop=1,
            errors=(
                TaskError(
                    coroutine="build",
                    error="ValueError",
                    message="",
                    count=1,
                    stack=stack,
                    created=stack,
                ),
            ),
            dropped=0,
        )
    )
    (hot,) = blocks.view(2.0).hot
    (error,) = errors.errors_view()
    assert (hot.file, hot.line, hot.function) == (app, 14, "build")
    assert error.location == Frame(app, 14, "build") == error.created


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the await site's name needs co_qualname")
def test_the_census_site_is_the_application_frame_under_framework_plumbing() -> None:
    """A handler waiting inside a framework's coroutine (aiohttp's, really installed) waits at
    its own line, not in the framework's code."""
    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.streams import StreamReader

    out: list[Event] = []

    async def handler(reader: StreamReader) -> bytes:
        return await reader.read()  # the line the site names

    async def main() -> Census:
        loop = asyncio.get_running_loop()
        protocol = BaseProtocol(loop)
        protocol.connection_made(asyncio.Transport())
        reader = StreamReader(protocol, 2**16, loop=loop)
        task = asyncio.create_task(handler(reader))
        await asyncio.sleep(0)
        event = CensusCollector(LoopContext(loop, 1, out.append, Guard(out.append))).take()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return event

    census = asyncio.run(main())
    line = handler.__code__.co_firstlineno + 1
    assert [(s.function.rsplit(".", 1)[-1], s.line) for s in census.sites] == [("handler", line)]
