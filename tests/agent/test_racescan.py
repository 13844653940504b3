"""The static race-window scanner: read, await, write of the same target, from source text."""

from __future__ import annotations

import textwrap

import pytest

from loopscope.agent._racescan import scan_source


def windows(source: str) -> list[tuple[str, str, int, tuple[int, ...], int, str]]:
    """(function, target, read line, await lines, write line, via) of each window found."""
    found, _ = scan_source(textwrap.dedent(source).lstrip("\n"), "/app/m.py")
    return [
        (
            w.span.function,
            w.span.target,
            w.span.read_line,
            w.span.await_lines,
            w.span.write_line,
            w.span.via,
        )
        for w in found
    ]


def targets(source: str) -> list[str]:
    return [w[1] for w in windows(source)]


def test_the_classic_read_await_write_through_a_local() -> None:
    assert windows(
        """
        class Account:
            async def withdraw(self, amount):
                balance = self.balance
                await self.audit(amount)
                self.balance = balance - amount
        """
    ) == [("Account.withdraw", "self.balance", 3, (4,), 5, "value")]


def test_no_await_between_read_and_write_is_no_window() -> None:
    assert (
        windows(
            """
            class Counter:
                async def bump(self):
                    await self.ready()
                    n = self.count
                    self.count = n + 1
                    self.count += 1
            """
        )
        == []
    )


def test_a_write_after_an_await_with_no_earlier_read_is_no_window() -> None:
    assert (
        targets(
            """
        async def reset(self):
            await something()
            self.x = 5
            self.total -= 3
        """
        )
        == []
    )


def test_a_write_that_does_not_use_the_stale_read_is_no_window() -> None:
    assert (
        targets(
            """
        async def f(self):
            old = self.value
            await g()
            log(old)
            self.value = compute()
        """
        )
        == []
    )


def test_a_read_of_another_target_is_no_window() -> None:
    assert (
        targets(
            """
        async def f(self, other):
            x = self.a
            await g()
            self.b = x + 1
            other.a = x
        """
        )
        == []
    )


def test_the_same_attribute_on_a_parameter_object() -> None:
    assert targets(
        """
        async def transfer(src, amount):
            left = src.balance - amount
            await asyncio.sleep(0)
            src.balance = left
        """
    ) == ["src.balance"]


def test_a_fresh_read_after_the_await_closes_the_window() -> None:
    assert (
        targets(
            """
        async def f(self):
            x = self.v
            await g()
            x = self.v
            self.v = x + 1
        """
        )
        == []
    )


def test_augmented_assignment_with_an_await_in_its_value() -> None:
    assert windows(
        """
        async def f(self):
            self.total += await fetch()
        """
    ) == [("f", "self.total", 2, (2,), 2, "value")]


def test_read_before_await_in_one_expression() -> None:
    assert targets(
        """
        async def f(self):
            self.n = self.n + await g()
        """
    ) == ["self.n"]
    assert (
        targets(
            """
        async def f(self):
            self.n = await g() + self.n
        """
        )
        == []
    )


def test_augmented_assignment_after_an_await_is_atomic() -> None:
    assert (
        targets(
            """
        async def f(self, amount):
            await g()
            self.balance -= amount
        """
        )
        == []
    )


def test_check_then_act_through_a_condition() -> None:
    assert windows(
        """
        async def withdraw(self, amount):
            if self.balance >= amount:
                await self.bank.approve(amount)
                self.balance -= amount
        """
    ) == [("withdraw", "self.balance", 2, (3,), 4, "condition")]


def test_lazy_initialisation_with_an_await() -> None:
    assert windows(
        """
        async def connection(self):
            if self.conn is None:
                self.conn = await connect()
            return self.conn
        """
    ) == [("connection", "self.conn", 2, (3,), 3, "condition")]


def test_subscript_with_the_same_key() -> None:
    assert windows(
        """
        STOCK = {}

        async def sell(item, n):
            left = STOCK[item]
            await record(item)
            STOCK[item] = left - n
        """
    ) == [("sell", "STOCK[item]", 4, (5,), 6, "value")]


def test_subscript_with_another_key_is_another_target() -> None:
    assert (
        targets(
            """
        async def f(self, a, b):
            x = self.d[a]
            await g()
            self.d[b] = x
        """
        )
        == []
    )


def test_subscript_with_a_constant_key_on_self() -> None:
    assert targets(
        """
        async def f(self):
            hits = self.stats["hits"]
            await g()
            self.stats["hits"] = hits + 1
        """
    ) == ["self.stats['hits']"]


def test_a_dict_of_the_call_s_own_is_not_shared() -> None:
    assert (
        targets(
            """
        async def f(k):
            d = {}
            x = d[k]
            await g()
            d[k] = x + 1
        """
        )
        == []
    )


def test_a_declared_global() -> None:
    assert windows(
        """
        counter = 0

        async def bump():
            global counter
            n = counter
            await asyncio.sleep(0)
            counter = n + 1
        """
    ) == [("bump", "counter", 5, (6,), 7, "value")]


def test_an_undeclared_name_is_a_local() -> None:
    assert (
        targets(
            """
        async def f():
            n = counter
            await g()
            counter = n + 1
        """
        )
        == []
    )


def test_del_under_a_stale_test() -> None:
    assert windows(
        """
        async def evict(self, key):
            if key in self.cache:
                await self.flush(key)
                del self.cache[key]
        """
    ) == [
        ("evict", "self.cache[key]", 2, (3,), 4, "condition")
    ]  # a test of membership in self.cache guards a write into it (check-then-act)
    assert windows(
        """
        async def evict(self, key):
            if self.cache[key].expired:
                await self.flush(key)
                del self.cache[key]
        """
    ) == [("evict", "self.cache[key]", 2, (3,), 4, "condition")]


def test_an_await_in_a_nested_function_does_not_count() -> None:
    assert (
        targets(
            """
        async def outer(self):
            x = self.v
            async def helper():
                await g()
            def sync():
                return 1
            self.v = x + 1
        """
        )
        == []
    )


def test_a_nested_async_function_is_scanned_on_its_own() -> None:
    found = windows(
        """
        def make(box):
            async def bump():
                n = box.value
                await g()
                box.value = n + 1
            return bump
        """
    )
    assert found == [("make.<locals>.bump", "box.value", 3, (4,), 5, "value")]


def test_one_branch_awaits() -> None:
    assert windows(
        """
        async def f(self, slow):
            n = self.n
            if slow:
                await g()
            else:
                pass
            self.n = n + 1
        """
    ) == [("f", "self.n", 2, (4,), 7, "value")]


def test_a_branch_that_returns_does_not_reach_the_write() -> None:
    assert (
        targets(
            """
        async def f(self, slow):
            n = self.n
            if slow:
                await g()
                return
            self.n = n + 1
        """
        )
        == []
    )


def test_a_value_carried_round_a_loop() -> None:
    assert windows(
        """
        async def f(self):
            n = self.n
            while True:
                await tick()
                self.n = n + 1
                n = self.n
        """
    ) == [("f", "self.n", 2, (4,), 5, "value"), ("f", "self.n", 6, (4,), 5, "value")]


def test_async_for_and_async_with_are_awaits() -> None:
    assert windows(
        """
        async def f(self, stream, session):
            n = self.n
            async for chunk in stream:
                pass
            self.n = n + 1
            m = self.m
            async with session.get() as r:
                pass
            self.m = m + 1
        """
    ) == [("f", "self.n", 2, (3,), 5, "value"), ("f", "self.m", 6, (7,), 9, "value")]


def test_inside_one_lock_the_window_is_guarded() -> None:
    found, _ = scan_source(
        textwrap.dedent(
            """
            async def f(self):
                async with self.lock:
                    n = self.n
                    await g()
                    self.n = n + 1
                n = self.n
                async with self._lock:
                    await g()
                self.n = n + 1
            """
        ),
        "/app/m.py",
    )
    assert [(w.span.read_line, w.span.guarded) for w in found] == [(4, True), (7, False)]


def test_try_handlers_see_reads_of_the_body() -> None:
    assert targets(
        """
        async def f(self):
            try:
                n = self.n
                await g()
            except OSError:
                self.n = n - 1
        """
    ) == ["self.n"]


def test_taint_flows_through_locals_and_calls() -> None:
    assert targets(
        """
        async def f(self, amount):
            current = self.balance
            new = max(0, current - amount)
            await g()
            self.balance = new
        """
    ) == ["self.balance"]


def test_decorated_methods_start_at_their_first_decorator() -> None:
    found, functions = scan_source(
        textwrap.dedent(
            """
            class A:
                @retry
                @trace(
                    "x")
                async def f(self):
                    n = self.n
                    await g()
                    self.n = n
            """
        ).lstrip("\n"),
        "/app/m.py",
    )
    assert functions == 1
    assert [(w.span.function, w.span.first_line, w.name) for w in found] == [("A.f", 2, "f")]
    assert (found[0].root, found[0].attrs, found[0].key) == ("self", ("n",), None)


def test_identity_parts_of_a_subscript_window() -> None:
    found, _ = scan_source(
        textwrap.dedent(
            """
            async def f(self, key):
                x = self.shop.stock[key]
                await g()
                self.shop.stock[key] = x - 1
            """
        ),
        "/app/m.py",
    )
    (w,) = found
    assert (w.root, w.attrs, w.key, w.key_is_name) == ("self", ("shop", "stock"), "key", True)


@pytest.mark.parametrize(
    "source",
    [
        "async def f(:\n    pass\n",
        "x = '''\nasync def f(self):\n'''\n",
        "async def f(self):\n    '''doc\nstring'''\n    n = self.n\n    await g()\n"
        "    self.n = n\n",
        "",
    ],
)
def test_odd_sources_never_raise(source: str) -> None:
    scan_source(source, "/app/m.py")


def test_multi_line_strings_in_a_method_do_not_cut_it_short() -> None:
    assert targets(
        '''
        class A:
            async def f(self):
                doc = """
        not indented
                """
                n = self.n
                await g()
                self.n = n
        '''
    ) == ["self.n"]


def test_a_loop_test_is_not_a_check_its_body_acts_on() -> None:
    assert (
        targets(
            """
        async def pump(self, reader):
            while self.running:
                data = await reader.read(100)
                if not data:
                    self.running = False
        """
        )
        == []
    )


def test_a_value_passed_to_the_await_and_written_back() -> None:
    assert targets(
        """
        async def refresh(self):
            self.token = await renew(self.token)
        """
    ) == ["self.token"]


def test_counters_around_an_await_are_no_window() -> None:
    assert (
        targets(
            """
        async def handle(self, request):
            self.active += 1
            try:
                return await self.app(request)
            finally:
                self.active -= 1
        """
        )
        == []
    )


def test_async_comprehension_is_an_await() -> None:
    assert targets(
        """
        async def f(self, stream):
            n = self.n
            items = [x async for x in stream]
            self.n = n + len(items)
        """
    ) == ["self.n"]


# -- check-then-act: membership, len(), .get() and attribute tests guarding a later write ------


def test_an_early_return_test_guards_a_mutating_call_after_an_await() -> None:
    found, _ = scan_source(
        textwrap.dedent(
            """
            class CouponService:
                async def redeem(self, code):
                    if code in self.spent:
                        return False
                    await self.ledger.write(code)
                    self.spent.add(code)
                    return True
            """
        ).lstrip("\n"),
        "/app/m.py",
    )
    assert [
        (w.span.function, w.span.target, w.span.read_line, w.span.write_line) for w in found
    ] == [("CouponService.redeem", "self.spent", 3, 6)]
    window = found[0]
    assert window.span.via == "condition"
    # Told apart at run time by the code: two tasks redeeming different codes do not race.
    assert (window.root, window.attrs, window.key, window.key_is_name) == (
        "self",
        ("spent",),
        "code",
        True,
    )


def test_a_membership_test_guards_a_write_into_the_container() -> None:
    assert windows(
        """
        async def book(self, seat, user):
            if seat in self.booked:
                return False
            await self.payments.hold(user)
            self.booked[seat] = user
        """
    ) == [("book", "self.booked[seat]", 2, (4,), 5, "condition")]


def test_get_and_len_tests_of_a_module_level_container() -> None:
    assert windows(
        """
        async def buy(item):
            if STOCK.get(item, 0) <= 0:
                return False
            await reserve(item)
            STOCK[item] -= 1
        """
    ) == [("buy", "STOCK[item]", 2, (4,), 5, "condition")]
    assert targets(
        """
        async def push(self, job):
            if len(self.queue) >= 10:
                raise Full()
            await self.persist(job)
            self.queue.append(job)
        """
    ) == ["self.queue"]


def test_awaits_in_the_condition_and_async_with_count() -> None:
    assert targets(
        """
        async def claim(self, code):
            if code not in self.spent and await self.valid(code):
                self.spent.add(code)
        """
    ) == ["self.spent"]
    assert targets(
        """
        async def claim(self, code):
            if code in self.spent:
                return
            async with self.db.transaction():
                pass
            self.spent.add(code)
        """
    ) == ["self.spent"]


def test_claiming_before_the_await_is_no_window() -> None:
    assert (
        targets(
            """
        async def redeem(self, code):
            if code in self.spent:
                return False
            self.spent.add(code)
            await self.ledger.write(code)
            return True
        """
        )
        == []
    )


def test_a_cache_lookup_returned_when_present_is_no_check() -> None:
    # Concurrent misses fill the cache twice with the same thing: repeated work, not a race.
    assert (
        targets(
            """
        async def cached(period):
            hit = _reports.get(period)
            if hit is not None:
                return hit
            report = await build(period)
            _reports[period] = report
            return report
        """
        )
        == []
    )
