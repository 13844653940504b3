"""`loopscope report FILE --html OUT`: a real recording of the blocking demo, as a page opened in
a real headless Chromium."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from recordings import write

from browser import chromium_or_skip, run
from builders import hello, lag
from clirun import assert_no_loopscope_traceback, loopscope

BLOCKERS = ("hash_password", "render_report", "load_config", "fetch_partner_rates")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the HTML file of the blocking demo's recording, loopscope's stderr)."""
    state = tmp_path_factory.mktemp("html")
    rec = state / "demo.lsrec"
    result = loopscope(
        "demo", "blocking", "--headless", "--duration", "3", "--record", str(rec), state=state
    )
    assert result.returncode == 0, result.stderr
    out = state / "report.html"
    result = loopscope("report", str(rec), "--html", str(out), state=state)
    assert result.returncode == 0, result.stderr
    assert_no_loopscope_traceback(result.stderr)
    return out, result.stderr


class _Resources(HTMLParser):
    """Every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data", "poster"):
                self.fetching.append(f"{tag} {name}={value}")


def test_the_page_is_self_contained(page: tuple[Path, str]) -> None:
    path, stderr = page
    assert f"wrote {path}" in stderr
    text = path.read_text()
    parser = _Resources()
    parser.feed(text)
    assert parser.fetching == []
    assert not {"script", "link", "iframe", "img", "object", "embed"} & parser.tags
    assert "://" not in text and "url(" not in text and "@import" not in text


def test_chromium_shows_findings_lag_and_flame(page: tuple[Path, str], tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    path, _ = page
    dom = run(chromium, tmp_path / "profile", "--dump-dom", path.as_uri())
    # The browser parsed and laid it out: the DOM it dumps, not the file, is checked.
    assert "<title>loopscope report: service</title>" in dom
    # The command line, as "…/demos/service.py blocking" or, when the agent said hello before
    # loopscope's launcher handed over, "-m loopscope.demos.service blocking".
    assert re.search(r'id="program">[^<]*service(\.py)? blocking</div>', dom), dom[:2000]
    findings = re.findall(r'<section class="finding (\w+)">', dom)
    assert findings and {"error", "warning"} & set(findings)
    assert "LS101" in dom and "fix:" in dom
    assert sum(name in dom for name in BLOCKERS) >= 2
    chart = re.search(r'<svg id="lag-chart".*?</svg>', dom, re.S)
    assert chart is not None and chart.group(0).count("<polyline") == 2
    flame = re.search(r'<svg id="flame".*?</svg>', dom, re.S)
    assert flame is not None
    app_frames = re.findall(r'<g class="frame app"><title>([^<]*)</title>', flame.group(0))
    assert any(t.startswith(BLOCKERS) for t in app_frames), app_frames
    assert '<g class="frame folded">' in flame.group(0)  # asyncio, aiohttp: folded
    assert '<table id="blocks">' in dom


def test_chromium_draws_it(page: tuple[Path, str], tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    path, _ = page
    shot = tmp_path / "report.png"
    run(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1100,1400",
        path.as_uri(),
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1100, 1400)
    # A blank page compresses to a few kilobytes; text, charts and the flame graph do not.
    assert len(data) > 40_000


def test_a_recording_without_blocks_or_findings(tmp_path: Path) -> None:
    rec = tmp_path / "calm.lsrec"
    write(rec, [hello(100.0)] + [lag(100.0 + i * 0.25, [0.001] * 20) for i in range(8)])
    out = tmp_path / "calm.html"
    result = loopscope("report", str(rec), "--html", str(out), state=tmp_path)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "No findings." in text and "No blocks" in text and '<svg id="lag-chart"' in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--html", "."], "is a directory"),
        (["--html", "no/such/dir/r.html"], "cannot write"),
        (["--html", "r.html", "--json"], "not allowed with argument"),
    ],
)
def test_bad_output(tmp_path: Path, args: list[str], message: str) -> None:
    rec = tmp_path / "calm.lsrec"
    write(rec, [hello(100.0), lag(100.25, [0.001] * 20)])
    result = loopscope("report", str(rec), *args, state=tmp_path, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert_no_loopscope_traceback(result.stderr)


def test_a_corrupt_recording_gives_the_message_report_gives(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lsrec"
    bad.write_text("hello\n")
    result = loopscope("report", str(bad), "--html", str(tmp_path / "o.html"), state=tmp_path)
    assert result.returncode == 2 and "is not a loopscope recording" in result.stderr
    assert not (tmp_path / "o.html").exists()
