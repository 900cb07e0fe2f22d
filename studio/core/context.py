"""TaskContext: what an engine may do while it runs (report progress and previews, check cancel).

Progress is throttled here, at the source, so a tight engine loop cannot flood the main thread:
at most one progress message per `min_interval` seconds, except the first and the final (1.0) one.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from studio.core.cancel import CancelToken

ProgressSink = Callable[[float, str], None]
PreviewSink = Callable[[Any], None]


class TaskContext:
    def __init__(
        self,
        token: CancelToken | None = None,
        on_progress: ProgressSink | None = None,
        on_preview: PreviewSink | None = None,
        min_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token or CancelToken()
        self._on_progress = on_progress
        self._on_preview = on_preview
        self._min_interval = min_interval
        self._clock = clock
        self._last_progress = -1e9
        self._last_preview = -1e9

    def cancelled(self) -> bool:
        return self.token.cancelled

    def check(self) -> None:
        """Raise Cancelled if the job was cancelled; call between steps."""
        self.token.raise_if_cancelled()

    def progress(self, fraction: float, text: str = "") -> None:
        if self._on_progress is None:
            return
        now = self._clock()
        final = fraction >= 1.0
        if final or now - self._last_progress >= self._min_interval:
            self._last_progress = now
            self._on_progress(max(0.0, min(1.0, float(fraction))), text)

    def preview_due(self) -> bool:
        """Whether a preview sent now would go out (not throttled): an engine can skip building one."""
        return self._on_preview is not None and self._clock() - self._last_preview >= self._min_interval

    def preview(self, image: Any) -> None:
        if self._on_preview is None:
            return
        now = self._clock()
        if now - self._last_preview >= self._min_interval:
            self._last_preview = now
            self._on_preview(image)
