# expect: clean
"""The twin of race_starlette_seats.py: the same booking service, but the seat is recorded for the
user before the payment is awaited, so the second user for a seat sees it taken.
Run: python clean_starlette_seats.py
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
        self.booked[seat] = user  # held for this user before the await
        await self.payments.hold(user)
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
