"""A web service's routes in the snapshot: pending requests by route (from the censuses), where
they wait, and the blocks while each ran (the framework's route, else the endpoint)."""

from __future__ import annotations

import dataclasses

from builders import app, await_site, block, census, hello, site
from loopscope.events import Frame, RouteLoad
from loopscope.model import Model

INVOICES = "GET /invoices/{cid}"
SEATS = "PUT /seats/{row}"
WAIT = app(30, "invoice")


def _model() -> Model:
    model = Model()
    model.apply(hello())
    return model


def test_pending_requests_and_their_wait_by_route_across_loops() -> None:
    model = _model()
    model.apply(
        dataclasses.replace(
            census(1.0, loop=1, total=7),
            routes=(
                RouteLoad(INVOICES, 5, WAIT, "lock", 0.8),
                RouteLoad(SEATS, 2, app(50, "seat"), "sleep", 0.1),
            ),
        )
    )
    model.apply(
        dataclasses.replace(
            census(1.2, loop=2, total=1), routes=(RouteLoad(INVOICES, 1, WAIT, "lock", 1.5),)
        )
    )
    routes = {r.route: r for r in model.snapshot().routes}
    assert [r.route for r in model.snapshot().routes] == [INVOICES, SEATS]  # most pending first
    assert routes[INVOICES].in_flight == 6
    assert (routes[INVOICES].site, routes[INVOICES].kind) == (WAIT, "lock")
    assert routes[INVOICES].oldest == 1.5
    assert routes[SEATS].in_flight == 2 and routes[SEATS].blocks == 0

    # A newer census of a loop replaces its figures.
    model.apply(dataclasses.replace(census(2.0, loop=1, total=0), routes=()))
    model.apply(dataclasses.replace(census(2.0, loop=2, total=0), routes=()))
    assert model.snapshot().routes == ()


def test_the_functions_each_routes_requests_waited_in_over_the_session() -> None:
    model = _model()
    waiting = dataclasses.replace(await_site(41, "load_tenants", "sleep", 3, 0.2), route=INVOICES)
    polling = await_site(9, "poll", "sleep", 1, 0.1)  # serves no request
    model.apply(
        dataclasses.replace(
            census(1.0, loop=1, total=5, sites=(waiting, polling)),
            routes=(RouteLoad(SEATS, 2, app(50, "seat"), "sleep", 0.1),),
        )
    )
    # Later censuses see none of them pending: what they waited in is kept.
    model.apply(dataclasses.replace(census(2.0, loop=1, total=0), routes=()))
    assert model.snapshot().route_waits == ((INVOICES, ("load_tenants",)), (SEATS, ("seat",)))


def test_blocks_by_route_the_frameworks_name_else_the_endpoint() -> None:
    model = _model()
    render = [app(12, "render"), site("starlette/routing.py", 70, "request_response.<locals>.app")]
    model.apply(dataclasses.replace(block(1.0, 0.05, render), route="POST /render/{name}"))
    model.apply(dataclasses.replace(block(2.0, 0.03, render), route="POST /render/{name}"))
    # Without the framework's name, the endpoint inside the server's frames names it.
    model.apply(block(3.0, 0.04, render))
    # Outside any request: no route.
    model.apply(block(4.0, 0.2, [app(5, "startup")]))
    routes = {r.route: r for r in model.snapshot().routes}
    assert set(routes) == {"POST /render/{name}", "render (handlers.py)"}
    named = routes["POST /render/{name}"]
    assert (named.blocks, round(named.blocked, 3), named.in_flight, named.site) == (
        2,
        0.08,
        0,
        None,
    )
    assert routes["render (handlers.py)"].blocks == 1


def test_an_await_site_keeps_the_route_of_its_tasks() -> None:
    model = _model()
    waiting = dataclasses.replace(await_site(30, "invoice", "lock", 3, 0.5), route=INVOICES)
    model.apply(census(1.0, total=3, sites=[waiting]))
    (shown,) = model.snapshot().await_sites
    assert shown.route == INVOICES
    assert Frame(shown.file, shown.line, shown.function) == WAIT
