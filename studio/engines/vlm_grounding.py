"""Boxes and points in a VLM's answer: find them in the text and map them onto the image.

Pure Python (no torch), so the main thread may call it. Formats understood:

- Qwen2.5-VL JSON: `{"bbox_2d": [x0, y0, x1, y1], "label": "cat"}` and `{"point_2d": [x, y], ...}`,
  in pixels of the model's (resized) input image: space "input".
- Qwen2-VL tokens: `<|object_ref_start|>cat<|object_ref_end|><|box_start|>(x0,y0),(x1,y1)<|box_end|>`,
  on a 0..1000 grid: space "thousand".
- Molmo-style points: `<point x="61.5" y="40.2" alt="cat">cat</point>` and `<points x1=".." y1=".." x2=..>`,
  in percent: space "percent"; also `<point>[x, y]</point>` / `<point>(x, y)</point>`.
- Plain boxes, as the starter VLM writes them: `[x0, y0, x1, y1]`, in 0..1 when every value is
  (space "unit"), else in image pixels (space "pixels"). The label is the few words before it.

`to_pixels` maps what was found onto an image of a given size (and model input size for "input").
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Optional

NUM = r"-?\d+(?:\.\d+)?"
_JSON_OBJ = re.compile(r"\{[^{}]*?\"(?:bbox_2d|point_2d|bbox|point)\"[^{}]*\}", re.S)
_QWEN2 = re.compile(r"(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>)?\s*<\|box_start\|>\s*"
                    rf"\(\s*(?P<x0>{NUM})\s*,\s*(?P<y0>{NUM})\s*\)\s*,\s*\(\s*(?P<x1>{NUM})\s*,\s*(?P<y1>{NUM})\s*\)"
                    r"\s*<\|box_end\|>", re.S)
_POINT_TAG = re.compile(r"<points?\b(?P<attrs>[^>]*)>(?P<body>.*?)</points?>", re.S)
_ATTR = re.compile(r"(\w+)\s*=\s*\"([^\"]*)\"")
_PLAIN_BOX = re.compile(rf"[\[(]\s*({NUM})\s*,\s*({NUM})\s*,\s*({NUM})\s*,\s*({NUM})\s*[\])]")
_WORD = re.compile(r"[A-Za-z][\w'-]*")
_STOP_WORDS = {"at", "in", "is", "are", "the", "a", "an", "box", "bbox", "bounding", "coordinates",
               "located", "position", "of", "with", "its", "it", "found", "and", "or", "but", "while",
               "plus", "also", "then", "there", "here", "see"}


@dataclass(frozen=True)
class Grounded:
    """A box (x0, y0, x1, y1) or a point (x, y, x, y) as written in the answer, in `space`."""

    box: tuple[float, float, float, float]
    label: str = ""
    kind: str = "box"  # "box" or "point"
    space: str = "pixels"  # "unit", "percent", "thousand", "input", "pixels"
    span: tuple[int, int] = (0, 0)  # where in the text


def parse(text: str) -> list[Grounded]:
    """Every box and point found in `text`, in the order they appear."""
    found: list[Grounded] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for m in _JSON_OBJ.finditer(text):
        g = _from_json(m.group(0), m.span())
        if g is not None:
            found.append(g)
            taken.append(m.span())
    for m in _QWEN2.finditer(text):
        if free(*m.span()):
            vals = [float(m.group(k)) for k in ("x0", "y0", "x1", "y1")]
            found.append(Grounded(_ordered(vals), (m.group("label") or "").strip(), "box", "thousand", m.span()))
            taken.append(m.span())
    for m in _POINT_TAG.finditer(text):
        if free(*m.span()):
            found.extend(_from_point_tag(m))
            taken.append(m.span())
    for m in _PLAIN_BOX.finditer(text):
        if not free(*m.span()):
            continue
        vals = [float(v) for v in m.groups()]
        if vals[2] <= vals[0] or vals[3] <= vals[1]:
            continue  # not corners in order: some other list of four numbers
        space = "unit" if all(0.0 <= v <= 1.0 for v in vals) else "pixels"
        if space == "pixels" and min(vals) < 0:
            continue
        found.append(Grounded(tuple(vals), _label_before(text, m.start(), taken), "box", space, m.span()))
        taken.append(m.span())
    found.sort(key=lambda g: g.span)
    return found


def _ordered(v) -> tuple[float, float, float, float]:
    x0, x1 = sorted((float(v[0]), float(v[2])))
    y0, y1 = sorted((float(v[1]), float(v[3])))
    return (x0, y0, x1, y1)


def _from_json(chunk: str, span: tuple[int, int]) -> Optional[Grounded]:
    try:
        obj = json.loads(chunk)
    except ValueError:
        # Models often write almost-JSON (single quotes, trailing commas): read the numbers directly.
        key = re.search(r"\"(bbox_2d|point_2d|bbox|point)\"\s*:\s*\[([^\]]*)\]", chunk)
        lab = re.search(r"\"label\"\s*:\s*\"([^\"]*)\"", chunk)
        if key is None:
            return None
        obj = {key.group(1): re.findall(NUM, key.group(2)), "label": lab.group(1) if lab else ""}
    if not isinstance(obj, dict):
        return None
    label = str(obj.get("label", "") or "")
    for key, kind, n in (("bbox_2d", "box", 4), ("bbox", "box", 4), ("point_2d", "point", 2), ("point", "point", 2)):
        vals = obj.get(key)
        if isinstance(vals, (list, tuple)) and len(vals) == n:
            try:
                nums = [float(v) for v in vals]
            except (TypeError, ValueError):
                return None
            box = _ordered(nums) if n == 4 else (nums[0], nums[1], nums[0], nums[1])
            space = "unit" if all(0.0 <= v <= 1.0 for v in nums) else "input"
            return Grounded(box, label, kind, space, span)
    return None


def _from_point_tag(m: re.Match) -> list[Grounded]:
    attrs = dict(_ATTR.findall(m.group("attrs")))
    body = m.group("body").strip()
    label = attrs.get("alt") or (body if not re.search(NUM, body) else "")
    out = []
    try:
        if "x" in attrs and "y" in attrs:
            x, y = float(attrs["x"]), float(attrs["y"])
            out.append(Grounded((x, y, x, y), label, "point", "percent", m.span()))
        i = 1
        while f"x{i}" in attrs and f"y{i}" in attrs:
            x, y = float(attrs[f"x{i}"]), float(attrs[f"y{i}"])
            out.append(Grounded((x, y, x, y), label, "point", "percent", m.span()))
            i += 1
        if not out:
            nums = [float(v) for v in re.findall(NUM, body)]
            if len(nums) == 2:
                space = "unit" if all(0.0 <= v <= 1.0 for v in nums) else "pixels"
                out.append(Grounded((nums[0], nums[1], nums[0], nums[1]), "", "point", space, m.span()))
    except ValueError:
        return []
    return out


def _label_before(text: str, start: int, taken: list[tuple[int, int]]) -> str:
    """The last few words before position `start` on the same line or clause (the thing the box is of)."""
    left = max([e for s, e in taken if e <= start] + [0])
    clause = re.split(r"[\n.;!?]|\]|\)", text[left:start])[-1]
    words = [w for w in _WORD.findall(clause)]
    while words and words[-1].lower() in _STOP_WORDS:
        words.pop()
    while words and words[0].lower() in _STOP_WORDS:
        words.pop(0)
    return " ".join(words[-4:])


def to_pixels(g: Grounded, image_size: tuple[int, int],
              input_size: Optional[tuple[int, int]] = None) -> Optional[tuple[float, float, float, float]]:
    """`g` in pixels of an image of `image_size` (w, h), clipped to it; None if nothing is left.
    `input_size`: the model input (w, h) the "input" space refers to (Qwen2.5-VL's resized image);
    unknown, "input" coordinates are taken as image pixels."""
    w, h = image_size
    if g.space == "unit":
        sx, sy = w, h
    elif g.space == "percent":
        sx, sy = w / 100.0, h / 100.0
    elif g.space == "thousand":
        sx, sy = w / 1000.0, h / 1000.0
    elif g.space == "input" and input_size and input_size[0] > 0 and input_size[1] > 0:
        sx, sy = w / input_size[0], h / input_size[1]
    else:
        sx = sy = 1.0
    x0, y0, x1, y1 = g.box
    box = (min(max(x0 * sx, 0.0), w), min(max(y0 * sy, 0.0), h), min(max(x1 * sx, 0.0), w), min(max(y1 * sy, 0.0), h))
    if g.kind == "box" and (box[2] - box[0] < 1 or box[3] - box[1] < 1):
        return None
    if g.kind == "point" and not (0 <= x0 * sx <= w and 0 <= y0 * sy <= h):
        return None
    return box


def point_region(point: tuple[float, float], image_size: tuple[int, int], share: float = 0.2) -> tuple[int, int, int, int]:
    """A square crop around a point, `share` of the shorter image side wide (what a click on a point asks about)."""
    w, h = image_size
    half = max(8.0, share * min(w, h) / 2.0)
    x, y = point
    return (int(max(0, x - half)), int(max(0, y - half)), int(min(w, x + half)), int(min(h, y + half)))
