"""Race windows in source code: read a shared value, ``await``, write it back from what was read.

`scan_source` finds them in the ``async def`` functions of one file. Each function is cut out of
the file (`inspect.getblock`, pure Python) and parsed on its own, so that no single call into the
parser, which holds the GIL throughout, stalls the program's loop for more than a function's worth
of parsing.

Within a function the analysis follows the statements in order, along every path (both arms of an
``if``, loop bodies twice for values carried round a loop, ``try`` handlers from any point). It
tracks *facts*: "this value came from reading target T at line L". A fact lives in the locals
assigned from it (and in the tests of enclosing ``if`` statements); every ``await``
passed (an ``await``, an ``async for`` step, entering or leaving an ``async with``) marks the live
facts as stale. A write of T whose value uses a stale fact of T (read-modify-write: a lost
update), or which sits under a test that used one (check-then-act: a double booking or double
spend), is a race window: another task may have written T during the await. A test guards what
its arms do and, when one arm leaves the block (``if code in self.spent: return``), the rest of
the block too. Writes include mutating method calls (``self.spent.add(code)``,
``SCORES[k].append(x)``), and a write of ``C[k]`` or through a method of C is guarded by tests of
C (``k in C``, ``len(C)``, ``C.get(k)``).

Targets are ``self.x`` / ``obj.attr`` (attribute chains, module-level objects included),
subscripts with a simple key (``d[k]``, ``self.d["a"]``, ``STOCK[item]``), and names declared
``global`` or ``nonlocal``. Nested functions and
lambdas are not part of the function that defines them (a nested ``async def`` is scanned as a
function of its own).
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .events import RaceSpan

MAX_FILE_BYTES = 2_000_000  # bigger files are not scanned
MAX_FUNCTION_LINES = 2_000  # nor bigger functions
MAX_WINDOWS_PER_FUNCTION = 20
MAX_AWAIT_LINES = 8  # await lines listed per window
_LOCK_WORDS = ("lock", "mutex", "sem")  # an ``async with`` on a name like these guards its body
# Methods that change the container they are called on: ``T.add(x)`` writes T.
# fmt: off
_MUTATORS = frozenset((
    "add", "append", "appendleft", "extend", "extendleft", "insert", "update", "setdefault",
    "pop", "popitem", "popleft", "remove", "discard", "clear", "__setitem__", "__delitem__",
))
# fmt: on
# Methods that only read their container: a test of ``T.get(k)`` is a test of T.
_READERS = frozenset({"get", "keys", "values", "items", "count", "index", "__contains__"})
_ASYNC_DEF = re.compile(r"^([ \t]*)async[ \t]+def[ \t]+(\w+)")
_HEADER = re.compile(r"^([ \t]*)(?:async[ \t]+)?(def|class)[ \t]+(\w+)")


@dataclass(frozen=True, slots=True)
class Window:
    """A race window and what the runtime detector needs to tell whose it is."""

    span: RaceSpan
    name: str  # the function's own name (its code's co_name)
    root: str  # the name the target starts from: "self", "STOCK", "counter"
    attrs: tuple[str, ...]  # attributes after the root, the last one included for attributes
    key: str | None  # for a subscript: the local name or constant (repr) that is the key
    key_is_name: bool
    awaits: frozenset[int]  # the span's await lines, for the runtime's membership test


def scan_source(source: str, file: str) -> tuple[list[Window], int]:
    """The race windows of the ``async def`` functions in ``source``, and how many functions were
    analysed."""
    lines = source.splitlines(keepends=True)
    windows: list[Window] = []
    functions = 0
    for index, line in enumerate(lines):
        match = _ASYNC_DEF.match(line)
        if match is None:
            continue
        node, offset = _parse_function(lines, index, len(match.group(1).expandtabs()))
        if node is None:
            continue
        functions += 1
        qualname = _qualname(lines, index, match.group(2))
        windows += analyse(node, file, qualname, offset)
    return windows, functions


def _parse_function(
    lines: list[str], index: int, indent: int
) -> tuple[ast.AsyncFunctionDef | None, int]:
    """The function whose ``async def`` is at ``lines[index]``, parsed alone, with the number to
    add to its line numbers to make them the file's."""
    # Back to the first decorator (lines deeper than the def continue a decorator's arguments).
    start = index
    for j in range(index - 1, max(-1, index - 50), -1):
        stripped = lines[j].lstrip()
        own = len(lines[j].expandtabs()) - len(stripped.expandtabs())
        if not stripped.strip():
            break
        if own == indent and stripped.startswith("@"):
            start = j
        elif own <= indent:
            break
    try:
        block = inspect.getblock(lines[start : start + MAX_FUNCTION_LINES])
    except Exception:  # tokenize's complaints (TokenError, SyntaxError, ...) about odd source
        return None, 0
    if len(block) >= MAX_FUNCTION_LINES:
        return None, 0
    text = "".join(block)
    offset = start
    if indent:
        # An indented block parses as the body of an ``if``; its lines move down by one.
        text = "if 1:\n" + text
        offset -= 1
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None, 0
    node = tree.body[0] if tree.body else None
    if indent and isinstance(node, ast.If):
        node = node.body[0] if node.body else None
    if not isinstance(node, ast.AsyncFunctionDef):
        return None, 0
    return node, offset


def _qualname(lines: list[str], index: int, name: str) -> str:
    """The qualified name of the function defined at ``lines[index]``, from the headers of the
    blocks that enclose it (judged by indentation)."""
    parts = [name]
    indent = len(lines[index]) - len(lines[index].lstrip())
    for line in reversed(lines[:index]):
        if not indent:
            break
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        own = len(line) - len(stripped)
        if own >= indent:
            continue
        indent = own
        match = _HEADER.match(line)
        if match is not None:
            parts.append(
                match.group(3) if match.group(2) == "class" else f"{match.group(3)}.<locals>"
            )
    return ".".join(reversed(parts))


# -- the analysis ---------------------------------------------------------------------------------

# A fact: (target text, line of the read, locks held at the read)
Fact = tuple[str, int, tuple[int, ...]]


class _State:
    """What is known at one point of one path through the function."""

    __slots__ = ("awaited", "taint")

    def __init__(self) -> None:
        self.taint: dict[str, frozenset[Fact]] = {}  # local name -> facts its value came from
        self.awaited: dict[Fact, frozenset[int]] = {}  # fact -> await lines passed since the read

    def copy(self) -> _State:
        other = _State()
        other.taint = dict(self.taint)
        other.awaited = dict(self.awaited)
        return other


def _merge(a: _State | None, b: _State | None) -> _State | None:
    if a is None:
        return b.copy() if b is not None else None
    if b is None:
        return a.copy()
    out = a.copy()
    for name, facts in b.taint.items():
        out.taint[name] = out.taint.get(name, frozenset()) | facts
    for fact, lines in b.awaited.items():
        out.awaited[fact] = out.awaited.get(fact, frozenset()) | lines
    return out


class _Analysis:
    def __init__(self, node: ast.AsyncFunctionDef, file: str, qualname: str, offset: int) -> None:
        self.node = node
        self.file = file
        self.qualname = qualname
        self.offset = offset
        self.globals = _declared(node)
        self.locals = _locals(node) - self.globals
        # (target, read line, write line, via) -> (await lines, guarded, the target's node)
        self.found: dict[tuple[str, int, int, str], tuple[set[int], bool, ast.expr]] = {}
        self.control: list[frozenset[Fact]] = []  # facts of the enclosing tests
        self.locks: list[int] = []  # the lock-like ``async with`` statements around this point
        self.nodes: dict[str, ast.expr] = {}  # target text -> a node spelling it
        # The facts of an ``if`` one arm of which leaves the block (``if seat in self.booked:
        # return``): the statements after it run only when the test went the other way.
        self.dominating: frozenset[Fact] | None = None

    # -- targets ----------------------------------------------------------------------------------

    def target(self, node: ast.expr) -> str | None:
        """The text of ``node`` if it is something shared that a race can be about."""
        if isinstance(node, ast.Name):
            return node.id if node.id in self.globals else None
        if isinstance(node, ast.Attribute):
            return _chain(node)
        if isinstance(node, ast.Subscript):
            container = _chain(node.value)
            key = node.slice
            if container is None or container in self.locals:  # a dict of this call's own
                return None
            if isinstance(key, ast.Name):
                return f"{container}[{key.id}]"
            if isinstance(key, ast.Constant) and isinstance(key.value, (str, int)):
                return f"{container}[{key.value!r}]"
        return None

    # -- expressions, in evaluation order -------------------------------------------------------

    def expr(self, node: ast.AST | None, state: _State) -> tuple[frozenset[Fact], set[str]]:
        """Evaluate ``node``: record its reads and awaits in ``state``; the facts its value
        comes from (reads of targets) and the local names it uses."""
        facts: set[Fact] = set()
        names: set[str] = set()
        if node is not None:
            self._walk(node, state, facts, names)
        for name in names:
            facts |= state.taint.get(name, frozenset())
        return frozenset(facts), names

    def _walk(self, node: ast.AST, state: _State, facts: set[Fact], names: set[str]) -> None:
        if isinstance(node, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return
        for child in ast.iter_child_nodes(node):
            self._walk(child, state, facts, names)
        if isinstance(node, ast.Await):
            self.passed_await(node, state)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _MUTATORS and self.target(node.func.value) is not None:
                self.mutated(node, state)
        elif isinstance(node, ast.comprehension) and node.is_async:
            self.passed_await(node.iter, state)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id in self.globals:
                facts.add(self.read(node, state))
            else:
                names.add(node.id)
        elif (
            isinstance(node, (ast.Attribute, ast.Subscript))
            and isinstance(node.ctx, ast.Load)
            and self.target(node) is not None
        ):
            facts.add(self.read(node, state))

    def read(self, node: ast.expr, state: _State) -> Fact:
        text = self.target(node)
        assert text is not None
        self.nodes.setdefault(text, node)
        fact = (text, node.lineno, tuple(self.locks))
        state.awaited[fact] = frozenset()  # read afresh
        return fact

    def passed_await(self, node: ast.AST, state: _State) -> None:
        first = getattr(node, "lineno", 0)
        last = getattr(node, "end_lineno", None) or first
        lines = frozenset(range(first, min(last, first + 3) + 1))
        for fact, seen in state.awaited.items():
            state.awaited[fact] = seen | lines

    def mutated(self, call: ast.Call, state: _State) -> None:
        """``T.add(x)``, ``T.pop(k)``, ...: a write of T. Its window is told apart at run time by
        the first argument when it is a name or a constant (``self.spent.add(code)``: the same
        code), as a subscript's is by its key."""
        assert isinstance(call.func, ast.Attribute)
        container = call.func.value
        first = call.args[0] if call.args else None
        node: ast.expr = container
        if isinstance(first, ast.Name) or (
            isinstance(first, ast.Constant) and isinstance(first.value, (str, int))
        ):
            node = ast.Subscript(value=container, slice=first, ctx=ast.Load())
            ast.copy_location(node, container)
        self.write(container, frozenset(), state, node=node)

    def write(
        self,
        target: ast.expr,
        deps: frozenset[Fact],
        state: _State,
        node: ast.expr | None = None,
    ) -> None:
        text = self.target(target)
        if text is None:
            return
        self.nodes.setdefault(text, target)
        # A write of ``C[k]`` (or a mutating call on C) is a write of C too: a test of ``k in
        # C``, ``len(C)`` or ``C.get(k)`` guards it.
        container = _chain(target.value) if isinstance(target, ast.Subscript) else None
        held = set(self.locks)
        for via, facts in (("value", deps), ("condition", frozenset().union(*self.control))):
            for fact in facts:
                if not _related(fact[0], text, container, via):
                    continue
                lines = state.awaited.get(fact)
                if not lines:
                    continue
                key = (text, fact[1], target.lineno, via)
                entry = self.found.get(key)
                guarded = bool(held.intersection(fact[2]))
                if entry is None:
                    self.found[key] = (set(lines), guarded, node or self.nodes[text])
                else:
                    entry[0].update(lines)

    def assign(self, target: ast.expr, deps: frozenset[Fact], state: _State) -> None:
        """Bind ``target`` (a local, a target, or a tuple of them) to a value from ``deps``."""
        if isinstance(target, ast.Name) and target.id not in self.globals:
            state.taint[target.id] = deps
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.assign(element, deps, state)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, deps, state)
        else:
            # The target's own parts (``self.d`` and ``k`` of ``self.d[k]``) are evaluated first.
            for child in ast.iter_child_nodes(target):
                if isinstance(child, ast.expr):
                    self.expr(child, state)
            self.write(target, deps, state)

    # -- statements -------------------------------------------------------------------------------

    def block(self, body: list[ast.stmt], state: _State | None) -> _State | None:
        pushed = 0
        try:
            for statement in body:
                if state is None:
                    return None
                state = self.statement(statement, state)
                if self.dominating is not None:
                    self.control.append(self.dominating)
                    self.dominating = None
                    pushed += 1
            return state
        finally:
            self.dominating = None
            del self.control[len(self.control) - pushed :]

    def statement(self, node: ast.stmt, state: _State) -> _State | None:
        if isinstance(node, ast.Assign):
            deps, _ = self.expr(node.value, state)
            for target in node.targets:
                self.assign(target, deps, state)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                deps, _ = self.expr(node.value, state)
                self.assign(node.target, deps, state)
        elif isinstance(node, ast.AugAssign):
            self.augmented(node, state)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                self.assign(target, frozenset(), state)
        elif isinstance(node, (ast.Return, ast.Raise)):
            for child in ast.iter_child_nodes(node):
                self.expr(child, state)
            return None
        elif isinstance(node, (ast.Break, ast.Continue)):
            return None
        elif isinstance(node, ast.If):
            direct: set[Fact] = set()
            names: set[str] = set()
            self._walk(node.test, state, direct, names)
            test = frozenset(direct).union(*(state.taint.get(n, frozenset()) for n in names))
            self.control.append(test)
            try:
                body = self.block(node.body, state.copy())
                orelse = self.block(node.orelse, state)
            finally:
                self.control.pop()
            # Only a test that reads the target itself (``code in self.spent``) guards the rest
            # of the block: a value looked up earlier and returned when present (``hit =
            # cache.get(k); if hit: return hit``) is a cache, whose concurrent misses fill it
            # twice with the same thing.
            if (body is None) != (orelse is None) and direct:
                self.dominating = frozenset(direct)
            return _merge(body, orelse)
        elif isinstance(node, (ast.While, ast.For, ast.AsyncFor)):
            return self.loop(node, state)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            return self.with_(node, state)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            return self.try_(node, state)
        elif type(node).__name__ == "Match":
            self.expr(node.subject, state)  # type: ignore[attr-defined]
            out: _State | None = None
            for case in node.cases:  # type: ignore[attr-defined]
                out = _merge(out, self.block(case.body, state.copy()))
            return _merge(out, state)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:
                self.expr(decorator, state)
        else:  # Expr, Assert, Global, Pass, Import, ...
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, state)
        return state

    def augmented(self, node: ast.AugAssign, state: _State) -> None:
        target = node.target
        if isinstance(target, ast.Name) and target.id not in self.globals:
            deps, _ = self.expr(node.value, state)
            state.taint[target.id] = state.taint.get(target.id, frozenset()) | deps
            return
        if self.target(target) is None:
            self.expr(node.value, state)
            return
        # ``T += v`` reads T before evaluating v: an await in v falls inside the window.
        for child in ast.iter_child_nodes(target):
            if isinstance(child, ast.expr):
                self.expr(child, state)
        read = self.read(target, state)
        deps, _ = self.expr(node.value, state)
        self.write(target, frozenset({read}) | deps, state)

    def loop(self, node: ast.While | ast.For | ast.AsyncFor, state: _State) -> _State | None:
        def step(current: _State) -> _State:
            if isinstance(node, ast.While):
                # A loop's test is not a check its body acts on (``while self.running: ...
                # self.running = False`` is no race): only an ``if``'s is.
                self.expr(node.test, current)
                self.control.append(frozenset())
            else:
                deps, _ = self.expr(node.iter, current)
                if isinstance(node, ast.AsyncFor):
                    self.passed_await(node.iter, current)
                self.assign(node.target, deps, current)
                self.control.append(frozenset())
            try:
                return self.block(node.body, current) or current
            finally:
                self.control.pop()

        # Twice round: a value read late in one turn may be written early in the next.
        first = step(state.copy())
        second = step(_merge(state, first) or state.copy())
        after = _merge(_merge(state, first), second)
        if after is not None and node.orelse:
            after = self.block(node.orelse, after)
        return after

    def with_(self, node: ast.With | ast.AsyncWith, state: _State) -> _State | None:
        lock = False
        for item in node.items:
            deps, _ = self.expr(item.context_expr, state)
            if isinstance(node, ast.AsyncWith):
                self.passed_await(item.context_expr, state)
                lock = lock or _lock_like(item.context_expr)
            if item.optional_vars is not None:
                self.assign(item.optional_vars, deps, state)
        if lock:
            self.locks.append(id(node))
        try:
            after = self.block(node.body, state)
        finally:
            if lock:
                self.locks.pop()
        if after is not None and isinstance(node, ast.AsyncWith):
            for item in node.items:  # ``__aexit__`` is awaited too
                self.passed_await(item.context_expr, after)
        return after

    def try_(self, node: ast.stmt, state: _State) -> _State | None:
        body = self.block(node.body, state.copy())  # type: ignore[attr-defined]
        anywhere = _merge(state, body)
        out = self.block(node.orelse, body) if body is not None else None  # type: ignore[attr-defined]
        for handler in node.handlers:  # type: ignore[attr-defined]
            if anywhere is not None:
                out = _merge(out, self.block(handler.body, anywhere.copy()))
        final = node.finalbody  # type: ignore[attr-defined]
        if final:
            return self.block(final, out if out is not None else anywhere)
        return out

    def windows(self) -> list[Window]:
        self.block(self.node.body, _State())
        decorators = [d.lineno for d in self.node.decorator_list]
        first_line = min([self.node.lineno, *decorators]) + self.offset
        out = []
        for (text, read_line, write_line, via), (lines, guarded, node) in self.found.items():
            span = RaceSpan(
                file=self.file,
                function=self.qualname,
                first_line=first_line,
                target=text,
                read_line=read_line + self.offset,
                await_lines=tuple(sorted(n + self.offset for n in lines))[:MAX_AWAIT_LINES],
                write_line=write_line + self.offset,
                via=via,
                guarded=guarded,
            )
            out.append(_window(span, self.node.name, node))
        # A value window says more than a condition one at the same lines.
        values = {
            (w.span.target, w.span.read_line, w.span.write_line)
            for w in out
            if w.span.via == "value"
        }
        out = [
            w
            for w in out
            if w.span.via == "value"
            or (w.span.target, w.span.read_line, w.span.write_line) not in values
        ]
        out.sort(key=lambda w: (w.span.read_line, w.span.write_line, w.span.target))
        return out[:MAX_WINDOWS_PER_FUNCTION]


def analyse(node: ast.AsyncFunctionDef, file: str, qualname: str, offset: int = 0) -> list[Window]:
    """The race windows of one parsed ``async def``; ``offset`` is added to its line numbers."""
    return _Analysis(node, file, qualname, offset).windows()


def _declared(node: ast.AsyncFunctionDef) -> frozenset[str]:
    """Names declared ``global`` or ``nonlocal`` in the function itself."""
    names: set[str] = set()
    for child in _own_nodes(node):
        if isinstance(child, (ast.Global, ast.Nonlocal)):
            names.update(child.names)
    return frozenset(names)


def _locals(node: ast.AsyncFunctionDef) -> frozenset[str]:
    """The function's parameters and the names it assigns."""
    arguments = node.args
    names = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
    names.update(a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None)
    for child in _own_nodes(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            names.add(child.id)
    return frozenset(names)


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield child
        yield from _own_nodes(child)


def _chain(node: ast.expr) -> str | None:
    """``self.a.b`` for an attribute chain rooted at a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _related(read: str, written: str, container: str | None, via: str) -> bool:
    """Whether a read of ``read`` bears on a write of ``written`` (``C[k]`` has ``container`` C):
    the same target, or a reading method of it (``C.get(k)`` for a write of ``C[k]``); for a
    test (``via`` "condition"), also the container written into (``k in C``, ``len(C)``) and,
    for a write of a whole C (``C.add(x)``), any element of it."""
    if read == written:
        return True
    base, _, method = read.rpartition(".")
    if method in _READERS and base in (written, container):
        return True
    if via != "condition":
        return False
    return read == container or (container is None and read.startswith(f"{written}["))


def _lock_like(node: ast.expr) -> bool:
    text = ast.unparse(node).lower()
    return any(word in text for word in _LOCK_WORDS)


def _window(span: RaceSpan, name: str, node: ast.expr) -> Window:
    key: str | None = None
    key_is_name = False
    chain: ast.expr = node
    if isinstance(node, ast.Subscript):
        chain = node.value
        if isinstance(node.slice, ast.Name):
            key, key_is_name = node.slice.id, True
        elif isinstance(node.slice, ast.Constant):
            key = repr(node.slice.value)
    text = _chain(chain) or ""
    root, _, rest = text.partition(".")
    attrs = tuple(rest.split(".")) if rest else ()
    return Window(span, name, root, attrs, key, key_is_name, frozenset(span.await_lines))
