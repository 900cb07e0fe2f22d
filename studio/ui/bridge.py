"""The one bridge from worker threads to the Qt main thread: a queued signal carrying callables."""
from __future__ import annotations

import logging
from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)


class QtBridge(QObject):
    _call = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._call.connect(self._run, Qt.ConnectionType.QueuedConnection)
        self._closed = False

    def post(self, fn: Callable[[], None]) -> None:
        """Thread-safe: `fn` runs later on the thread that owns the bridge (the main thread)."""
        if not self._closed:
            self._call.emit(fn)

    def close(self) -> None:
        self._closed = True

    @Slot(object)
    def _run(self, fn: Callable[[], None]) -> None:
        if self._closed:
            return
        try:
            fn()
        except Exception:
            log.exception("error in a main-thread callback")
