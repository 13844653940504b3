"""loopscope.watch: lost updates on watched attributes and dicts, reported exactly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import loopscope
from loopscope import _watch


def line_of(marker: str) -> int:
    with open(__file__) as f:
        lines = [i for i, text in enumerate(f, 1) if text.rstrip().endswith(f"# {marker}")]
    assert len(lines) == 1, marker
    return lines[0]


@pytest.fixture(autouse=True)
def reports() -> Iterator[list[dict[str, Any]]]:
    """The reports made during the test (no agent: they wait in the hub)."""
    hub = _watch._hub()
    hub.pending.clear()
    _watch._places.clear()
    out: list[dict[str, Any]] = []
    yield out
    hub.pending.clear()


def taken() -> list[dict[str, Any]]:
    out = _watch.pending()
    _watch._hub().pending.clear()
    return out


class Account:
    kind = "checking"

    def __init__(self, balance: int) -> None:
        self.balance = balance


async def withdraw(account: Account, amount: int) -> None:
    balance = account.balance  # stale read
    await asyncio.sleep(0.01)
    account.balance = balance - amount  # stale write


async def withdraw_locked(account: Account, lock: asyncio.Lock, amount: int) -> None:
    async with lock:
        balance = account.balance
        await asyncio.sleep(0.001)
        account.balance = balance - amount


async def withdraw_atomic(account: Account, amount: int) -> None:
    await asyncio.sleep(0.001)
    account.balance -= amount


def test_a_lost_update_names_both_tasks_and_the_three_places() -> None:
    async def main() -> Account:
        account = loopscope.watch(Account(100), "balance")
        first = asyncio.create_task(withdraw(account, 10), name="first")
        second = asyncio.create_task(withdraw(account, 20), name="second")
        await asyncio.gather(first, second)
        return account

    account = asyncio.run(main())
    assert account.balance == 80  # the first withdrawal was lost
    (report,) = taken()
    here = __file__
    assert report["target"] == "Account.balance"
    assert report["task"] == "second" and report["other_task"] == "first"
    assert report["read"] == (here, line_of("stale read"), "withdraw")
    assert report["other_write"] == (here, line_of("stale write"), "withdraw")
    assert report["write"] == (here, line_of("stale write"), "withdraw")
    assert (report["version_read"], report["version_now"], report["repeats"]) == (0, 1, 0)


@pytest.mark.parametrize("variant", ["locked", "atomic", "sequential"])
def test_correct_code_reports_nothing(variant: str) -> None:
    async def main() -> Account:
        account = loopscope.watch(Account(1000), "balance")
        lock = asyncio.Lock()
        if variant == "locked":
            await asyncio.gather(*(withdraw_locked(account, lock, 1) for _ in range(20)))
        elif variant == "atomic":
            await asyncio.gather(*(withdraw_atomic(account, 1) for _ in range(20)))
        else:
            for _ in range(5):
                await withdraw(account, 1)
        return account

    account = asyncio.run(main())
    assert account.balance == {"locked": 980, "atomic": 980, "sequential": 995}[variant]
    assert taken() == []


def test_only_the_watched_instance_changes() -> None:
    watched, other = Account(1), Account(2)
    assert loopscope.watch(watched, "balance", "kind") is watched
    assert isinstance(watched, Account) and type(other) is Account
    assert watched.kind == "checking"  # a class attribute still reads through
    watched.kind = "savings"
    assert watched.kind == "savings" and Account.kind == "checking"
    del watched.balance
    with pytest.raises(AttributeError):
        _ = watched.balance
    watched.balance = 5
    assert vars(watched) == {"kind": "savings", "balance": 5}
    assert loopscope.watch(watched, "balance") is watched  # a second call changes nothing


def test_slots_and_properties_are_watched_through_their_descriptors() -> None:
    class Slotted:
        __slots__ = ("n",)

        def __init__(self) -> None:
            self.n = 0

    class WithProperty:
        def __init__(self) -> None:
            self._n = 0

        @property
        def n(self) -> int:
            return self._n

        @n.setter
        def n(self, value: int) -> None:
            self._n = value

    async def bump(obj: Any) -> None:
        n = obj.n
        await asyncio.sleep(0.001)
        obj.n = n + 1

    async def main(obj: Any) -> int:
        await asyncio.gather(bump(obj), bump(obj))
        return int(obj.n)

    slotted = loopscope.watch(Slotted(), "n")
    assert asyncio.run(main(slotted)) == 1
    assert [r["target"] for r in taken()] == ["Slotted.n"]
    prop = loopscope.watch(WithProperty(), "n")
    assert asyncio.run(main(prop)) == 1
    assert [r["target"] for r in taken()] == ["WithProperty.n"]


def test_a_watched_dict_tracks_each_key() -> None:
    stock = loopscope.watch({"apples": 10, "pears": 10}, label="stock")
    assert isinstance(stock, dict) and stock == {"apples": 10, "pears": 10}

    async def sell(item: str) -> None:
        left = stock[item]
        await asyncio.sleep(0.001)
        stock[item] = left - 1

    async def main() -> None:
        await asyncio.gather(sell("apples"), sell("pears"))  # other keys: no conflict
        assert taken() == []
        await asyncio.gather(sell("apples"), sell("apples"))

    asyncio.run(main())
    (report,) = taken()
    assert report["target"] == "stock['apples']"
    assert stock == {"apples": 8, "pears": 9}
    stock["figs"] = 1
    assert stock.pop("figs") == 1 and stock.get("figs") is None
    assert stock.setdefault("kiwis", 3) == 3


def test_repeats_at_one_place_are_folded(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        account = loopscope.watch(Account(100), "balance")
        for _ in range(3):
            await asyncio.gather(withdraw(account, 1), withdraw(account, 1))

    asyncio.run(main())
    assert len(taken()) == 1  # the next two within the second are counted, not sent
    monkeypatch.setattr(_watch, "REPEAT_SECONDS", 0.0)
    asyncio.run(main())
    reports = taken()
    assert [r["repeats"] for r in reports] == [2, 0, 0]


def test_outside_a_task_nothing_is_reported_and_nothing_raises() -> None:
    account = loopscope.watch(Account(1), "balance")
    account.balance = account.balance + 1
    assert account.balance == 2 and taken() == []


def test_a_sink_that_raises_does_not_reach_the_program() -> None:
    hub = _watch._hub()

    def broken(record: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    hub.sink = broken
    try:
        account = loopscope.watch(Account(100), "balance")

        async def main() -> None:
            await asyncio.gather(withdraw(account, 1), withdraw(account, 1))

        asyncio.run(main())
    finally:
        hub.sink = None
    assert len(taken()) == 1  # kept for a later agent instead


def test_watch_refuses_politely() -> None:
    with pytest.warns(RuntimeWarning, match="name the attributes"):
        assert loopscope.watch(Account(1)) is not None
    with pytest.warns(RuntimeWarning, match="cannot watch int"):
        assert loopscope.watch(5, "real") == 5


def test_import_loopscope_stays_light() -> None:
    code = (
        "import sys, loopscope; print('loopscope._watch' in sys.modules, 'asyncio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    with pytest.raises(AttributeError):
        _ = loopscope.nothing  # type: ignore[attr-defined]
