"""Tiny seeded Stable Diffusion pipelines and ControlNets for the paint tests and the paint benchmark.

Built from configs like diffusers' own tests (never from a hub) and saved with save_pretrained, then
declared in a STUDIO_HOME/models.toml user catalog so the studio loads them through the model manager
exactly like downloaded models. The smallest ones come from tests.helpers.tiny_models (UNet (4, 8)
channels, 32x32 images); `save_bench_sd` builds a larger one (UNet (32, 64)) for timing.
"""
from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import tiny_models

TINY_SD, TINY_CN = "tiny-sd", "tiny-cn"
CONTROL_IDS = {"depth": "tiny-cn-depth", "pose": "tiny-cn-pose", "edges": "tiny-cn-edges",
               "scribble": "tiny-cn-scribble", "inpaint": "tiny-cn-inpaint"}


def catalog_text(sd: Path, controlnet: Path, sd_id: str = TINY_SD) -> str:
    """A user models.toml declaring the tiny pipeline and one ControlNet card per control kind."""
    lines = [f'[[model]]\nid = "{sd_id}"\nname = "Tiny SD"\ntask = "diffusion"\nlibrary = "diffusers"\n'
             f'source = "local:{sd}"\ntrained = false\n']
    for kind, cid in CONTROL_IDS.items():
        lines.append(f'[[model]]\nid = "{cid}"\nname = "Tiny ControlNet {kind}"\ntask = "controlnet"\n'
                     f'library = "diffusers"\nsource = "local:{controlnet}"\ntrained = false\n')
    return "\n".join(lines)


def prepare_home(home: str | os.PathLike, zoo: tiny_models.Zoo) -> Path:
    """A STUDIO_HOME whose catalog has the tiny pipeline and ControlNets, with paint set to use them."""
    import json

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / "models.toml").write_text(catalog_text(zoo.path("sd"), zoo.path("controlnet")), encoding="utf-8")
    settings = home / "settings.json"
    values = json.loads(settings.read_text()) if settings.exists() else {}
    values.update({"paint.model": TINY_SD, "paint.width": 32, "paint.height": 32, "paint.steps": 4})
    settings.write_text(json.dumps(values))
    return home


def save_bench_sd(folder: str | os.PathLike) -> Path:
    """A random SD 1.x pipeline big enough to time (UNet (32, 64) channels, VAE x4, 64x64 latents
    at 256 px): small per-step cost on a CPU, but the same code paths as the real model."""
    from diffusers import (AutoencoderKL, EulerAncestralDiscreteScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel

    tiny_models.seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32)
    tiny_models.seed(0)
    vae = AutoencoderKL(block_out_channels=[32, 64, 64], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                        latent_channels=4, norm_num_groups=32)
    tiny_models.seed(0)
    text_encoder = CLIPTextModel(tiny_models._clip_text_config())
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                                beta_schedule="scaled_linear")
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder,
                                   tokenizer=tiny_models.tiny_clip_tokenizer(), scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return Path(folder)
