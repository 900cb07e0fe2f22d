"""Undoable paint edits (QUndoStack commands): mask strokes, pose edits, depth painting and applied
results. Each command holds the value before and after; the edit is already on screen when it is
pushed, so the first redo only records it."""
from __future__ import annotations

from PySide6.QtGui import QUndoCommand


class _Swap(QUndoCommand):
    def __init__(self, text: str, before, after) -> None:
        super().__init__(text)
        self.before, self.after = before, after
        self._first = True

    def apply(self, value) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def redo(self) -> None:
        if self._first:
            self._first = False
            return
        self.apply(self.after)

    def undo(self) -> None:
        self.apply(self.before)


class MaskEdit(_Swap):
    def __init__(self, state, before, after, text: str = "Mask stroke") -> None:
        super().__init__(text, before, after)
        self.state = state

    def apply(self, value) -> None:
        self.state.mask = None if value is None else value.copy()


class PoseEdit(_Swap):
    def __init__(self, state, before, after, text: str = "Pose edit") -> None:
        super().__init__(text, before, after)
        self.state = state

    def apply(self, value) -> None:
        self.state.people = value


class DepthEdit(_Swap):
    def __init__(self, state, before, after, text: str = "Depth painting") -> None:
        super().__init__(text, before, after)
        self.state = state

    def apply(self, value) -> None:
        self.state.depth = None if value is None else value.copy()


class ApplyResult(_Swap):
    """The canvas image (and a mask that no longer fits it) before and after a result was applied."""

    def __init__(self, session, before: tuple, after: tuple, text: str = "Generated image") -> None:
        super().__init__(text, before, after)
        self.session = session

    def apply(self, value) -> None:
        image, mask = value
        self.session.paint.mask = mask
        self.session.app.image = image
