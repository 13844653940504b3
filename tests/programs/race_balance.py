# expect: race Account.withdraw
# Several customers withdraw from one shared account. `withdraw` reads the balance, awaits an
# audit call, then writes back the balance it read minus the amount: withdrawals that overlap
# lose each other's updates.
import asyncio
import random


class Account:
    def __init__(self, balance: int) -> None:
        self.balance = balance

    async def audit(self, amount: int) -> None:
        await asyncio.sleep(random.uniform(0.005, 0.02))

    async def withdraw(self, amount: int) -> None:
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
