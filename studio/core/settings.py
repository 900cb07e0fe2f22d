"""One declarative settings schema, stored as JSON under STUDIO_HOME and written atomically.

Keys are dotted and use the workspace words (`inspect.patch_size`). Unknown keys from older or newer
versions are kept untouched; values of the wrong type fall back to the default with a logged warning,
so a hand-edited file can never stop the studio from starting.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio.core.atomic import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Option:
    key: str
    default: Any
    doc: str
    choices: tuple | None = None


SCHEMA: tuple[Option, ...] = (
    Option("device", "auto", "Compute device: auto (CUDA, then MPS, then CPU), cpu, cuda, mps.",
           ("auto", "cpu", "cuda", "mps")),
    Option("offline", True, "Never touch the network except for explicit downloads."),
    Option("models.vram_budget_mb", 0, "GPU memory models may take, in MB (0: 90% of the GPU)."),
    Option("models.ram_budget_mb", 0, "Main memory models may take, in MB (0: 60% of the RAM)."),
    Option("models.allow_pickle", [], "Model ids whose pickle checkpoints the user allowed."),
    Option("models.trust_remote_code", [], "Model ids allowed to run code from their repository."),
    Option("ui.workspace", "inspect", "Workspace shown at start.",
           ("inspect", "label", "chat", "paint", "tape")),
    Option("ui.geometry", "", "Main window geometry (base64, Qt saveGeometry)."),
    Option("ui.state", "", "Dock and toolbar layout (base64, Qt saveState)."),
    Option("ui.recent_files", [], "Recently opened images, newest first."),
    Option("ui.recent_max", 10, "How many recent files to remember."),
    Option("inspect.patch_size", 16, "Patch size of the patch-grid overlay.", (8, 14, 16, 32)),
    Option("inspect.show_patches", False, "Show the patch grid over the image."),
    Option("inspect.colormap", "viridis", "Colormap of feature maps.",
           ("viridis", "magma", "gray", "coolwarm")),
    Option("inspect.model", "starter-cnn", "Model used by the inspect workspace."),
    Option("paint.model", "", "Model the paint workspace generates with (empty: the starter pipeline "
           "when installed, else the first image-generation card)."),
    Option("paint.scheduler", "Euler a", "Sampler of the paint workspace (A1111 name, e.g. DPM++ 2M Karras)."),
    Option("paint.steps", 20, "Denoising steps of a new generation."),
    Option("paint.cfg_scale", 7.0, "Classifier-free guidance scale of a new generation."),
    Option("paint.width", 64, "Width of a new text-to-image generation, in pixels."),
    Option("paint.height", 64, "Height of a new text-to-image generation, in pixels."),
    Option("paint.preview_every", 1, "Show a live preview every N denoising steps (0: no preview)."),
    Option("plugins.disabled", [], "Ids of plugins not to load (Plugins > Manage Plugins…; applies at the next start)."),
)

_BY_KEY = {o.key: o for o in SCHEMA}


class Settings:
    """Typed access to the schema; `save()` writes the whole file atomically."""

    def __init__(self, path: Path | None = None, values: dict[str, Any] | None = None) -> None:
        self.path = path
        self._values: dict[str, Any] = dict(values or {})
        self._listeners: list[Callable[[str, Any], None]] = []

    @classmethod
    def load(cls, path: Path) -> "Settings":
        values: dict[str, Any] = {}
        if path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(raw, dict):
                    values = raw
                else:
                    log.warning("settings file %s is not a JSON object; using defaults", path)
            except (OSError, ValueError) as exc:
                # A corrupt settings file must not stop the studio; keep a copy for the user.
                log.warning("cannot read settings %s (%s); using defaults", path, exc)
                try:
                    path.replace(path.with_suffix(".corrupt.json"))
                except OSError:
                    pass
        return cls(path, values)

    def get(self, key: str) -> Any:
        opt = _BY_KEY.get(key)
        if opt is None:
            raise KeyError(f"unknown setting {key!r}")
        value = self._values.get(key, opt.default)
        if not self._valid(opt, value):
            log.warning("setting %s has invalid value %r; using default", key, value)
            return opt.default
        return value

    def set(self, key: str, value: Any) -> None:
        opt = _BY_KEY.get(key)
        if opt is None:
            raise KeyError(f"unknown setting {key!r}")
        if not self._valid(opt, value):
            raise ValueError(f"invalid value {value!r} for setting {key!r}")
        if self._values.get(key, opt.default) == value and key in self._values:
            return
        self._values[key] = value
        for fn in list(self._listeners):
            fn(key, value)

    def on_change(self, fn: Callable[[str, Any], None]) -> None:
        self._listeners.append(fn)

    def save(self) -> None:
        if self.path is not None:
            atomic_write_json(self.path, self._values)

    def as_dict(self) -> dict[str, Any]:
        return {o.key: self.get(o.key) for o in SCHEMA}

    @staticmethod
    def _valid(opt: Option, value: Any) -> bool:
        if opt.choices is not None:
            return value in opt.choices
        if isinstance(opt.default, bool):
            return isinstance(value, bool)
        if isinstance(opt.default, int):
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, type(opt.default))
