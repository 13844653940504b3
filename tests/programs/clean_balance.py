# expect: clean
# The twin of race_balance.py: the same withdrawals, each one holding the account's lock from the
# read of the balance to its write.
import asyncio
import random


class Account:
    def __init__(self, balance: int) -> None:
        self.balance = balance
        self._lock = asyncio.Lock()

    async def audit(self, amount: int) -> None:
        await asyncio.sleep(random.uniform(0.005, 0.02))

    async def withdraw(self, amount: int) -> None:
        async with self._lock:
            balance = self.balance
            await self.audit(amount)
            self.balance = balance - amount


async def customer(account: Account) -> None:
    while True:
        await account.withdraw(1)
        await asyncio.sleep(random.uniform(0.0, 0.01))


async def main() -> None:
    account = Account(10**9)
    customers = [asyncio.create_task(customer(account)) for _ in range(8)]
    await asyncio.sleep(300)
    for task in customers:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
