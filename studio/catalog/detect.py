"""Guess a new card's library and task from the files a user points at (config files, headers).

Used by the add-model dialog; plain Python that reads only small files, so it is instant. A guess
is a starting point: the dialog lets the user change it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.catalog.integrity import DamagedFile, read_safetensors_header


@dataclass(frozen=True)
class Guess:
    library: str = ""
    task: str = ""
    name: str = ""
    note: str = ""
    options: dict[str, Any] = field(default_factory=dict, compare=False)


_DIFFUSERS_TASKS = (  # first match of the pipeline class name wins
    ("ControlNet", "diffusion"), ("Inpaint", "inpaint"), ("AnimateDiff", "motion"),
    ("Video", "video"), ("CogVideoX", "video"), ("LTX", "video"), ("Wan", "video"),
    ("I2VGen", "video"), ("", "diffusion"),
)
_TRANSFORMERS_TASKS = (
    ("ForConditionalGeneration", "vlm"), ("ImageTextToText", "vlm"), ("VisionText", "clip"),
    ("CLIP", "clip"), ("Siglip", "clip"), ("ViT", "vit"), ("Dinov2", "vit"), ("Deit", "vit"),
    ("ResNet", "cnn"), ("ConvNext", "cnn"), ("EfficientNet", "cnn"), ("RegNet", "cnn"),
)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, UnicodeDecodeError, ValueError):
        return {}


def _pretty(name: str) -> str:
    return re.sub(r"[-_]+", " ", name).strip() or name


def detect_folder(folder: Path) -> Guess:
    folder = Path(folder)
    name = _pretty(folder.name)
    index = folder / "model_index.json"
    if index.exists():
        cls = str(_read_json(index).get("_class_name", ""))
        task = next(t for key, t in _DIFFUSERS_TASKS if key in cls)
        return Guess("diffusers", task, name, f"diffusers pipeline ({cls or 'unknown class'})")
    if (folder / "open_clip_config.json").exists():
        return Guess("open_clip", "clip", name, "open_clip model")
    config = _read_json(folder / "config.json")
    cls = str(config.get("_class_name", ""))
    if cls == "ControlNetModel":
        return Guess("diffusers", "controlnet", name, "diffusers ControlNet")
    if cls == "MotionAdapter":
        return Guess("diffusers", "motion", name, "AnimateDiff motion adapter")
    if cls:
        return Guess("diffusers", "diffusion", name, f"diffusers model ({cls})")
    if "architecture" in config and ("pretrained_cfg" in config or "num_classes" in config):
        arch = str(config["architecture"])
        task = "vit" if any(k in arch for k in ("vit", "deit", "eva", "beit")) else "cnn"
        return Guess("timm", task, name, f"timm model ({arch})")
    archs = config.get("architectures") or []
    if archs or "model_type" in config:
        arch = str(archs[0]) if archs else str(config.get("model_type"))
        task = next((t for key, t in _TRANSFORMERS_TASKS if key.lower() in arch.lower()), "vlm")
        return Guess("transformers", task, name, f"transformers model ({arch})")
    if (folder / "body_pose_model.pth").exists() or (folder / "ControlNetHED.pth").exists():
        return Guess("controlnet_aux", "preprocessor", name, "controlnet_aux annotator checkpoints",
                     {"pickle": True})
    return Guess(note="No config file the studio knows (model_index.json, config.json, "
                      "open_clip_config.json): choose the library and task yourself.", name=name)


def detect_file(path: Path) -> Guess:
    path = Path(path)
    name = _pretty(path.stem)
    if path.suffix != ".safetensors":
        return Guess("diffusers", "diffusion", name,
                     "A pickle checkpoint: it can run code when loaded; the studio loads it only if "
                     "you allow pickle files for this model.", {"pickle": True})
    try:
        header = read_safetensors_header(path)
    except DamagedFile as exc:
        return Guess(note=str(exc), name=name)
    keys = [k for k in header if k != "__metadata__"]
    if any(k.startswith("model.diffusion_model.") for k in keys):
        inpaint = _in_channels(header) == 9
        xl = any(k.startswith("conditioner.") for k in keys)
        opts = {"pipeline": ("StableDiffusionXL" if xl else "StableDiffusion")
                + ("InpaintPipeline" if inpaint else "Pipeline")}
        return Guess("diffusers", "inpaint" if inpaint else "diffusion", name,
                     "single-file Stable Diffusion checkpoint" + (" (SDXL)" if xl else ""), opts)
    if any(k.startswith(("control_model.", "controlnet_")) for k in keys):
        return Guess("diffusers", "controlnet", name, "single-file ControlNet checkpoint",
                     {"pipeline": "ControlNetModel"})
    if any("motion_modules" in k for k in keys):
        return Guess("diffusers", "motion", name, "AnimateDiff motion module",
                     {"pipeline": "MotionAdapter"})
    if "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return Guess("torchvision", "cnn", name, "a ResNet state dict: set options.arch",
                     {"arch": "resnet50" if any("conv3" in k for k in keys) else "resnet18"})
    return Guess("diffusers", "diffusion", name, "safetensors file: check library and task")


def _in_channels(header: dict[str, Any]) -> int:
    info = header.get("model.diffusion_model.input_blocks.0.0.weight", {})
    shape = info.get("shape", [0, 0])
    return int(shape[1]) if len(shape) > 1 else 0


def detect_hub_id(repo_id: str) -> Guess:
    """Offline guess from the repo name only; the dialog may refine it with hub metadata."""
    low = repo_id.lower()
    name = _pretty(repo_id.split("/")[-1])
    rules = (
        (("controlnet", "control_v"), "diffusers", "controlnet"),
        (("animatediff", "motion-adapter"), "diffusers", "motion"),
        (("inpaint",), "diffusers", "inpaint"),
        (("video", "cogvideo", "ltx", "svd", "wan2"), "diffusers", "video"),
        (("stable-diffusion", "sdxl", "sd-", "flux", "diffusion"), "diffusers", "diffusion"),
        (("annotators",), "controlnet_aux", "preprocessor"),
        (("clip-vit", "open_clip", "laion/clip"), "open_clip", "clip"),
        (("siglip", "clip"), "transformers", "clip"),
        (("llava", "vlm", "-vl", "smolvlm", "idefics", "paligemma", "instruct"), "transformers", "vlm"),
        (("timm/",), "timm", "cnn"),
        (("vit",), "transformers", "vit"),
    )
    for keys, lib, task in rules:
        if any(k in low for k in keys):
            if lib == "timm" and any(k in low for k in ("vit", "deit", "eva")):
                task = "vit"
            return Guess(lib, task, name, "guessed from the repo name: check library and task")
    return Guess("transformers", "vlm", name, "could not guess from the name: check library and task")
