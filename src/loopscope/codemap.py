"""The one code map: whose code a file is (the application's, a framework's, a library's, the
standard library's or loopscope's). The agent's own module, for the client's parts to ask."""

from loopscope.agent._codemap import (
    APP,
    FRAMEWORK,
    FRAMEWORKS,
    LIBRARY,
    LOOPSCOPE,
    NATIVE,
    STDLIB,
    CodeMap,
    named_function,
    owner,
)

__all__ = [
    "APP",
    "FRAMEWORK",
    "FRAMEWORKS",
    "LIBRARY",
    "LOOPSCOPE",
    "NATIVE",
    "STDLIB",
    "CodeMap",
    "named_function",
    "owner",
]
