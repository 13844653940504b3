# expect: clean
"""The twin of blocking_anyio_digest.py: the same uploads, checksummed with zlib's CRC-32 (C
code that releases the GIL) in one of anyio's worker threads (`anyio.to_thread.run_sync`), so
the loop keeps serving while they run. (Pure-Python CPU work in a thread would not do: it holds
the GIL, and the loop waits for it all the same.)
Run: python clean_anyio_digest.py
"""

import zlib

import _load
import anyio
from anyio.abc import SocketAttribute, SocketStream

CHUNK = 200_000


def checksum(data: bytes) -> int:
    return zlib.crc32(data)


async def handle(stream: SocketStream) -> None:
    async with stream:
        buffer = b""
        while True:
            try:
                buffer += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if not sep:
                continue
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += await stream.receive()
            body, buffer = rest[:length], rest[length:]
            reply = str(await anyio.to_thread.run_sync(checksum, body)).encode()
            await stream.send(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply)
            )


async def main() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    plan = {"method": "POST", "path": "/uploads", "body_size": CHUNK, "concurrency": 4}
    _load.start(port, [{**plan, "pause": 0.02}])
    await listener.serve(handle)


if __name__ == "__main__":
    anyio.run(main)
