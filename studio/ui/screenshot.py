"""Render the real window to PNG for docs and test artifacts: python -m studio.ui.screenshot OUT.png.

Opens a sample image, shows the patch grid, runs feature maps, waits for the result, then grabs the
window. Works offscreen (QT_QPA_PLATFORM=offscreen) and on a real or virtual X display.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def capture(out: Path, workspace: str = "inspect", image: Path | None = None,
            features: bool = True, size=(1280, 800)) -> Path:
    from PySide6.QtWidgets import QApplication

    from studio.app import Studio
    from studio.core.paths import assets_dir

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as home:
        studio = Studio(Path(home))
        win = studio.window
        win.resize(*size)
        win.show()

        def wait(cond, timeout=120.0):
            end = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > end:
                    raise TimeoutError("screenshot: the studio did not finish in time")
                app.processEvents()
                time.sleep(0.01)

        try:
            win.open_path(str(image or assets_dir() / "samples" / "astronaut.jpg"))
            wait(lambda: studio.session.app.image is not None or studio.session.app.error)
            win.switch_to(workspace)
            if workspace == "inspect":
                studio.session.inspect.show_patches = True
                if features:
                    win.panels["inspect"].run_features()
                    wait(lambda: studio.session.inspect.feature_maps is not None
                         or studio.session.app.error)
            win.probe_device()
            wait(lambda: studio.session.models.device != "not started")
            for _ in range(10):
                app.processEvents()
                time.sleep(0.02)
            out.parent.mkdir(parents=True, exist_ok=True)
            win.grab().save(str(out))
        finally:
            studio.shutdown()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Save a screenshot of the studio window.")
    ap.add_argument("out", type=Path)
    ap.add_argument("--workspace", default="inspect")
    ap.add_argument("--image", type=Path)
    args = ap.parse_args(argv)
    print(capture(args.out, args.workspace, args.image))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
