"""Fakes for runtime tests: a queue-based `post` standing in for the Qt bridge, and recording engines."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any


class MainLoop:
    """The test thread plays the main thread: posted callables run only inside drain()."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.current_thread()

    def post(self, fn) -> None:
        self.queue.put(fn)

    def drain(self) -> int:
        """Run what is posted now; returns how many callables ran."""
        n = 0
        while True:
            try:
                fn = self.queue.get_nowait()
            except queue.Empty:
                return n
            fn()
            n += 1

    def until(self, cond, timeout: float = 5.0) -> float:
        """Run posted callables until `cond()`; returns the seconds it took."""
        t0 = time.monotonic()
        while not cond():
            left = t0 + timeout - time.monotonic()
            if left <= 0:
                raise TimeoutError("condition not reached while draining the main loop")
            try:
                fn = self.queue.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            fn()
        return time.monotonic() - t0


@dataclass(frozen=True)
class Echo:
    value: Any
    sleep: float = 0.0


@dataclass(frozen=True)
class Spin:
    """Loops until cancelled (checking ctx every millisecond) or until `release` is set."""

    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Boom:
    exc: BaseException


@dataclass(frozen=True)
class CpuEcho:
    value: Any
    sleep: float = 0.0


class Engines:
    """Fake engines that record which thread ran what."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, str]] = []
        self.lock = threading.Lock()

    def _record(self, req) -> None:
        with self.lock:
            self.calls.append((req, threading.current_thread().name))

    def echo(self, req, ctx, models):
        self._record(req)
        time.sleep(req.sleep)
        ctx.check()
        return req.value

    def spin(self, req, ctx, models):
        self._record(req)
        req.started.set()
        while not req.release.wait(0.001):
            ctx.check()
        return "released"

    def boom(self, req, ctx, models):
        self._record(req)
        raise req.exc
