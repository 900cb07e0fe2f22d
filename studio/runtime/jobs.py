"""Job records: one per submitted request, mutated only on the main thread."""
from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from studio.core.cancel import CancelToken

_ids = itertools.count(1)


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(eq=False)
class Job:
    request: Any
    lane: str
    key: str | None = None
    title: str = ""
    id: int = field(default_factory=lambda: next(_ids))
    token: CancelToken = field(default_factory=CancelToken)
    state: JobState = JobState.QUEUED
    progress: float = 0.0
    text: str = ""
    error: Any = None
    result: Any = None
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    # Callbacks run on the main thread (through the runtime's post).
    on_result: Callable[[Any], None] | None = None
    on_error: Callable[[Any], None] | None = None
    on_progress: Callable[[float, str], None] | None = None
    on_preview: Callable[[Any], None] | None = None
    on_cancelled: Callable[[], None] | None = None

    def cancel(self) -> None:
        self.token.cancel()
