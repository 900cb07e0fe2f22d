"""Starter model definitions, on-disk formats and the standard-library loading calls.

Owns the architecture choices of the tiny CNN (a timm `resnet10t` with small
channels) and the tiny CLIP (a transformers `CLIPModel`), how they are saved
(timm hub folder / `save_pretrained`, fp16 safetensors), and how the studio loads
them back with nothing but the public timm / transformers APIs.  Imports torch:
not imported by `studio.starter.__init__`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .tokenizer import write_tokenizer
from .world import LABELS, SIZE

CNN_ARCH = "resnet10t"
# output_stride=8 keeps layer3/layer4 at 8x8 on a 64x64 input, so Grad-CAM maps stay useful.
CNN_ARGS = {"channels": [32, 64, 96, 128], "stem_width": 16, "output_stride": 8}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# Text width 64: the 49408-row token table is ~6.3 MB in fp16 and dominates the budget.
CLIP_TEXT = dict(vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                 num_attention_heads=4, max_position_embeddings=77, projection_dim=64,
                 bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
CLIP_VISION = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                   image_size=SIZE, patch_size=8, num_channels=3, projection_dim=64)
CLIP_PROJECTION_DIM = 64


# ---------------------------------------------------------------- CNN (timm)

def new_cnn():
    import timm

    return timm.create_model(CNN_ARCH, pretrained=False, num_classes=len(LABELS), **CNN_ARGS)


def save_cnn(model, folder: str | Path) -> Path:
    """timm hub layout: config.json (architecture, model_args, pretrained_cfg) + fp16 safetensors."""
    from timm.models import save_for_hf

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    model = model.eval().to(torch.float16)
    save_for_hf(
        model, str(folder), safe_serialization=True,
        model_config={"label_names": list(LABELS)},
        model_args=dict(CNN_ARGS, num_classes=len(LABELS)),
        data_config={"input_size": (3, SIZE, SIZE), "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                     "crop_pct": 1.0, "interpolation": "bilinear", "crop_mode": "center"},
    )
    model.to(torch.float32)
    # timm copies the registry's ImageNet provenance (tag, origin_url); these weights are ours.
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("tag", "origin_url", "hf_hub_id", "url", "paper_ids"):
        cfg["pretrained_cfg"].pop(key, None)
    cfg["pretrained_cfg"]["label_names"] = list(LABELS)
    cfg["pretrained_cfg"]["description"] = "Studio starter CNN: colour x shape on the Shapes world"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    _readable(folder)
    return folder


def _readable(folder: Path) -> None:
    # safetensors writes 0600 files; shipped assets must be readable by every user.
    for p in folder.iterdir():
        p.chmod(0o644)


def load_cnn(folder: str | Path):
    """The exact two lines a studio user writes: timm's `local-dir:` source."""
    import timm

    return timm.create_model(f"local-dir:{Path(folder).resolve()}", pretrained=True).eval()


# ---------------------------------------------------------------- CLIP (transformers)

def clip_config():
    from transformers import CLIPConfig

    return CLIPConfig(text_config=dict(CLIP_TEXT), vision_config=dict(CLIP_VISION),
                      projection_dim=CLIP_PROJECTION_DIM)


def new_clip():
    from transformers import CLIPModel

    return CLIPModel(clip_config())


def new_processor(tokenizer_dir: str | Path):
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    image_processor = CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": SIZE}, do_center_crop=True,
        crop_size={"height": SIZE, "width": SIZE}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True)
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def save_clip(model, folder: str | Path, tokenizer_dir: str | Path) -> Path:
    """`save_pretrained` of model (fp16) + processor, plus the hub-style tokenizer files."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    model = model.eval().to(torch.float16)
    model.save_pretrained(str(folder), safe_serialization=True)
    model.to(torch.float32)
    processor = new_processor(tokenizer_dir)
    processor.save_pretrained(str(folder))
    # Older readers (and CLIPImageProcessor.from_pretrained) look for preprocessor_config.json.
    processor.image_processor.save_pretrained(str(folder))
    # tokenizer.json would add 3.6 MB that vocab.json + merges.txt already define.
    (folder / "tokenizer.json").unlink(missing_ok=True)
    write_tokenizer(folder)
    _readable(folder)
    return folder


def load_clip(folder: str | Path):
    """(CLIPModel in float32, CLIPProcessor), both through `from_pretrained`."""
    from transformers import CLIPModel, CLIPProcessor

    folder = str(Path(folder).resolve())
    model = CLIPModel.from_pretrained(folder, dtype=torch.float32, local_files_only=True).eval()
    return model, CLIPProcessor.from_pretrained(folder, local_files_only=True)


def _pooled(out) -> torch.Tensor:
    # transformers v5 returns a BaseModelOutputWithPooling whose pooler_output is projected;
    # v4 returned the projected tensor itself.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def image_embeds(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected, unnormalised CLIP image embeddings."""
    return _pooled(model.get_image_features(pixel_values=pixel_values))


def text_embeds(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Projected, unnormalised CLIP text embeddings (pooled at the first end-of-text token)."""
    return _pooled(model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


def folder_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def weights_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
