"""The paint queue: the runtime's paint jobs as a list (the running one first, then the queued ones in
the order they will run). Drag a queued job, or use Up/Down, to reorder; Cancel removes the selected
jobs. The journal follows every change, so the queue comes back after a crash."""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QVBoxLayout, QWidget)

from studio.core.paint_requests import PaintRequest
from studio.runtime.jobs import JobState

JOB_ROLE = Qt.ItemDataRole.UserRole


def is_paint(job) -> bool:
    return isinstance(job.request, PaintRequest)


class PaintQueue(QWidget):
    def __init__(self, session, on_cancel, on_reordered, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("paint.queue_tab")
        self.session = session
        self.runtime = session.runtime
        self._on_cancel = on_cancel  # (job) -> None: the panel cancels and updates the journal
        self._on_reordered = on_reordered  # (uids in queue order) -> None
        lay = QVBoxLayout(self)
        self.list = QListWidget(self)
        self.list.setObjectName("paint.queue")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.up = QPushButton("Up", self)
        self.up.setObjectName("paint.queue_up")
        self.down = QPushButton("Down", self)
        self.down.setObjectName("paint.queue_down")
        self.cancel = QPushButton("Cancel", self)
        self.cancel.setObjectName("paint.queue_cancel")
        self.cancel.setToolTip("Cancel the selected jobs")
        for b in (self.up, self.down, self.cancel):
            row.addWidget(b)
        lay.addLayout(row)
        self.info = QLabel("Nothing queued. Generate adds a job here even while another one runs.", self)
        self.info.setObjectName("paint.queue_info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        self._refreshing = False
        self.up.clicked.connect(lambda: self.move_selected(-1))
        self.down.clicked.connect(lambda: self.move_selected(+1))
        self.cancel.clicked.connect(self.cancel_selected)
        self.list.model().rowsMoved.connect(self._dragged)
        self.runtime.subscribe(self._job_changed)
        self.refresh()

    # -- reading the runtime ---------------------------------------------------------------
    def jobs(self) -> list:
        """Paint jobs: running first, then queued in run order."""
        running = [j for j in self.runtime.active() if is_paint(j) and j.state is JobState.RUNNING]
        queued = [j for j in self.runtime.queued() if is_paint(j)]
        rest = [j for j in self.runtime.active() if is_paint(j) and j not in running and j not in queued]
        # Neither running nor waiting: taken by the lane a moment ago (older than the queue: first), or
        # being submitted right now (newer: last).
        newest = max((j.id for j in queued), default=-1)
        return running + [j for j in rest if j.id < newest] + queued + [j for j in rest if j.id > newest]

    def _job_changed(self, job) -> None:
        if not is_paint(job):
            return
        try:
            self.refresh()
        except RuntimeError:  # the window is gone while the runtime shuts down
            pass

    @staticmethod
    def _text(job) -> str:
        req = job.request
        extra = f" ×{req.batch_count}" if req.batch_count > 1 else ""
        if job.state is JobState.RUNNING:
            return f"▶ {job.progress * 100:3.0f}%  {req.title}{extra}"
        return f"⏸ queued  {req.title}{extra}"

    def refresh(self) -> None:
        jobs = self.jobs()
        ids = [j.id for j in jobs]
        if ids == [self.list.item(k).data(JOB_ROLE) for k in range(self.list.count())]:
            for k, job in enumerate(jobs):  # progress only: keep the items, selection and any drag
                self.list.item(k).setText(self._text(job))
            return
        selected = {it.data(JOB_ROLE) for it in self.list.selectedItems()}
        self._refreshing = True
        self.list.clear()
        for job in jobs:
            req = job.request
            item = QListWidgetItem(self._text(job))
            item.setData(JOB_ROLE, job.id)
            item.setToolTip(f"{req.prompt}\n{req.steps} steps, {req.scheduler}, seed {req.seed}")
            flags = item.flags()
            if job.state is JobState.RUNNING:
                flags &= ~Qt.ItemFlag.ItemIsDragEnabled
            item.setFlags(flags & ~Qt.ItemFlag.ItemIsDropEnabled)
            self.list.addItem(item)
            item.setSelected(job.id in selected)
        n = self.list.count()
        self.info.setText("Nothing queued. Generate adds a job here even while another one runs." if n == 0 else
                          f"{n} job(s). Drag or use Up/Down to reorder queued jobs.")
        self._refreshing = False

    # -- actions ---------------------------------------------------------------------------
    def _job(self, job_id):
        return self.runtime.jobs.get(job_id)

    def move_selected(self, delta: int) -> None:
        current = self.list.currentItem()
        items = [current] if current is not None and current.isSelected() else self.list.selectedItems()
        if not items:
            return
        queued = [j for j in self.runtime.queued() if is_paint(j)]
        job = self._job(items[0].data(JOB_ROLE))
        if job not in queued:
            self.session.app.message = "Only queued jobs can be moved."
            return
        i = queued.index(job)
        j = max(0, min(len(queued) - 1, i + delta))
        if i == j:
            return
        queued.insert(j, queued.pop(i))
        self.apply_order(queued)
        for k in range(self.list.count()):
            if self.list.item(k).data(JOB_ROLE) == job.id:
                self.list.setCurrentRow(k, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def apply_order(self, order: list) -> None:
        """Run the paint jobs of `order` in that order (other lanes' jobs keep their places)."""
        lane = self.runtime.queued()
        slots = [i for i, j in enumerate(lane) if is_paint(j)]
        for slot, job in zip(slots, order):
            self.runtime.reorder(job, slot)
        self._on_reordered([j.request.uid for j in order])
        self.refresh()

    def _dragged(self, *args) -> None:
        if self._refreshing:
            return
        ids = [self.list.item(k).data(JOB_ROLE) for k in range(self.list.count())]
        queued = [j for j in self.runtime.queued() if is_paint(j)]
        by_id = {j.id: j for j in queued}
        order = [by_id[i] for i in ids if i in by_id]
        self.apply_order(order)

    def cancel_selected(self) -> None:
        ids = [item.data(JOB_ROLE) for item in self.list.selectedItems()]  # cancelling rebuilds the list
        for job_id in ids:
            job = self._job(job_id)
            if job is not None:
                self._on_cancel(job)
        self.refresh()
