# expect: blocking checksum
# also: saturation
"""An anyio upload service (anyio's TCP listener serves each connection in a task group) that
checksums each upload on the event loop: a pure-Python checksum over 200 KB takes tens of
milliseconds of CPU while every other connection waits.
Run: python blocking_anyio_digest.py
"""

import _load
import anyio
from anyio.abc import SocketAttribute, SocketStream

CHUNK = 200_000


def checksum(data: bytes) -> int:
    crc = 0
    for i in range(0, len(data), 2):
        crc = (crc * 31 + data[i]) & 0xFFFFFFFF
    for _ in range(3):
        crc = sum(data[i] ^ (crc & 0xFF) for i in range(len(data))) & 0xFFFFFFFF
    return crc


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
            reply = str(checksum(body)).encode()
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
