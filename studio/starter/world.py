"""Shapes world: the procedural ground truth behind the studio's starter models.

Owns the deterministic 64x64 scenes and clips (image, caption, instance mask,
depth, OpenPose skeletons, edges), the label vocabulary (`SHAPES`, `COLOURS`,
`LABELS`), the train/val/test seed splits, batch helpers for training, and the
OpenPose-colour skeleton renderer.  numpy + PIL only: the studio can draw scenes
(and tests can check them) without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
SHAPES = ["circle", "square", "triangle", "star", "person"]
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
# Saturated or extreme colours, so that they never collide with the muted backgrounds.
RGB = {
    "red": (215, 35, 35),
    "green": (40, 165, 50),
    "blue": (35, 70, 215),
    "yellow": (235, 215, 35),
    "purple": (135, 50, 175),
    "orange": (240, 130, 25),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
LABELS = [f"{c} {s}" for c in COLOURS for s in SHAPES]  # class id = colour * 5 + shape
BACKGROUNDS = ["plain", "sky", "noise"]
MOTIONS = ["left", "right", "up", "down", "grow", "recolour"]

# Disjoint scene-seed ranges: training never draws a seed >= SPLITS["val"].
SPLITS = {"train": 0, "val": 1_000_000_000, "test": 2_000_000_000}

# COCO-18 OpenPose order.
KEYPOINTS = ["nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow",
             "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
             "r_eye", "l_eye", "r_ear", "l_ear"]
# OpenPose limb pairs (1-based, as in controlnet_aux) and its 18 colours.
LIMB_SEQ = [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
            (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18)]
POSE_COLOURS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
                (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
                (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
                (255, 0, 255), (255, 0, 170), (255, 0, 85)]
# Stick-figure bones actually drawn (0-based keypoint pairs): the head is a disc.
_BONES = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 11), (8, 9), (9, 10), (11, 12),
          (12, 13)]


def label_id(colour: str, shape: str) -> int:
    return COLOURS.index(colour) * len(SHAPES) + SHAPES.index(shape)


@dataclass
class WorldObject:
    shape: str
    colour: str
    rgb: tuple[int, int, int]
    bbox: tuple[int, int, int, int]  # visible pixels, (x0, y0, x1, y1), x1/y1 exclusive
    centroid: tuple[float, float]  # (x, y) of visible pixels
    depth: float  # 0..1, near = 1
    size: float  # radius in pixels (half the height for a person)
    size_word: str  # small / medium / large
    area: int  # visible pixels
    visible: float  # visible fraction of the unoccluded shape
    keypoints: np.ndarray | None = None  # (18, 2) x, y for a person

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def label_id(self) -> int:
        return label_id(self.colour, self.shape)


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    caption: str
    objects: list[WorldObject]
    labels: list[str]  # "red circle", one per object, in `objects` order
    instance_mask: np.ndarray  # (H, W) int32, 0 = background, i = objects[i - 1]
    depth: np.ndarray  # (H, W) float32, 0 = background (far), near = 1
    pose: list[np.ndarray]  # one (18, 2) float32 array per person, pixel x, y
    edges: np.ndarray  # (H, W) uint8 0/255: inner boundaries of the instance mask
    background: str
    amodal_masks: np.ndarray  # (n, H, W) bool: each object's full shape, occluded parts too
    seed: int | None = None

    @property
    def label_ids(self) -> list[int]:
        return [o.label_id for o in self.objects]

    @property
    def multi_hot(self) -> np.ndarray:
        v = np.zeros(len(LABELS), np.float32)
        v[self.label_ids] = 1.0
        return v

    @property
    def main_object(self) -> int:
        """Index of the dominant object: largest visible area, then nearest."""
        return max(range(len(self.objects)),
                   key=lambda i: (self.objects[i].area, self.objects[i].depth))


@dataclass
class Clip:
    frames: list[Scene]
    caption: str
    motion: str  # one of MOTIONS
    seed: int | None = None

    @property
    def images(self) -> np.ndarray:
        return np.stack([f.image for f in self.frames])

    @property
    def masks(self) -> np.ndarray:
        return np.stack([f.instance_mask for f in self.frames])


@dataclass
class _Spec:
    """Unrendered object: geometry parameters a clip can animate frame by frame."""
    shape: str
    colour: str
    cx: float
    cy: float
    r: float
    depth: float
    rot: float = 0.0
    jitter: tuple = (0, 0, 0)
    limbs: tuple = ()  # person: (r_arm, r_bend, l_arm, l_bend, r_leg, l_leg) in radians
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- geometry

def _person_keypoints(cx: float, cy: float, r: float, limbs) -> np.ndarray:
    h = 2.0 * r  # figure height; (cx, cy) is the figure's middle
    top = cy - r
    hr = 0.12 * h
    ra, rb, la, lb, rl, ll = limbs
    kp = np.zeros((18, 2), np.float32)
    neck = (cx, top + 2 * hr + 0.03 * h)
    kp[0] = (cx, top + 1.15 * hr)
    kp[1] = neck
    sw, hw = 0.16 * h, 0.08 * h
    hip_y = top + 0.56 * h
    ua, la_len, ul, ll_len = 0.19 * h, 0.17 * h, 0.22 * h, 0.22 * h
    for side, (sh_i, el_i, wr_i, hip_i, kn_i, an_i), arm, bend, leg in (
            (-1, (2, 3, 4, 8, 9, 10), ra, rb, rl), (1, (5, 6, 7, 11, 12, 13), la, lb, ll)):
        # The figure faces the viewer: its right side is on the image's left.
        sh = np.array([cx + side * sw, neck[1]])
        el = sh + ua * np.array([side * math.sin(arm), math.cos(arm)])
        wr = el + la_len * np.array([side * math.sin(arm + bend), math.cos(arm + bend)])
        hip = np.array([cx + side * hw, hip_y])
        kn = hip + ul * np.array([side * math.sin(leg), math.cos(leg)])
        an = kn + ll_len * np.array([side * math.sin(leg * 0.5), math.cos(leg * 0.5)])
        kp[sh_i], kp[el_i], kp[wr_i], kp[hip_i], kp[kn_i], kp[an_i] = sh, el, wr, hip, kn, an
    kp[14] = (cx - 0.4 * hr, top + 0.8 * hr)
    kp[15] = (cx + 0.4 * hr, top + 0.8 * hr)
    kp[16] = (cx - 0.9 * hr, top + hr)
    kp[17] = (cx + 0.9 * hr, top + hr)
    return kp


def _polygon(spec: _Spec) -> list[tuple[float, float]]:
    r, rot = spec.r, spec.rot
    if spec.shape == "square":
        a = 0.85 * r
        pts = [(-a, -a), (a, -a), (a, a), (-a, a)]
    elif spec.shape == "triangle":
        pts = [(r * math.cos(t), r * math.sin(t) + 0.15 * r)
               for t in np.deg2rad([-90, 30, 150])]
    else:  # star
        pts = [((r if k % 2 == 0 else 0.42 * r) * math.cos(t), (r if k % 2 == 0 else 0.42 * r) * math.sin(t))
               for k, t in enumerate(np.deg2rad(np.arange(10) * 36 - 90))]
    c, s = math.cos(rot), math.sin(rot)
    return [(spec.cx + x * c - y * s, spec.cy + x * s + y * c) for x, y in pts]


def _extent(spec: _Spec) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of the unrendered geometry."""
    if spec.shape == "circle":
        r = 0.92 * spec.r
        return spec.cx - r, spec.cy - r, spec.cx + r, spec.cy + r
    if spec.shape == "person":
        kp = _person_keypoints(spec.cx, spec.cy, spec.r, spec.limbs)
        w = _line_width(spec.r) / 2 + 0.5
        top = min(float(kp[:, 1].min()), spec.cy - spec.r)
        return kp[:, 0].min() - w, top - w, kp[:, 0].max() + w, kp[:, 1].max() + w
    pts = np.array(_polygon(spec))
    return pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()


def _line_width(r: float) -> int:
    return max(2, int(round(2.0 * r / 11)))


def _draw(spec: _Spec, size: int = SIZE) -> tuple[np.ndarray, np.ndarray | None]:
    """Full (unoccluded) boolean mask of one object, plus keypoints for a person."""
    img = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(img)
    kp = None
    if spec.shape == "circle":
        r = 0.92 * spec.r
        d.ellipse((spec.cx - r, spec.cy - r, spec.cx + r, spec.cy + r), fill=255)
    elif spec.shape == "person":
        kp = _person_keypoints(spec.cx, spec.cy, spec.r, spec.limbs)
        w = _line_width(spec.r)
        hr = 0.12 * 2 * spec.r
        hx, hy = spec.cx, spec.cy - spec.r + hr
        d.ellipse((hx - hr, hy - hr, hx + hr, hy + hr), fill=255)
        mid_hip = (kp[8] + kp[11]) / 2
        lines = [(kp[1], (hx, hy + hr)), (kp[1], mid_hip)] + [(kp[a], kp[b]) for a, b in _BONES]
        for a, b in lines:
            d.line([tuple(map(float, a)), tuple(map(float, b))], fill=255, width=w)
        for p in kp[1:14]:  # round joints, so bent limbs have no notches
            d.ellipse((p[0] - w / 2 + 0.5, p[1] - w / 2 + 0.5, p[0] + w / 2 - 0.5, p[1] + w / 2 - 0.5),
                      fill=255)
    else:
        d.polygon(_polygon(spec), fill=255)
    return np.asarray(img) > 0, kp


def _object_rgb(spec: _Spec) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(RGB[spec.colour], spec.jitter))


# ---------------------------------------------------------------- backgrounds

def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, np.float32) * 255


def _background(rng: np.random.Generator, kind: str, size: int = SIZE) -> np.ndarray:
    # Muted, mid-bright tones only: saturation <= 0.3 and value 0.42..0.78 keep every
    # background pixel far from the saturated, white and black object colours.
    if kind == "plain":
        col = _hsv(rng.random(), rng.uniform(0.05, 0.22), rng.uniform(0.45, 0.72))
        bg = np.broadcast_to(col, (size, size, 3)).copy()
    elif kind == "sky":
        sky = _hsv(rng.uniform(0.54, 0.62), rng.uniform(0.12, 0.28), rng.uniform(0.66, 0.78))
        grass = _hsv(rng.uniform(0.22, 0.32), rng.uniform(0.18, 0.3), rng.uniform(0.42, 0.55))
        horizon = int(rng.integers(size * 2 // 5, size * 3 // 4))
        bg = np.empty((size, size, 3), np.float32)
        fade = np.linspace(-12, 6, horizon, dtype=np.float32)[:, None, None]
        bg[:horizon] = sky + fade
        bg[horizon:] = grass
    else:  # noise texture: low-frequency blotches on a muted base
        col = _hsv(rng.random(), rng.uniform(0.05, 0.2), rng.uniform(0.5, 0.68))
        coarse = rng.uniform(-22, 22, (8, 8)).astype(np.float32)
        blotch = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BILINEAR))
        fine = rng.normal(0, 4, (size, size)).astype(np.float32)
        bg = col + (blotch + fine)[..., None]
    return np.clip(bg, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- rendering

def _edges(inst: np.ndarray) -> np.ndarray:
    """Object pixels whose 4-neighbourhood holds another instance id."""
    diff = np.zeros(inst.shape, bool)
    diff[1:] |= inst[1:] != inst[:-1]
    diff[:-1] |= inst[:-1] != inst[1:]
    diff[:, 1:] |= inst[:, 1:] != inst[:, :-1]
    diff[:, :-1] |= inst[:, :-1] != inst[:, 1:]
    return ((diff & (inst > 0)) * 255).astype(np.uint8)


def _size_word(r: float) -> str:
    return "small" if r < 9 else "medium" if r < 13 else "large"


def _relation(a: WorldObject, b: WorldObject) -> str:
    dx, dy = b.centroid[0] - a.centroid[0], b.centroid[1] - a.centroid[1]
    if abs(dx) >= abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _phrase(o) -> str:
    return f"{article(o.colour)} {o.colour} {o.shape}"


def caption_for(objects: list[WorldObject]) -> str:
    if len(objects) == 1:
        return _phrase(objects[0])
    if len(objects) == 2:
        return f"{_phrase(objects[0])} {_relation(objects[0], objects[1])} {_phrase(objects[1])}"
    return ", ".join(_phrase(o) for o in objects[:-1]) + f" and {_phrase(objects[-1])}"


def render(background: np.ndarray, specs: list[_Spec], bg_kind: str = "plain",
           seed: int | None = None, drawn=None) -> Scene:
    """Composite objects far-to-near, so nearer objects occlude farther ones."""
    size = background.shape[0]
    drawn = drawn or [_draw(s, size) for s in specs]
    image = background.copy()
    inst = np.zeros((size, size), np.int32)
    depth = np.zeros((size, size), np.float32)
    for i in sorted(range(len(specs)), key=lambda k: specs[k].depth):
        m = drawn[i][0]
        image[m] = _object_rgb(specs[i])
        inst[m] = i + 1
        depth[m] = specs[i].depth
    objects, pose = [], []
    for i, (s, (m, kp)) in enumerate(zip(specs, drawn)):
        vis = inst == i + 1
        ys, xs = np.nonzero(vis)
        if len(xs):
            bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            cen = (float(xs.mean()), float(ys.mean()))
        else:
            bbox, cen = (0, 0, 0, 0), (float(s.cx), float(s.cy))
        objects.append(WorldObject(s.shape, s.colour, _object_rgb(s), bbox, cen, float(s.depth),
                                   float(s.r), _size_word(s.r), int(len(xs)),
                                   float(len(xs) / max(1, m.sum())), kp))
        if kp is not None:
            pose.append(kp)
    amodal = np.stack([m for m, _ in drawn]) if drawn else np.zeros((0, size, size), bool)
    return Scene(image, caption_for(objects), objects, [o.label for o in objects], inst, depth,
                 pose, _edges(inst), bg_kind, amodal, seed)


def _limbs(rng: np.random.Generator) -> tuple:
    return (rng.uniform(0.2, 2.6), rng.uniform(-0.7, 0.7), rng.uniform(0.2, 2.6),
            rng.uniform(-0.7, 0.7), rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5))


def _sample_spec(rng, shape, colour, r, depth, size=SIZE) -> _Spec | None:
    rot = 0.0 if shape in ("circle", "person") else float(rng.uniform(-0.45, 0.45))
    spec = _Spec(shape, colour, 0.0, 0.0, float(r), float(depth), rot,
                 tuple(int(j) for j in rng.integers(-12, 13, 3)),
                 _limbs(rng) if shape == "person" else ())
    x0, y0, x1, y1 = _extent(spec)
    lo_x, hi_x = 1 - x0, size - 2 - x1
    lo_y, hi_y = 1 - y0, size - 2 - y1
    if lo_x > hi_x or lo_y > hi_y:
        return None
    spec.cx, spec.cy = float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y))
    return spec


def _radius(rng, shape: str, n: int, depth: float) -> float:
    lo, hi = (8.0, 17.0) if n == 1 else (6.5, 12.5)
    if shape == "person":  # a stick figure needs height to read as one
        lo, hi = lo * 1.35, min(hi * 1.5, 27.0)
    # Mild perspective cue: nearer objects tend to be larger.
    return rng.uniform(lo, hi) * (0.8 + 0.25 * depth)


def _sample_objects(rng, n: int, size: int = SIZE) -> tuple[list[_Spec], list]:
    labels = rng.choice(len(LABELS), n, replace=False)
    depths = np.sort(rng.uniform(0.3, 1.0, n))[::-1][rng.permutation(n)]
    specs, drawn, union = [], [], np.zeros((size, size), bool)
    for lab, dep in zip(labels, depths):
        colour, shape = COLOURS[lab // len(SHAPES)], SHAPES[lab % len(SHAPES)]
        for attempt in range(40):
            shrink = 1.0 - 0.015 * attempt
            spec = _sample_spec(rng, shape, colour, _radius(rng, shape, n, dep) * shrink, dep, size)
            if spec is None:
                continue
            m, kp = _draw(spec, size)
            # Cap overlaps so every object stays mostly visible whatever the depth order.
            if not union.any() or (m & union).sum() <= 0.2 * m.sum() and all(
                    (m & d[0]).sum() <= 0.25 * d[0].sum() for d in drawn):
                break
        specs.append(spec)
        drawn.append((m, kp))
        union |= m
    return specs, drawn


def make_scene(seed: int, n_objects: int | None = None, background: str | None = None,
               size: int = SIZE) -> Scene:
    """One deterministic scene of 1-3 distinct colour-shape objects."""
    rng = np.random.default_rng(seed)
    n = int(n_objects) if n_objects is not None else int(rng.integers(1, 4))
    kind = background or BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    bg = _background(rng, kind, size)
    specs, drawn = _sample_objects(rng, n, size)
    return render(bg, specs, kind, seed, drawn)


# ---------------------------------------------------------------- clips

CLIP_TRAVEL = (14.0, 26.0)  # range of the distance in pixels a moving actor covers over a clip


def make_clip(seed: int, frames: int | None = None, n_objects: int | None = None,
              motion: str | None = None, size: int = SIZE, travel: tuple[float, float] = CLIP_TRAVEL) -> Clip:
    """A short clip: one actor moves / grows / changes colour, an optional second object stays.

    `travel`: range of the distance in pixels a moving actor covers over the clip (less where the
    actor would not fit)."""
    rng = np.random.default_rng(seed)
    t_count = int(frames) if frames is not None else int(rng.integers(8, 17))
    n = int(n_objects) if n_objects is not None else int(rng.integers(1, 3))
    motion = motion or MOTIONS[int(rng.integers(len(MOTIONS)))]
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    bg = _background(rng, kind, size)
    labels = rng.choice(len(LABELS), n, replace=False)
    colour, shape = COLOURS[labels[0] // len(SHAPES)], SHAPES[labels[0] % len(SHAPES)]
    # The actor is always nearest, so its visible centroid follows its motion exactly.
    actor = None
    travel = float(rng.uniform(*travel))
    grow = float(rng.uniform(1.4, 1.7))
    while actor is None:
        r = _radius(rng, shape, 2, 0.9)
        probe = _sample_spec(rng, shape, colour, r * (grow if motion == "grow" else 1.0), 0.9, size)
        if probe is None:
            continue
        if shape == "person" and motion in ("left", "right"):
            probe.limbs = probe.limbs[:4] + (0.55, 0.55)  # room for the widest stride
        x0, y0, x1, y1 = _extent(probe)
        ex, ey = probe.cx - x0, probe.cy - y0  # half-extents at the largest size
        dx = {"left": -travel, "right": travel}.get(motion, 0.0)
        dy = {"up": -travel, "down": travel}.get(motion, 0.0)
        lo_x, hi_x = 1 + ex - min(dx, 0), size - 2 - (x1 - probe.cx) - max(dx, 0)
        lo_y, hi_y = 1 + ey - min(dy, 0), size - 2 - (y1 - probe.cy) - max(dy, 0)
        if lo_x > hi_x or lo_y > hi_y:
            travel *= 0.9
            continue
        probe.cx, probe.cy, probe.r = float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)), r
        actor = probe
    new_colour = colour
    if motion == "recolour":
        new_colour = COLOURS[(COLOURS.index(colour) + int(rng.integers(1, len(COLOURS)))) % len(COLOURS)]
    switch = int(rng.integers(t_count // 3, 2 * t_count // 3 + 1))
    walk = float(rng.uniform(0.25, 0.45))

    def actor_at(t: int) -> _Spec:
        f = t / max(1, t_count - 1)
        s = _Spec(**{**actor.__dict__, "extra": {}})
        s.cx += {"left": -travel, "right": travel}.get(motion, 0.0) * f
        s.cy += {"up": -travel, "down": travel}.get(motion, 0.0) * f
        if motion == "grow":
            s.r *= 1.0 + (grow - 1.0) * f
        if motion == "recolour" and t >= switch:
            s.colour = new_colour
        if shape == "person" and motion in ("left", "right"):
            swing = walk * math.sin(t * 1.3)
            s.limbs = s.limbs[:4] + (0.05 + max(0.0, swing), 0.05 + max(0.0, -swing))
        return s

    path = np.zeros((size, size), bool)
    for t in range(t_count):
        path |= _draw(actor_at(t), size)[0]
    still = None
    if n > 1:
        c2, s2 = COLOURS[labels[1] // len(SHAPES)], SHAPES[labels[1] % len(SHAPES)]
        for attempt in range(60):
            cand = _sample_spec(rng, s2, c2, _radius(rng, s2, 2, 0.5) * (1 - 0.01 * attempt), 0.5, size)
            if cand is not None:
                still = cand
                m = _draw(cand, size)[0]
                if (m & path).sum() <= 0.15 * m.sum():
                    break
    scenes = [render(bg, [actor_at(t)] + ([still] if still else []), kind, seed)
              for t in range(t_count)]
    verb = {"left": "moving left", "right": "moving right", "up": "moving up", "down": "moving down",
            "grow": "growing", "recolour": f"turning {new_colour}"}[motion]
    caption = f"{article(colour)} {colour} {shape} {verb}"
    if still is not None:
        caption += f" and a still {still.colour} {still.shape}"
    return Clip(scenes, caption, motion, seed)


# ---------------------------------------------------------------- batches

@dataclass
class Batch:
    images: np.ndarray  # (B, H, W, 3) uint8
    captions: list[str]
    multi_hot: np.ndarray  # (B, 40) float32
    target: np.ndarray  # (B,) int64: label id of each scene's main object
    scenes: list[Scene]


def scene_seed(split: str, index: int) -> int:
    return SPLITS[split] + int(index)


def make_batch(seeds, n_objects: int | None = None) -> Batch:
    scenes = [make_scene(int(s), n_objects) for s in seeds]
    return Batch(np.stack([s.image for s in scenes]), [s.caption for s in scenes],
                 np.stack([s.multi_hot for s in scenes]),
                 np.array([s.objects[s.main_object].label_id for s in scenes], np.int64), scenes)


def iter_batches(split: str = "train", batch_size: int = 64, n_batches: int | None = None,
                 n_objects: int | None = None, start: int = 0) -> Iterator[Batch]:
    """Consecutive, non-overlapping batches of scenes from one seed split."""
    b = 0
    while n_batches is None or b < n_batches:
        first = start + b * batch_size
        yield make_batch([scene_seed(split, first + j) for j in range(batch_size)], n_objects)
        b += 1


# ---------------------------------------------------------------- pose rendering

def render_pose(poses: list[np.ndarray], size: tuple[int, int] = (SIZE, SIZE), scale: float = 1.0,
                stickwidth: int | None = None) -> np.ndarray:
    """OpenPose-style skeleton image (black background, standard limb colours).

    `poses` holds (18, 2) pixel-coordinate arrays in the scene's frame; `scale` renders
    at a larger resolution (e.g. 8 for 512x512).  Limbs are ellipses at 0.6 brightness
    and joints full-colour discs, as controlnet_aux's `draw_bodypose` draws them.
    """
    h, w = int(round(size[0] * scale)), int(round(size[1] * scale))
    sw = stickwidth if stickwidth is not None else max(1, int(round(4 * min(h, w) / 512)))
    canvas = Image.new("RGB", (w, h), (0, 0, 0))
    d = ImageDraw.Draw(canvas)
    for kp in poses:
        pts = (np.asarray(kp, np.float64)[:, :2] + 0.5) * scale - 0.5  # pixel centres
        for (a, b), col in zip(LIMB_SEQ, POSE_COLOURS):
            p, q = pts[a - 1], pts[b - 1]
            if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
                continue
            mid, length = (p + q) / 2, float(np.hypot(*(p - q)))
            ang = math.atan2(q[1] - p[1], q[0] - p[0])
            t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
            ex, ey = (length / 2) * np.cos(t), sw * np.sin(t)
            poly = [(mid[0] + x * math.cos(ang) - y * math.sin(ang),
                     mid[1] + x * math.sin(ang) + y * math.cos(ang)) for x, y in zip(ex, ey)]
            d.polygon(poly, fill=tuple(int(c * 0.6) for c in col))
        for p, col in zip(pts, POSE_COLOURS):
            if np.all(np.isfinite(p)):
                d.ellipse((p[0] - sw, p[1] - sw, p[0] + sw, p[1] + sw), fill=col)
    return np.asarray(canvas)
