"""Export of an inspect view: the image with its overlay as PNG, the raw map as .npy, or the PNG
to the clipboard. Files are written atomically (temp file + rename), so a crash never leaves a
half-written PNG where a good one was.

A view hands an `ExportItem` (a composite RGB image, the raw array, a file-name stem) to the
`ExportBar`; the bar's buttons ask for a path, `save_png` / `save_npy` do the writing.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QWidget

from studio.core.atomic import atomic_write_bytes
from studio.core.errors import BadInputError
from studio.ui.convert import array_to_qimage


@dataclass(frozen=True)
class ExportItem:
    stem: str  # file-name stem, e.g. "attention-layer3-head2"
    image: np.ndarray  # RGB uint8 (h, w, 3): what the user sees (image + overlay)
    raw: np.ndarray  # the map itself, float32, at its own resolution


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    path = Path(path)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[..., :3].astype(np.uint8))).save(buf, "PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    path = Path(path)
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
    return path


class ExportBar(QWidget):
    """PNG… / .npy… / Copy buttons for one view (objectNames `inspect.<name>_png`, `_npy`, `_copy`)."""

    def __init__(self, name: str, provider: Callable[[], Optional[ExportItem]], session, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(f"inspect.{name}_export")
        self.session = session
        self.provider = provider
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.png = QPushButton("Save PNG…", self)
        self.png.setObjectName(f"inspect.{name}_png")
        self.png.setToolTip("Save the image with this overlay as PNG")
        self.npy = QPushButton("Save .npy…", self)
        self.npy.setObjectName(f"inspect.{name}_npy")
        self.npy.setToolTip("Save the raw map (float32) as a NumPy array")
        self.copy = QPushButton("Copy", self)
        self.copy.setObjectName(f"inspect.{name}_copy")
        self.copy.setToolTip("Copy the image with this overlay to the clipboard")
        for b in (self.png, self.npy, self.copy):
            lay.addWidget(b)
        self.png.clicked.connect(lambda: self._save("png"))
        self.npy.clicked.connect(lambda: self._save("npy"))
        self.copy.clicked.connect(self.copy_to_clipboard)

    def _item(self) -> Optional[ExportItem]:
        item = self.provider()
        if item is None:
            self.session.app.report_error("There is nothing to export yet: show a map first.")
        return item

    def _save(self, kind: str) -> None:
        item = self._item()
        if item is None:
            return
        recent = self.session.settings.get("ui.recent_files")
        folder = Path(recent[0]).parent if recent else Path.home()
        suffix = ".png" if kind == "png" else ".npy"
        path, _ = QFileDialog.getSaveFileName(self, "Export", str(folder / f"{item.stem}{suffix}"),
                                              "PNG (*.png)" if kind == "png" else "NumPy array (*.npy)")
        if path:
            self.export(kind, path if path.lower().endswith(suffix) else path + suffix, item)

    def export(self, kind: str, path: str | Path, item: Optional[ExportItem] = None) -> Optional[Path]:
        """Write the view to `path` ("png" or "npy"); errors go to the banner. Returns the path."""
        item = item or self._item()
        if item is None:
            return None
        try:
            out = save_png(path, item.image) if kind == "png" else save_npy(path, item.raw)
        except OSError as exc:
            err = BadInputError(f"Could not write {Path(path).name}: {exc.strerror or exc}", str(exc))
            self.session.app.report_error(err.user_message, err.detail)
            return None
        self.session.app.message = f"Saved {out.name}"
        return out

    def copy_to_clipboard(self) -> None:
        item = self._item()
        if item is not None:
            QGuiApplication.clipboard().setImage(array_to_qimage(np.ascontiguousarray(item.image)))
            self.session.app.message = "Copied to the clipboard"
