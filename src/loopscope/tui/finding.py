"""A finding in full, over the dashboard."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from loopscope.model.snapshot import Snapshot
from loopscope.rules.finding import Finding
from loopscope.tui._panels import finding_detail


class FindingScreen(ModalScreen[None]):
    CSS_PATH = "finding.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def __init__(self, finding: Finding, snapshot: Snapshot | None) -> None:
        super().__init__()
        self.finding = finding
        self._snapshot = snapshot

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="finding-box") as box:
            box.border_title = f"{self.finding.code} · {self.finding.family}"
            box.border_subtitle = "escape closes"
            yield Static(finding_detail(self.finding, self._snapshot), id="finding-text")
