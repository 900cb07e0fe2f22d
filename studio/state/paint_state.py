"""Paint workspace state (Qt-free): generation parameters, the inpainting mask, control units, the
pose editor's people, the depth painter's map, and the run status. Widgets subscribe to `changed`.

Also the pixel operations behind the brushes (mask, depth), kept here so they are tested without Qt:
a soft round stamp swept along the mouse path, feathering, inverting, a linear gradient and a blur.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.core.paint_requests import (CONTROL_KINDS, DEFAULT_CONTROLNET, DEFAULT_PREPROCESSOR, MAX_SEED,
                                        MODES, SCHEDULERS, ControlUnit, LoraSpec, PaintRequest,
                                        pose_from_json, pose_to_json, render_pose, snap, standing_person)
from studio.state.observable import Observable

UNIT_COUNT = 3
SOURCES = ("image", "file", "pose", "depth")
SOURCE_LABELS = {"image": "Current image", "file": "Image file…", "pose": "Pose editor",
                 "depth": "Depth / scribble painter"}
# Parameters kept in the workspace journal and applied from a recipe or A1111 text.
PARAMS = ("prompt", "negative_prompt", "model_id", "mode", "scheduler", "steps", "cfg_scale", "width",
          "height", "seed", "batch_count", "strength", "mask_blur", "only_masked", "masked_padding")


@dataclass(frozen=True, eq=False)
class UnitSettings:
    enabled: bool = False
    kind: str = "depth"
    model_id: str = ""
    source: str = "image"
    preprocessor: str = "depth_midas"
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    file_image: StudioImage | None = None
    file_name: str = ""

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("file_image")
        return d


def default_unit(kind: str = "depth") -> UnitSettings:
    source = "pose" if kind == "pose" else "image"
    pre = "none" if source == "pose" else DEFAULT_PREPROCESSOR[kind]
    return UnitSettings(kind=kind, model_id=DEFAULT_CONTROLNET[kind], source=source, preprocessor=pre)


class PaintState(Observable):
    _fields = PARAMS + ("outpaint", "loras", "mask", "brush_size", "brush_hardness", "erase", "mask_tool",
                        "units", "people", "depth", "busy", "status", "progress", "last_seed",
                        "last_result", "offer", "retry")

    def __init__(self) -> None:
        self.prompt = ""
        self.negative_prompt = ""
        self.model_id = ""
        self.mode = "txt2img"
        self.scheduler = "Euler a"
        self.steps = 20
        self.cfg_scale = 7.0
        self.width = 64
        self.height = 64
        self.seed = -1  # -1: a new random seed for each generation
        self.batch_count = 1
        self.strength = 0.75
        self.mask_blur = 4
        self.only_masked = False
        self.masked_padding = 32
        self.outpaint: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.loras: tuple[LoraSpec, ...] = ()
        self.mask: np.ndarray | None = None  # HxW uint8 over the current image, 255 = repaint
        self.brush_size = 32
        self.brush_hardness = 0.7
        self.erase = False
        self.mask_tool = False
        self.units: tuple[UnitSettings, ...] = tuple(default_unit(k) for k in ("depth", "pose", "edges"))
        self.people: tuple = (standing_person(),)
        self.depth: np.ndarray | None = None  # HxW uint8, white = near
        self.busy = False
        self.status = ""
        self.progress = 0.0
        self.last_seed: int | None = None
        self.last_result: StudioImage | None = None
        self.offer: dict[str, Any] | None = None  # settings found in a dropped image
        self.retry: PaintRequest | None = None  # a request that ran out of memory
        self.preview_every = 1
        self.journal = None  # studio.media.journal.Journal, set by the composition root
        self.restored: list = []  # journal jobs that had not finished when the studio stopped

    # -- units -----------------------------------------------------------------------------
    def set_unit(self, index: int, **changes: Any) -> None:
        units = list(self.units)
        unit = units[index]
        if "kind" in changes and changes["kind"] != unit.kind:
            kind = changes["kind"]
            if kind not in CONTROL_KINDS:
                raise ValueError(f"unknown control kind {kind!r}")
            fresh = default_unit(kind)
            changes = {"model_id": fresh.model_id, "preprocessor": fresh.preprocessor,
                       "source": fresh.source, **changes}
        units[index] = replace(unit, **changes)
        self.units = tuple(units)

    # -- seeds -----------------------------------------------------------------------------
    def next_seed(self) -> int:
        return random.randrange(MAX_SEED + 1) if self.seed < 0 else int(self.seed)

    # -- requests --------------------------------------------------------------------------
    def build_request(self, image: StudioImage | None, *, uid: str = "", output_dir: str = "",
                      gallery: str = "", seed: int | None = None, low_memory: bool = False) -> PaintRequest:
        """The frozen request for the current settings (BadInputError when something is missing)."""
        if self.mode not in MODES:
            raise BadInputError(f"Unknown mode {self.mode!r}.")
        size = (int(self.width), int(self.height))
        if self.mode == "outpaint" and image is not None:
            left, top, right, bottom = self.outpaint
            size = (snap(image.width + left + right), snap(image.height + top + bottom))
        controls = []
        for i, u in enumerate(self.units, start=1):
            if u.enabled:
                controls.append(self._control(i, u, image, size))
        mask = self.mask if self.mode == "inpaint" else None
        return PaintRequest(
            prompt=self.prompt, model_id=self.model_id, mode=self.mode, negative_prompt=self.negative_prompt,
            scheduler=self.scheduler, steps=int(self.steps), cfg_scale=float(self.cfg_scale),
            width=int(self.width), height=int(self.height),
            seed=self.next_seed() if seed is None else int(seed), batch_count=int(self.batch_count),
            strength=float(self.strength), init_image=image if self.mode != "txt2img" else None, mask=mask,
            mask_blur=int(self.mask_blur), only_masked=bool(self.only_masked),
            masked_padding=int(self.masked_padding), outpaint=tuple(int(v) for v in self.outpaint),
            controls=tuple(controls), loras=tuple(self.loras), low_memory=low_memory,
            preview_every=int(self.preview_every), output_dir=output_dir,
            gallery=gallery, uid=uid)

    def _control(self, i: int, u: UnitSettings, image: StudioImage | None, size) -> ControlUnit:
        pose: tuple = ()
        img: StudioImage | None = None
        if u.preprocessor != "inpaint":
            if u.source == "image":
                if image is None:
                    raise BadInputError(f"Control unit {i} uses the current image: open or generate one first.")
                img = image
            elif u.source == "file":
                if u.file_image is None:
                    raise BadInputError(f"Control unit {i}: choose its image file.")
                img = u.file_image
            elif u.source == "pose":
                if not self.people:
                    raise BadInputError(f"Control unit {i}: the pose editor has nobody in it: add a person.")
                img = StudioImage(render_pose(self.people, *size), "pose editor")
                pose = self.people
            elif u.source == "depth":
                if self.depth is None:
                    raise BadInputError(f"Control unit {i}: paint a depth map or scribble first.")
                img = StudioImage(np.repeat(self.depth[..., None], 3, axis=2), "depth painter")
        return ControlUnit(kind=u.kind, model_id=u.model_id, image=img, preprocessor=u.preprocessor,
                           weight=float(u.weight), start=float(u.start), end=float(u.end), pose=pose)

    # -- settings from elsewhere (recipes, A1111 text, the journal) ------------------------
    def settings_record(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in PARAMS}
        d["outpaint"] = list(self.outpaint)
        d["loras"] = [{"path": lo.path, "weight": lo.weight} for lo in self.loras]
        d["units"] = [u.record() for u in self.units]
        d["people"] = pose_to_json(self.people)
        d["brush_size"], d["brush_hardness"] = self.brush_size, self.brush_hardness
        return d

    def apply_settings(self, d: dict[str, Any]) -> list[str]:
        """Apply known keys of `d` with type checks; returns what was applied (by name)."""
        applied = []
        types = {k: type(getattr(self, k)) for k in PARAMS}
        for k in PARAMS:
            if k not in d or d[k] is None:
                continue
            v = d[k]
            try:
                v = float(v) if types[k] is float else (int(v) if types[k] is int else v)
            except (TypeError, ValueError):
                continue
            if k == "scheduler" and v not in SCHEDULERS or k == "mode" and v not in MODES:
                continue
            if k == "seed" and not -1 <= v <= MAX_SEED:
                continue
            setattr(self, k, v)
            applied.append(k)
        if isinstance(d.get("outpaint"), (list, tuple)) and len(d["outpaint"]) == 4:
            self.outpaint = tuple(max(0, int(v)) for v in d["outpaint"])
        if isinstance(d.get("loras"), list):
            self.loras = tuple(LoraSpec(str(x["path"]), float(x.get("weight", 1.0))) for x in d["loras"]
                               if isinstance(x, dict) and "path" in x)
        if isinstance(d.get("units"), list):
            units = list(self.units)
            for i, rec in enumerate(d["units"][:UNIT_COUNT]):
                if isinstance(rec, dict) and rec.get("kind") in CONTROL_KINDS:
                    keep = units[i].file_image if rec.get("file_name") == units[i].file_name else None
                    known = {k: rec[k] for k in UnitSettings.__dataclass_fields__ if k in rec and k != "file_image"}
                    units[i] = replace(UnitSettings(), **known, file_image=keep)
            self.units = tuple(units)
        if "people" in d:
            self.people = pose_from_json(d["people"])
        for k in ("brush_size", "brush_hardness"):
            if isinstance(d.get(k), (int, float)):
                setattr(self, k, type(getattr(self, k))(d[k]))
        return applied


# -- brushes: pixel operations on uint8 arrays --------------------------------------------------
def stamp(arr: np.ndarray, x: float, y: float, radius: float, hardness: float, value: int,
          mode: str = "max") -> tuple[int, int, int, int] | None:
    """Apply one round brush dab at (x, y) in place. Inside `hardness * radius` the dab is full, then
    it fades smoothly to nothing at `radius`. mode: "max" paints `value` (mask), "min" erases toward
    0, "blend" mixes toward `value` (depth). Returns the touched box (x0, y0, x1, y1) or None."""
    h, w = arr.shape[:2]
    r = max(0.5, float(radius))
    x0, x1 = max(0, int(math.floor(x - r))), min(w, int(math.ceil(x + r)) + 1)
    y0, y1 = max(0, int(math.floor(y - r))), min(h, int(math.ceil(y + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d = np.sqrt((xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2) / r
    core = min(max(float(hardness), 0.0), 1.0)
    if core >= 1.0:
        alpha = (d <= 1.0).astype(np.float32)
    else:
        t = np.clip((d - core) / (1.0 - core), 0.0, 1.0)
        alpha = (1.0 - t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep fall-off
    region = arr[y0:y1, x0:x1].astype(np.float32)
    if mode == "max":
        out = np.maximum(region, alpha * value)
    elif mode == "min":
        out = np.minimum(region, (1.0 - alpha) * 255.0)
    else:
        out = region * (1.0 - alpha) + float(value) * alpha
    arr[y0:y1, x0:x1] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return x0, y0, x1, y1


def stroke(arr: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], radius: float,
           hardness: float, value: int = 255, mode: str = "max") -> tuple[int, int, int, int] | None:
    """Dabs from p0 to p1 a quarter radius apart (so a fast drag leaves no gaps)."""
    dist = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
    n = max(1, int(math.ceil(dist / max(1.0, radius * 0.25))))
    box = None
    for i in range(n + 1):
        t = i / n
        b = stamp(arr, p0[0] + (p1[0] - p0[0]) * t, p0[1] + (p1[1] - p0[1]) * t, radius, hardness, value, mode)
        if b is not None:
            box = b if box is None else (min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]), max(box[3], b[3]))
    return box


def blur(arr: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of a uint8 HxW array (feathering a mask, softening a depth map)."""
    if radius <= 0:
        return arr.copy()
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).filter(ImageFilter.GaussianBlur(radius))).copy()


def gradient(shape: tuple[int, int], p0: tuple[float, float], p1: tuple[float, float], v0: int,
             v1: int) -> np.ndarray:
    """A linear ramp from `v0` at p0 to `v1` at p1 (constant beyond both ends), as uint8 HxW."""
    h, w = shape
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    length2 = dx * dx + dy * dy
    if length2 < 1e-9:
        return np.full((h, w), int(v1), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.clip(((xx + 0.5 - p0[0]) * dx + (yy + 0.5 - p0[1]) * dy) / length2, 0.0, 1.0)
    return np.clip(v0 + (v1 - v0) * t + 0.5, 0, 255).astype(np.uint8)


def invert(arr: np.ndarray) -> np.ndarray:
    return (255 - arr).astype(np.uint8)


def fit_mask(mask: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    """A mask resized to (width, height) (nearest, kept binary-ish), or None."""
    if mask is None:
        return None
    if mask.shape == (size[1], size[0]):
        return mask
    from PIL import Image

    return np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST)).copy()
