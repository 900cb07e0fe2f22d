"""What the UI knows about models: device label, memory in use, which models are loaded.

Updated on the main thread from job results; the manager itself lives on the GPU lane.
"""
from __future__ import annotations

from studio.state.observable import Observable


class ModelsState(Observable):
    _fields = ("device", "memory_mb", "loaded")

    def __init__(self) -> None:
        self.device: str = "not started"
        self.memory_mb: float = 0.0
        self.loaded: tuple[str, ...] = ()
