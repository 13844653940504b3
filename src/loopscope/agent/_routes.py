"""The route a request is served by, as its web framework names it: ``GET /invoices/{cid}``.

The framework knows it while it serves the request, in the frames it has on the request's stack
(or await chain): Starlette and FastAPI in the ASGI ``scope`` they pass down, where their router
puts the matched route (``scope["route"]``, whose ``path`` is the pattern) beside the method;
aiohttp's server in the ``request`` that ``Application._handle`` resolved
(``request.match_info.route``, whose resource's ``canonical`` is the pattern). Only where the
agent already holds a stack or an await chain (a block's samples until one names it, the
census's walk of a task's chain) are those frames' locals read, and only of the framework frames
whose code has such a variable, innermost first: usually one read. A route inside a Starlette
``Mount`` is named by the mount's path (as matched) followed by its own pattern.

Stdlib only: the agent imports it.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

from ._codemap import local_map

MAX_ROUTE = 200  # characters of a route kept

# What a code object's frames may tell: the local to read and how, or None.
_SCOPE = "scope"  # Starlette / FastAPI: an ASGI scope
_REQUEST = "request"  # aiohttp's server: a web request
_KINDS: dict[types.CodeType, str | None] = {}
_MAX_CODES = 4096
_SCOPE_FRAMEWORKS = frozenset({"starlette", "fastapi"})
# aiohttp's frame that serves one request in the request's own task (``Application._handle``);
# the connection's task holds the request too, and must not count it again.
_AIOHTTP_HANDLE = "_handle"


def route_of(frames: Iterable[types.FrameType]) -> str | None:
    """The route of the request that ``frames`` (innermost first) serve, as ``METHOD pattern``;
    None when no framework frame among them knows one."""
    kinds = _KINDS
    for frame in frames:
        code = frame.f_code
        kind = kinds.get(code, "")
        if kind == "":
            kind = _kind(code)
        if kind is None:
            continue
        value = frame.f_locals.get(kind)
        route = _from_scope(value) if kind == _SCOPE else _from_request(value)
        if route is not None:
            return route[:MAX_ROUTE]
    return None


def stack_frames(frame: types.FrameType | None) -> Iterable[types.FrameType]:
    """``frame`` and its callers, innermost first."""
    while frame is not None:
        yield frame
        frame = frame.f_back


def _kind(code: types.CodeType) -> str | None:
    if len(_KINDS) > _MAX_CODES:
        _KINDS.clear()
    kind: str | None = None
    names = code.co_varnames
    if _SCOPE in names or _REQUEST in names:
        module = local_map().module(code.co_filename)
        if module in _SCOPE_FRAMEWORKS and _SCOPE in names:
            kind = _SCOPE
        elif module == "aiohttp" and code.co_name == _AIOHTTP_HANDLE and _REQUEST in names:
            kind = _REQUEST
    _KINDS[code] = kind
    return kind


def _from_scope(scope: Any) -> str | None:
    if type(scope) is not dict:
        return None
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return None
    # Inside a Mount the route's path is the part after the mount's; Starlette keeps the
    # mount's prefix as the root path's growth past the app's own ("app_root_path", set by the
    # first Mount).
    top, root = scope.get("app_root_path"), scope.get("root_path")
    if isinstance(top, str) and isinstance(root, str) and root.startswith(top):
        path = root[len(top) :] + path
    if scope.get("type") == "websocket":
        return f"WS {path}"
    method = scope.get("method")
    return f"{method} {path}" if isinstance(method, str) else path


def _from_request(request: Any) -> str | None:
    # The attribute, not the ``match_info`` property: nothing of the request is computed here.
    match = getattr(request, "_match_info", None)
    route = getattr(match, "route", None)
    resource = getattr(route, "resource", None)
    pattern = getattr(resource, "canonical", None)
    if not isinstance(pattern, str):
        return None
    method = getattr(request, "method", None)
    return f"{method} {pattern}" if isinstance(method, str) else pattern
