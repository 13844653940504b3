# expect: duplicate load_tenants
# A settings service whose every request awaits the same slow upstream call,
# load_tenants("eu-west"), to find its tenant. The requests differ (route(tenant=...) for many
# tenants); the repeated work is the inner call, which is where a cache or single flight goes.
import asyncio
import random

TENANTS = [f"t{n}" for n in range(40)]


async def load_tenants(region: str) -> dict[str, str]:
    await asyncio.sleep(0.2)  # the tenant directory, far away
    return {t: region for t in TENANTS}


async def route(tenant: str) -> str:
    tenants = await load_tenants("eu-west")
    return tenants.get(tenant, "none")


async def main() -> None:
    pending: set[asyncio.Task[str]] = set()
    while True:
        for _ in range(6):  # about 120 requests a second
            task = asyncio.create_task(route(random.choice(TENANTS)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main())
