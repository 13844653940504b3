# expect: skip multi-process, see issue 18
"""A FastAPI service under uvicorn with two worker processes: the event loops run in the
children, none in the process that was started. Judged by issue 18 (many processes); kept in the
corpus so that it is run once that lands.
Run: python skip_uvicorn_workers.py
"""

import asyncio
import os

import _load
import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/work/{n}")
async def work(n: int) -> dict[str, int]:
    await asyncio.sleep(0.01)
    return {"n": n, "pid": os.getpid()}


if __name__ == "__main__":
    probe = _load.listen()  # a free port for uvicorn to bind again (it binds before forking)
    port = probe.getsockname()[1]
    probe.close()
    _load.start(port, [{"path": "/work/{i}", "concurrency": 8, "pause": 0.01}])
    uvicorn.run(
        "skip_uvicorn_workers:app", host="127.0.0.1", port=port, workers=2, log_level="warning"
    )
