"""The recording commands as a user runs them: record, report, export, and bad input."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest
from recordings import GOLDEN

from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.record.reader import Recording

BLOCKY = textwrap.dedent(
    """
    import asyncio, time

    def render_report():
        time.sleep(0.06)

    async def main():
        for _ in range(12):
            render_report()
            await asyncio.sleep(0.05)

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real program recorded with `loopscope record`, and the findings it printed live."""
    d = tmp_path_factory.mktemp("recorded")
    (d / "blocky.py").write_text(BLOCKY)
    result = loopscope(
        "record",
        "-o",
        str(d / "r.lsrec"),
        "--duration",
        "30",
        "--",
        sys.executable,
        "blocky.py",
        state=d,
        cwd=d,
    )
    assert result.returncode == 0, result.stderr
    assert_no_loopscope_traceback(result.stderr)
    assert "recorded " in result.stderr and "r.lsrec" in result.stderr
    return d / "r.lsrec", result.stdout


def test_record_writes_a_complete_recording(recorded: tuple[Path, str]) -> None:
    path, _ = recorded
    with Recording.open(path) as rec:
        kinds = [e.kind for e in rec.events()]
        assert rec.info.complete
        assert rec.info.meta["how"] == "python blocky.py"
    assert kinds[0] == "source_state" and "hello" in kinds
    assert kinds.count("block") == 12
    assert kinds[-1] == "target_exited"


def test_report_finds_what_the_live_session_found(recorded: tuple[Path, str]) -> None:
    path, live = recorded
    result = loopscope("report", str(path), state=path.parent)
    assert result.returncode == 0, result.stderr
    # The live run printed its findings after its last summary line; so does the report.
    assert live.split("\n\n", 1)[1] == result.stdout.split("\n\n", 1)[1]
    assert "LS101" in result.stdout and "render_report" in result.stdout


def test_report_json_and_fail_on(recorded: tuple[Path, str]) -> None:
    path, _ = recorded
    result = loopscope("report", str(path), "--json", "--fail-on", "error", state=path.parent)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert set(data) == {"target", "duration_s", "findings", "figures"}
    assert [f["code"] for f in data["findings"]] == ["LS101"]
    # The loop figures of the whole recording, as `diff` reads them.
    assert data["figures"]["blocked"]["count"] > 0
    assert data["figures"]["blocks"][0]["location"]["function"] == "render_report"
    assert data["findings"][0]["location"]["function"] == "render_report"
    assert data["target"]["argv"][-1].endswith("blocky.py")


def test_fail_on_passes_below_the_threshold(tmp_path: Path) -> None:
    # The golden recording's findings are errors; a clean recording passes any threshold.
    result = loopscope("report", str(GOLDEN), "--fail-on", "error", state=tmp_path)
    assert result.returncode == 1
    clean = tmp_path / "clean.lsrec"
    shutil.copy(GOLDEN, clean)
    db = sqlite3.connect(clean)
    # (its censuses show a lock with 800 waiters: contention)
    db.execute("DELETE FROM events WHERE kind IN ('block', 'census')")
    db.commit()
    db.close()
    result = loopscope("report", str(clean), "--fail-on", "info", state=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "No findings." in result.stdout


def test_export_writes_both_formats(tmp_path: Path) -> None:
    for fmt in ("perfetto", "speedscope"):
        out = tmp_path / f"{fmt}.json"
        result = loopscope("export", str(GOLDEN), "--format", fmt, "-o", str(out), state=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"wrote {out}" in result.stderr
        json.loads(out.read_text())


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("hello\n"), "not a loopscope recording (not an SQLite file)"),
        (lambda p: p.write_bytes(GOLDEN.read_bytes()[:60]), "truncated"),
        (
            lambda p: sqlite3.connect(p).execute("CREATE TABLE x (y)").connection.commit(),
            "is an SQLite database but not a loopscope recording",
        ),
    ],
    ids=["missing", "text", "truncated", "other-sqlite"],
)
@pytest.mark.parametrize("command", ["report", "export", "replay"])
def test_bad_files_give_a_message(
    tmp_path: Path, setup: object, message: str, command: str
) -> None:
    path = tmp_path / "bad.lsrec"
    setup(path)  # type: ignore[operator]
    extra = {"export": ["--format", "perfetto", "-o", str(tmp_path / "o.json")]}.get(command, [])
    result = loopscope(command, str(path), *extra, state=tmp_path)
    assert_no_loopscope_traceback(result.stderr)
    assert result.returncode == 2
    if command == "replay":  # without a terminal, replay says so before opening anything
        assert "needs a terminal" in result.stderr
    else:
        assert message in result.stderr


def test_a_damaged_recording_is_reported_as_far_as_it_reads(tmp_path: Path) -> None:
    from recordings import write

    from builders import hello, lag

    path = tmp_path / "long.lsrec"
    write(path, [hello(100.0)] + [lag(100.0 + i * 0.25, [0.001] * 20) for i in range(4000)])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = loopscope("report", str(path), state=tmp_path)
    assert_no_loopscope_traceback(result.stderr)
    assert result.returncode == 0
    assert "damaged" in result.stderr and "reporting what could be read" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["record", "-o", "r.lsrec"], "give the PID of a running process, or the program"),
        (["record", "-o", "r.lsrec", "4242", "4243"], "4242 is not Python"),
        (["record", "4242", "-o", "app.py"], "is not a loopscope recording"),
        (["record", "1", "-o", "r.lsrec", "--duration", "0"], "record: --duration must be"),
        (["attach", "--headless", "--record", "app.py", "4242"], "is not a loopscope recording"),
        (["attach", "--headless", "--record", "no/such/r.lsrec", "4242"], "no such directory"),
        (["record", "-o", "r.lsrec", "--", "ls", "-l"], "ls is not Python"),
        (["record", "-o", "r.lsrec", "--", "python9.9", "app.py"], "no such interpreter"),
        (["record", "-o", "r.lsrec", "--", "python", "-c", "pass"], "the option -c"),
        (["record", "-o", "app.py", "--", "python", "app.py"], "is not a loopscope recording"),
        (["record", "-o", "no/such/r.lsrec", "--", "python", "app.py"], "no such directory"),
        (["run", "--headless", "--record", "app.py", "app.py"], "is not a loopscope recording"),
    ],
)
def test_record_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "app.py").write_text("print('mine')\n")
    result = loopscope(*args, state=tmp_path, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert_no_loopscope_traceback(result.stderr)
    assert (tmp_path / "app.py").read_text() == "print('mine')\n"


def test_demo_records_headless(tmp_path: Path) -> None:
    path = tmp_path / "demo.lsrec"
    result = loopscope(
        "demo", "--headless", "--duration", "3", "--record", str(path), state=tmp_path
    )
    assert result.returncode == 0, result.stderr
    with Recording.open(path) as rec:
        assert rec.info.complete and rec.info.meta["how"] == "demo"
        kinds = {e.kind for e in rec.events()}
    assert {"hello", "lag", "census", "target_exited"} <= kinds


DIES = textwrap.dedent(
    """
    import asyncio, os, signal, time

    async def main():
        for _ in range(5):
            time.sleep(0.05)
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


def test_a_target_that_dies_mid_way_is_recorded_up_to_its_death(tmp_path: Path) -> None:
    (tmp_path / "dies.py").write_text(DIES)
    path = tmp_path / "dies.lsrec"
    result = loopscope(
        "record", "-o", str(path), "--", sys.executable, "dies.py", state=tmp_path, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = loopscope("report", str(path), "--json", state=tmp_path)
    assert report.returncode == 0, report.stderr
    assert [f["code"] for f in json.loads(report.stdout)["findings"]] == ["LS101"]
    text = loopscope("report", str(path), state=tmp_path).stdout
    assert "killed by SIGKILL" in text
