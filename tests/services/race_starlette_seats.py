# expect: race book
"""A Starlette booking service: `book(seat, user)` returns early when the seat is taken, awaits
the payment hold, then records the booking. Two users who ask for the same seat at once both
pass the test, both pay, and the second overwrites the first: a double booking.

The same check-then-act window (a flag tested, an await, then the flag set) is shown in public
at https://nicholaslyz.com/blog/2024/03/22/race-conditions-with-asyncio-in-python.
Run: python race_starlette_seats.py
"""

import asyncio
import random

import _load
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class Payments:
    async def hold(self, user: str) -> None:
        await asyncio.sleep(random.uniform(0.005, 0.02))  # the payment provider


class Booking:
    def __init__(self) -> None:
        self.booked: dict[str, str] = {}
        self.payments = Payments()

    async def book(self, seat: str, user: str) -> bool:
        if seat in self.booked:
            return False
        await self.payments.hold(user)
        self.booked[seat] = user
        return True


booking = Booking()


async def book_seat(request: Request) -> JSONResponse:
    seat = request.path_params["seat"]
    user = request.query_params.get("user", "anonymous")
    if not await booking.book(seat, user):
        return JSONResponse({"seat": seat, "status": "taken"}, status_code=409)
    return JSONResponse({"seat": seat, "user": user})


app = Starlette(routes=[Route("/shows/1/seats/{seat}", book_seat, methods=["POST"])])


if __name__ == "__main__":
    sock = _load.listen()
    plan = {"method": "POST", "path": "/shows/1/seats/R{g}?user=u{i}", "group": 4, "concurrency": 4}
    _load.start(sock.getsockname()[1], [{**plan, "pause": 0.01}])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
