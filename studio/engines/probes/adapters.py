"""Model adapters: one view of torchvision, timm, transformers and open_clip image models.

An adapter answers what the probes need without caring which library built the model: kind
(cnn/vit), the model's own eval preprocessing (as a `PreprocessSpec`), patch size and grid, prefix
tokens, the transformer blocks, class names, and a forward pass to logits (None without a head).

Card options override what the model says about itself: input_size (int or [w, h]),
resize_size, crop_pct, resize_mode (shortest|squash|longest), mean, std, interpolation,
class_names (list), has_head (bool).
torch is imported inside functions only; `preprocess_pixels` needs PIL and numpy only.
"""
from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from studio.core.errors import BadInputError, ModelError
from studio.core.inspect_requests import (ClassScore, PreprocessGeometry, PreprocessSpec,
                                          spec_from_crop_pct)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# PIL's resample enum values, as transformers image processors store them.
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


# ---------------------------------------------------------------------------------- pixels
def preprocess_pixels(rgb: np.ndarray, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray, PreprocessGeometry]:
    """(normalised float32 (3, h, w), uint8 (h, w, 3) as the model sees it, geometry).

    Resize then centre crop or pad, the way torchvision's Resize + CenterCrop do it on PIL images;
    padding uses the mean colour so it normalises to zero.
    """
    from PIL import Image

    h, w = rgb.shape[:2]
    geo = spec.geometry(w, h)
    pil = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    if geo.resized_size != (w, h):
        pil = pil.resize(geo.resized_size, _resample(spec.interpolation))
    fill = tuple(int(round(255 * m)) for m in spec.mean)
    canvas = Image.new("RGB", geo.input_size, fill)
    canvas.paste(pil, (-geo.crop_offset[0], -geo.crop_offset[1]))
    seen = np.asarray(canvas, dtype=np.uint8)
    arr = seen.astype(np.float32) / 255.0
    arr = (arr - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), seen, geo


def _resample(name: str):
    from PIL import Image

    table = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
             "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}
    return table.get(str(name).lower(), Image.BILINEAR)


@dataclass
class Prepared:
    x: Any  # torch tensor (1, 3, h, w) on the model's device and dtype
    model_input: np.ndarray  # uint8 (h, w, 3)
    geometry: PreprocessGeometry


# ---------------------------------------------------------------------------------- adapter
@dataclass
class ModelAdapter:
    library: str
    kind: str  # "cnn" | "vit"
    model: Any  # the whole torch module (layer names are relative to it)
    vision: Any  # the module that takes pixels (the vision tower for CLIP)
    spec: PreprocessSpec
    device: str
    has_head: bool
    class_names: tuple[str, ...] = ()
    patch_size: Optional[tuple[int, int]] = None  # (ph, pw)
    grid: Optional[tuple[int, int]] = None  # (rows, cols)
    num_prefix_tokens: int = 0
    blocks: tuple[tuple[str, Any], ...] = ()  # (name in `model`, block module)
    pos_embed_fn: Optional[Callable[[], Any]] = None
    _forward: Optional[Callable[[Any], Any]] = None
    _default_layer: Optional[str] = None

    @property
    def dtype(self):
        for p in self.model.parameters():
            return p.dtype
        import torch

        return torch.float32

    def prepare(self, image) -> Prepared:
        import torch

        arr, seen, geo = preprocess_pixels(image.rgb(), self.spec)
        x = torch.from_numpy(arr).unsqueeze(0).to(self.device, dtype=self.dtype)
        return Prepared(x, seen, geo)

    def blank(self):
        """A mean-colour input (zero after normalisation) of the model's input size."""
        import torch

        w, h = self.spec.input_size
        return torch.zeros(1, 3, h, w, device=self.device, dtype=self.dtype)

    def forward(self, x):
        """Run the model on pixels; returns logits (batch, classes) or None without a class head."""
        return self._forward(x)

    def label(self, index: int) -> str:
        if 0 <= index < len(self.class_names):
            return str(self.class_names[index])
        return f"class {index}"

    def top_k(self, logits, k: int = 5) -> tuple[ClassScore, ...]:
        import torch

        row = logits.detach()[0].float()
        probs = torch.softmax(row, dim=-1)
        vals, idx = torch.topk(probs, min(k, probs.numel()))
        return tuple(ClassScore(int(i), self.label(int(i)), float(v), float(row[int(i)]))
                     for v, i in zip(vals.tolist(), idx.tolist()))

    def pos_embed_patches(self) -> Optional[np.ndarray]:
        """Positional embeddings of the patches only, float32 (patches, dim); None if the model has none."""
        if self.pos_embed_fn is None or self.grid is None:
            return None
        pe = self.pos_embed_fn()
        if pe is None:
            return None
        pe = pe.detach().float().cpu().reshape(-1, pe.shape[-1]).numpy()
        n = self.grid[0] * self.grid[1]
        # Prefix tokens' positions (when the model has them) come first.
        return pe[-n:] if pe.shape[0] >= n else None

    def module(self, name: str):
        mods = dict(self.model.named_modules())
        if name not in mods or not name:
            raise BadInputError(f"The model has no layer called “{name}”.")
        return mods[name]

    def default_cam_layer(self) -> str:
        if self._default_layer is None:
            # Cached per model object (a CNN needs a forward pass to find it); weakly, so an
            # unloaded model is freed at once.
            cached = _DEFAULT_LAYERS.get(self.model)
            self._default_layer = cached if cached is not None else self._find_default_layer()
            _DEFAULT_LAYERS[self.model] = self._default_layer
        return self._default_layer

    def _find_default_layer(self) -> str:
        if self.kind == "vit" and self.blocks:
            # The last block's output patch tokens reach a CLS-pooled head only through the final
            # norm, so their gradient is zero; the input of its attention (first norm) is the
            # usual ViT Grad-CAM target.
            name, block = self.blocks[-1]
            for sub, mod in block.named_modules():
                if sub and "norm" in type(mod).__name__.lower():
                    return f"{name}.{sub}"
            return self.blocks[-2][0] if len(self.blocks) > 1 else name
        return last_spatial_layer(self)


def last_spatial_layer(adapter: ModelAdapter) -> str:
    """The last module, in execution order, whose output is a (B, C, h, w) map with h, w > 1."""
    import torch

    fired: list[str] = []
    hooks = []

    def make(name):
        def hook(_m, _i, out):
            t = first_tensor(out)
            if t is not None and t.dim() == 4 and min(t.shape[2:]) > 1:
                fired.append(name)
        return hook

    for name, mod in adapter.model.named_modules():
        if name:
            hooks.append(mod.register_forward_hook(make(name)))
    try:
        with torch.inference_mode():
            adapter.forward(adapter.blank())
    finally:
        for h in hooks:
            h.remove()
    if not fired:
        raise BadInputError("This model has no layer with a spatial feature map.")
    return fired[-1]


def first_tensor(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    for key in ("last_hidden_state", "logits"):
        val = getattr(out, key, None)
        if isinstance(val, torch.Tensor):
            return val
    return None


_DEFAULT_LAYERS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def adapter_for(entry) -> ModelAdapter:
    """The adapter of a LoadedModel (`.model`, `.card`, `.device`). Built per request: it only
    reads attributes and module names, and holding none keeps unloaded models collectable."""
    model = entry.model
    if isinstance(model, (tuple, list)):  # a loader may hand back (model, preprocess, ...)
        model = next((m for m in model if hasattr(m, "named_modules")), None)
    if model is None or not hasattr(model, "named_modules"):
        raise ModelError(f"{entry.card.name} is not a torch model the probes can inspect.")
    builders = {"timm": _timm, "transformers": _transformers, "open_clip": _open_clip,
                "torchvision": _torchvision}
    build = builders.get(entry.card.library)
    if build is None:
        raise BadInputError(f"The inspect probes do not support {entry.card.library} models ({entry.card.name}).")
    try:
        adapter = build(model, entry)
    except (BadInputError, ModelError):
        raise
    except Exception as exc:
        raise ModelError(f"The studio cannot inspect {entry.card.name}: {exc}") from exc
    return _apply_options(adapter, entry.card)


def _apply_options(ad: ModelAdapter, card) -> ModelAdapter:
    opts = dict(card.options or {})
    spec = ad.spec
    if "input_size" in opts:
        size = _pair(opts["input_size"])
        crop = float(opts.get("crop_pct", spec.input_size[0] / max(spec.resize_size[0], 1)))
        spec = spec_from_crop_pct(size, crop, spec.resize_mode, mean=spec.mean, std=spec.std,
                                  interpolation=spec.interpolation, source="card options")
    elif "crop_pct" in opts:
        spec = spec_from_crop_pct(spec.input_size, float(opts["crop_pct"]), spec.resize_mode, mean=spec.mean,
                                  std=spec.std, interpolation=spec.interpolation, source="card options")
    changes: dict[str, Any] = {}
    if "resize_size" in opts:
        changes["resize_size"] = _pair(opts["resize_size"])
    if "resize_mode" in opts:
        if opts["resize_mode"] not in ("shortest", "squash", "longest"):
            raise BadInputError(f"Model card {card.id}: unknown resize_mode {opts['resize_mode']!r}.")
        changes["resize_mode"] = str(opts["resize_mode"])
    for key in ("mean", "std"):
        if key in opts:
            changes[key] = tuple(float(v) for v in opts[key])
    if "interpolation" in opts:
        changes["interpolation"] = str(opts["interpolation"])
    if changes:
        spec = replace(spec, source="card options", **changes)
    if ad.kind == "vit" and ad.patch_size and ad.grid:
        fixed = (ad.grid[1] * ad.patch_size[1], ad.grid[0] * ad.patch_size[0])
        if spec.input_size != fixed:
            raise BadInputError(f"Model card {card.id}: input_size {spec.input_size} does not match the "
                                f"model's patch grid ({fixed[0]}x{fixed[1]}).")
    ad.spec = spec
    if opts.get("class_names"):
        ad.class_names = tuple(str(c) for c in opts["class_names"])
    if "has_head" in opts:
        ad.has_head = bool(opts["has_head"])
    return ad


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        v = list(v)[-2:] if len(v) == 3 else list(v)
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


# ---------------------------------------------------------------------------------- blocks
def attention_module(block):
    """The attention module inside a transformer block, or None."""
    import torch.nn as nn

    for _name, mod in block.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            return mod
        if hasattr(mod, "qkv") and hasattr(mod, "num_heads"):
            return mod
        if hasattr(mod, "q_proj") and hasattr(mod, "k_proj") and isinstance(mod.q_proj, nn.Linear):
            return mod
        if hasattr(mod, "query") and hasattr(mod, "key") and isinstance(getattr(mod, "query"), nn.Linear):
            return mod
    return None


def find_blocks(model, vision) -> tuple[tuple[str, Any], ...]:
    """The longest ModuleList/Sequential under `vision` whose children all hold an attention module."""
    import torch.nn as nn

    names = {id(m): n for n, m in model.named_modules()}
    best: list = []
    for _name, mod in vision.named_modules():
        if not isinstance(mod, (nn.ModuleList, nn.Sequential)):
            continue
        kids = list(mod.children())
        if kids and len(kids) > len(best) and all(attention_module(k) is not None for k in kids):
            best = kids
    return tuple((names[id(b)], b) for b in best)


def _logits_or_none(model_fn, has_head):
    def fwd(x):
        out = model_fn(x)
        return out if has_head else None
    return fwd


# ---------------------------------------------------------------------------------- timm
def _timm(model, entry) -> ModelAdapter:
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    pcfg = dict(getattr(model, "pretrained_cfg", None) or {})
    size = (int(cfg["input_size"][2]), int(cfg["input_size"][1]))
    is_vit = hasattr(model, "patch_embed") and hasattr(model, "blocks")
    patch = grid = None
    if is_vit:
        pe = model.patch_embed
        patch = tuple(int(v) for v in pe.patch_size)
        grid = tuple(int(v) for v in pe.grid_size)
        # The model only accepts its own size unless built with dynamic_img_size.
        size = (grid[1] * patch[1], grid[0] * patch[0])
    modes = {"center": "shortest", "squash": "squash", "border": "longest"}
    mode = modes.get(cfg.get("crop_mode") or "center", "shortest")
    spec = spec_from_crop_pct(size, float(cfg.get("crop_pct") or 0.875), mode, mean=tuple(cfg["mean"]),
                              std=tuple(cfg["std"]), interpolation=str(cfg.get("interpolation", "bicubic")),
                              source="timm pretrained_cfg")
    has_head = int(getattr(model, "num_classes", 0) or 0) > 0
    names = tuple(pcfg.get("label_names") or ())
    ad = ModelAdapter("timm", "vit" if is_vit else "cnn", model, model, spec, entry.device, has_head, names,
                      _forward=_logits_or_none(model, has_head))
    if is_vit:
        ad.patch_size, ad.grid = patch, grid
        ad.num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 1))
        ad.blocks = find_blocks(model, model)
        ad.pos_embed_fn = lambda: getattr(model, "pos_embed", None)
    return ad


# ---------------------------------------------------------------------------------- transformers
def _transformers(model, entry) -> ModelAdapter:
    vision = getattr(model, "vision_model", None) or model
    config = getattr(vision, "config", None) or model.config
    config = getattr(config, "vision_config", None) or config
    if not hasattr(config, "patch_size"):
        raise BadInputError(f"{entry.card.name} is not a vision transformer the probes understand.")
    image_size = _pair(getattr(config, "image_size", 224))
    patch = _pair(config.patch_size)  # transformers pairs are (h, w)
    grid = (image_size[0] // patch[0], image_size[1] // patch[1])
    spec = _hf_spec(model, vision, entry, image_size)
    classifier = getattr(model, "classifier", None)
    has_head = classifier is not None and hasattr(classifier, "weight")
    id2label = dict(getattr(model.config, "id2label", None) or {})
    names: tuple[str, ...] = ()
    if has_head and id2label and not all(str(v) == f"LABEL_{k}" for k, v in id2label.items()):
        names = tuple(str(id2label.get(i, id2label.get(str(i), f"class {i}"))) for i in range(len(id2label)))

    if has_head:
        def fwd(x):
            return model(pixel_values=x).logits
    else:
        def fwd(x):
            vision(pixel_values=x)
            return None
    ad = ModelAdapter("transformers", "vit", model, vision, spec, entry.device, has_head, names,
                      patch_size=patch, grid=grid, _forward=fwd)
    ad.num_prefix_tokens = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
    ad.blocks = find_blocks(model, vision)
    ad.pos_embed_fn = lambda: _hf_position_embeddings(vision)
    return ad


def _hf_position_embeddings(vision):
    import torch

    for _name, mod in vision.named_modules():
        pe = getattr(mod, "position_embeddings", None)
        if isinstance(pe, torch.Tensor):
            return pe
        emb = getattr(mod, "position_embedding", None)
        if isinstance(getattr(emb, "weight", None), torch.Tensor):
            return emb.weight
    return None


def _hf_spec(model, vision, entry, image_size) -> PreprocessSpec:
    """Image-processor values: the LoadedModel's processor, else preprocessor_config.json next to
    the weights, else the defaults of the processor class that goes with the model type."""
    proc = getattr(entry, "processor", None) or (getattr(entry, "extras", None) or {}).get("processor")
    proc = getattr(proc, "image_processor", proc)
    values: dict = {}
    if proc is not None and hasattr(proc, "to_dict"):
        values, source = proc.to_dict(), "image processor"
    else:
        folder = Path(str(getattr(model, "name_or_path", "") or ""))
        path = folder / "preprocessor_config.json"
        if str(folder) not in ("", ".") and path.is_file():
            try:
                values, source = json.loads(path.read_text(encoding="utf-8")), "preprocessor_config.json"
            except (OSError, ValueError):
                values = {}
    model_type = str(getattr(getattr(vision, "config", None), "model_type", "")
                     or getattr(model.config, "model_type", ""))
    clip_like = "clip" in model_type or "siglip" in model_type
    if not values:
        source = f"{'CLIP' if clip_like else 'ViT'} image processor defaults"
        if clip_like:
            values = {"size": {"shortest_edge": image_size[0]}, "do_center_crop": True,
                      "crop_size": {"height": image_size[0], "width": image_size[1]},
                      "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "resample": 3}
        else:
            values = {"size": {"height": image_size[0], "width": image_size[1]}, "do_center_crop": False,
                      "image_mean": (0.5, 0.5, 0.5), "image_std": (0.5, 0.5, 0.5), "resample": 2}
    size = values.get("size") or {}
    if isinstance(size, (int, float)):
        size = {"shortest_edge": int(size)}
    if values.get("do_resize", True) is False:
        mode, resize = "squash", (image_size[1], image_size[0])
    elif "shortest_edge" in size:
        mode, resize = "shortest", (int(size["shortest_edge"]),) * 2
    elif "longest_edge" in size and "height" not in size:
        mode, resize = "longest", (int(size["longest_edge"]),) * 2
    else:
        mode, resize = "squash", (int(size.get("width", image_size[1])), int(size.get("height", image_size[0])))
    crop = values.get("crop_size") if values.get("do_center_crop") else None
    if isinstance(crop, (int, float)):
        crop = {"height": int(crop), "width": int(crop)}
    final = (int(crop["width"]), int(crop["height"])) if crop else resize
    model_wh = (image_size[1], image_size[0])
    if final != model_wh:
        # The ViT only takes its own size: scale the resize so the crop keeps its share of the image.
        resize = (round(resize[0] * model_wh[0] / final[0]), round(resize[1] * model_wh[1] / final[1]))
        final = model_wh
    resample = values.get("resample", 3)
    if isinstance(resample, int):  # PIL's Resampling is an IntEnum
        interp = _PIL_RESAMPLE.get(int(resample), "bicubic")
    else:  # torchvision InterpolationMode in "fast" processors
        interp = str(getattr(resample, "value", resample)).lower().rsplit(".", 1)[-1]
    mean = tuple(float(v) for v in (values.get("image_mean") or IMAGENET_MEAN))
    std = tuple(float(v) for v in (values.get("image_std") or IMAGENET_STD))
    if values.get("do_normalize", True) is False:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return PreprocessSpec(final, resize, mode, mean, std, interp, source)


# ---------------------------------------------------------------------------------- open_clip
def _open_clip(model, entry) -> ModelAdapter:
    vision = getattr(model, "visual", None) or model
    cfg = dict(getattr(vision, "preprocess_cfg", None) or {})
    image_size = _pair(cfg.get("size", getattr(vision, "image_size", 224)))  # (h, w)
    wh = (image_size[1], image_size[0])
    mean = tuple(cfg.get("mean") or getattr(vision, "image_mean", None) or CLIP_MEAN)
    std = tuple(cfg.get("std") or getattr(vision, "image_std", None) or CLIP_STD)
    mode = str(cfg.get("resize_mode", "shortest"))
    spec = PreprocessSpec(wh, wh, mode if mode in ("shortest", "squash", "longest") else "shortest",
                          mean, std, str(cfg.get("interpolation", "bicubic")),
                          "open_clip preprocess_cfg" if cfg else "open_clip defaults")
    is_vit = hasattr(vision, "conv1") and hasattr(vision, "transformer") and hasattr(vision, "positional_embedding")

    def fwd(x):
        vision(x)
        return None
    ad = ModelAdapter("open_clip", "vit" if is_vit else "cnn", model, vision, spec, entry.device, False, (),
                      _forward=fwd)
    if is_vit:
        ad.patch_size = tuple(int(v) for v in _pair(vision.patch_size))
        ad.grid = tuple(int(v) for v in vision.grid_size)
        ad.num_prefix_tokens = 1
        ad.blocks = find_blocks(model, vision)
        ad.pos_embed_fn = lambda: vision.positional_embedding
    return ad


# ---------------------------------------------------------------------------------- torchvision
def _torchvision(model, entry) -> ModelAdapter:
    is_vit = hasattr(model, "conv_proj") and hasattr(model, "class_token") and hasattr(model, "encoder")
    if is_vit:
        size = (int(model.image_size),) * 2
        spec = spec_from_crop_pct(size, size[0] / 256 if size[0] == 224 else 1.0, "shortest",
                                  mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear",
                                  source="torchvision ImageClassification defaults")
    else:
        spec = spec_from_crop_pct((224, 224), 0.875, "shortest", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                  interpolation="bilinear", source="torchvision ImageClassification defaults")
    ad = ModelAdapter("torchvision", "vit" if is_vit else "cnn", model, model, spec, entry.device, True, (),
                      _forward=model)
    if is_vit:
        p = int(model.patch_size)
        ad.patch_size = (p, p)
        ad.grid = (int(model.image_size) // p,) * 2
        ad.num_prefix_tokens = 1
        ad.blocks = find_blocks(model, model)
        ad.pos_embed_fn = lambda: model.encoder.pos_embedding
    return ad
