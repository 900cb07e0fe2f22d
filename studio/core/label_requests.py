"""Label workspace values: requests and results of the CLIP engines, label presets, prompt templates,
score maths and the batch table's CSV/JSON export.

Qt-free and torch-free: the scores the user sees (softmax with a temperature, raw cosine, sigmoid with
a bias, the "none of these" threshold) are recomputed here in numpy from the cosines an engine returned,
so moving a slider never re-runs a model. Results hold numpy arrays, never tensors.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.core.paths import assets_dir

NONE_LABEL = "none of these"
SINGLE_TEMPLATE = "a photo of a {}."
# name -> (menu text, file under assets/labels or None for the single template)
TEMPLATE_SETS: dict[str, tuple[str, str | None]] = {
    "single": ("Single: “a photo of a {}.”", None),
    "7": ("7-template ensemble", "templates_7.txt"),
    "80": ("80-template ensemble (CLIP paper)", "templates_80.txt"),
}
PRESETS: dict[str, tuple[str, str]] = {
    "imagenet": ("ImageNet-1k class names", "imagenet1k.txt"),
    "coco": ("COCO object names", "coco.txt"),
    "colours": ("Colours", "colours.txt"),
    "shapes": ("Shapes world (colour × shape)", "shapes.txt"),
}
SCORINGS: dict[str, str] = {
    "auto": "Automatic (sigmoid for SigLIP, else softmax)",
    "softmax": "Softmax × logit scale",
    "cosine": "Raw cosine similarity",
    "sigmoid": "Sigmoid × scale + bias",
}
REGION_METHODS: dict[str, str] = {
    "value": "Patch value path (each patch attends to itself)",
    "tokens": "Patch tokens as they are",
}
MAX_LABELS = 5000
MAX_LABEL_CHARS = 200


def labels_dir() -> Path:
    return assets_dir() / "labels"


# ----------------------------------------------------------------------------- labels and templates

def parse_labels(text: str) -> tuple[str, ...]:
    """One label a line; blank lines and '#' comments dropped, duplicates kept once, in order."""
    out: dict[str, None] = {}
    for line in text.splitlines():
        s = " ".join(line.split())
        if s and not s.startswith("#"):
            out.setdefault(s, None)
    return tuple(out)


def check_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    if not labels:
        raise BadInputError("Type at least one label (one per line), or pick a preset.")
    if len(labels) > MAX_LABELS:
        raise BadInputError(f"{len(labels)} labels is too many; the studio takes up to {MAX_LABELS}.")
    long = [lab for lab in labels if len(lab) > MAX_LABEL_CHARS]
    if long:
        raise BadInputError(f"The label “{long[0][:40]}…” is too long (over {MAX_LABEL_CHARS} characters).")
    return labels


def load_labels_file(path: str | Path) -> tuple[str, ...]:
    """Labels from a text file (one per line; a CSV's first column also works)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise BadInputError(f"“{p.name}” cannot be read: {exc.strerror or exc}.") from exc
    if b"\x00" in raw[:4096]:
        raise BadInputError(f"“{p.name}” is not a text file; use one label per line.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"“{p.name}” is not UTF-8 text.", str(exc)) from exc
    if p.suffix.lower() == ".csv":
        text = "\n".join(row[0] for row in csv.reader(io.StringIO(text)) if row)
    labels = parse_labels(text)
    if not labels:
        raise BadInputError(f"“{p.name}” holds no labels (one per line).")
    return check_labels(labels)


def preset_labels(name: str) -> tuple[str, ...]:
    if name not in PRESETS:
        raise BadInputError(f"There is no label preset called “{name}”.")
    return load_labels_file(labels_dir() / PRESETS[name][1])


def template_set(name: str) -> tuple[str, ...]:
    if name not in TEMPLATE_SETS:
        raise BadInputError(f"There is no template set called “{name}”.")
    file = TEMPLATE_SETS[name][1]
    if file is None:
        return (SINGLE_TEMPLATE,)
    lines = (labels_dir() / file).read_text(encoding="utf-8").splitlines()
    return tuple(t for t in lines if "{}" in t)


def check_templates(templates: tuple[str, ...]) -> tuple[str, ...]:
    if not templates:
        raise BadInputError("Choose at least one prompt template.")
    bad = [t for t in templates if t.count("{}") != 1]
    if bad:
        raise BadInputError(f"The template “{bad[0]}” needs exactly one {{}} where the label goes.")
    return templates


def prompts(labels: tuple[str, ...], templates: tuple[str, ...]) -> tuple[str, ...]:
    """Label-major: all templates of label 0, then of label 1, ..."""
    return tuple(t.replace("{}", lab) for lab in labels for t in templates)


# ----------------------------------------------------------------------------- scores

def resolve_scoring(mode: str, logit_bias: float | None) -> str:
    if mode not in SCORINGS:
        raise BadInputError(f"Unknown scoring “{mode}”; choose one of {', '.join(SCORINGS)}.")
    if mode == "auto":
        return "sigmoid" if logit_bias is not None else "softmax"
    return mode


def scores(cosine: np.ndarray, mode: str, logit_scale: float, logit_bias: float | None = None,
           temperature: float = 1.0) -> np.ndarray:
    """Scores from cosines (last axis = labels). Softmax and sigmoid divide the logits by `temperature`."""
    cos = np.asarray(cosine, np.float64)
    mode = resolve_scoring(mode, logit_bias)
    t = max(float(temperature), 1e-3)
    if mode == "cosine":
        return cos.astype(np.float32)
    if mode == "sigmoid":
        z = (cos * logit_scale + (logit_bias if logit_bias is not None else 0.0)) / t
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    z = cos * logit_scale / t
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def rank(labels: tuple[str, ...], values: np.ndarray) -> tuple[tuple[str, float], ...]:
    order = np.argsort(-np.asarray(values), kind="stable")
    return tuple((labels[i], float(values[i])) for i in order)


def verdict(ranked: tuple[tuple[str, float], ...], threshold: float) -> str:
    """The top label, or NONE_LABEL when even the best score is under `threshold`."""
    if not ranked or ranked[0][1] < threshold:
        return NONE_LABEL
    return ranked[0][0]


# ----------------------------------------------------------------------------- requests and results

@dataclass(frozen=True, eq=False)
class LabelRequest:
    """Zero-shot: rank `labels` for `image` (each label's text embedding averages its templates)."""

    image: StudioImage
    model_id: str
    labels: tuple[str, ...]
    templates: tuple[str, ...] = (SINGLE_TEMPLATE,)


@dataclass(frozen=True, eq=False)
class LabelResult:
    model_id: str
    model_name: str
    labels: tuple[str, ...]
    templates: tuple[str, ...]
    cosine: np.ndarray  # (labels,) float32
    logit_scale: float
    logit_bias: float | None
    image_embedding: np.ndarray  # (dim,) float32, unit length
    text_cached: bool
    seconds: float
    trained: bool = True


@dataclass(frozen=True, eq=False)
class LabelBatchRequest:
    """Label every image of `folder` (top level, image suffixes only); bad files become errors."""

    folder: str
    model_id: str
    labels: tuple[str, ...]
    templates: tuple[str, ...] = (SINGLE_TEMPLATE,)
    batch_size: int = 16
    thumbnail: int = 48
    csv_path: str = ""  # when set, the table is written there (atomically) at the end
    scoring: str = "auto"
    temperature: float = 1.0


@dataclass(frozen=True, eq=False)
class BatchItem:
    path: str
    name: str
    thumbnail: Any  # (h, w, 3) uint8
    size: tuple[int, int]


@dataclass(frozen=True, eq=False)
class LabelBatchResult:
    model_id: str
    labels: tuple[str, ...]
    templates: tuple[str, ...]
    items: tuple[BatchItem, ...]
    cosine: np.ndarray  # (items, labels) float32
    embeddings: np.ndarray  # (items, dim) float32, unit length
    errors: tuple[tuple[str, str], ...]  # (path, message) per unreadable file
    skipped: int  # files with other suffixes
    logit_scale: float
    logit_bias: float | None
    seconds: float
    csv_path: str = ""


@dataclass(frozen=True, eq=False)
class AccuracyRequest:
    """Zero-shot accuracy on a folder of class folders: `folder/red_circle/*.png` is class "red circle"."""

    folder: str
    model_id: str
    templates: tuple[str, ...] = (SINGLE_TEMPLATE,)
    batch_size: int = 32


@dataclass(frozen=True, eq=False)
class AccuracyResult:
    model_id: str
    classes: tuple[str, ...]
    total: int
    correct: int
    per_class: tuple[tuple[str, int, int], ...]  # (class, images, correct)
    confusion: np.ndarray  # (true, predicted) int
    errors: tuple[tuple[str, str], ...]
    seconds: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True, eq=False)
class ArithmeticRequest:
    """Nearest words and images of A - B (+ C). `pool` holds (name, unit embedding) of images seen."""

    model_id: str
    a: StudioImage | None
    b: StudioImage | None
    c: StudioImage | None = None
    names: tuple[str, str, str] = ("A", "B", "C")
    centre: bool = False
    template: str = "a photo of {}."
    top_k: int = 20
    probes: tuple[str, ...] = ()
    pool: tuple[tuple[str, Any], ...] = ()
    words: tuple[str, ...] = ()  # empty: the shipped vocabulary


@dataclass(frozen=True, eq=False)
class ArithmeticResult:
    model_id: str
    expression: str
    words: tuple[tuple[str, float], ...]
    probes: tuple[tuple[str, float], ...]
    neighbours: tuple[tuple[str, float], ...]
    embeddings: tuple[tuple[str, Any], ...]  # (name, unit embedding) of A, B (C)
    centred: bool
    vocabulary_size: int
    seconds: float


@dataclass(frozen=True, eq=False)
class RegionRequest:
    """Word-to-region: cosine of each vision patch token (through post-layernorm and projection) with
    the text embedding of `label`; see ClipAdapter.encode_patches for the two methods."""

    image: StudioImage
    model_id: str
    label: str
    templates: tuple[str, ...] = (SINGLE_TEMPLATE,)
    method: str = "value"  # a REGION_METHODS key


@dataclass(frozen=True, eq=False)
class RegionResult:
    model_id: str
    label: str
    heatmap: np.ndarray  # (grid_h, grid_w) float32 cosines, covering the whole image
    global_cosine: float
    image_size: tuple[int, int]  # (width, height) of the image the map belongs to
    seconds: float
    image_source: str = field(default="")
    method: str = "value"


# ----------------------------------------------------------------------------- region maps

def normalised(heatmap: np.ndarray) -> np.ndarray:
    h = np.asarray(heatmap, np.float32)
    lo, hi = float(h.min()), float(h.max())
    return (h - lo) / (hi - lo) if hi - lo > 1e-9 else np.zeros_like(h)


def upsample(map2d: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map to (width, height)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(map2d, np.float32), mode="F")
    return np.asarray(img.resize(size, Image.BILINEAR), np.float32)


def region_mask(result: RegionResult, threshold: float) -> np.ndarray:
    """HxW uint8 (0/255) mask of the image pixels whose normalised similarity is >= threshold."""
    up = upsample(normalised(result.heatmap), result.image_size)
    return np.where(up >= threshold, 255, 0).astype(np.uint8)


def region_overlay(result: RegionResult, threshold: float, colormap: str = "magma") -> np.ndarray:
    """RGBA overlay at grid resolution: the heatmap coloured, transparent under the threshold."""
    from studio.core.colormap import apply

    n = normalised(result.heatmap)
    rgb = apply(n, colormap)
    alpha = np.where(n >= threshold, 220, 40).astype(np.uint8)
    return np.dstack([rgb, alpha])


# ----------------------------------------------------------------------------- export

def batch_records(result: LabelBatchResult, scoring: str = "auto", temperature: float = 1.0,
                  threshold: float = 0.0) -> list[dict[str, Any]]:
    """One record per file: scores for images, an error message for unreadable files."""
    vals = scores(result.cosine, scoring, result.logit_scale, result.logit_bias, temperature) \
        if len(result.items) else np.zeros((0, len(result.labels)), np.float32)
    out: list[dict[str, Any]] = []
    for item, row in zip(result.items, vals):
        ranked = rank(result.labels, row)
        out.append({"file": item.path, "top_label": verdict(ranked, threshold),
                    "top_score": round(float(ranked[0][1]), 6), "error": "",
                    "scores": {lab: round(float(v), 6) for lab, v in zip(result.labels, row)}})
    for path, msg in result.errors:
        out.append({"file": path, "top_label": "", "top_score": None, "error": msg, "scores": {}})
    return out


def batch_csv(result: LabelBatchResult, scoring: str = "auto", temperature: float = 1.0,
              threshold: float = 0.0) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "top_label", "top_score", "error", *result.labels])
    for r in batch_records(result, scoring, temperature, threshold):
        w.writerow([r["file"], r["top_label"], "" if r["top_score"] is None else r["top_score"], r["error"],
                    *(r["scores"].get(lab, "") for lab in result.labels)])
    return buf.getvalue()


def batch_json(result: LabelBatchResult, scoring: str = "auto", temperature: float = 1.0,
               threshold: float = 0.0) -> str:
    mode = resolve_scoring(scoring, result.logit_bias)
    doc = {"model": result.model_id, "labels": list(result.labels), "templates": list(result.templates),
           "scoring": mode, "temperature": temperature, "threshold": threshold,
           "images": batch_records(result, scoring, temperature, threshold)}
    return json.dumps(doc, indent=2, ensure_ascii=False)


def write_batch(result: LabelBatchResult, path: str | Path, scoring: str = "auto",
                temperature: float = 1.0, threshold: float = 0.0) -> Path:
    """Write the table as CSV or JSON (by suffix), atomically."""
    from studio.core.atomic import atomic_write_text

    p = Path(path)
    text = (batch_json if p.suffix.lower() == ".json" else batch_csv)(result, scoring, temperature, threshold)
    try:
        atomic_write_text(p, text)
    except OSError as exc:
        raise BadInputError(f"Could not write {p.name}: {exc.strerror or exc}.", str(exc)) from exc
    return p
