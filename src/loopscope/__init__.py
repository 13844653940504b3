"""loopscope: a live profiler for Python asyncio programs, in the terminal."""

__version__ = "0.1.0"
