"""Lanes: worker threads that take jobs from one queue.

The GPU lane has exactly one thread, so every torch call and the model manager live on it and need
no locks. The CPU pool has a few threads for image I/O, thumbnails and hashing.
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)

Work = Callable[[], None]


class Lane:
    def __init__(self, name: str, workers: int = 1) -> None:
        self.name = name
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"studio-{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def put(self, item) -> None:
        """`item` has a `.run()`; it is dropped (with `.drop()`) if the lane stops first."""
        with self._cond:
            if self._stopping:
                item.drop()
                return
            self._queue.append(item)
            self._cond.notify()

    def remove(self, item) -> bool:
        with self._cond:
            try:
                self._queue.remove(item)
                return True
            except ValueError:
                return False

    def move(self, item, index: int) -> bool:
        """Move a queued item to position `index` of the queue (0 = next to run; clamped)."""
        with self._cond:
            try:
                self._queue.remove(item)
            except ValueError:
                return False
            self._queue.insert(max(0, min(int(index), len(self._queue))), item)
            return True

    def pending(self) -> list:
        with self._cond:
            return list(self._queue)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._queue:
                    return
                item = self._queue.popleft()
            try:
                item.run()
            except BaseException:  # pragma: no cover - item.run reports its own errors
                log.exception("unhandled error on lane %s", self.name)

    def stop(self, timeout: float = 10.0) -> bool:
        """Drop queued items, let running ones finish (they were cancelled), join the threads."""
        with self._cond:
            self._stopping = True
            dropped = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for item in dropped:
            item.drop()
        for t in self._threads:
            t.join(timeout)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("lane %s: threads still running after %.1fs: %s", self.name, timeout, alive)
        return not alive

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)
