"""Application-wide state: the current workspace, the current image, the user's last message."""
from __future__ import annotations

from studio.core.image import StudioImage
from studio.state.observable import Observable

WORKSPACES = ("inspect", "label", "chat", "paint", "tape")


class AppState(Observable):
    _fields = ("workspace", "image", "message", "error", "error_detail", "mask")

    def __init__(self) -> None:
        self.workspace: str = "inspect"
        self.image: StudioImage | None = None
        self.message: str = ""
        self.error: str | None = None
        self.error_detail: str = ""
        # The current inpainting mask (HxW uint8, 255 = repaint) or None; "Send to paint" sets it.
        self.mask = None

    def set_workspace(self, name: str) -> None:
        if name not in WORKSPACES:
            raise ValueError(f"unknown workspace {name!r}; choose one of {', '.join(WORKSPACES)}")
        self.workspace = name

    def report_error(self, message: str, detail: str = "") -> None:
        # Set detail first so a listener on `error` sees both.
        self.error_detail = detail
        self.error = None  # re-emit even when the same message repeats
        self.error = message

    def clear_error(self) -> None:
        self.error = None
        self.error_detail = ""
