"""The one answer to "whose code is this file?": the application's, a framework's, a library's,
the standard library's, or loopscope's own.

The agent builds its map from the interpreter it runs in (`local_map`) and sends the same path
prefixes in its `hello`; the client builds an equal map from them. Every part of loopscope that
blames a frame asks a map, so two findings never blame two different frames.

- **framework**: the web and async stacks a service runs on (uvicorn, starlette, fastapi, anyio,
  aiohttp, ...). They call the application; the application's frame that they called is the one
  to blame, never theirs.
- **library**: any other installed package.
- **stdlib**: the standard library, asyncio included.
- **loopscope**: loopscope's agent (however it was loaded) and an installed loopscope; its demos
  are applications to observe.
- **native**: a C frame as py-spy ``--native`` names it.

Stdlib only: the agent imports it.
"""

from __future__ import annotations

import contextlib
import os
import re
import site
import sys
import sysconfig
from collections.abc import Iterable, Sequence

from .events import Frame

APP = "app"
FRAMEWORK = "framework"
LIBRARY = "library"
STDLIB = "stdlib"
LOOPSCOPE = "loopscope"
NATIVE = "native"

# Top-level modules whose frames are framework plumbing: they call the application.
FRAMEWORKS = frozenset(
    {
        "uvicorn",
        "starlette",
        "fastapi",
        "anyio",
        "sniffio",
        "aiohttp",
        "aiosignal",
        "multidict",
        "yarl",
        "frozenlist",
        "h11",
        "h2",
        "httptools",
        "uvloop",
        "websockets",
        "wsproto",
        "hypercorn",
        "gunicorn",
        "asgiref",
        "trio",
        "sanic",
        "quart",
        "litestar",
        "aiojobs",
    }
)

# Where loopscope's agent code shows up in a target's stacks: installed or from a checkout,
# or loaded privately from source sent over the bootstrap socket.
_LOOPSCOPE_MARKERS = ("/loopscope/agent/", "<loopscope", "_loopscope_agent")
_DEMOS = "/loopscope/demos/"
# Without known prefixes (no hello), recognise the usual layouts of an installed Python.
_STDLIB_GUESS = re.compile(r"/lib/python3\.\d+t?/", re.IGNORECASE)
_SITE_GUESS = re.compile(r"/(?:site|dist)-packages/")
# C frames, as py-spy --native names them: a shared object, a C source file, or an address.
_NATIVE = re.compile(r"(?:\.so(?:\.[\d.]+)?|\.c|\.h|\.cc|\.cpp|\.dylib|\.dll)$|^0x[0-9a-f]+$")
# Functions without a name of their own: generator expressions, comprehensions, lambdas.
_ANONYMOUS = frozenset({"<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>", "<lambda>"})
_LOCALS = ".<locals>."
_MAX_CACHE = 4096


def _prefixes(paths: Iterable[str]) -> tuple[str, ...]:
    out = {p.replace("\\", "/").rstrip("/") + "/" for p in paths if p}
    return tuple(sorted(out, key=len, reverse=True))


class CodeMap:
    """Classifies files by the standard library's and the installed packages' directories."""

    def __init__(
        self,
        stdlib_paths: Iterable[str] = (),
        site_paths: Iterable[str] = (),
        own_paths: Iterable[str] = (),
    ) -> None:
        self.stdlib_paths = tuple(stdlib_paths)
        self.site_paths = tuple(site_paths)
        self._stdlib = _prefixes(self.stdlib_paths)
        self._site = _prefixes(self.site_paths)
        self._own = _prefixes(own_paths)
        self._known = bool(self._stdlib)
        self._kinds: dict[str, str] = {}

    def kind(self, file: str) -> str:
        """One of `APP`, `FRAMEWORK`, `LIBRARY`, `STDLIB`, `LOOPSCOPE`, `NATIVE`."""
        kind = self._kinds.get(file)
        if kind is None:
            kind = self._kind(file.replace("\\", "/"))
            if len(self._kinds) >= _MAX_CACHE:
                self._kinds.clear()
            self._kinds[file] = kind
        return kind

    def is_app(self, file: str) -> bool:
        return self.kind(file) == APP

    def _kind(self, path: str) -> str:
        if _NATIVE.search(path):
            return NATIVE  # a C frame: never the application's code
        if _DEMOS in path:
            return APP  # the bundled demos are applications to observe, wherever installed
        if any(m in path for m in _LOOPSCOPE_MARKERS) or _under(path, self._own):
            return LOOPSCOPE
        if _under(path, _imported_loopscope()):
            return LOOPSCOPE  # a loopscope the program imported (for loopscope.watch)
        # Site directories usually live inside the standard library's directory: test first.
        top = self._site_module(path)
        if top is not None:
            if top == "loopscope":
                return LOOPSCOPE
            return FRAMEWORK if top in FRAMEWORKS else LIBRARY
        if path.startswith("<frozen") or _under(path, self._stdlib):
            return STDLIB
        if not self._known and _STDLIB_GUESS.search(path):
            return STDLIB
        if path.startswith("<"):
            return STDLIB  # <string>, <frozen ...>: not a file of the application's
        return APP

    def _site_module(self, path: str) -> str | None:
        prefix = _under(path, self._site)
        if prefix is not None:
            rest = path[len(prefix) :]
        else:
            match = _SITE_GUESS.search(path)
            if match is None:
                return None
            rest = path[match.end() :]
        return _top(rest)

    def _runs_loop(self, frame: Frame) -> bool:
        """Whether ``frame`` is asyncio's loop running a callback (or running at all)."""
        return (
            frame.function.rpartition(".")[2] in _LOOP_RUNNERS
            and self.module(frame.file) == "asyncio"
        )

    def module(self, file: str) -> str | None:
        """The top-level module a library or standard library frame belongs to ("http" for
        http/client.py); None for the application's."""
        path = file.replace("\\", "/")
        if path.startswith("<frozen "):
            return path[len("<frozen ") :].rstrip(">").split(".")[0]
        top = self._site_module(path)
        if top is not None:
            return top
        prefix = _under(path, self._stdlib)
        if prefix is not None:
            return _top(path[len(prefix) :])
        match = _STDLIB_GUESS.search(path)
        return _top(path[match.end() :]) if match is not None else None

    def locate(self, frames: Sequence[Frame]) -> Frame | None:
        """The frame to blame in a stack (innermost first): the innermost application frame,
        attributed to the named function that contains it (`owner`); else the innermost frame
        of an installed package (a library, then a framework); else the innermost frame. Only
        the frames inside the loop's callback count: not the script that started the loop (with
        no Python frame inside the loop's, as with uvloop at work in C, the loop's own frame is
        named)."""
        library: Frame | None = None
        framework: Frame | None = None
        for i, f in enumerate(frames):
            kind = self.kind(f.file)
            if kind == APP:
                return owner(frames, i, self)
            if kind == STDLIB and self._runs_loop(f):
                # The frames beyond are the code that started the loop (a script's
                # ``uvicorn.run(app)``): they did not do the work of the callback the loop
                # runs, and naming that line would send the user to the wrong place.
                break
            if kind == LIBRARY and library is None:
                library = f
            elif kind == FRAMEWORK and framework is None:
                framework = f
        found = library or framework
        if found is not None:
            return found
        return frames[0] if frames else None


_LOOP_RUNNERS = frozenset({"_run_once", "run_forever", "run_until_complete", "_run", "run"})


def _imported_loopscope() -> tuple[str, ...]:
    init = getattr(sys.modules.get("loopscope"), "__file__", None)
    return _prefixes([os.path.dirname(init)]) if isinstance(init, str) else ()


def _under(path: str, prefixes: tuple[str, ...]) -> str | None:
    return next((p for p in prefixes if path.startswith(p)), None)


def _top(rest: str) -> str:
    top = rest.split("/", 1)[0]
    return top[:-3] if top.endswith(".py") else top


def named_function(function: str) -> str:
    """The named function a qualified name belongs to: ``f.<locals>.<genexpr>`` -> ``f``,
    ``C.m.<locals>.<lambda>`` -> ``C.m``; a named function's own name otherwise. Where there is
    no qualified name (3.10), an anonymous function stays as it is."""
    while True:
        head, sep, last = function.rpartition(".")
        if not sep or last not in _ANONYMOUS:
            return function
        function = head[: -len(".<locals>")] if head.endswith(".<locals>") else head


def anonymous(function: str) -> bool:
    return function.rpartition(".")[2] in _ANONYMOUS


def owner(frames: Sequence[Frame], index: int, code: CodeMap) -> Frame:
    """The frame ``frames[index]`` (innermost first) is attributed to, at its own line: a
    generator expression, comprehension or lambda belongs to the named function that contains
    it, and so does a nested helper called by the function it is defined in
    (``f.<locals>.helper`` called from ``f``), but not one called from elsewhere (a handler that
    a factory made). Without qualified names (3.10), the application frame that called the
    anonymous one, in the same file, names it."""
    frame = frames[index]
    function = frame.function
    for outer in frames[index + 1 :]:
        nested = anonymous(function) or _LOCALS in function
        if not nested or outer.file != frame.file or code.kind(outer.file) != APP:
            break
        parent = function.rpartition(_LOCALS)[0]
        if not parent:  # no qualified name: the caller names it
            function = outer.function
        elif outer.function == parent:
            function = parent
        else:
            break
    if anonymous(function):
        function = named_function(function)
    if function == frame.function:
        return frame
    return Frame(frame.file, frame.line, function)


def library_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(standard library directories, installed packages' directories) of this interpreter."""
    paths = sysconfig.get_paths()
    stdlib = dict.fromkeys(paths[k] for k in ("stdlib", "platstdlib") if k in paths)
    return tuple(stdlib), tuple(dict.fromkeys(_site_paths(paths)))


def _site_paths(paths: dict[str, str]) -> list[str]:
    out = [paths[k] for k in ("purelib", "platlib") if k in paths]
    with contextlib.suppress(AttributeError):  # a virtualenv's old site.py lacks it
        out += site.getsitepackages()
    user = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user:
        out.append(user)
    out += [os.path.realpath(p) for p in out if p]
    return [p for p in out if p]


_local: CodeMap | None = None


def local_map() -> CodeMap:
    """The map of this interpreter, loopscope's own package and agent included."""
    global _local
    if _local is None:
        stdlib, sites = library_paths()
        # The agent's directory, and loopscope's package around it.
        own = []
        if "__file__" in globals():
            agent = os.path.dirname(os.path.abspath(__file__))
            own.append(agent)
            if os.path.basename(os.path.dirname(agent)) == "loopscope":
                own.append(os.path.dirname(agent))
        _local = CodeMap(stdlib, sites, own)
    return _local
