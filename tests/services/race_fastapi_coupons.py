# expect: race redeem
"""A FastAPI coupon service: `redeem(code)` checks that the code is unspent, awaits the ledger
write, and only then marks the code spent. Two requests for the same code that arrive together
both pass the check: the coupon is spent twice.

The check-then-act window across an `await` is the race described in public at
http://www.abdullahslab.com/2025/07/06/async-await-race-conditions.html ("Check-then-Act": a
balance checked, an await, then the withdrawal, leaving a negative balance).
Run: python race_fastapi_coupons.py
"""

import asyncio
import random

import _load
import uvicorn
from fastapi import FastAPI, HTTPException


class Ledger:
    def __init__(self) -> None:
        self.entries: list[str] = []

    async def write(self, code: str) -> None:
        await asyncio.sleep(random.uniform(0.005, 0.02))  # the ledger database
        self.entries.append(code)


class CouponService:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.spent: set[str] = set()

    async def redeem(self, code: str) -> bool:
        if code in self.spent:
            return False
        await self.ledger.write(code)
        self.spent.add(code)
        return True


coupons = CouponService(Ledger())
app = FastAPI()


@app.post("/coupons/{code}/redeem")
async def redeem_coupon(code: str) -> dict[str, str]:
    if not await coupons.redeem(code):
        raise HTTPException(409, "coupon already spent")
    return {"code": code, "status": "redeemed"}


if __name__ == "__main__":
    sock = _load.listen()
    # Each code is sent by several clients at once, as a shared coupon is.
    plan = {"method": "POST", "path": "/coupons/SPRING-{g}/redeem", "group": 6, "concurrency": 6}
    _load.start(sock.getsockname()[1], [{**plan, "pause": 0.01}])
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
