"""Load the agent package under a private module name.

The agent runs inside programs that may have their own (other) version of loopscope installed, or
none at all. Loaded here as e.g. ``_loopscope_agent_0_1_0``, its modules never clash with an
installed ``loopscope``: every import inside the package is relative.

This module imports nothing from its package, so the launcher can load it on its own, as a file.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

PREFIX = "_loopscope_agent_"


def private_name(version: str) -> str:
    """The module name the agent of ``version`` is loaded under."""
    return PREFIX + "".join(c if c.isalnum() else "_" for c in version)


def load_from_directory(directory: str, name: str) -> ModuleType:
    """The package whose files are in ``directory``, imported as ``name`` (or the one already
    imported under that name)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    init = os.path.join(directory, "__init__.py")
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[directory]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the loopscope agent from {directory}")
    return _exec(spec)


def load_from_sources(
    sources: Mapping[str, str], name: str, origin: str = "<loopscope-agent>"
) -> ModuleType:
    """The package made of ``sources`` ({"__init__": text, "events": text, ...}), imported as
    ``name``, with every one of its modules imported.

    For a process that has no loopscope on disk: the sources arrive over a socket.
    """
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    if "__init__" not in sources:
        raise ImportError("the agent sources have no __init__ module")
    finder = _SourceFinder(name, sources, origin)
    sys.meta_path.insert(0, finder)
    try:
        package = importlib.import_module(name)
        for module in sorted(sources):
            if module != "__init__" and not module.startswith("_launch"):
                importlib.import_module(f"{name}.{module}")
    finally:
        sys.meta_path.remove(finder)
    return package


def _exec(spec: importlib.machinery.ModuleSpec) -> ModuleType:
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        assert spec.loader is not None
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
    return module


class _SourceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, package: str, sources: Mapping[str, str], origin: str) -> None:
        self._package = package
        self._sources = sources
        self._origin = origin

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self._package:
            is_package, key = True, "__init__"
        elif fullname.startswith(self._package + "."):
            is_package, key = False, fullname[len(self._package) + 1 :]
        else:
            return None
        if key not in self._sources:
            return None
        spec = importlib.machinery.ModuleSpec(
            fullname, self, origin=f"{self._origin}/{key}.py", is_package=is_package
        )
        spec.has_location = True
        if is_package:
            spec.submodule_search_locations = []
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None and spec.origin is not None
        key = "__init__" if spec.name == self._package else spec.name.rpartition(".")[2]
        code = compile(self._sources[key], spec.origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)
