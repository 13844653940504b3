"""Location: the one type for a place in the code, and its key."""

from __future__ import annotations

from loopscope.events import AwaitSite, Frame
from loopscope.model.location import Location
from loopscope.rules.finding import Location as FindingLocation


def test_a_location_is_keyed_file_line_function() -> None:
    where = Location("/srv/app/report.py", 88, "ReportView.render_report")
    assert where.key == "/srv/app/report.py:88:ReportView.render_report"


def test_of_takes_anything_with_file_line_and_function() -> None:
    frame = Frame("/srv/app/db.py", 12, "fetch")
    assert Location.of(frame) == Location("/srv/app/db.py", 12, "fetch")
    site = AwaitSite(
        file="/srv/app/worker.py",
        line=5,
        function="Worker.run",
        kind="queue_get",
        count=1,
        oldest=0.5,
    )
    assert Location.of(site).key == "/srv/app/worker.py:5:Worker.run"


def test_findings_use_the_same_type() -> None:
    assert FindingLocation is Location
