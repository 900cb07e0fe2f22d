"""Status-bar job indicator: what runs, how far, and a button to cancel it."""
from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from studio.runtime.jobs import Job, JobState


class JobIndicator(QWidget):
    def __init__(self, runtime, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("jobs.indicator")
        self._runtime = runtime
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("Idle", self)
        self.label.setObjectName("jobs.label")
        self.bar = QProgressBar(self)
        self.bar.setObjectName("jobs.progress")
        self.bar.setRange(0, 1000)
        self.bar.setFixedWidth(120)
        self.bar.setTextVisible(False)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setObjectName("jobs.cancel")
        self.cancel_button.setText("✕")
        self.cancel_button.setToolTip("Cancel running and queued jobs (Esc)")
        self.cancel_button.clicked.connect(runtime.cancel_all)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button)
        runtime.subscribe(self._on_job)
        self._refresh(None)

    def _on_job(self, job: Job) -> None:
        self._refresh(job)

    def _refresh(self, job: Job | None) -> None:
        active = self._runtime.active()
        busy = bool(active)
        self.bar.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.label.setText("Idle")
            self.bar.setValue(0)
            return
        running = [j for j in active if j.state is JobState.RUNNING] or active
        cur = running[0]
        more = f" (+{len(active) - 1} queued)" if len(active) > 1 else ""
        self.label.setText(f"{cur.title}{': ' + cur.text if cur.text else ''}{more}")
        self.bar.setValue(int(cur.progress * 1000))
