# expect: blocking checksum
"""A FastAPI service under uvicorn with two worker processes: the event loops run in the
children, none in the process that was started. Its `async def` endpoint checksums the
request's payload on the loop thread (about 40 ms of CPU), so each worker's loop stalls for every
request it serves, and loopscope must report it from the workers.

Reported in public: https://github.com/fastapi/fastapi/issues/4481 (with eight workers, requests
to an `async def` endpoint that blocks still wait for one another: workers do not unblock a loop).
Run: python blocking_uvicorn_workers.py
"""

import os

import _load
import uvicorn
from fastapi import FastAPI

app = FastAPI()
PAYLOAD = os.urandom(1 << 16)


def checksum(n: int) -> int:
    total = n
    for _ in range(16):  # about 40 ms of CPU in Python
        for byte in PAYLOAD[: 1 << 15]:
            total = (total * 31 + byte) & 0xFFFFFFFF
    return total


@app.get("/work/{n}")
async def work(n: int) -> dict[str, object]:
    return {"n": n, "sum": checksum(n), "pid": os.getpid()}


if __name__ == "__main__":
    probe = _load.listen()  # a free port for uvicorn to bind again (it binds before forking)
    port = probe.getsockname()[1]
    probe.close()
    _load.start(port, [{"path": "/work/{i}", "concurrency": 4, "pause": 0.02}])
    uvicorn.run(
        "blocking_uvicorn_workers:app", host="127.0.0.1", port=port, workers=2, log_level="warning"
    )
