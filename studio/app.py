"""Composition root: builds settings, catalog, manager, runtime and window. The only module that wires.

`main()` is the program; `build_session()` and `MainWindow(session)` are reused by the pytest
plugin (studio.testing) and the benchmarks, so tests exercise exactly what users run.
"""
from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import Callable

T0 = time.perf_counter()


def configure_logging(log_dir: Path, level: int = logging.INFO) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    if any(getattr(h, "_studio", False) for h in root.handlers):
        return
    fh = logging.handlers.RotatingFileHandler(log_dir / "studio.log", maxBytes=2_000_000,
                                              backupCount=3, encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    fh._studio = True  # type: ignore[attr-defined]
    root.addHandler(fh)
    root.setLevel(level)


def build_session(home: Path | None = None, post: Callable | None = None):
    """Settings, catalog, manager and runtime for one studio. `post` is the main-thread bridge."""
    from studio.catalog.cards import load_catalog
    from studio.catalog.requests import ModelPolicy
    from studio.core.paths import StudioPaths, assets_dir
    from studio.core.settings import Settings
    from studio.engines import register_engines
    from studio.engines.manager import ModelManager, oom_safe
    from studio.engines.preprocessors import register_preprocessor
    from studio.plugins.discovery import load_plugins
    from studio.runtime import Runtime
    from studio.state.session import Session

    paths = StudioPaths(home) if home else StudioPaths.from_env()
    paths.ensure()
    settings = Settings.load(paths.settings_file)
    # Plugins: manifests only (their code is imported when first used); a bad one is switched off.
    plugins = load_plugins(paths.home, settings.get("plugins.disabled"), post)
    catalog = load_catalog([assets_dir() / "models.toml", paths.home / "models.toml"],
                           extra_cards=plugins.model_cards())
    manager = ModelManager(catalog, policy=ModelPolicy.from_settings(settings), assets=assets_dir())
    registry = plugins.engine_registry(gpu_wrap=oom_safe)  # an EngineRegistry that also knows plugin engines
    register_engines(registry)
    plugins.install_preprocessors(register_preprocessor)
    if post is None:
        raise ValueError("build_session needs a main-thread `post` (the Qt bridge)")
    runtime = Runtime(registry, manager, post)
    session = Session(paths=paths, settings=settings, catalog=catalog, runtime=runtime, plugins=plugins)
    plugins.subscribe(lambda rec: session.app.report_error(rec.error, rec.detail))
    ins = session.inspect
    ins.patch_size = settings.get("inspect.patch_size")
    ins.show_patches = settings.get("inspect.show_patches")
    ins.colormap = settings.get("inspect.colormap")
    model = settings.get("inspect.model")
    if model in catalog:
        ins.model_id = model
    from studio.media.journal import restore_paint

    restore_paint(session)  # paint settings, canvas, mask and unfinished jobs from the journal
    return session


class Studio:
    """A running studio: the Qt bridge, the session and the window, with an orderly shutdown."""

    def __init__(self, home: Path | None = None) -> None:
        from studio.ui.bridge import QtBridge
        from studio.ui.main_window import MainWindow

        self.bridge = QtBridge()
        self.session = build_session(home, self.bridge.post)
        self.window = MainWindow(self.session)
        self._closed = False
        problems = self.session.plugins.startup_report()
        if problems:  # after the window exists, so the banner shows it
            self.session.app.report_error(*problems)

    def shutdown(self, timeout: float = 10.0) -> bool:
        if self._closed:
            return True
        self._closed = True
        if self.window.isVisible():
            self.window.close()
        else:
            self.window.save_layout()
        ok = self.session.runtime.shutdown(timeout)
        self.session.plugins.close()
        self.bridge.close()
        return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studio", description="Studio: local image and video AI.")
    parser.add_argument("image", nargs="?", help="an image to open")
    parser.add_argument("--home", help="data folder (default: $STUDIO_HOME or the platform data dir)")
    parser.add_argument("--workspace", choices=("inspect", "label", "chat", "paint", "tape"))
    args = parser.parse_args(argv)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from studio.core.paths import StudioPaths

    home = Path(args.home) if args.home else None
    paths = StudioPaths(home) if home else StudioPaths.from_env()
    configure_logging(paths.logs)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Studio")
    app.setOrganizationName("studio")
    studio = Studio(paths.home)
    if args.workspace:
        studio.window.switch_to(args.workspace)
    studio.window.show()
    logging.getLogger(__name__).info("window shown %.3fs after start", time.perf_counter() - T0)
    if args.image:
        studio.window.open_path(os.path.abspath(args.image))
    # Heavy imports (torch) happen on the GPU lane once the window is up, never before.
    QTimer.singleShot(500, studio.window.probe_device)
    app.aboutToQuit.connect(studio.shutdown)
    return app.exec()
