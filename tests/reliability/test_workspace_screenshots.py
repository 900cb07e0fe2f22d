"""Screenshots as test artifacts: each of the five workspaces rendered from the real window (offscreen,
and under Xvfb where it is installed) is saved as a PNG and must show something, not a blank window.

The PNGs go to `$STUDIO_ARTIFACTS/screenshots` when that variable is set (CI uploads the folder), else
to the test's tmp dir. The README's screenshot comes from `python -m studio.ui.screenshot`, checked here too.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.core.paths import assets_dir
from studio.testing import WORKSPACES
from tests.helpers.xvfb import skip_if_xcb_cannot_start

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def artifacts(tmp_path) -> Path:
    root = os.environ.get("STUDIO_ARTIFACTS")
    folder = (Path(root) if root else tmp_path) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def assert_not_blank(path: Path) -> np.ndarray:
    with Image.open(path) as png:
        arr = np.asarray(png.convert("RGB"))
    assert arr.shape[0] > 200 and arr.shape[1] > 300, arr.shape
    colours = len(np.unique(arr.reshape(-1, 3)[::7], axis=0))
    assert arr.std() > 10 and colours > 50, f"{path.name} looks blank ({colours} colours, std {arr.std():.1f})"
    return arr


def test_each_workspace_renders_offscreen_and_is_saved(studio, artifacts):
    studio.window.resize(1280, 800)
    assert studio.open_image(assets_dir() / "samples" / "astronaut.jpg") is not None
    shots = {}
    for name in WORKSPACES:
        studio.switch_to(name)
        studio.wait_idle()
        path = studio.screenshot(artifacts / f"workspace-{name}.png")
        shots[name] = assert_not_blank(path)
        # The workspace's own dock is in the picture: its panel differs from every other one.
        dock = studio.widget(f"dock.{name}")
        assert dock.isVisible() and dock.width() > 100
    right = {n: a[:, -300:] for n, a in shots.items()}
    for i, a in enumerate(WORKSPACES):
        for b in WORKSPACES[i + 1:]:
            assert not np.array_equal(right[a], right[b]), f"{a} and {b} look the same"
    assert sorted(p.name for p in artifacts.glob("workspace-*.png")) == sorted(f"workspace-{n}.png" for n in WORKSPACES)


def _screenshot_cli(out: Path, platform: str, runner: list[str] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM=platform, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.run([*runner, sys.executable, "-m", "studio.ui.screenshot", str(out), "--workspace", "paint"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_the_readme_screenshot_command_writes_a_real_picture(qapp, artifacts, capsys):
    """`make screenshot` runs `python -m studio.ui.screenshot docs/screenshot.png`: its main(), here in
    process (the Xvfb test below runs the real command line)."""
    from studio.ui import screenshot

    out = artifacts / "readme-command-paint.png"
    assert screenshot.main([str(out), "--workspace", "paint"]) == 0
    assert capsys.readouterr().out.strip().endswith(out.name)
    assert_not_blank(out)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "docs/screenshot.png" in readme and "-m studio.ui.screenshot docs/screenshot.png" in makefile


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs Xvfb (xvfb-run)")
def test_the_screenshot_under_xvfb_is_not_blank(artifacts):
    out = artifacts / "xvfb-paint.png"
    proc = _screenshot_cli(out, "xcb", ["xvfb-run", "-a", "-s", "-screen 0 1280x900x24"])
    skip_if_xcb_cannot_start(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_not_blank(out)
