# expect: clean
"""The twin of race_fastapi_coupons.py: the same coupon service, but `redeem` marks the code
spent before it awaits the ledger write, so a second request for the code sees it spent.
Run: python clean_fastapi_coupons.py
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
        self.spent.add(code)  # claimed before the await: no other request can pass the check
        await self.ledger.write(code)
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
