"""Shared pieces of the inspect workspace's UI tests (no tests here): tiny seeded ViTs saved like
real models (a timm folder, a transformers ViT folder, the tiny transformers CLIP), a STUDIO_HOME
whose models.toml lists them, and small driver steps (pick a model, show a tab, click an image
pixel, wait for a state field). Models are built once per test session and loaded by the real
model manager through `local:` cards, exactly like a downloaded model.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, Qt

from studio.core.paths import assets_dir
from studio.engines import clip_tiny

SHAPES5 = ["circle", "square", "triangle", "star", "person"]
TIMM_ARGS = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)
_ROOT: list[Path] = []


def _root() -> Path:
    if not _ROOT:
        tmp = Path(tempfile.mkdtemp(prefix="studio-inspect-models-"))
        atexit.register(shutil.rmtree, tmp, True)
        _ROOT.append(tmp)
    return _ROOT[0]


def timm_vit_folder() -> Path:
    """A timm ViT (32x32 input, 8x8 patches: a 4x4 grid, 2 blocks of 2 heads, 5 classes)."""
    folder = _root() / "timm-vit"
    if not (folder / "config.json").exists():
        import timm
        import torch
        from timm.models import save_for_hf

        torch.manual_seed(0)
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **TIMM_ARGS).eval()
        save_for_hf(model, str(folder), safe_serialization=True, model_args=TIMM_ARGS,
                    model_config={"label_names": SHAPES5})
    return folder


def hf_vit_folder() -> Path:
    """A transformers ViTForImageClassification (32x32, patch 8) with its image processor."""
    folder = _root() / "hf-vit"
    if not (folder / "config.json").exists():
        import torch
        from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

        torch.manual_seed(0)
        cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=4,
                        id2label={0: "circle", 1: "square", 2: "triangle", 3: "star"},
                        label2id={"circle": 0, "square": 1, "triangle": 2, "star": 3})
        ViTForImageClassification(cfg).eval().save_pretrained(str(folder), safe_serialization=True)
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder


def _card(model_id: str, task: str, library: str, folder, trained: bool = False) -> str:
    return (f'[[model]]\nid = "{model_id}"\nname = "{model_id}"\ntask = "{task}"\nlibrary = "{library}"\n'
            f'source = "local:{folder}"\ntrained = {"true" if trained else "false"}\n\n')


def write_home(home: Path) -> Path:
    """STUDIO_HOME with cards for the tiny timm ViT, transformers ViT and CLIP."""
    home.mkdir(parents=True, exist_ok=True)
    toml = (_card("tiny-timm-vit", "vit", "timm", timm_vit_folder())
            + _card("tiny-hf-vit", "vit", "transformers", hf_vit_folder())
            + _card("tiny-clip", "clip", "transformers", clip_tiny.cached_hf_clip_folder()))
    (home / "models.toml").write_text(toml, encoding="utf-8")
    return home


def starter(name: str) -> Path | None:
    """The starter model folder (assets/starter/<name>) when it has been built, else None."""
    folder = assets_dir() / "starter" / name
    return folder if (folder / "config.json").exists() else None


# -- driver steps -------------------------------------------------------------------------------------
def panel(studio):
    return studio.window.panels["inspect"]


def choose_model(studio, model_id: str) -> None:
    combo = studio.widget("inspect.model")
    index = combo.findData(model_id)
    assert index >= 0, f"{model_id} is not offered"
    combo.setCurrentIndex(index)  # what picking it in the drop-down does


def show_tab(studio, name: str) -> None:
    from studio.state.inspect_state import TABS

    tabs = studio.widget("inspect.tabs")
    studio.qtbot.mouseClick(tabs.tabBar(), Qt.MouseButton.LeftButton,
                            pos=tabs.tabBar().tabRect(TABS.index(name)).center())
    assert studio.session.inspect.tab == name


def wait_for(studio, cond, timeout: float = 30.0, what: str = "") -> None:
    studio.qtbot.waitUntil(lambda: cond() or studio.last_error() is not None, timeout=int(timeout * 1000))
    assert studio.last_error() is None, f"{what}: {studio.last_error()}"


def wait_probe(studio, model_id: str, timeout: float = 30.0):
    st = studio.session.inspect
    wait_for(studio, lambda: st.probe is not None and st.probe.model_id == model_id, timeout, "probe")
    return st.probe


def open_array(studio, tmp_path, rgb: np.ndarray, name: str = "image.png"):
    from PIL import Image

    path = tmp_path / name
    Image.fromarray(np.asarray(rgb, np.uint8)).save(path)
    image = studio.open_image(path)
    assert image is not None, studio.last_error()
    return image


def canvas_pos(studio, x: float, y: float):
    view = studio.canvas
    pos = view.mapFromScene(QPointF(x, y))
    assert view.viewport().rect().contains(pos), f"({x}, {y}) is not in view"
    return pos


def click_image(studio, x: float, y: float) -> None:
    """A user's click (press and release, no drag) on image point (x, y)."""
    studio.qtbot.mouseClick(studio.canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas_pos(studio, x, y))


def overlay_bytes(studio) -> bytes:
    """The overlay pixmap the canvas shows (b"" without one)."""
    canvas = studio.canvas
    if not canvas.has_overlay():
        return b""
    img = canvas._overlay.pixmap().toImage()
    return bytes(img.constBits())


def count_jobs(studio) -> list:
    """Inspect jobs submitted from now on (other workspaces' background jobs, autosave, are not counted)."""
    jobs: list = []

    def seen(job) -> None:
        if job.state.value == "queued" and (job.key or "").startswith("inspect."):
            jobs.append(job)

    studio.session.runtime.subscribe(seen)
    return jobs
