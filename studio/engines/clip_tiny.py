"""Tiny seeded CLIP models built from configs, for tests and benchmarks (never downloaded).

`hf_clip_folder` writes a standard transformers CLIP folder (`save_pretrained` weights, preprocessor config
and the real CLIP BPE tokenizer built offline from open_clip's merges file); `open_clip_model` builds an
open_clip model from a registered model config through `open_clip.create_model`, the call real models use.
`card` describes either as a catalog card, so they load through the real model manager.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from studio.core.paths import assets_dir

# Same shape as the starter CLIP (studio.starter.models): 64x64 images, patch 8, width 128/64.
STARTER_TEXT = dict(vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                    num_attention_heads=4, max_position_embeddings=77, projection_dim=64,
                    bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
STARTER_VISION = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                      image_size=64, patch_size=8, num_channels=3, projection_dim=64)
TINY_TEXT = dict(STARTER_TEXT, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, projection_dim=32)
TINY_VISION = dict(STARTER_VISION, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32)
OPEN_CLIP_TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
OPEN_CLIP_TINY_NAME = "studio-tiny-clip"


def starter_clip_folder() -> Path:
    return assets_dir() / "starter" / "clip"


def has_starter_clip() -> bool:
    return (starter_clip_folder() / "config.json").exists()


def _tokenizer_files(folder: Path) -> None:
    src = assets_dir() / "starter" / "tokenizer"
    if (src / "vocab.json").exists() and (src / "merges.txt").exists():
        for f in src.iterdir():
            if f.is_file():
                (folder / f.name).write_bytes(f.read_bytes())
        return
    from studio.starter.tokenizer import write_tokenizer

    write_tokenizer(folder)


def hf_clip_folder(folder: str | Path, seed: int = 0, shape: str = "tiny") -> Path:
    """Save a seeded random transformers CLIPModel (shape "tiny" or "starter") with its tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    text, vision = (STARTER_TEXT, STARTER_VISION) if shape == "starter" else (TINY_TEXT, TINY_VISION)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = CLIPModel(CLIPConfig(text_config=dict(text), vision_config=dict(vision),
                                     projection_dim=text["projection_dim"])).eval()
    finally:
        torch.random.set_rng_state(state)
    model.save_pretrained(str(folder), safe_serialization=True)
    size = vision["image_size"]
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                       do_center_crop=True).save_pretrained(str(folder))
    _tokenizer_files(folder)
    return folder


def hf_siglip_folder(folder: str | Path, seed: int = 0) -> Path:
    """Save a seeded random transformers SiglipModel (sigmoid scores with a logit bias, attention-pool
    head, no centre crop); its tokenizer is the CLIP BPE, which is all a test of the code path needs."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=16, bos_token_id=49406, eos_token_id=49407,
                pad_token_id=49407, projection_size=32)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval()
    finally:
        torch.random.set_rng_state(state)
    model.save_pretrained(str(folder), safe_serialization=True)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    _tokenizer_files(folder)
    return folder


_FOLDERS: dict[tuple[int, str], Path] = {}


def cached_hf_clip_folder(seed: int = 0, shape: str = "tiny") -> Path:
    """`hf_clip_folder` (shape "tiny" or "starter") or `hf_siglip_folder` (shape "siglip"), built once
    per process in a temporary folder (tests share it)."""
    key = (seed, shape)
    if key not in _FOLDERS or not (_FOLDERS[key] / "config.json").exists():
        import atexit
        import shutil

        tmp = tempfile.mkdtemp(prefix="studio-clip-")
        atexit.register(shutil.rmtree, tmp, True)
        if shape == "siglip":
            _FOLDERS[key] = hf_siglip_folder(Path(tmp) / "siglip", seed)
        else:
            _FOLDERS[key] = hf_clip_folder(Path(tmp) / "clip", seed, shape)
    return _FOLDERS[key]


def register_open_clip_tiny(logit_bias: float | None = None) -> str:
    """Register the tiny open_clip config (with a logit bias: a SigLIP-style sigmoid model); its name."""
    import open_clip

    name = OPEN_CLIP_TINY_NAME + ("-bias" if logit_bias is not None else "")
    if name not in open_clip.list_models():
        import atexit
        import shutil

        cfg = dict(OPEN_CLIP_TINY)
        if logit_bias is not None:
            cfg["init_logit_bias"] = logit_bias
        folder = tempfile.mkdtemp(prefix="studio-open-clip-")
        atexit.register(shutil.rmtree, folder, True)
        path = Path(folder) / f"{name}.json"
        path.write_text(json.dumps(cfg))
        open_clip.add_model_config(path)
    return name


def open_clip_model(seed: int = 0, logit_bias: float | None = None):
    """A tiny seeded open_clip CLIP built by `open_clip.create_model` from the registered config."""
    import open_clip
    import torch

    name = register_open_clip_tiny(logit_bias)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = open_clip.create_model(name, pretrained=None, load_weights=False)
    finally:
        torch.random.set_rng_state(state)
    return model.eval()


def card(model_id: str, folder: str | Path | None = None, library: str = "transformers", name: str = "",
         trained: bool = False, arch: str = ""):
    """A CLIP model card: a transformers folder (`folder`) or an open_clip architecture (`arch`)."""
    from studio.catalog.cards import ModelCard

    source = f"local:{folder}" if folder else "builtin:" + (arch or OPEN_CLIP_TINY_NAME)
    return ModelCard(id=model_id, name=name or model_id, task="clip", library=library, source=source,
                     trained=trained)
