"""The CLIP adapter: one interface over two libraries, open_clip and transformers.

`adapt(entry)` turns a model the model manager loaded (`LoadedModel`: `.model`, `.card`, `.device`) into a
:class:`ClipAdapter` with `encode_image(batch)`, `encode_text(prompts)`, `encode_patches(batch)` (patch tokens
projected into the joint space, for word-to-region maps), `logit_scale`, `logit_bias` and `pixels(images)`
(the model's own preprocessing). The starter CLIP (a transformers CLIPModel folder) goes through exactly the
same code as any hub CLIP, open_clip ViT or SigLIP.

What the manager hands over may be the bare model, a tuple such as open_clip's (model, preprocess) or
(model, processor), a dict, or an object with `.model` / `.tokenizer` / `.processor`; whatever is missing
(the tokenizer, the preprocessing) is read from the card's folder or the library's defaults, offline.
torch and the model libraries are imported inside functions only.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from studio.core.errors import BadInputError, ModelError

log = logging.getLogger(__name__)

REGION_METHODS = ("value", "tokens")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Preprocess:
    size: tuple[int, int]  # (height, width) fed to the model
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"  # shortest side to size, then centre crop; "squash": resize to size


class ClipAdapter:
    """A CLIP-like model behind one interface. Call on the GPU lane only; outputs are unit-length float32."""

    def __init__(self, model, backend: str, tokenize: Callable[[list[str]], dict], preprocess: Preprocess) -> None:
        self.model = model
        self.backend = backend
        self._tokenize = tokenize
        self.preprocess = preprocess
        p = next(model.parameters())
        self.dtype = p.dtype
        self.param_device = p.device

    # -- scalars ---------------------------------------------------------------------------
    @property
    def logit_scale(self) -> float:
        ls = getattr(self.model, "logit_scale", None)
        return float(ls.detach().float().exp().clamp(max=100.0)) if ls is not None else 100.0

    @property
    def logit_bias(self) -> float | None:
        lb = getattr(self.model, "logit_bias", None)
        return float(lb.detach().float().reshape(-1)[0]) if lb is not None else None

    # -- preprocessing ---------------------------------------------------------------------
    def pixels(self, images: list[np.ndarray], crop: bool = True):
        """(B, 3, H, W) tensor on the model's device from RGB uint8 arrays. crop=False squashes the
        whole image to the input size (region maps must cover the whole picture)."""
        import torch
        from PIL import Image

        h, w = self.preprocess.size
        resample = Image.BICUBIC if self.preprocess.interpolation == "bicubic" else Image.BILINEAR
        out = []
        for arr in images:
            if arr.ndim == 3 and arr.shape[:2] == (h, w):  # already the input size: no resize, no crop
                out.append(arr[..., :3])
                continue
            pil = Image.fromarray(np.ascontiguousarray(arr[..., :3]))
            if crop and self.preprocess.resize_mode == "shortest":
                scale = max(h / pil.height, w / pil.width)
                nw, nh = max(w, round(pil.width * scale)), max(h, round(pil.height * scale))
                if (nw, nh) != pil.size:
                    pil = pil.resize((nw, nh), resample)
                left, top = (nw - w) // 2, (nh - h) // 2
                pil = pil.crop((left, top, left + w, top + h))
            elif pil.size != (w, h):
                pil = pil.resize((w, h), resample)
            out.append(np.asarray(pil, np.uint8))
        # Contiguous NCHW: a permuted (channels-last) view makes the patch convolution and what follows slower.
        x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
        mean = torch.tensor(self.preprocess.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocess.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.param_device, self.dtype)

    # -- encoders --------------------------------------------------------------------------
    def encode_image(self, pixel_values):
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            if self.backend == "open_clip":
                feats = self.model.encode_image(pixel_values)
            else:
                feats = _pooled(self.model.get_image_features(pixel_values=pixel_values))
        return F.normalize(feats.float(), dim=-1)

    def encode_text(self, prompts: list[str]):
        import torch
        import torch.nn.functional as F

        tokens = self._tokenize(list(prompts))
        with torch.inference_mode():
            if self.backend == "open_clip":
                feats = self.model.encode_text(tokens["input_ids"].to(self.param_device))
            else:
                kw = {k: v.to(self.param_device) for k, v in tokens.items()
                      if k in ("input_ids", "attention_mask")}
                feats = _pooled(self.model.get_text_features(**kw))
        return F.normalize(feats.float(), dim=-1)

    def encode_patches(self, pixel_values, method: str = "value"):
        """(pooled (B, D), patches (B, gh, gw, D)), both unit length, in the joint image-text space.

        method "tokens": the last layer's patch tokens as they are. "value": the last block's attention
        is replaced by each patch attending only to itself (its value path, then the MLP, MaskCLIP-style);
        the tokens of a CLIP trained on its pooled output mix the whole image in that last attention,
        so their raw map barely follows the objects. Both then go through post-layernorm and projection.
        """
        import torch
        import torch.nn.functional as F

        if method not in REGION_METHODS:
            raise BadInputError(f"Unknown word-to-region method “{method}”.")
        pooled = self.encode_image(pixel_values)
        hook = _self_only_last_block(self.model, self.backend) if method == "value" else contextlib.nullcontext()
        with torch.inference_mode(), hook:
            if self.backend == "open_clip":
                _, tokens = _open_clip_tokens(self.model, pixel_values)
            else:
                _, tokens = _hf_tokens(self.model, pixel_values)
        b, n, d = tokens.shape
        gh, gw = _grid(n, pixel_values.shape[-2:])
        patches = tokens.reshape(b, gh, gw, d)
        return pooled, F.normalize(patches.float(), dim=-1)

    def image_embeddings(self, images: list[np.ndarray]) -> np.ndarray:
        return self.encode_image(self.pixels(images)).cpu().numpy().astype(np.float32)


def _pooled(out):
    # transformers v5 returns a model output whose pooler_output is the projected feature; v4 a tensor.
    return out if hasattr(out, "dim") else out.pooler_output


def _grid(n: int, hw) -> tuple[int, int]:
    h, w = int(hw[0]), int(hw[1])
    for gh in range(1, n + 1):
        if n % gh == 0 and abs(gh / (n // gh) - h / w) < 1e-6:
            return gh, n // gh
    side = int(round(n ** 0.5))
    if side * side != n:
        raise ModelError(f"Cannot arrange {n} patch tokens into a grid.")
    return side, side


def _last_block(model, backend: str):
    """The vision tower's last transformer block and how its value path is computed, or (None, None)."""
    import torch.nn.functional as F

    if backend == "transformers":
        blk = model.vision_model.encoder.layers[-1]

        def value(b, x):  # CLIP / SigLIP encoder layer
            o = b.self_attn.out_proj(b.self_attn.v_proj(b.layer_norm1(x)))
            return o + b.mlp(b.layer_norm2(o))

        return blk, value
    visual = model.visual
    if hasattr(visual, "transformer") and hasattr(visual.transformer, "resblocks"):
        blk = visual.transformer.resblocks[-1]
        if not hasattr(getattr(blk, "attn", None), "in_proj_weight"):
            return None, None

        def value(b, x):  # open_clip ResidualAttentionBlock (nn.MultiheadAttention)
            c = x.shape[-1]
            a = b.attn
            bias = a.in_proj_bias[2 * c:] if a.in_proj_bias is not None else None
            o = b.ls_1(a.out_proj(F.linear(b.ln_1(x), a.in_proj_weight[2 * c:], bias)))
            return o + b.ls_2(b.mlp(b.ln_2(o)))

        return blk, value
    trunk = getattr(visual, "trunk", None)
    if trunk is not None and hasattr(trunk, "blocks") and hasattr(trunk.blocks[-1].attn, "qkv"):

        def value(b, x):  # timm ViT Block (fused qkv)
            c = x.shape[-1]
            v = b.attn.qkv(b.norm1(x))[..., 2 * c:]
            v = b.attn.norm(v) if hasattr(b.attn, "norm") else v
            o = b.ls1(b.attn.proj(v))
            return o + b.ls2(b.mlp(b.norm2(o)))

        return trunk.blocks[-1], value
    return None, None


@contextlib.contextmanager
def _self_only_last_block(model, backend: str):
    """While active, the last block's output is its per-patch value path (a forward hook)."""
    blk, value = _last_block(model, backend)
    if blk is None:
        log.warning("no value path for this vision tower; using its patch tokens as they are")
        yield
        return

    def hook(module, args, kwargs, output):
        x = args[0] if args else kwargs.get("hidden_states", kwargs.get("q_x", kwargs.get("x")))
        out = value(module, x)
        return (out, *output[1:]) if isinstance(output, tuple) else out

    handle = blk.register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _hf_tokens(model, x):
    out = model.vision_model(pixel_values=x, return_dict=True)
    hs = out.last_hidden_state
    if hasattr(model, "visual_projection"):  # CLIP: [CLS] + patches, post-LN, projection
        patches = model.visual_projection(model.vision_model.post_layernorm(hs[:, 1:]))
        return model.visual_projection(out.pooler_output), patches
    # SigLIP: no CLS, last_hidden_state already post-LN; the attention-pool head has no per-token path,
    # so patches go through its value projection and MLP as if each patch were attended alone.
    head = getattr(model.vision_model, "head", None)
    patches = _value_path(head, hs) if head is not None else hs
    return out.pooler_output, patches


def _value_path(pool, x):
    """Per-token version of an attention-pooling head (timm AttentionPoolLatent / SigLIP MAP head)."""
    import torch

    try:
        if hasattr(pool, "kv"):  # timm
            c = x.shape[-1]
            v = pool.kv(x)[..., c:]
            o = pool.proj(v)
            if getattr(pool, "mlp", None) is not None:
                o = o + pool.mlp(pool.norm(o))
            return o
        attn = pool.attention  # transformers SiglipMultiheadAttentionPoolingHead (nn.MultiheadAttention)
        c = x.shape[-1]
        w_v = attn.in_proj_weight[2 * c:]
        b_v = attn.in_proj_bias[2 * c:] if attn.in_proj_bias is not None else None
        o = attn.out_proj(torch.nn.functional.linear(x, w_v, b_v))
        return o + pool.mlp(pool.layernorm(o))
    except (AttributeError, TypeError) as exc:
        log.warning("attention-pool head without a value path (%s); using raw patch tokens", exc)
        return x


def _open_clip_tokens(model, x):
    visual = model.visual
    if hasattr(visual, "output_tokens") and hasattr(visual, "proj"):  # open_clip VisionTransformer
        old = visual.output_tokens
        visual.output_tokens = True
        try:
            pooled, tokens = visual(x)
        finally:
            visual.output_tokens = old
        if tokens.shape[-1] != pooled.shape[-1] and visual.proj is not None:
            tokens = tokens @ visual.proj
        return pooled, tokens
    trunk = getattr(visual, "trunk", None)  # open_clip TimmModel (SigLIP and other timm towers)
    if trunk is not None and hasattr(trunk, "forward_features"):
        pooled = visual(x)
        feats = trunk.forward_features(x)
        tokens = feats[:, getattr(trunk, "num_prefix_tokens", 0):]
        if getattr(trunk, "attn_pool", None) is not None:
            tokens = _value_path(trunk.attn_pool, tokens)
        if getattr(trunk, "fc_norm", None) is not None:
            tokens = trunk.fc_norm(tokens)
        head = getattr(visual, "head", None)
        if head is not None:
            tokens = head(tokens)
        return pooled, tokens
    raise BadInputError("This CLIP model's vision tower has no patch tokens (word-to-region needs a ViT).")


# ----------------------------------------------------------------------------- adapting a loaded model

def _parts(obj) -> dict[str, Any]:
    """Split what the manager loaded into model / tokenizer / processor / preprocess."""
    parts: dict[str, Any] = {}
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, (tuple, list)):
        items = [(None, o) for o in obj]
    elif hasattr(obj, "parameters"):
        return {"model": obj}
    else:
        items = [(k, getattr(obj, k)) for k in ("model", "tokenizer", "processor", "preprocess")
                 if getattr(obj, k, None) is not None]
    for key, value in items:
        cls = type(value).__name__.lower()
        if key in ("model", "tokenizer", "processor", "preprocess") and key not in parts:
            parts[key] = value
        elif hasattr(value, "parameters") and "model" not in parts:
            parts["model"] = value
        elif "processor" in cls and "processor" not in parts:
            parts["processor"] = value
        elif "tokenizer" in cls and "tokenizer" not in parts:
            parts["tokenizer"] = value
    if "model" not in parts:
        raise BadInputError("The loaded model holds no network.")
    return parts


def backend_of(model) -> str:
    if hasattr(model, "encode_image") and hasattr(model, "encode_text") and hasattr(model, "visual"):
        return "open_clip"
    if hasattr(model, "get_image_features") and hasattr(model, "get_text_features"):
        return "transformers"
    raise BadInputError(f"{type(model).__name__} is not a CLIP model: it has no image and text towers.")


def card_folder(card) -> str | None:
    """Where the card's files live (a folder or a hub repo id), for the tokenizer and preprocessing."""
    from studio.core.paths import assets_dir

    override = card.options.get("tokenizer") if hasattr(card, "options") else None
    if override:
        return str(override)
    kind, ref = card.source_kind, card.source_ref
    if kind == "bundled":
        return str(assets_dir() / ref)
    if kind == "local":
        return str(Path(ref).expanduser())
    if kind == "hub":
        return ref
    return None


# Tokenizers and preprocessing depend only on the card's files, never on the weights: cached by card.
_SIDE: "OrderedDict[tuple, tuple]" = OrderedDict()
_side_lock = threading.Lock()


def adapt(entry) -> ClipAdapter:
    parts = _parts(entry.model)
    for k, v in (getattr(entry, "extras", None) or {}).items():  # the manager's processor, tokenizer...
        if k in ("tokenizer", "processor", "preprocess") and v is not None:
            parts.setdefault(k, v)
    model = parts["model"]
    backend = backend_of(model)
    card = entry.card
    key = (card.id, card.source, card.revision, backend, id(parts.get("tokenizer")),
           id(parts.get("processor")))
    with _side_lock:
        side = _SIDE.get(key)
    if side is None:
        if backend == "transformers":
            side = (_hf_tokenizer(model, card, parts), _hf_preprocess(model, card, parts))
        else:
            side = (_oc_tokenizer(model, card, parts), _oc_preprocess(model))
        with _side_lock:
            _SIDE[key] = side
            while len(_SIDE) > 8:
                _SIDE.popitem(last=False)
    return ClipAdapter(model, backend, side[0], side[1])


def _hf_tokenizer(model, card, parts):
    proc = parts.get("processor")
    # The manager keeps a processor, or a bare tokenizer where the folder has no image processor.
    tok = parts.get("tokenizer") or getattr(proc, "tokenizer", None) or (
        proc if proc is not None and "tokenizer" in type(proc).__name__.lower() else None)
    if tok is None:
        folder = card_folder(card)
        if folder is None:
            raise ModelError(f"{card.name}: no tokenizer was loaded and the card names no folder to read it from.")
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(folder, revision=card.revision or None, local_files_only=True)
        except Exception as exc:
            raise ModelError(f"{card.name}: its tokenizer cannot be read from {folder}: {exc}") from exc
    cfg = getattr(model.config, "text_config", model.config)
    max_len = int(min(getattr(tok, "model_max_length", 77) or 77, getattr(cfg, "max_position_embeddings", 77)))
    siglip = "siglip" in str(getattr(model.config, "model_type", "")).lower()

    def tokenize(prompts: list[str]) -> dict:
        # SigLIP was trained on max-length padding; CLIP pools at the first end-of-text token.
        return dict(tok(prompts, padding="max_length" if siglip else True, truncation=True,
                        max_length=max_len, return_tensors="pt"))

    return tokenize


def _hf_preprocess(model, card, parts) -> Preprocess:
    vis = getattr(model.config, "vision_config", model.config)
    size = int(getattr(vis, "image_size", 224))
    cfg: dict[str, Any] = {}
    proc = parts.get("processor")
    ip = getattr(proc, "image_processor", proc)
    if ip is not None and hasattr(ip, "image_mean"):
        cfg = {k: getattr(ip, k, None) for k in ("size", "crop_size", "image_mean", "image_std",
                                                    "do_center_crop", "resample")}
    else:
        folder = card_folder(card)
        if folder and Path(folder, "preprocessor_config.json").exists():
            try:
                cfg = json.loads(Path(folder, "preprocessor_config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable preprocessor_config.json (%s); CLIP defaults", card.name, exc)
    mean = tuple(cfg.get("image_mean") or CLIP_MEAN)
    std = tuple(cfg.get("image_std") or CLIP_STD)
    crop = cfg.get("crop_size") or {}
    if isinstance(crop, dict) and crop.get("height"):
        size = int(crop["height"])
    resize_mode = "shortest" if cfg.get("do_center_crop", True) else "squash"
    interp = "bilinear" if cfg.get("resample") == 2 else "bicubic"
    return Preprocess((size, size), mean, std, interp, resize_mode)


def _oc_arch(card) -> str | None:
    opts = getattr(card, "options", {}) or {}
    for k in ("arch", "architecture", "model_name", "open_clip_model"):
        if opts.get(k):
            return str(opts[k])
    kind, ref = card.source_kind, card.source_ref
    if kind == "hub":
        return f"hf-hub:{ref}"
    if kind == "builtin":
        return ref
    return None


def _oc_tokenizer(model, card, parts):
    tok = parts.get("tokenizer")
    if tok is None:
        import open_clip

        arch = _oc_arch(card)
        try:
            tok = open_clip.get_tokenizer(arch) if arch else None
        except Exception as exc:  # offline without a cached hub tokenizer
            log.warning("%s: open_clip tokenizer for %s unavailable (%s); using the CLIP BPE", card.name, arch, exc)
            tok = None
        if tok is None:
            from open_clip.tokenizer import SimpleTokenizer

            tok = SimpleTokenizer(context_length=int(getattr(model, "context_length", 77) or 77))

    def tokenize(prompts: list[str]) -> dict:
        return {"input_ids": tok(prompts)}

    return tokenize


def _oc_preprocess(model) -> Preprocess:
    visual = model.visual
    cfg = dict(getattr(visual, "preprocess_cfg", {}) or {})
    size = cfg.get("size") or getattr(visual, "image_size", 224)
    if isinstance(size, int):
        size = (size, size)
    mean = tuple(cfg.get("mean") or getattr(visual, "image_mean", None) or CLIP_MEAN)
    std = tuple(cfg.get("std") or getattr(visual, "image_std", None) or CLIP_STD)
    mode = cfg.get("resize_mode", "shortest")
    return Preprocess((int(size[0]), int(size[1])), mean, std, cfg.get("interpolation", "bicubic"),
                      "squash" if mode == "squash" else "shortest")
