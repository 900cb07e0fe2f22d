"""The main window: workspace mode bar, central canvas, per-workspace docks, menus and status bar."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow,
                               QMessageBox, QToolBar, QVBoxLayout, QWidget)

from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.core.requests import DeviceInfoRequest, OpenImageRequest
from studio.media.imageio import SUPPORTED_SUFFIXES
from studio.state.app_state import WORKSPACES
from studio.ui.canvas import ImageCanvas
from studio.ui.convert import array_to_qimage, qimage_to_array
from studio.ui.panels.workspace_placeholder import PlaceholderPanel
from studio.ui.widgets.error_banner import ErrorBanner
from studio.ui.widgets.job_indicator import JobIndicator

log = logging.getLogger(__name__)

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES) + ");;All files (*)"


class MainWindow(QMainWindow):
    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        self.setObjectName("main_window")
        self.setWindowTitle("Studio")
        self.resize(1280, 800)
        self.setDockNestingEnabled(True)

        self.canvas = ImageCanvas(self)
        self.banner = ErrorBanner(self)
        central = QWidget(self)
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.banner)
        lay.addWidget(self.canvas, 1)
        self.setCentralWidget(central)

        self.panels: dict[str, QWidget] = {}
        self.docks: dict[str, QDockWidget] = {}
        self._build_docks()
        self._build_mode_bar()
        self._build_menus()
        self._build_status_bar()
        self._wire()
        self._restore_layout()
        session.app.set_workspace(session.settings.get("ui.workspace"))
        self._show_workspace(session.app.workspace)

    # -- construction ---------------------------------------------------------------------
    def _build_docks(self) -> None:
        for ws in WORKSPACES:
            panel = _make_panel(ws, self)
            dock = QDockWidget(ws.capitalize(), self)
            dock.setObjectName(f"dock.{ws}")
            dock.setWidget(panel)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            dock.setMinimumWidth(300)
            dock.toggleViewAction().setObjectName(f"action.panel.{ws}")
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self.panels[ws] = panel
            self.docks[ws] = dock
        from studio.ui.plugin_ui import PluginUI

        self.plugin_ui = PluginUI(self)  # plugin panels as docks (built when first shown), Plugins menu
        self.plugin_ui.build_docks()

    def _build_mode_bar(self) -> None:
        bar = QToolBar("Workspaces", self)
        bar.setObjectName("toolbar.workspaces")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.mode_group = QActionGroup(self)
        self.mode_group.setExclusive(True)
        self.mode_actions: dict[str, QAction] = {}
        for i, ws in enumerate(WORKSPACES, start=1):
            act = QAction(ws.capitalize(), self)
            act.setObjectName(f"action.workspace.{ws}")
            act.setCheckable(True)
            act.setShortcut(QKeySequence(f"Ctrl+{i}"))
            act.setToolTip(f"{ws.capitalize()} workspace (Ctrl+{i})")
            act.triggered.connect(lambda _=False, name=ws: self.switch_to(name))
            self.mode_group.addAction(act)
            bar.addAction(act)
            bar.widgetForAction(act).setObjectName(f"mode.{ws}")
            self.mode_actions[ws] = act
        self.mode_bar = bar

    def _action(self, menu, text: str, name: str, slot, shortcut=None) -> QAction:
        act = QAction(text, self)
        act.setObjectName(f"action.{name}")
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _build_menus(self) -> None:
        mb = self.menuBar()
        mb.setObjectName("menubar")
        f = mb.addMenu("&File")
        f.setObjectName("menu.file")
        self._action(f, "&Open…", "open", self.open_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = f.addMenu("Open &Recent")
        self.recent_menu.setObjectName("menu.recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._action(f, "Save Image &As…", "save_as", self.save_dialog, QKeySequence.StandardKey.SaveAs)
        f.addSeparator()
        self._action(f, "&Quit", "quit", self.close, QKeySequence.StandardKey.Quit)

        e = mb.addMenu("&Edit")
        e.setObjectName("menu.edit")
        self._action(e, "&Copy Image", "copy", self.copy_image, QKeySequence.StandardKey.Copy)
        self._action(e, "&Paste Image", "paste", self.paste, QKeySequence.StandardKey.Paste)
        e.addSeparator()
        self._action(e, "Cancel &Jobs", "cancel_jobs", self.session.runtime.cancel_all, "Esc")

        v = mb.addMenu("&View")
        v.setObjectName("menu.view")
        self._action(v, "Zoom &In", "zoom_in", self.canvas.zoom_in, QKeySequence.StandardKey.ZoomIn)
        self._action(v, "Zoom &Out", "zoom_out", self.canvas.zoom_out, QKeySequence.StandardKey.ZoomOut)
        self._action(v, "&Fit to Window", "fit", self.canvas.fit, "Ctrl+0")
        self._action(v, "&Actual Size (100%)", "actual_size", self.canvas.actual_size, "Ctrl+Alt+0")
        v.addSeparator()
        ws_menu = v.addMenu("&Workspace")
        ws_menu.setObjectName("menu.workspace")
        for act in self.mode_actions.values():
            ws_menu.addAction(act)
        docks = v.addMenu("&Panels")
        docks.setObjectName("menu.panels")
        for dock in self.docks.values():
            docks.addAction(dock.toggleViewAction())

        m = mb.addMenu("&Models")
        m.setObjectName("menu.models")
        self._action(m, "&Manager…", "models_manager", self.open_models_manager, "Ctrl+Shift+M")

        h = mb.addMenu("&Help")
        h.setObjectName("menu.help")
        self._action(h, "&Keyboard Shortcuts", "shortcuts", self.show_shortcuts, "F1")
        self._action(h, "&About Studio", "about", self.show_about)
        self.plugin_ui.build_menu(mb)  # last, so plugin shortcuts can avoid every built-in one

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        sb.setObjectName("statusbar")
        self.pos_label = QLabel("", self)
        self.pos_label.setObjectName("status.position")
        self.pos_label.setMinimumWidth(220)
        self.zoom_label = QLabel("", self)
        self.zoom_label.setObjectName("status.zoom")
        self.device_label = QLabel("Device: not started", self)
        self.device_label.setObjectName("status.device")
        self.memory_label = QLabel("", self)
        self.memory_label.setObjectName("status.memory")
        self.jobs = JobIndicator(self.session.runtime, self)
        sb.addWidget(self.pos_label)
        sb.addPermanentWidget(self.zoom_label)
        sb.addPermanentWidget(self.device_label)
        sb.addPermanentWidget(self.memory_label)
        sb.addPermanentWidget(self.jobs)
        self._memory_timer = QTimer(self)
        self._memory_timer.setObjectName("timer.memory")
        self._memory_timer.setInterval(2000)
        self._memory_timer.timeout.connect(self._update_memory)
        self._memory_timer.start()
        self._update_memory()

    def _wire(self) -> None:
        s = self.session
        self.canvas.hovered.connect(self._on_hover)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.canvas.files_dropped.connect(lambda paths: self.open_path(paths[0]))
        s.app.changed.connect(self._on_app_state)
        s.inspect.changed.connect(self._on_inspect_state)
        self.canvas.set_patch_grid(s.inspect.patch_size if s.inspect.show_patches else 0)

    # -- workspaces -----------------------------------------------------------------------
    def switch_to(self, name: str) -> None:
        if name not in WORKSPACES:
            raise ValueError(f"unknown workspace {name!r}")
        self.session.app.set_workspace(name)

    def _show_workspace(self, name: str) -> None:
        self.mode_actions[name].setChecked(True)
        for ws, dock in self.docks.items():
            dock.setVisible(ws == name)
        self.setWindowTitle(f"Studio — {name.capitalize()}")
        self.session.settings.set("ui.workspace", name)
        self._apply_patch_overlay()

    # -- images ---------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self._last_dir(), IMAGE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str):
        """Decode `path` on the CPU pool; the result (or a clear error) arrives on the main thread."""
        self.session.app.message = f"Opening {Path(path).name}…"
        return self.session.runtime.submit(
            OpenImageRequest(str(path)), key="open-image", title="Open image",
            on_result=lambda img: self._opened(img, path), on_error=self._report)

    def _opened(self, image: StudioImage, path: str) -> None:
        self.set_image(image)
        self._remember_recent(path)
        note = image.info.get("note")
        self.session.app.message = f"{Path(path).name}: {image.width}×{image.height}" + (
            f" ({note})" if note else "")

    def set_image(self, image: StudioImage) -> None:
        self.session.app.clear_error()
        self.session.app.image = image

    def paste(self) -> None:
        cb = QGuiApplication.clipboard()
        md = cb.mimeData()
        if md is not None and md.hasImage():
            qimg = cb.image()
            if not qimg.isNull():
                self.set_image(StudioImage(qimage_to_array(qimg), "clipboard"))
                self.session.app.message = f"Pasted image {qimg.width()}×{qimg.height()}"
                return
        if md is not None and md.hasUrls():
            files = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
            if files:
                self.open_path(files[0])
                return
        text = cb.text().strip()
        if text and os.path.isfile(text):
            self.open_path(text)
            return
        self._report(BadInputError("The clipboard holds no image."))

    def copy_image(self) -> None:
        img = self.session.app.image
        if img is not None:
            QGuiApplication.clipboard().setImage(array_to_qimage(img.pixels))
            self.session.app.message = "Image copied to the clipboard"

    def save_dialog(self) -> None:
        img = self.session.app.image
        if img is None:
            self._report(BadInputError("There is no image to save."))
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save image", self._last_dir(), "PNG (*.png)")
        if path:
            from studio.media.imageio import save_png

            try:
                save_png(img, path if path.lower().endswith(".png") else path + ".png")
            except OSError as exc:
                self._report(BadInputError(f"Could not save the image: {exc.strerror or exc}", str(exc)))

    def _last_dir(self) -> str:
        recent = self.session.settings.get("ui.recent_files")
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def _remember_recent(self, path: str) -> None:
        st = self.session.settings
        path = str(Path(path).resolve())
        recent = [p for p in st.get("ui.recent_files") if p != path]
        st.set("ui.recent_files", [path, *recent][: st.get("ui.recent_max")])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.session.settings.get("ui.recent_files")
        if not recent:
            act = self.recent_menu.addAction("No recent files")
            act.setEnabled(False)
            return
        for i, p in enumerate(recent):
            act = self.recent_menu.addAction(f"&{i + 1 if i < 9 else 0}  {Path(p).name}")
            act.setToolTip(p)
            act.triggered.connect(lambda _=False, path=p: self.open_path(path))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear Recent", lambda: self.session.settings.set("ui.recent_files", []))

    # -- state → widgets ------------------------------------------------------------------
    def _on_app_state(self, name: str, value) -> None:
        if name == "workspace":
            self._show_workspace(value)
        elif name == "image":
            self.canvas.set_image(value)
        elif name == "message":
            self.statusBar().showMessage(value, 8000)
        elif name == "error":
            if value:
                self.banner.show_error(value, self.session.app.error_detail)
            else:
                self.banner.hide()

    def _on_inspect_state(self, name: str, value) -> None:
        if name in ("show_patches", "patch_size"):
            st = self.session.settings
            st.set("inspect.show_patches", self.session.inspect.show_patches)
            st.set("inspect.patch_size", self.session.inspect.patch_size)
            self._apply_patch_overlay()
        elif name == "hover_patch":
            self.canvas.set_hover_patch(value if self._patches_visible() else None)
        elif name == "colormap":
            self.session.settings.set("inspect.colormap", value)
        elif name == "model_id":
            self.session.settings.set("inspect.model", value)

    def _patches_visible(self) -> bool:
        return self.session.app.workspace == "inspect" and self.session.inspect.show_patches

    def _apply_patch_overlay(self) -> None:
        self.canvas.set_patch_grid(self.session.inspect.patch_size if self._patches_visible() else 0)

    def _on_hover(self, x: int, y: int, rgb) -> None:
        img = self.session.app.image
        if rgb is None or img is None:
            self.pos_label.setText("")
            self.session.inspect.hover_patch = None
            return
        vals = ", ".join(str(v) for v in rgb)
        chan = "RGBA" if len(rgb) == 4 else "RGB"
        self.pos_label.setText(f"x {x}, y {y}   {chan} ({vals})")
        if self._patches_visible():
            self.session.inspect.hover_patch = self.session.inspect.patch_at(x, y, img.width, img.height)

    def _report(self, err) -> None:
        self.session.app.report_error(err.user_message, getattr(err, "detail", ""))

    # -- status ---------------------------------------------------------------------------
    def _update_memory(self) -> None:
        from studio.engines.device import rss_mb  # reads /proc only; no torch here

        mem = self.session.models.memory_mb if self.session.models.device == "cuda" else rss_mb()
        self.memory_label.setText(f"Memory: {mem:,.0f} MB")

    def probe_device(self) -> None:
        """Ask the GPU lane for the device; torch is imported there, after the window is up."""
        def done(info):
            self.session.models.update(device=info.device, memory_mb=info.memory_mb)
            self.device_label.setText(f"Device: {info.label}")

        self.session.runtime.submit(DeviceInfoRequest(), key="device-info", title="Starting engines",
                                    on_result=done, on_error=self._report)

    # -- dialogs --------------------------------------------------------------------------
    def open_models_manager(self) -> None:
        from studio.ui.dialogs.models_dialog import ModelsDialog

        dlg = ModelsDialog(self.session, self)
        dlg.open()

    def show_shortcuts(self) -> None:
        rows = []
        for act in self.findChildren(QAction):
            if act.shortcut().toString() and act.text():
                rows.append(f"<tr><td>{act.text().replace('&', '')}</td>"
                            f"<td><b>{act.shortcut().toString()}</b></td></tr>")
        rows.append("<tr><td>Zoom (canvas)</td><td><b>Wheel, + / -</b></td></tr>")
        rows.append("<tr><td>Pan (canvas)</td><td><b>Drag</b></td></tr>")
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts",
                          "<table>" + "".join(sorted(set(rows))) + "</table>",
                          QMessageBox.StandardButton.Close, self)
        box.setObjectName("dialog.shortcuts")
        box.open()

    def show_about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About Studio",
                          "<b>Studio</b><br>A local studio for image and video AI: inspect, label, "
                          "chat, paint and the frame tape.<br>Data folder: "
                          f"{self.session.paths.home}", QMessageBox.StandardButton.Close, self)
        box.setObjectName("dialog.about")
        box.open()

    # -- layout persistence ---------------------------------------------------------------
    def _restore_layout(self) -> None:
        st = self.session.settings
        geo, state = st.get("ui.geometry"), st.get("ui.state")
        if geo:
            self.restoreGeometry(QByteArray.fromBase64(geo.encode("ascii")))
        if state:
            self.restoreState(QByteArray.fromBase64(state.encode("ascii")))

    def save_layout(self) -> None:
        st = self.session.settings
        st.set("ui.geometry", bytes(self.saveGeometry().toBase64()).decode("ascii"))
        st.set("ui.state", bytes(self.saveState().toBase64()).decode("ascii"))
        try:
            st.save()
        except OSError as exc:
            log.error("could not save settings: %s", exc)

    def closeEvent(self, event) -> None:
        self.save_layout()
        self._memory_timer.stop()
        super().closeEvent(event)


# Each workspace's panel class, imported when the window is built. A workspace whose panel module is
# not present yet gets a placeholder that says so, instead of a broken window.
PANELS = {
    "inspect": "studio.ui.panels.inspect_panel:InspectPanel",
    "label": "studio.ui.panels.label_panel:LabelPanel",
    "chat": "studio.ui.panels.chat_panel:ChatPanel",
    "paint": "studio.ui.panels.paint_panel:PaintPanel",
    "tape": "studio.ui.panels.tape_panel:TapePanel",
}


def _make_panel(workspace: str, window: "MainWindow") -> QWidget:
    import importlib

    module_name, cls_name = PANELS[workspace].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return PlaceholderPanel(workspace, window)
    # Panels take (session, window): the window gives them the canvas and the error reporting.
    return getattr(module, cls_name)(window.session, window)


def app_instance() -> QApplication:
    app = QApplication.instance()
    return app if app is not None else QApplication([])
