"""Frozen requests and results of the inspect workspace's probe engines (ViT probe, Grad-CAM,
occlusion, layer tree, channel statistics, receptive field), plus the preprocessing geometry.

Results hold numpy arrays and plain values only, never tensors, so the main thread can draw them
without touching torch. `PreprocessSpec.geometry` is pure Python: the engines use it to prepare
the model input and the UI uses the resulting `PreprocessGeometry` to map patches, heatmaps and
crop boxes back onto the original image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from studio.core.image import StudioImage

RESIZE_MODES = ("shortest", "squash", "longest")


@dataclass(frozen=True)
class PreprocessGeometry:
    """How one original image became the model input: resize to `resized_size`, then a centred
    crop (or pad) to `input_size`. `crop_box` is the model input's area in original-image pixels
    (x0, y0, x1, y1); it extends past the image where the input was padded."""

    original_size: tuple[int, int]  # (width, height)
    input_size: tuple[int, int]  # (width, height) fed to the model
    resized_size: tuple[int, int]  # (width, height) after the resize step, before the crop/pad
    crop_offset: tuple[int, int]  # top-left of the crop in resized pixels (negative: padding)
    resize_mode: str

    @property
    def scale(self) -> tuple[float, float]:
        """Input pixels per original pixel, (sx, sy)."""
        return (self.resized_size[0] / self.original_size[0], self.resized_size[1] / self.original_size[1])

    @property
    def crop_box(self) -> tuple[float, float, float, float]:
        sx, sy = self.scale
        x0, y0 = self.crop_offset
        w, h = self.input_size
        return (x0 / sx, y0 / sy, (x0 + w) / sx, (y0 + h) / sy)

    def input_to_original(self, x: float, y: float) -> tuple[float, float]:
        sx, sy = self.scale
        return ((x + self.crop_offset[0]) / sx, (y + self.crop_offset[1]) / sy)

    def original_to_input(self, x: float, y: float) -> tuple[float, float]:
        sx, sy = self.scale
        return (x * sx - self.crop_offset[0], y * sy - self.crop_offset[1])

    def input_box_to_original(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0 = self.input_to_original(box[0], box[1])
        x1, y1 = self.input_to_original(box[2], box[3])
        return (x0, y0, x1, y1)

    def patch_box(self, row: int, col: int, patch_size: tuple[int, int]) -> tuple[float, float, float, float]:
        """The patch at (row, col) of a (ph, pw) patch grid, in original-image pixels."""
        ph, pw = patch_size
        return self.input_box_to_original((col * pw, row * ph, (col + 1) * pw, (row + 1) * ph))


@dataclass(frozen=True)
class PreprocessSpec:
    """A model's own eval preprocessing: resize, centre crop/pad to `input_size`, normalise.

    resize_mode: "shortest" (shorter edge to `resize_size`, keep aspect), "squash" (to exactly
    `resize_size`), "longest" (longer edge to `resize_size`, pad). `resize_size` is (w, h); for
    shortest/longest on a square target both are the edge length.
    """

    input_size: tuple[int, int]  # (width, height)
    resize_size: tuple[int, int]
    resize_mode: str = "shortest"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    source: str = ""  # where the values came from, for the UI's "how was this resized" note

    def geometry(self, width: int, height: int) -> PreprocessGeometry:
        if width <= 0 or height <= 0:
            raise ValueError(f"empty image {width}x{height}")
        tw, th = self.resize_size
        if self.resize_mode == "squash":
            rw, rh = tw, th
        elif self.resize_mode in ("shortest", "longest"):
            if tw == th:
                # torchvision Resize(int) semantics: the chosen edge gets the size, the other is floored.
                pick_short = self.resize_mode == "shortest"
                edge = min(width, height) if pick_short else max(width, height)
                other = max(width, height) if pick_short else min(width, height)
                new_other = int(tw * other / edge)
                if (width <= height) == pick_short:
                    rw, rh = tw, new_other
                else:
                    rw, rh = new_other, tw
            else:
                ratio = (max if self.resize_mode == "shortest" else min)(tw / width, th / height)
                rw, rh = max(1, round(width * ratio)), max(1, round(height * ratio))
        else:
            raise ValueError(f"unknown resize mode {self.resize_mode!r}")
        rw, rh = max(1, rw), max(1, rh)
        iw, ih = self.input_size
        # torchvision CenterCrop's rounding, which also describes a centred pad when negative.
        ox = int(round((rw - iw) / 2.0))
        oy = int(round((rh - ih) / 2.0))
        return PreprocessGeometry((int(width), int(height)), (int(iw), int(ih)), (int(rw), int(rh)),
                                  (ox, oy), self.resize_mode)


def spec_from_crop_pct(size: tuple[int, int], crop_pct: float, mode: str = "shortest", **kw) -> PreprocessSpec:
    """timm's rule: resize to floor(size / crop_pct), then centre crop `size` (w, h)."""
    crop_pct = crop_pct or 1.0
    resize = (math.floor(size[0] / crop_pct), math.floor(size[1] / crop_pct))
    return PreprocessSpec(input_size=tuple(size), resize_size=resize, resize_mode=mode, **kw)


@dataclass(frozen=True)
class ClassScore:
    index: int
    label: str
    probability: float
    logit: float


# ---------------------------------------------------------------------------------- ViT probe
@dataclass(frozen=True)
class VitProbeRequest:
    """Run a vision transformer once and keep everything the inspect panels redraw from."""

    image: StudioImage
    model_id: str


@dataclass(frozen=True)
class VitProbeResult:
    model_id: str
    model_name: str
    library: str
    trained: bool
    geometry: PreprocessGeometry
    spec: PreprocessSpec
    model_input: Any  # uint8 (h, w, 3): the crop the model saw, de-normalised
    patch_size: tuple[int, int]  # (ph, pw) in input pixels
    grid: tuple[int, int]  # (rows, cols)
    prefix_tokens: int  # CLS + distillation + register tokens, before the patches
    token_labels: tuple[str, ...]  # one per token: "CLS", "reg 1", ..., "r0c0", ...
    layer_names: tuple[str, ...]  # module name of each transformer block
    num_heads: int
    attentions: Any  # (layers, heads, tokens, tokens) float32 (float16 for very large models)
    tokens: Any  # (layers, tokens, dim) float16: the output of each block
    pos_similarity: Optional[Any]  # (patches, patches) float32 cosine of positional embeddings, None if none
    top5: tuple[ClassScore, ...]  # empty when the model has no classification head
    seconds: float


# ---------------------------------------------------------------------------------- Grad-CAM
@dataclass(frozen=True)
class GradCamRequest:
    image: StudioImage
    model_id: str
    target_class: Optional[int] = None  # None: the predicted class
    layer: str = ""  # "": last conv stage (CNN) / last block's first norm (ViT)
    method: str = "gradcam"  # "gradcam" | "gradcam++"


@dataclass(frozen=True)
class GradCamResult:
    model_id: str
    model_name: str
    method: str
    layer: str
    target_class: int
    target_label: str
    top5: tuple[ClassScore, ...]
    cam: Any  # float32 (h, w) at the layer's resolution, after ReLU, not normalised
    heatmap: Any  # float32 (input_h, input_w) in 0..1, bilinear upsampling of cam
    geometry: PreprocessGeometry
    model_input: Any  # uint8 (h, w, 3)
    seconds: float


# ---------------------------------------------------------------------------------- occlusion
@dataclass(frozen=True)
class OcclusionRequest:
    image: StudioImage
    model_id: str
    target_class: Optional[int] = None
    window: int = 0  # occluder side in input pixels; 0: 1/8 of the shorter input side (>= 1 patch on ViTs)
    stride: int = 0  # 0: window // 2
    batch_size: int = 16


@dataclass(frozen=True)
class OcclusionResult:
    model_id: str
    model_name: str
    target_class: int
    target_label: str
    top5: tuple[ClassScore, ...]
    baseline: float  # probability of the target class on the unoccluded input
    drops: Any  # float32 (ny, nx): baseline - probability with the occluder at each position
    heatmap: Any  # float32 (input_h, input_w): mean drop of the windows covering each pixel
    window: int
    stride: int
    ys: tuple[int, ...]  # top offsets of the occluder rows of `drops`, input pixels
    xs: tuple[int, ...]  # left offsets of its columns
    geometry: PreprocessGeometry
    model_input: Any  # uint8 (h, w, 3)
    seconds: float


# ---------------------------------------------------------------------------------- features
@dataclass(frozen=True)
class LayerTreeRequest:
    """Module names with their output shapes, from one forward pass on a blank input."""

    model_id: str


@dataclass(frozen=True)
class LayerTreeResult:
    model_id: str
    model_name: str
    kind: str  # "cnn" | "vit"
    layers: tuple[tuple[str, str, tuple[int, ...]], ...]  # (dotted name, class name, output shape w/o batch)
    default_cam_layer: str
    input_size: tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class ChannelStatsRequest:
    image: StudioImage
    model_id: str
    layer: str = ""  # "": the default Grad-CAM layer
    top_k: int = 8
    bins: int = 64


@dataclass(frozen=True)
class ChannelStatsResult:
    model_id: str
    layer: str
    channel_means: Any  # float32 (channels,) mean activation per channel
    top_channels: Any  # int64 (k,) channel indices, most active first
    top_maps: Any  # float32 (k, h, w): those channels' maps (ViT tokens reshaped to the patch grid)
    hist_counts: Any  # int64 (bins,)
    hist_edges: Any  # float32 (bins + 1,)
    geometry: PreprocessGeometry
    seconds: float


@dataclass(frozen=True)
class ReceptiveFieldRequest:
    """Effective receptive field of one location of `layer`'s output (gradient-based)."""

    model_id: str
    layer: str
    row: Optional[int] = None  # in the layer's output grid; None: the centre
    col: Optional[int] = None
    image: Optional[StudioImage] = None  # None: seeded Gaussian noise (in normalised units)


@dataclass(frozen=True)
class ReceptiveFieldResult:
    model_id: str
    layer: str
    row: int
    col: int
    layer_grid: tuple[int, int]  # (rows, cols) of the layer's output
    erf: Any  # float32 (input_h, input_w), |d out / d input| summed over channels, max-normalised
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) input pixels (x1/y1 exclusive) with a nonzero gradient
    centre: tuple[float, float]  # (x, y) gradient-weighted centre, input pixels
    input_size: tuple[int, int]
    geometry: Optional[PreprocessGeometry]
