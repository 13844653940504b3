"""loopscope's demos: an aiohttp service per scenario (``catalog.py``), each with a bug that only
shows under load and its fixed variant, and a load generator. ``loopscope demo NAME [--fixed]``
runs one; ``python -m loopscope.demos.service NAME [--fixed]`` runs it without loopscope."""
