"""The frame tape's frozen requests and results: generating a clip (text or image to video), re-rendering
a range of it, in-betweening, consistency checks, import and export; their validation, the pipeline
each video card runs on, and the generation recipe written next to an exported clip.

Qt-free and torch-free. Frames cross threads as read-only HxWx3 uint8 numpy arrays, never tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.core.errors import BadInputError
from studio.core.image import StudioImage

RECIPE_FORMAT, RECIPE_VERSION = "studio.tape", 1
MAX_FRAMES = 4096
MAX_SIDE, MIN_SIDE, SIDE_STEP = 1536, 16, 8
MAX_STEPS = 150
MAX_SEED = 2**32 - 1
TRAVEL_MODES = ("interpolate", "segments")
TRAVEL_LABELS = {"interpolate": "Blend prompts between keys", "segments": "Switch prompt at each key"}

ANIMATEDIFF = "AnimateDiffPipeline"
SVD = "StableVideoDiffusionPipeline"
COGVIDEOX = "CogVideoXPipeline"
LTX = "LTXPipeline"
# Which image keyframes each pipeline can use: AnimateDiff starts from a cross-fade of the first and
# last images (video-to-video), SVD animates one image, LTX can start from one; CogVideoX-2b is text only.
IMAGE_KEYS = {ANIMATEDIFF: ("first", "last"), SVD: ("first",), LTX: ("first",), COGVIDEOX: ()}
NEEDS_IMAGE = (SVD,)
NEEDS_PROMPT = (ANIMATEDIFF, COGVIDEOX, LTX)
# What each pipeline was trained for: (width, height, frames, steps, fps). Cards may override with options.
NATIVE = {ANIMATEDIFF: (512, 512, 16, 20, 8), SVD: (1024, 576, 25, 25, 7), COGVIDEOX: (720, 480, 49, 50, 8),
          LTX: (704, 480, 97, 40, 24)}
VIDEO_TASKS = ("motion", "video")
INTERPOLATORS = ("farneback",)  # in-betweening methods the engine runs (RIFE / FILM once the manager loads them)


def pipeline_of(card) -> str:
    """The diffusers pipeline class a motion or video card runs on: `options.pipeline`, else by task
    (a motion adapter runs in AnimateDiff) or by the repository's name."""
    named = card.options.get("pipeline")
    if named:
        return str(named)
    if card.task == "motion":
        return ANIMATEDIFF
    ref = f"{card.id} {card.source}".lower()
    if "stable-video-diffusion" in ref or "svd" in ref:
        return SVD
    if "cogvideox" in ref:
        return COGVIDEOX
    if "ltx" in ref:
        return LTX
    return ANIMATEDIFF


def native_settings(card) -> dict[str, int]:
    """Size, length, steps and fps a card works best at (its options override the pipeline's)."""
    w, h, n, steps, fps = NATIVE.get(pipeline_of(card), NATIVE[ANIMATEDIFF])
    out = {"width": w, "height": h, "frames": n, "steps": steps, "fps": fps}
    for key in out:
        if isinstance(card.options.get(key), int):
            out[key] = int(card.options[key])
    return out


# -- values ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptKey:
    """A prompt that applies from `frame` on (prompt travel); `seed` (if set) seeds the noise of the
    segment that starts here, so re-rolling one segment leaves the others' noise alone."""

    frame: int
    prompt: str
    seed: int | None = None


def frozen_frames(frames) -> tuple[np.ndarray, ...]:
    """Frames as a tuple of read-only, contiguous HxWx3 uint8 arrays (shared, never copied twice)."""
    out = []
    for f in frames:
        arr = np.asarray(f)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"a frame must be HxWx3 uint8, got {arr.dtype} {arr.shape}")
        if arr.shape[2] == 4:
            arr = arr[..., :3]
        if arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr).copy()
            arr.setflags(write=False)
        out.append(arr)
    return tuple(out)


# -- generation --------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TapeRequest:
    """Everything one clip needs. `model_id` is a motion adapter (run on the diffusion model `base_id`)
    or a whole video model. `keys` are prompt keyframes (empty: `prompt` for every frame)."""

    model_id: str
    prompt: str = ""
    base_id: str = ""
    negative_prompt: str = ""
    keys: tuple[PromptKey, ...] = ()
    travel: str = "interpolate"
    first_image: StudioImage | None = None
    last_image: StudioImage | None = None
    image_strength: float = 0.8  # how far AnimateDiff may move from the image keyframes (1 = ignore them)
    frames: int = 16
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = 7.5
    seed: int = 0
    fps: int = 8
    window: int = 0  # frames the model sees at once (0: the adapter's length, smaller if memory is short)
    output_dir: str = ""  # where the frames and recipe are written ("" = not saved)
    uid: str = ""

    @property
    def title(self) -> str:
        text = " ".join(self.prompt.split())
        return f"Clip: {text[:40] + ('…' if len(text) > 40 else '')}" if text else "Clip"

    def prompt_keys(self) -> tuple[PromptKey, ...]:
        """Sorted keys that start at frame 0 (the main prompt fills in before the first key)."""
        keys = sorted((k for k in self.keys if 0 <= k.frame < self.frames), key=lambda k: k.frame)
        if not keys or keys[0].frame != 0:
            keys.insert(0, PromptKey(0, self.prompt))
        merged: dict[int, PromptKey] = {}
        for k in keys:
            merged[k.frame] = k
        return tuple(merged.values())


@dataclass(frozen=True, eq=False)
class RerenderRequest:
    """Re-render frames start..end (inclusive) of `clip` by video-to-video on a window that keeps
    `context` frames either side as context; only the selected frames come back."""

    model_id: str
    base_id: str
    clip: tuple[np.ndarray, ...]
    start: int
    end: int
    prompt: str = ""
    negative_prompt: str = ""
    context: int = 4
    strength: float = 0.6
    steps: int = 20
    cfg_scale: float = 7.5
    seed: int = 0
    window: int = 0
    uid: str = ""

    @property
    def span(self) -> tuple[int, int]:
        """The window [lo, hi) sent to the model."""
        return max(0, self.start - self.context), min(len(self.clip), self.end + 1 + self.context)


@dataclass(frozen=True, eq=False)
class TapePreview:
    uid: str
    step: int
    steps: int
    frames: np.ndarray  # (F, h, w, 3) uint8: a cheap look at the latents, one small image per frame
    text: str = ""


@dataclass(frozen=True, eq=False)
class TapeResult:
    uid: str
    frames: tuple[np.ndarray, ...]
    fps: int
    recipe: dict[str, Any]
    seconds: float
    model_name: str = ""
    start: int = 0  # a re-render: the first frame these replace
    window: tuple[int, int] = (0, 0)  # a re-render: the frames the model saw
    window_frames: int = 0  # frames the model saw at once (context window)
    saved_to: str = ""


# -- frame tools -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class InbetweenRequest:
    """Insert `count` frames between `a` and `b` by optical flow (or a manager-installed interpolator)."""

    a: np.ndarray
    b: np.ndarray
    count: int = 1
    method: str = "farneback"


@dataclass(frozen=True, eq=False)
class InbetweenResult:
    frames: tuple[np.ndarray, ...]
    method: str
    seconds: float


@dataclass(frozen=True, eq=False)
class ConsistencyRequest:
    """Per transition t -> t+1: pixel similarity (SSIM) and the optical-flow warping error."""

    frames: tuple[np.ndarray, ...]
    flow: bool = True


@dataclass(frozen=True, eq=False)
class ClipConsistencyRequest:
    """Per transition: cosine of consecutive frames' CLIP image embeddings (GPU lane)."""

    frames: tuple[np.ndarray, ...]
    model_id: str


@dataclass(frozen=True, eq=False)
class ConsistencyResult:
    similarity: np.ndarray  # (n-1,) float32, 1 = identical
    warp_error: np.ndarray | None  # (n-1,) float32, mean absolute error after flow warping, 0..1
    metric: str  # "ssim" or "clip:<model id>"
    seconds: float


# -- import / export ---------------------------------------------------------------------------
EXPORT_FORMATS = ("mp4", "webm", "gif", "png")
EXPORT_LABELS = {"mp4": "MP4 (H.264)", "webm": "WebM (VP9)", "gif": "GIF", "png": "PNG sequence"}
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v", ".gif")


@dataclass(frozen=True)
class ImportClipRequest:
    """A video file (MP4, WebM, GIF, ...), a folder of images, or several image files (a sequence)."""

    paths: tuple[str, ...]
    max_frames: int = MAX_FRAMES


@dataclass(frozen=True, eq=False)
class ClipData:
    frames: tuple[np.ndarray, ...]
    fps: float
    source: str
    recipe: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True, eq=False)
class ExportClipRequest:
    frames: tuple[np.ndarray, ...]
    path: str
    format: str = "mp4"
    fps: float = 8.0
    recipe: dict[str, Any] = field(default_factory=dict)
    title: str = ""


@dataclass(frozen=True)
class ExportResult:
    path: str
    sidecar: str
    codec: str
    frames: int
    size: tuple[int, int]
    note: str = ""


# -- validation --------------------------------------------------------------------------------
def _check_common(steps: int, cfg: float, seed: int) -> None:
    if not 1 <= steps <= MAX_STEPS:
        raise BadInputError(f"Steps must be between 1 and {MAX_STEPS} (got {steps}).")
    if not (0.0 <= cfg <= 30.0) or not math.isfinite(cfg):
        raise BadInputError(f"CFG scale must be between 0 and 30 (got {cfg}).")
    if not 0 <= seed <= MAX_SEED:
        raise BadInputError(f"The seed must be between 0 and {MAX_SEED} (got {seed}).")


def check_size(width: int, height: int) -> None:
    for name, v in (("Width", width), ("Height", height)):
        if not MIN_SIDE <= v <= MAX_SIDE:
            raise BadInputError(f"{name} must be between {MIN_SIDE} and {MAX_SIDE} pixels (got {v}).")
        if v % SIDE_STEP:
            raise BadInputError(f"{name} must be a multiple of {SIDE_STEP} pixels (got {v}).")


def validate(req: TapeRequest, pipeline: str = ANIMATEDIFF) -> None:
    """Raise BadInputError with one sentence the user can act on."""
    if not req.model_id:
        raise BadInputError("Choose a video or motion model first.")
    if not 2 <= req.frames <= MAX_FRAMES:
        raise BadInputError(f"A clip has between 2 and {MAX_FRAMES} frames (got {req.frames}).")
    check_size(req.width, req.height)
    _check_common(req.steps, req.cfg_scale, req.seed)
    if not 1 <= req.fps <= 120:
        raise BadInputError(f"Frames per second must be between 1 and 120 (got {req.fps}).")
    if req.travel not in TRAVEL_MODES:
        raise BadInputError(f"Unknown prompt travel “{req.travel}”; choose {' or '.join(TRAVEL_MODES)}.")
    if pipeline in NEEDS_PROMPT and not any(k.prompt.strip() for k in req.prompt_keys()):
        raise BadInputError("Type a prompt first (for example “a red circle moving right”).")
    if pipeline in NEEDS_IMAGE and req.first_image is None:
        raise BadInputError("This model animates an image: set the first frame (Generate > First frame).")
    allowed = IMAGE_KEYS.get(pipeline, ())
    if req.first_image is not None and "first" not in allowed:
        raise BadInputError("This model cannot start from an image: clear the image keyframes or choose another model.")
    if req.last_image is not None and "last" not in allowed:
        raise BadInputError("This model cannot end on a given image: clear the last frame or use AnimateDiff.")
    if not 0.0 < req.image_strength <= 1.0:
        raise BadInputError("The image keyframe strength must be above 0 and at most 1.")
    for k in req.keys:
        if not 0 <= k.frame < req.frames:
            raise BadInputError(f"A prompt key sits at frame {k.frame + 1}, past the clip's {req.frames} frames.")
        if k.seed is not None and not 0 <= k.seed <= MAX_SEED:
            raise BadInputError(f"The seed of the key at frame {k.frame + 1} is out of range.")
    if req.window and not 2 <= req.window <= 256:
        raise BadInputError("The context window must be between 2 and 256 frames (0 = automatic).")


def validate_rerender(req: RerenderRequest) -> None:
    n = len(req.clip)
    if n < 2:
        raise BadInputError("There is no clip to re-render: generate or import one first.")
    if not 0 <= req.start <= req.end < n:
        raise BadInputError(f"The range {req.start + 1}–{req.end + 1} is not inside the clip's {n} frames.")
    if not req.prompt.strip():
        raise BadInputError("Type a prompt for the re-render first.")
    if not 0.0 < req.strength <= 1.0:
        raise BadInputError("The re-render strength must be above 0 and at most 1.")
    if not 0 <= req.context <= 64:
        raise BadInputError("Keep between 0 and 64 context frames either side.")
    _check_common(req.steps, req.cfg_scale, req.seed)
    h, w = req.clip[0].shape[:2]
    if any(f.shape[:2] != (h, w) for f in req.clip):
        raise BadInputError("The clip's frames have different sizes: re-import it first.")


# -- the recipe --------------------------------------------------------------------------------
def recipe(req: TapeRequest, model_name: str = "", window: int = 0) -> dict[str, Any]:
    """What regenerating the clip needs, as JSON-ready values (image keyframes by size only)."""
    def image(img: StudioImage | None):
        return None if img is None else {"width": img.width, "height": img.height, "source": img.source}

    return {"format": RECIPE_FORMAT, "version": RECIPE_VERSION, "model_id": req.model_id,
            "model_name": model_name, "base_id": req.base_id, "prompt": req.prompt,
            "negative_prompt": req.negative_prompt, "travel": req.travel,
            "keys": [{"frame": k.frame, "prompt": k.prompt, "seed": k.seed} for k in req.keys],
            "first_image": image(req.first_image), "last_image": image(req.last_image),
            "image_strength": req.image_strength, "frames": req.frames, "width": req.width,
            "height": req.height, "steps": req.steps, "cfg_scale": req.cfg_scale, "seed": req.seed,
            "fps": req.fps, "window": window or req.window, "edits": []}


def rerender_record(req: RerenderRequest) -> dict[str, Any]:
    """One entry of a recipe's `edits`: a range re-render."""
    return {"edit": "rerender", "start": req.start, "end": req.end, "context": req.context,
            "strength": req.strength, "prompt": req.prompt, "negative_prompt": req.negative_prompt,
            "steps": req.steps, "cfg_scale": req.cfg_scale, "seed": req.seed, "model_id": req.model_id,
            "base_id": req.base_id}
