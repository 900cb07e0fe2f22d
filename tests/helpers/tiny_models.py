"""Tiny seeded models built from configs and saved like real ones (never from a hub).

Each `save_*` writes a standard folder (`save_pretrained`, open_clip's open_clip_config.json +
safetensors, timm's save_for_hf, a torchvision state dict) that a catalog card can point at, so
tests load them through the model manager exactly like a downloaded model. `hub_snapshot` lays a
folder out as a Hugging Face cache entry (refs/, snapshots/, blobs/ named by sha256) for testing
hub cards offline. Torch and the model libraries are imported inside the functions.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from studio.catalog.cards import ModelCard

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def seed(value: int = 0) -> None:
    import torch

    torch.manual_seed(value)


def tiny_clip_tokenizer():
    """A CLIPTokenizer over single letters (+ one merge): enough to tokenize prompts offline."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    vocab["ab</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[("a", "b</w>")], model_max_length=77)


def _clip_text_config(**extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32,
                          intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4,
                          num_hidden_layers=2, vocab_size=64, max_position_embeddings=77, **extra)


def sd_components():
    """The components of a tiny Stable Diffusion 1.x pipeline (as in diffusers' own tests)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=1)
    seed(0)
    vae = AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
                        norm_num_groups=2)
    seed(0)
    text_encoder = CLIPTextModel(_clip_text_config())
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tiny_clip_tokenizer(),
            "scheduler": scheduler, "safety_checker": None, "feature_extractor": None}


def save_tiny_sd(folder: str | os.PathLike) -> Path:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(**sd_components(), requires_safety_checker=False)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return Path(folder)


def save_tiny_controlnet(folder: str | os.PathLike) -> Path:
    from diffusers import ControlNetModel

    seed(0)
    net = ControlNetModel(block_out_channels=(4, 8), layers_per_block=1, in_channels=4,
                          down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), cross_attention_dim=32,
                          conditioning_embedding_out_channels=(16, 32), norm_num_groups=1)
    net.save_pretrained(str(folder), safe_serialization=True)
    return Path(folder)


def save_tiny_clip(folder: str | os.PathLike) -> Path:
    """A transformers CLIPModel (32x32 images, 8x8 patches) with its processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    seed(0)
    config = CLIPConfig(text_config=_clip_text_config().to_dict(),
                        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                           num_attention_heads=4, image_size=32, patch_size=8),
                        projection_dim=16)
    CLIPModel(config).save_pretrained(str(folder), safe_serialization=True)
    image = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image, tokenizer=tiny_clip_tokenizer()).save_pretrained(str(folder))
    return Path(folder)


def save_tiny_llava(folder: str | os.PathLike) -> Path:
    """A LlavaForConditionalGeneration (tiny CLIP vision tower + tiny Llama), weights only."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    seed(0)
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=37,
                           num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8,
                           projection_dim=16),
        text_config=dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                         max_position_embeddings=64),
        image_token_index=100, projector_hidden_act="gelu", vision_feature_layer=-1)
    LlavaForConditionalGeneration(config).save_pretrained(str(folder), safe_serialization=True)
    return Path(folder)


OPEN_CLIP_CFG = {"embed_dim": 16,
                 "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
                 "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def save_tiny_open_clip(folder: str | os.PathLike) -> Path:
    """An open_clip custom config folder: open_clip_config.json + open_clip_model.safetensors."""
    import open_clip
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seed(0)
    model = open_clip.CLIP(**OPEN_CLIP_CFG)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": OPEN_CLIP_CFG,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                           "std": [0.26862954, 0.26130258, 0.27577711]}}))
    return folder


def save_tiny_torchvision(folder: str | os.PathLike, arch: str = "squeezenet1_1", num_classes: int = 10) -> Path:
    """A torchvision architecture's state dict as model.safetensors."""
    import torchvision
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seed(0)
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


def save_tiny_timm(folder: str | os.PathLike, arch: str = "test_resnet") -> Path:
    import timm
    from timm.models import save_for_hf

    seed(0)
    save_for_hf(timm.create_model(arch, pretrained=False, num_classes=5), str(folder), safe_serialization=True)
    return Path(folder)


def card(model_id: str, library: str, task: str, path: str | os.PathLike | None = None,
         source: str | None = None, **options) -> ModelCard:
    """A card for a tiny model folder (local:), file (file:) or an explicit source."""
    if source is None:
        p = Path(path)
        source = f"{'file' if p.is_file() else 'local'}:{p}"
    return ModelCard(id=model_id, name=model_id, task=task, library=library, source=source,
                     options=dict(options))


def hub_snapshot(cache: str | os.PathLike, repo_id: str, folder: str | os.PathLike,
                 revision: str = "main", commit: str = "0123456789abcdef0123456789abcdef01234567",
                 listing: bool = True) -> Path:
    """Lay `folder` out as a Hugging Face cache entry: blobs named by sha256, a snapshot of symlinks,
    refs/<revision>, and (with `listing`) the trees/<commit>.json file list a download records."""
    cache = Path(cache)
    root = cache / ("models--" + repo_id.replace("/", "--"))
    snap = root / "snapshots" / commit
    files = {}
    for src in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = src.relative_to(folder).as_posix()
        data = src.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        blob = root / "blobs" / sha
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            shutil.copyfile(src, blob)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(blob, link.parent))
        files[rel] = {"size": len(data), "blob_id": hashlib.sha1(data).hexdigest(),
                      "lfs_sha256": sha, "lfs_size": len(data)}
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / revision).write_text(commit)
    if listing:
        (root / "trees").mkdir(exist_ok=True)
        (root / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": files}))
    return snap


BUILDERS = {"sd": save_tiny_sd, "controlnet": save_tiny_controlnet, "clip": save_tiny_clip,
            "llava": save_tiny_llava, "open_clip": save_tiny_open_clip, "torchvision": save_tiny_torchvision,
            "timm": save_tiny_timm}


class Zoo:
    """Tiny model folders under one root, each built on first use and then reused."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        folder = self.root / name
        if not (folder / ".done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            BUILDERS[name](folder)
            (folder / ".done").touch()
        return folder

    def copy(self, name: str, dest: str | os.PathLike) -> Path:
        """A private copy a test may damage."""
        dest = Path(dest)
        shutil.copytree(self.path(name), dest, ignore=shutil.ignore_patterns(".done"))
        return dest


_ZOOS: dict[str, Zoo] = {}


def zoo(tmp_path_factory) -> Zoo:
    """One Zoo per test session (call from a session-scoped fixture)."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _ZOOS:
        _ZOOS[key] = Zoo(tmp_path_factory.mktemp("tiny-models"))
    return _ZOOS[key]
