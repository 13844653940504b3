"""A place in the code: the one type for "file, line, function" on the client side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Located(Protocol):
    """Anything that names a place in the code by flat fields (events, snapshot rows)."""

    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def function(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int
    function: str

    @classmethod
    def of(cls, where: Located) -> Location:
        """The location named by ``where``'s ``file``, ``line`` and ``function``."""
        return cls(where.file, where.line, where.function)

    @property
    def key(self) -> str:
        """``"file:line:function"``: how tables key their rows and screens name a row to
        highlight."""
        return f"{self.file}:{self.line}:{self.function}"
