"""Cooperative cancellation: a token shared by the scheduler and the running engine."""
from __future__ import annotations

import threading

from studio.core.errors import Cancelled


class CancelToken:
    """Set once from any thread; engines poll it between steps and raise :class:`Cancelled`."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()
