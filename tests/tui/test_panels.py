from __future__ import annotations

import dataclasses

from loopscope.model.snapshot import AwaitSiteView
from loopscope.tui._panels import await_rows


def _oldest_cell(oldest: float) -> str:
    site = AwaitSiteView(
        file="/srv/app/h.py", line=3, function="handle", kind="sleep", count=2, oldest=oldest
    )
    ((_, cells),) = await_rows([site], "/srv/app", 10)
    return cells[4].plain


def test_a_wait_first_seen_at_the_latest_census_reads_new_not_zero() -> None:
    assert _oldest_cell(0.0) == "new"


def test_an_older_wait_shows_its_age() -> None:
    assert _oldest_cell(2.5) == "2.50 s"


def test_an_await_site_says_which_route_its_tasks_serve() -> None:
    from rich.console import Console

    from loopscope.tui._awaits import site_detail

    site = AwaitSiteView(
        file="/srv/app/h.py", line=3, function="handle", kind="lock", count=2, oldest=1.0
    )

    def shown(site: AwaitSiteView) -> str:
        console = Console(width=120, color_system=None)
        with console.capture() as out:
            console.print(site_detail(site, [], cwd="/srv/app", source_line=lambda f, n: ""))
        return out.get()

    assert "serving" not in shown(site)
    routed = dataclasses.replace(site, route="GET /invoices/{cid}")
    assert "serving GET /invoices/{cid}" in shown(routed)
