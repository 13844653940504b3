"""Run a program with the loopscope agent installed before its first loop starts.

    python /path/to/agent/_launch.py SCRIPT [ARGS...]
    python /path/to/agent/_launch.py -m MODULE [ARGS...]

with ``LOOPSCOPE_SOCKET`` naming the socket to serve on (and optionally ``LOOPSCOPE_COLLECTORS``
the collectors to run, e.g. ``-lifecycle``). The program runs as ``python SCRIPT
ARGS`` / ``python -m MODULE ARGS`` would run it: same ``sys.argv``, ``sys.path[0]`` and
``__main__``, same messages and exit codes for a missing file, a syntax error or an exception.

This file is run directly, not imported: it loads the agent package from its own directory
under a private name, so the program can have any (or no) loopscope installed.
"""

from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import io
import os
import runpy
import signal
import sys
from types import ModuleType, TracebackType

USAGE = "usage: _launch.py (SCRIPT | -m MODULE) [ARGS...]"
_HERE = os.path.dirname(os.path.abspath(__file__))


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2
    if args[0] == "-m" and len(args) < 2:
        print("Argument expected for the -m option", file=sys.stderr)
        return 2

    agent = _load_agent()
    socket_path = os.environ.pop("LOOPSCOPE_SOCKET", None)
    # Taken out of the environment like the socket, so the program's own children do not start
    # with it; None means every collector.
    collectors = os.environ.pop("LOOPSCOPE_COLLECTORS", None)
    # The program's own command line before the agent starts: its hello, which a client may ask
    # for at once, names the program rather than this launcher.
    if args[0] == "-m":
        sys.path[0] = os.getcwd()
        sys.argv = [_module_origin(args[1]), *args[2:]]
    else:
        sys.argv = list(args)
    try:
        agent.install(socket_path=socket_path, collectors=collectors)
    except ValueError as e:
        print(f"loopscope: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"loopscope: cannot serve on {socket_path or 'the default socket'}: {e}",
            file=sys.stderr,
        )
        return 2

    try:
        if args[0] == "-m":
            # What ``python -m`` itself calls: runs in the real __main__, sets sys.argv[0].
            runpy._run_module_as_main(args[1], alter_argv=True)  # type: ignore[attr-defined]
        else:
            script = args[0]
            sys.path[0] = os.path.dirname(os.path.realpath(script))
            if not os.path.exists(script):
                return _cannot_open(script)
            if os.path.isfile(script):
                _run_file(script)
            else:  # a directory or zip file with a __main__.py
                runpy.run_path(script, run_name="__main__")
    except SystemExit:
        raise  # the interpreter reports it and exits with its code, as for the program itself
    except KeyboardInterrupt as e:
        _report(e)
        agent.uninstall()
        # Die of SIGINT as Python does, so the parent sees the signal.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException as e:
        _report(e)
        return 1
    return 0


def _module_origin(name: str) -> str:
    """The file ``python -m NAME`` runs, which becomes ``sys.argv[0]`` once it starts (parent
    packages are imported to find it, as ``-m`` does); ``"-m"``, what ``python -m`` shows until
    then, where it cannot be found here (runpy then reports why, as Python would)."""
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(name + ".__main__")
    except Exception:  # a broken parent package: runpy says so in Python's own words
        return "-m"
    return spec.origin if spec is not None and spec.origin else "-m"


def _run_file(script: str) -> None:
    """Run ``script`` as the interpreter runs its main script: in a fresh ``__main__`` module
    that stays in place afterwards, with an absolute ``__file__`` and ``sys.argv[0]`` as given
    (``runpy.run_path`` would set ``sys.argv[0]`` to its path argument)."""
    path = os.path.abspath(script)
    with io.open_code(path) as f:
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    main = ModuleType("__main__")
    main.__file__ = path
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _load_agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_loopscope_loader", os.path.join(_HERE, "_loader.py")
    )
    assert spec is not None and spec.loader is not None
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    return loader.load_from_directory(_HERE, loader.private_name(_agent_version()))  # type: ignore[no-any-return]


def _agent_version() -> str:
    with open(os.path.join(_HERE, "events.py"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("AGENT_VERSION"):
                return line.split("=", 1)[1].strip().strip("\"'")
    return "0"


def _cannot_open(script: str) -> int:
    program = (getattr(sys, "orig_argv", None) or [sys.executable])[0]
    path = os.path.abspath(script)
    print(
        f"{program}: can't open file {path!r}: [Errno 2] No such file or directory",
        file=sys.stderr,
    )
    return 2


def _report(error: BaseException) -> None:
    """Print ``error`` through ``sys.excepthook`` without the launcher's and runpy's frames."""
    tb = _strip(error.__traceback__)
    # The interpreter prints the exception's own __traceback__, not the one passed in.
    sys.excepthook(type(error), error.with_traceback(tb), tb)


def _strip(tb: TracebackType | None) -> TracebackType | None:
    me = os.path.abspath(__file__)
    while tb is not None and (
        tb.tb_frame.f_globals.get("__name__") == "runpy"
        or os.path.abspath(tb.tb_frame.f_code.co_filename) == me
    ):
        tb = tb.tb_next
    return tb


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
