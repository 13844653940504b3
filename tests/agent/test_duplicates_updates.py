"""Calls that write shared state are updates, not repeated work: told from the bytecode of every
supported Python (each compiles stores differently)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from agent_harness import SRC

PROGRAM = r'''
import json
from loopscope.agent._duplicates import writes_shared_state

STOCK = {}
TOTAL = 0
STATS = {"computed": 0}


class Account:
    async def withdraw(self, amount):
        balance = self.balance
        self.balance = balance - amount

    async def deposit(self, amount):
        self.balance += amount

    async def forget(self):
        del self.cache

    async def reset_history(self, account):
        account.history[0] = None


async def reserve(item, n):
    STOCK[item] = STOCK[item] - n


async def take(item, n):
    STOCK[item] -= n


async def take_one(item):
    STOCK[item] -= 1


async def count(n):
    global TOTAL
    TOTAL += n


def make_closure():
    seen = {}

    async def remember(key):
        seen[key] = True
    return remember


async def render(rows):
    out = {}
    for i, row in enumerate(rows):
        out[i] = row
    report = Report()
    report.title = "totals"
    return out


async def compute(region, year):
    global TOTAL
    TOTAL += 1
    STATS["computed"] += 1
    compute.calls -= 2
    total = 0
    for n in range(year):
        total += n
    return {"region": region, "total": total}


class Report:
    pass


SCORES = {}


class Coupons:
    async def redeem(self, code):
        if code in self.spent:
            return False
        self.spent.add(code)
        return True

    async def evict(self, key):
        return self.cache.pop(key, None)


async def record(name, points):
    SCORES.setdefault(name, []).append(points)


async def record_item(name, points):
    SCORES[name].append(points)


async def extend_callers(items):
    items.extend([1, 2])


async def collect(n):
    found = []
    seen = set()
    for i in range(n):
        found.append(i)
        seen.add(i)
    found.sort()
    return found


def check(f):
    code = f.__code__
    n = code.co_argcount + code.co_kwonlyargcount
    return writes_shared_state(code, frozenset(code.co_varnames[:n]))


print(json.dumps({f.__qualname__.split(".")[-1]: check(f) for f in [
    Account.withdraw, Account.deposit, Account.forget, Account.reset_history, reserve, take,
    take_one,
    count, make_closure(), render, compute, Coupons.redeem, Coupons.evict, record, record_item,
    extend_callers, collect,
]}))
'''

WRITES = {
    "withdraw": True,
    "deposit": True,
    "forget": True,
    "reset_history": True,
    "reserve": True,
    "take": True,
    "take_one": True,  # a counter, but the call returns nothing: done for that effect
    "count": True,
    "remember": True,
    # local containers and objects the call made are its own, and counters bumped by a call
    # that returns a value are statistics
    "render": False,
    "compute": False,
    # mutating methods called on shared containers: self's, a global's, an argument's
    "redeem": True,
    "evict": True,
    "record": True,
    "record_item": True,
    "extend_callers": True,
    # ... and on the call's own locals
    "collect": False,
}


def test_updates_are_told_from_computations(target_python: str, tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    out = subprocess.run(
        [target_python, str(script)],
        env={"PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == WRITES
