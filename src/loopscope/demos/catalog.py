"""The demo scenarios: what each one shows, which code misbehaves, and the load that shows it.

Pure data, no aiohttp: ``loopscope demo --list`` and the load generator read it without
starting a service.
"""

from __future__ import annotations

from dataclasses import dataclass

ITEMS = ("widget", "gadget", "gizmo")
REGIONS = ("eu", "us")
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY")


@dataclass(frozen=True, slots=True)
class Request:
    """One kind of request the load generator sends; ``{}`` in the path takes one of
    ``choices`` (or a number from 1 to 500 when there are none)."""

    method: str
    path: str
    weight: float
    choices: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The endpoint, for per-endpoint latency lines: "POST /buy"."""
        return f"{self.method} {self.path.split('{', 1)[0].rstrip('/') or '/'}"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str  # one line, for --list
    modules: tuple[str, ...]  # the modules under loopscope.demos whose handlers it serves
    family: tuple[str, ...]  # the finding families it shows
    functions: tuple[str, ...]  # the application functions the findings name
    requests: tuple[Request, ...]
    clients: int = 16  # concurrent clients (--load)
    think: float = 0.02  # seconds a client waits between two requests
    rate: float | None = 250  # requests a second, all clients together (None: no limit)
    bursty: bool = False  # clients send in bursts (one second in three) instead of evenly


_ITEMS = Request("GET", "/items/{}", 4)  # a well-behaved endpoint, in every scenario
_LOGIN = Request("POST", "/login", 1.5)
_REPORT = Request("GET", "/report", 1)
_CONFIG = Request("GET", "/config", 1.5)
_RATES = Request("GET", "/partner-rates", 1.5)
_BUY = Request("POST", "/buy/{}", 3, ITEMS)
_DASHBOARD = Request("GET", "/dashboard/{}", 2, REGIONS)
_QUOTE = Request("GET", "/quote/{}", 2, SYMBOLS)
_ORDERS = Request("GET", "/orders", 2)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="shop",
            summary="the default: a shop that blocks the loop, oversells, recomputes and queues",
            modules=("blocking", "race", "duplicate", "contention"),
            family=("blocking", "race", "duplicate", "contention"),
            functions=(
                "hash_password",
                "render_report",
                "reserve_stock",
                "compute_report",
                "quote_price",
            ),
            requests=(_ITEMS, _LOGIN, _REPORT, _BUY, _DASHBOARD, _QUOTE),
            clients=24,
        ),
        Scenario(
            name="blocking",
            summary="password hashing, report rendering, time.sleep, file and urllib calls on "
            "the loop",
            modules=("blocking",),
            family=("blocking",),
            functions=("hash_password", "render_report", "load_config", "fetch_partner_rates"),
            requests=(_ITEMS, _LOGIN, _REPORT, _CONFIG, _RATES),
            # Few enough that each blocking handler often runs alone in a loop iteration: two
            # in a row make one block, named after the longer one.
            clients=6,
        ),
        Scenario(
            name="race",
            summary="stock read, await, write: concurrent buyers oversell",
            modules=("race",),
            family=("race",),
            functions=("reserve_stock",),
            requests=(_ITEMS, _BUY),
            clients=24,
        ),
        Scenario(
            name="duplicate",
            summary="every dashboard request computes the same report, uncached",
            modules=("duplicate",),
            family=("duplicate",),
            functions=("compute_report",),
            requests=(_ITEMS, _DASHBOARD),
            clients=24,
        ),
        Scenario(
            name="contention",
            summary="a lock held across a slow await; a connection pool that is too small",
            modules=("contention",),
            family=("contention",),
            functions=("quote_price", "list_orders"),
            requests=(_ITEMS, _QUOTE, _ORDERS),
            clients=24,
        ),
        Scenario(
            name="executor",
            summary="slow work floods the default executor; DNS lookups queue behind it",
            modules=("executor",),
            family=("executor",),
            functions=("make_thumbnail", "resize_image"),
            requests=(
                Request("GET", "/items/{}", 2),
                Request("GET", "/thumbnail/{}", 8),
                Request("GET", "/lookup", 1),
            ),
            clients=32,
            rate=150,
        ),
        Scenario(
            name="variability",
            summary="cyclic garbage and a big heap: full GC pauses under bursty load",
            modules=("variability",),
            # The GC pauses (LS301). The jitter they cause is theirs: the variability rule
            # (LS901) reports spikes that a finding of their own does not already explain.
            family=("gc",),
            functions=("parse_order", "Node.__init__"),  # where the collections start
            requests=(_ITEMS, Request("POST", "/order", 3)),
            clients=24,
            bursty=True,
        ),
    )
}
DEFAULT = "shop"


def names() -> str:
    """The scenario names, for messages: "shop, blocking, race, ..."."""
    return ", ".join(SCENARIOS)
