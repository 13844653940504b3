# expect: exception record_order
"""A coroutine never awaited: the audit call lacks its `await`, so the audit never happens."""

import asyncio

audit_log: list[int] = []


async def write_audit(order_id: int) -> None:
    await asyncio.sleep(0.001)
    audit_log.append(order_id)


async def record_order(order_id: int) -> None:
    write_audit(order_id)
    await asyncio.sleep(0.005)


async def main() -> None:
    order_id = 0
    while True:
        order_id += 1
        await record_order(order_id)
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main())
