"""ControlNet preprocessors: turn an image into the control image a ControlNet expects.

Canny, scribble (threshold) and invert need no weights (cv2 / numpy). MiDaS depth, OpenPose, HED,
line art and PiDiNet run controlnet_aux annotators that load through the model manager like every
model; when one is not installed the user is told which card to download. cv2 and controlnet_aux
are imported inside functions only (controlnet_aux registers timm models at import). GPU lane.
"""
from __future__ import annotations

import time

import numpy as np

from studio.core.errors import BadInputError, ModelError
from studio.core.image import StudioImage
from studio.core.paint_requests import PREPROCESSORS, Preprocessor, PreprocessRequest, PreprocessResult

# Weightless preprocessors added by plugins: id -> fn(rgb HxWx3 uint8) -> HxWx3 uint8. Filled at
# start through `register_preprocessor` (the plugin manager wraps each fn so a failure names the plugin).
_EXTRA: dict = {}


def register_preprocessor(pre_id: str, label: str, fn):
    """List `fn` as preprocessor `pre_id` (paint's and tape's choices); returns a function undoing it."""
    if pre_id in PREPROCESSORS and pre_id not in _EXTRA:
        raise ValueError(f"the preprocessor id {pre_id!r} is taken by a built-in one")
    PREPROCESSORS[pre_id] = Preprocessor(pre_id, label)
    _EXTRA[pre_id] = fn

    def undo() -> None:
        if _EXTRA.get(pre_id) is fn:  # a later registration of the same id stays
            del _EXTRA[pre_id]
            PREPROCESSORS.pop(pre_id, None)
    return undo


def _gray(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)


def canny(rgb: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    import cv2

    edges = cv2.Canny(_gray(rgb), low, high)
    return np.repeat(edges[..., None], 3, axis=2)


def scribble(rgb: np.ndarray) -> np.ndarray:
    """White strokes on black, whichever way round the drawing was (dark on paper or light on black)."""
    g = _gray(rgb)
    if g.mean() > 127:
        g = 255 - g
    lines = np.where(g >= 128, 255, 0).astype(np.uint8)
    return np.repeat(lines[..., None], 3, axis=2)


def annotator(pre_id: str, ctx, models):
    """The loaded controlnet_aux detector for preprocessor `pre_id`, or a ModelError naming the card."""
    from studio.catalog import store

    pre = PREPROCESSORS[pre_id]
    catalog = models.catalog
    if pre.card_id not in catalog:
        raise ModelError(f"The {pre.label} preprocessor needs the annotator model “{pre.card_id}”, which is "
                         "not in the model catalog: add it in Models > Manager, or choose the preprocessor "
                         "“none” and give a ready-made control image.")
    card = catalog.get(pre.card_id)
    allow = card.id in getattr(models.policy, "allow_pickle", ())
    status = store.status(card, models.assets, allow)
    if not status.ready:
        raise ModelError(f"The {pre.label} preprocessor needs the model “{card.name}” ({card.id}), which is "
                         "not installed: download it in Models > Manager, or choose the preprocessor “none” "
                         "and give a ready-made control image.", status.detail)
    return models.get(card.id, ctx).model


def apply(pre_id: str, rgb: np.ndarray, ctx, models) -> np.ndarray:
    """The control image (HxWx3 uint8) of `rgb` for preprocessor `pre_id`, at the image's size."""
    if pre_id not in PREPROCESSORS:
        raise BadInputError(f"Unknown preprocessor “{pre_id}”.")
    rgb = np.ascontiguousarray(rgb[..., :3])
    if pre_id in _EXTRA:
        return _EXTRA[pre_id](rgb)
    if pre_id == "none":
        return rgb
    if pre_id == "invert":
        return (255 - rgb).astype(np.uint8)
    if pre_id == "canny":
        return canny(rgb)
    if pre_id == "scribble":
        return scribble(rgb)
    if pre_id == "inpaint":
        raise BadInputError("The inpaint preprocessor is applied by the generation itself (image + mask).")
    from PIL import Image

    detector = annotator(pre_id, ctx, models)
    h, w = rgb.shape[:2]
    with models.oom_guard(f"running the {PREPROCESSORS[pre_id].label} preprocessor"):
        out = detector(Image.fromarray(rgb), detect_resolution=min(512, max(h, w)),
                       image_resolution=max(h, w), output_type="pil")
    out = out.convert("RGB")
    if out.size != (w, h):
        out = out.resize((w, h), Image.BILINEAR)
    return np.asarray(out).copy()


def detect_people(rgb: np.ndarray, ctx, models) -> tuple:
    """The OpenPose people of an image as 18 normalised (x, y) points (None where not seen)."""
    detector = annotator("openpose", ctx, models)
    inner = getattr(detector, "detector", detector)
    with models.oom_guard("detecting poses"):
        poses = inner.detect_poses(np.ascontiguousarray(rgb[..., :3]))
    people = []
    for pose in poses:
        pts = [None if k is None else (float(k.x), float(k.y)) for k in pose.body.keypoints][:18]
        people.append(tuple(pts + [None] * (18 - len(pts))))
    return tuple(people)


def run(request: PreprocessRequest, ctx, models) -> PreprocessResult:
    """Engine: preview a preprocessor, or detect people for the pose editor (keypoints=True)."""
    t0 = time.perf_counter()
    ctx.check()
    rgb = request.image.rgb()
    if request.width and request.height and (request.width, request.height) != request.image.size:
        from PIL import Image

        rgb = np.asarray(Image.fromarray(rgb).resize((request.width, request.height), Image.LANCZOS))
    if request.keypoints:
        people = detect_people(rgb, ctx, models)
        if not people:
            raise BadInputError("No person was found in the image.")
        return PreprocessResult(request.preprocessor, None, people, time.perf_counter() - t0)
    out = apply(request.preprocessor, rgb, ctx, models)
    return PreprocessResult(request.preprocessor, StudioImage(out, f"{request.preprocessor} preprocessor"),
                            (), time.perf_counter() - t0)
