"""The paint workspace's frozen requests and results, their validation and (de)serialisation, and the
OpenPose 18-point skeleton (data, mirroring and rendering in the OpenPose colour convention).

Everything here is plain values (numbers, strings, StudioImage, uint8 arrays): a request can be journaled
before it runs, written into a result's recipe and rebuilt from either. No Qt, no torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from studio.core.errors import BadInputError, ModelError
from studio.core.image import StudioImage

MODES = ("txt2img", "img2img", "inpaint", "outpaint")
MODE_LABELS = {"txt2img": "Text to image", "img2img": "Image to image", "inpaint": "Inpaint",
               "outpaint": "Outpaint"}

# Sampler names as A1111 writes them -> (diffusers scheduler class, config flags). The engine builds the
# class from the model's own scheduler config plus these flags, so betas and spacing stay the model's.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE Karras": ("DPMSolverMultistepScheduler",
                            {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
}
# Other spellings found in A1111/Forge/ComfyUI metadata.
SCHEDULER_ALIASES = {"euler_a": "Euler a", "euler_ancestral": "Euler a", "euler": "Euler",
                     "dpmpp_2m": "DPM++ 2M", "dpm++ 2m": "DPM++ 2M", "ddim": "DDIM", "unipc": "UniPC",
                     "plms": "PNDM", "pndm": "PNDM", "lms": "LMS", "heun": "Heun",
                     "dpmpp_2m_karras": "DPM++ 2M Karras", "dpmpp_2m_sde_karras": "DPM++ 2M SDE Karras"}

CONTROL_KINDS = ("depth", "pose", "edges", "scribble", "inpaint")
# The ControlNet card each kind starts with (SD 1.5 family) and its usual preprocessor.
DEFAULT_CONTROLNET = {"depth": "controlnet-sd15-depth", "pose": "controlnet-sd15-openpose",
                      "edges": "controlnet-sd15-canny", "scribble": "controlnet-sd15-scribble",
                      "inpaint": "controlnet-sd15-inpaint"}
DEFAULT_PREPROCESSOR = {"depth": "depth_midas", "pose": "openpose", "edges": "canny",
                        "scribble": "scribble", "inpaint": "inpaint"}


@dataclass(frozen=True)
class Preprocessor:
    id: str
    label: str
    card_id: str = ""  # the annotator model it needs ("" = no weights)


PREPROCESSORS: dict[str, Preprocessor] = {p.id: p for p in (
    Preprocessor("none", "None (the image is the control)"),
    Preprocessor("canny", "Canny edges"),
    Preprocessor("scribble", "Scribble (threshold, no weights)"),
    Preprocessor("invert", "Invert"),
    Preprocessor("inpaint", "Inpaint (image + mask)"),
    Preprocessor("depth_midas", "Depth (MiDaS)", "annotator-depth-midas"),
    Preprocessor("openpose", "OpenPose", "annotator-openpose"),
    Preprocessor("hed", "HED soft edges", "annotator-hed"),
    Preprocessor("lineart", "Line art", "annotator-lineart"),
    Preprocessor("scribble_pidi", "Scribble (PiDiNet)", "annotator-scribble-pidi"),
)}

MAX_SIDE, MIN_SIDE, SIDE_STEP = 2048, 16, 8
MAX_PIXELS = 2048 * 2048
MAX_STEPS, MAX_BATCH = 150, 100
MAX_SEED = 2**32 - 1


def canonical_scheduler(name: str) -> str | None:
    """The SCHEDULERS key for a sampler name in any common spelling, or None."""
    if name in SCHEDULERS:
        return name
    low = name.strip().lower()
    for key in SCHEDULERS:
        if key.lower() == low:
            return key
    return SCHEDULER_ALIASES.get(low.replace(" ", "_")) or SCHEDULER_ALIASES.get(low)


# -- requests ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LoraSpec:
    path: str
    weight: float = 1.0


@dataclass(frozen=True, eq=False)
class ControlUnit:
    """One ControlNet: its model, its image (before preprocessing), how strongly and when it acts."""

    kind: str
    model_id: str
    image: StudioImage | None = None
    preprocessor: str = "none"
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    pose: tuple = ()  # the people of the pose editor when it drew `image`, for the recipe


@dataclass(frozen=True, eq=False)
class PaintRequest:
    """Everything one generation needs. `seed` is always concrete (the panel resolves "random")."""

    prompt: str
    model_id: str
    mode: str = "txt2img"
    negative_prompt: str = ""
    scheduler: str = "Euler a"
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    seed: int = 0
    batch_count: int = 1
    strength: float = 0.75
    init_image: StudioImage | None = None
    mask: np.ndarray | None = None  # HxW uint8, 255 = repaint
    mask_blur: int = 4
    only_masked: bool = False
    masked_padding: int = 32
    outpaint: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, top, right, bottom, in pixels
    controls: tuple[ControlUnit, ...] = ()
    loras: tuple[LoraSpec, ...] = ()
    low_memory: bool = False  # retry after out-of-memory: offload + tiled VAE
    preview_every: int = 1
    output_dir: str = ""  # where results are written ("" = not saved)
    gallery: str = ""  # the SQLite index to add them to
    uid: str = ""

    def __post_init__(self) -> None:
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.flags.writeable:
                m = m.copy()
                m.setflags(write=False)
            object.__setattr__(self, "mask", m)

    @property
    def title(self) -> str:
        text = " ".join(self.prompt.split())
        return f"{MODE_LABELS.get(self.mode, self.mode)}: {text[:40] + ('…' if len(text) > 40 else '')}"


@dataclass(frozen=True, eq=False)
class PaintPreview:
    uid: str
    index: int  # image of the batch
    step: int
    steps: int
    pixels: np.ndarray  # HxWx3 uint8, a fast approximation of the latents


@dataclass(frozen=True, eq=False)
class PaintResult:
    uid: str
    images: tuple[StudioImage, ...]  # info: parameters, studio (recipe JSON), path, seed
    seeds: tuple[int, ...]
    paths: tuple[str, ...]
    seconds: float
    model_name: str = ""
    notes: tuple[str, ...] = ()  # what the user should know about a run that succeeded (a cut prompt)


@dataclass(frozen=True, eq=False)
class PreprocessRequest:
    """Run a preprocessor on an image (the control tab's preview, the editors' "from image")."""

    image: StudioImage
    preprocessor: str
    width: int = 0  # 0 = the image's size
    height: int = 0
    keypoints: bool = False  # openpose: return the people as data for the pose editor


@dataclass(frozen=True, eq=False)
class PreprocessResult:
    preprocessor: str
    image: StudioImage | None
    people: tuple = ()
    seconds: float = 0.0


class PaintMemoryError(ModelError):
    """Out of memory (or over the budget) while painting: the panel offers a retry with low_memory."""

    def __init__(self, user_message: str, detail: str = "", retryable: bool = True) -> None:
        super().__init__(user_message, detail)
        self.retryable = retryable


# -- validation --------------------------------------------------------------------------------
def validate(req: PaintRequest) -> None:
    """Raise BadInputError with one sentence the user can act on."""
    if req.mode not in MODES:
        raise BadInputError(f"Unknown paint mode “{req.mode}”; choose one of {', '.join(MODES)}.")
    if not req.model_id:
        raise BadInputError("Choose a model to paint with.")
    if req.scheduler not in SCHEDULERS:
        raise BadInputError(f"Unknown sampler “{req.scheduler}”; choose one of {', '.join(SCHEDULERS)}.")
    if not 1 <= req.steps <= MAX_STEPS:
        raise BadInputError(f"Steps must be between 1 and {MAX_STEPS} (got {req.steps}).")
    if not 0.0 <= req.cfg_scale <= 30.0 or not math.isfinite(req.cfg_scale):
        raise BadInputError(f"CFG scale must be between 0 and 30 (got {req.cfg_scale}).")
    if not 1 <= req.batch_count <= MAX_BATCH:
        raise BadInputError(f"Batch count must be between 1 and {MAX_BATCH} (got {req.batch_count}).")
    if not 0 <= req.seed <= MAX_SEED:
        raise BadInputError(f"The seed must be between 0 and {MAX_SEED} (got {req.seed}).")
    w, h = output_size(req)
    for name, v in (("Width", w), ("Height", h)):
        if not MIN_SIDE <= v <= MAX_SIDE:
            raise BadInputError(f"{name} must be between {MIN_SIDE} and {MAX_SIDE} pixels (got {v}).")
        if v % SIDE_STEP:
            raise BadInputError(f"{name} must be a multiple of {SIDE_STEP} pixels (got {v}).")
    if w * h > MAX_PIXELS:
        raise BadInputError(f"{w}×{h} is too large: at most {MAX_PIXELS // 1_000_000} megapixels.")
    if req.mode != "txt2img" and req.init_image is None:
        raise BadInputError(f"{MODE_LABELS[req.mode]} needs an image: open one or generate one first.")
    if req.mode in ("img2img", "inpaint") and not 0.0 < req.strength <= 1.0:
        raise BadInputError(f"Denoising strength must be above 0 and at most 1 (got {req.strength}).")
    if req.mode in ("img2img", "inpaint") and int(req.steps * req.strength) < 1:
        raise BadInputError(f"{req.steps} step(s) at denoising strength {req.strength:g} leave no step to run: "
                            "raise the steps or the strength.")
    if req.mode == "inpaint":
        if req.mask is None or not np.any(req.mask):
            raise BadInputError("Paint a mask over the part to repaint first (Mask tab), or send one "
                                "from the label workspace.")
        if req.mask.ndim != 2 or req.mask.shape != (req.init_image.height, req.init_image.width):
            raise BadInputError("The mask does not match the image's size: clear it and paint it again.")
    if req.mode == "outpaint":
        if any(v < 0 for v in req.outpaint) or not any(req.outpaint):
            raise BadInputError("Choose how many pixels to add on at least one side to outpaint.")
    if not 0 <= req.mask_blur <= 64:
        raise BadInputError(f"Mask blur must be between 0 and 64 pixels (got {req.mask_blur}).")
    for i, unit in enumerate(req.controls, start=1):
        where = f"Control unit {i}"
        if unit.kind not in CONTROL_KINDS:
            raise BadInputError(f"{where}: unknown kind “{unit.kind}”.")
        if not unit.model_id:
            raise BadInputError(f"{where}: choose its ControlNet model.")
        if unit.preprocessor not in PREPROCESSORS:
            raise BadInputError(f"{where}: unknown preprocessor “{unit.preprocessor}”.")
        if unit.preprocessor == "inpaint":
            if req.mode not in ("inpaint", "outpaint"):
                raise BadInputError(f"{where}: the inpaint control works in the inpaint and outpaint modes.")
        elif unit.image is None:
            raise BadInputError(f"{where} ({unit.kind}) has no image: choose its source.")
        if not 0.0 <= unit.start < unit.end <= 1.0:
            raise BadInputError(f"{where}: start must be below end, both between 0 and 1.")
        if not 0.0 <= unit.weight <= 2.0:
            raise BadInputError(f"{where}: weight must be between 0 and 2.")
    for lora in req.loras:
        if not lora.path.lower().endswith(".safetensors"):
            raise BadInputError(f"LoRA “{lora.path}” is not a .safetensors file.")


def snap(v: float) -> int:
    """Round a side length up to the next multiple of SIDE_STEP."""
    return int(math.ceil(max(v, MIN_SIDE) / SIDE_STEP) * SIDE_STEP)


def output_size(req: PaintRequest) -> tuple[int, int]:
    """(width, height) the pipeline runs at: the request's size, or for outpaint the extended image."""
    if req.mode == "outpaint" and req.init_image is not None:
        left, top, right, bottom = req.outpaint
        return snap(req.init_image.width + left + right), snap(req.init_image.height + top + bottom)
    return int(req.width), int(req.height)


# -- records: requests as JSON-able dicts plus named images ------------------------------------
_SIMPLE = ("prompt", "model_id", "mode", "negative_prompt", "scheduler", "steps", "cfg_scale", "width",
           "height", "seed", "batch_count", "strength", "mask_blur", "only_masked", "masked_padding",
           "low_memory", "preview_every", "output_dir", "gallery", "uid")


def request_to_record(req: PaintRequest) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A JSON-able dict and the arrays it refers to by name ("init", "mask", "control1", ...)."""
    rec: dict[str, Any] = {k: getattr(req, k) for k in _SIMPLE}
    rec["outpaint"] = list(req.outpaint)
    rec["loras"] = [{"path": lo.path, "weight": lo.weight} for lo in req.loras]
    images: dict[str, np.ndarray] = {}
    if req.init_image is not None:
        images["init"] = req.init_image.pixels
    if req.mask is not None:
        images["mask"] = req.mask
    units = []
    for i, u in enumerate(req.controls, start=1):
        d = {"kind": u.kind, "model_id": u.model_id, "preprocessor": u.preprocessor, "weight": u.weight,
             "start": u.start, "end": u.end, "pose": pose_to_json(u.pose)}
        if u.image is not None:
            images[f"control{i}"] = u.image.pixels
            d["image"] = f"control{i}"
        units.append(d)
    rec["controls"] = units
    rec["init"] = "init" if "init" in images else None
    rec["mask"] = "mask" if "mask" in images else None
    return rec, images


def request_from_record(rec: dict[str, Any], images: dict[str, np.ndarray]) -> PaintRequest:
    """The inverse of request_to_record; unknown keys are ignored, missing ones take defaults."""
    if not isinstance(rec, dict):
        raise BadInputError("The saved paint settings are not readable.")
    known = {f.name for f in fields(PaintRequest)}
    kw = {k: rec[k] for k in _SIMPLE if k in rec and k in known}
    try:
        if rec.get("outpaint"):
            kw["outpaint"] = tuple(int(v) for v in rec["outpaint"])[:4]
        kw["loras"] = tuple(LoraSpec(str(d["path"]), float(d.get("weight", 1.0))) for d in rec.get("loras", []))
        if rec.get("init") and rec["init"] in images:
            kw["init_image"] = StudioImage(np.ascontiguousarray(images[rec["init"]]))
        if rec.get("mask") and rec["mask"] in images:
            kw["mask"] = _as_mask(images[rec["mask"]])
        units = []
        for d in rec.get("controls", []):
            img = images.get(d.get("image") or "")
            units.append(ControlUnit(
                kind=str(d["kind"]), model_id=str(d["model_id"]),
                image=StudioImage(np.ascontiguousarray(img)) if img is not None else None,
                preprocessor=str(d.get("preprocessor", "none")), weight=float(d.get("weight", 1.0)),
                start=float(d.get("start", 0.0)), end=float(d.get("end", 1.0)),
                pose=pose_from_json(d.get("pose", []))))
        kw["controls"] = tuple(units)
        for k in ("steps", "width", "height", "seed", "batch_count", "mask_blur", "masked_padding",
                  "preview_every"):
            if k in kw:
                kw[k] = int(kw[k])
        for k in ("cfg_scale", "strength"):
            if k in kw:
                kw[k] = float(kw[k])
        return PaintRequest(**kw)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"The saved paint settings are incomplete: {exc}", repr(rec)) from exc


def _as_mask(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 3:
        a = a[..., 0]
    return np.ascontiguousarray(a.astype(np.uint8))


def with_uid(req: PaintRequest, uid: str) -> PaintRequest:
    return replace(req, uid=uid)


# -- OpenPose 18-point skeletons ---------------------------------------------------------------
KEYPOINT_NAMES = ("nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder",
                  "left elbow", "left wrist", "right hip", "right knee", "right ankle", "left hip",
                  "left knee", "left ankle", "right eye", "left eye", "right ear", "left ear")
# Limbs as pairs of keypoint indices (0-based), in the order OpenPose colours them.
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
         (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
# The 18 standard OpenPose colours (RGB): limb i is drawn in COLORS[i] at 60 %, keypoint i in COLORS[i].
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
          (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
          (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
MIRROR_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))
# A person standing and facing the viewer (their right side on the image's left), in a unit box.
STANDING = ((0.50, 0.16), (0.50, 0.27), (0.40, 0.27), (0.36, 0.42), (0.34, 0.56), (0.60, 0.27),
            (0.64, 0.42), (0.66, 0.56), (0.45, 0.55), (0.44, 0.72), (0.44, 0.90), (0.55, 0.55),
            (0.56, 0.72), (0.56, 0.90), (0.48, 0.14), (0.52, 0.14), (0.46, 0.15), (0.54, 0.15))

Person = tuple  # 18 entries: (x, y) normalised to the image, or None when not visible
STICK_WIDTH, JOINT_RADIUS = 4, 4


def standing_person(cx: float = 0.5, scale: float = 1.0) -> Person:
    return tuple((cx + (x - 0.5) * scale, 0.5 + (y - 0.5) * scale) for x, y in STANDING)


def mirror_person(person: Person) -> Person:
    """Reflect about the person's own centre and swap left and right, so colours keep their sides."""
    pts = [p for p in person if p is not None]
    if not pts:
        return tuple(person)
    cx = (min(p[0] for p in pts) + max(p[0] for p in pts)) / 2
    out = [None if p is None else (2 * cx - p[0], p[1]) for p in person]
    for a, b in MIRROR_PAIRS:
        out[a], out[b] = out[b], out[a]
    return tuple(out)


def pose_to_json(people) -> list:
    return [[None if p is None else [round(float(p[0]), 5), round(float(p[1]), 5)] for p in person]
            for person in people]


def pose_from_json(data) -> tuple:
    people = []
    for person in data or []:
        pts = [None if p is None else (float(p[0]), float(p[1])) for p in list(person)[:18]]
        pts += [None] * (18 - len(pts))
        people.append(tuple(pts))
    return tuple(people)


def _ellipse_poly(cx: float, cy: float, half_len: float, half_w: float, angle_deg: float):
    """The polygon cv2.ellipse2Poly(center, axes, angle, 0, 360, 1) gives, so our skeletons match
    controlnet_aux's draw_bodypose pixel for pixel in shape."""
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    pts = []
    ax, ay = int(half_len), int(half_w)
    for deg in range(0, 361):
        t = math.radians(deg)
        x, y = ax * math.cos(t), ay * math.sin(t)
        pts.append((round(cx + x * ca - y * sa), round(cy + x * sa + y * ca)))
    return pts


def render_pose(people, width: int, height: int) -> np.ndarray:
    """The ControlNet OpenPose image of `people`: black, limbs as 60 % coloured ellipses, joints as dots."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (int(width), int(height)), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    for person in people:
        for (i, j), color in zip(LIMBS, COLORS):
            p, q = person[i], person[j]
            if p is None or q is None:
                continue
            x0, y0, x1, y1 = p[0] * width, p[1] * height, q[0] * width, q[1] * height
            length = math.hypot(x1 - x0, y1 - y0)
            angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
            poly = _ellipse_poly(int((x0 + x1) / 2), int((y0 + y1) / 2), length / 2, STICK_WIDTH, int(angle))
            draw.polygon(poly, fill=tuple(int(c * 0.6) for c in color))
        for p, color in zip(person, COLORS):
            if p is None:
                continue
            x, y = int(p[0] * width), int(p[1] * height)
            r = JOINT_RADIUS
            draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
    return np.asarray(img, dtype=np.uint8).copy()


# -- result images -----------------------------------------------------------------------------
def result_image(pixels: np.ndarray, path: str, seed: int, parameters: str, recipe: str) -> StudioImage:
    return StudioImage(pixels, path, {"parameters": parameters, "studio": recipe, "seed": seed,
                                      "path": path, "format": "PNG"})

