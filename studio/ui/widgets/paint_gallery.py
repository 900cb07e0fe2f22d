"""The paint panel's Gallery tab: every generated image, newest first, searchable by prompt words,
model and date, from the SQLite index. Thumbnails are made on the CPU lane. Open puts an image on the
canvas; "Use settings" loads its recipe (or A1111 text) into the paint settings."""
from __future__ import annotations

import time

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QLineEdit, QListView, QListWidget, QListWidgetItem,
                               QPushButton, QToolButton, QVBoxLayout, QWidget)

from studio.media.gallery import Gallery, ReindexRequest, ThumbnailRequest
from studio.ui.convert import array_to_pixmap

THUMB = 96
PATH_ROLE = Qt.ItemDataRole.UserRole
ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1
WHEN = (("Any time", None), ("Today", 1), ("Last 7 days", 7), ("Last 30 days", 30))


class PaintGallery(QWidget):
    def __init__(self, session, on_use, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("paint.gallery")
        self.session = session
        self._on_use = on_use  # (GalleryEntry) -> None
        self.gallery = Gallery(session.paths.home / "gallery.sqlite", session.paths.library)
        lay = QVBoxLayout(self)
        self.search = QLineEdit(self)
        self.search.setObjectName("paint.gallery_search")
        self.search.setPlaceholderText("Search prompts…")
        self.search.setClearButtonEnabled(True)
        for button in self.search.findChildren(QToolButton):  # the clear button Qt adds
            button.setObjectName("paint.gallery_search_clear")
        lay.addWidget(self.search)
        row = QHBoxLayout()
        self.model = QComboBox(self)
        self.model.setObjectName("paint.gallery_model")
        self.when = QComboBox(self)
        self.when.setObjectName("paint.gallery_when")
        for text, days in WHEN:
            self.when.addItem(text, days)
        row.addWidget(self.model, 1)
        row.addWidget(self.when)
        lay.addLayout(row)
        self.list = QListWidget(self)
        self.list.setObjectName("paint.gallery_list")
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setUniformItemSizes(True)
        self.list.setSpacing(4)
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.open = QPushButton("Open", self)
        self.open.setObjectName("paint.gallery_open")
        self.use = QPushButton("Use settings", self)
        self.use.setObjectName("paint.gallery_use")
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.setObjectName("paint.gallery_refresh")
        for b in (self.open, self.use, self.refresh_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.info = QLabel("", self)
        self.info.setObjectName("paint.gallery_info")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)

        self._debounce = QTimer(self)
        self._debounce.setObjectName("timer.paint_gallery_search")
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.refresh)
        self._thumbs: dict[str, object] = {}
        self._indexed = False
        self.search.textChanged.connect(lambda _: self._debounce.start())
        self.model.currentIndexChanged.connect(lambda _: self.refresh())
        self.when.currentIndexChanged.connect(lambda _: self.refresh())
        self.refresh_button.clicked.connect(self.reindex)
        self.open.clicked.connect(self.open_selected)
        self.use.clicked.connect(self.use_selected)
        self.list.itemDoubleClicked.connect(lambda _: self.open_selected())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._indexed:
            self._indexed = True
            self.reindex()

    def stop(self) -> None:
        self._debounce.stop()

    # -- data ------------------------------------------------------------------------------
    def reindex(self) -> None:
        """Rebuild the index from the library on the CPU lane (finds files a crash left unindexed)."""
        self.info.setText("Reading the library…")
        self.session.runtime.submit(ReindexRequest(str(self.gallery.db_path), str(self.gallery.library)),
                                    key="paint.gallery_reindex", title="Gallery index",
                                    on_result=lambda n: self.refresh(), on_error=self._failed)

    def _failed(self, err) -> None:
        self.info.setText(err.user_message)

    def refresh(self) -> None:
        try:
            self._fill_models()
            days = self.when.currentData()
            since = time.time() - days * 86400 if days else None
            if days == 1:
                t = time.localtime()
                since = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
            entries = self.gallery.search(self.search.text(), self.model.currentData() or "", since)
        except Exception as exc:  # an unreadable index must not break the panel
            self.info.setText(f"The gallery index cannot be read: {exc}")
            return
        self.list.clear()
        missing = []
        for e in entries:
            item = QListWidgetItem(e.prompt[:40] or "(no prompt)")
            item.setToolTip(f"{e.prompt}\n{e.model} · {e.sampler} · {e.steps} steps · seed {e.seed}\n{e.when}\n{e.path}")
            item.setData(PATH_ROLE, e.path)
            item.setData(ENTRY_ROLE, e)
            pix = self._thumbs.get(e.path)
            if pix is not None:
                item.setIcon(QIcon(pix))
            else:
                missing.append(e.path)
            self.list.addItem(item)
        self.info.setText(f"{len(entries)} image(s)" + (" (showing the newest 200)" if len(entries) >= 200 else ""))
        if missing:
            self.session.runtime.submit(ThumbnailRequest(tuple(missing), THUMB), key="paint.gallery_thumbs",
                                        title="Thumbnails", on_result=self._thumbs_ready)

    def _fill_models(self) -> None:
        current = self.model.currentData()
        names = self.gallery.models()
        if [self.model.itemData(i) for i in range(1, self.model.count())] == names:
            return
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem("All models", "")
        for n in names:
            self.model.addItem(n, n)
        self.model.setCurrentIndex(max(0, self.model.findData(current)))
        self.model.blockSignals(False)

    def _thumbs_ready(self, result) -> None:
        for path, arr in result.items:
            if arr is not None:
                self._thumbs[path] = array_to_pixmap(arr)
        for k in range(self.list.count()):
            item = self.list.item(k)
            pix = self._thumbs.get(item.data(PATH_ROLE))
            if pix is not None:
                item.setIcon(QIcon(pix))

    # -- actions ---------------------------------------------------------------------------
    def _selected(self):
        items = self.list.selectedItems()
        if not items:
            self.session.app.message = "Select an image in the gallery first."
            return None
        return items[0].data(ENTRY_ROLE)

    def open_selected(self) -> None:
        e = self._selected()
        if e is not None:
            self.window().open_path(e.path)

    def use_selected(self) -> None:
        e = self._selected()
        if e is not None:
            self._on_use(e)
