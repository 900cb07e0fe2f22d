"""Tiny latent-diffusion components of the starter kit, in Stable Diffusion 1.5's exact formats.

Owns the architecture choices (AutoencoderKL 64x64 -> 16x16x4, UNet2DConditionModel with
cross_attention_dim = the starter CLIP text width, ControlNetModel.from_unet, a 9-channel
inpainting UNet), the on-disk layout (diffusers folders, fp16 safetensors) and the standard
diffusers calls that load them back.  The text encoder is *not* stored in the pipeline folders:
model_index.json names it, and loaders pass `text_encoder=` from assets/starter/clip (one copy
of the 6 MB token table for the whole starter pack).  Imports torch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .world import SIZE

LATENT = SIZE // 4  # 16x16x4 latents: 4x spatial factor (see docs/starter.md "Diffusion")
TEXT_WIDTH = 64  # starter CLIP text hidden size (models.CLIP_TEXT["hidden_size"])

VAE = dict(in_channels=3, out_channels=3, latent_channels=4, sample_size=SIZE,
           down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
           block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=16,
           mid_block_add_attention=False)
UNET = dict(sample_size=LATENT, in_channels=4, out_channels=4, layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64, 64), cross_attention_dim=TEXT_WIDTH,
            attention_head_dim=8, norm_num_groups=16)
CONTROL_EMBED = (16, 32, 64)  # two stride-2 convs: 64x64 condition -> 16x16 latent grid
CONTROLS = ("depth", "pose", "edges")
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                 beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                 steps_offset=1, prediction_type="epsilon", timestep_spacing="leading")


def new_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE)


def new_unet(in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**{**UNET, "in_channels": in_channels})


def new_controlnet(unet):
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROL_EMBED)


def inpaint_unet_from(unet):
    """SD-inpainting layout: conv_in takes latents(4) + mask(1) + masked-image latents(4)."""
    new = new_unet(9)
    sd = unet.state_dict()
    w = sd["conv_in.weight"]
    sd["conv_in.weight"] = torch.cat([w, torch.zeros(w.shape[0], 5, *w.shape[2:])], 1)
    new.load_state_dict(sd)
    return new


def new_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER)


def _clean(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def save_model(model, folder: str | Path) -> Path:
    """`save_pretrained` in fp16 safetensors; the live model stays float32."""
    folder = _clean(Path(folder))
    model.to(torch.float16).save_pretrained(str(folder), safe_serialization=True)
    model.to(torch.float32)
    forget_source(folder / "config.json")
    return folder


def forget_source(config: Path) -> None:
    """Drop `_name_or_path` (the folder a model was loaded from while training) from a saved config."""
    data = json.loads(config.read_text())
    if data.pop("_name_or_path", None) is not None:
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_pipeline(folder: str | Path, vae, unet, tokenizer_dir: str | Path,
                  inpaint: bool = False) -> Path:
    """A StableDiffusion(Inpaint)Pipeline folder without its text_encoder weights.

    model_index.json still lists text_encoder as a transformers CLIPTextModel, exactly as
    SD 1.5; `load_pipeline` (and the studio's loader) supply it from the starter CLIP folder.
    """
    folder = _clean(Path(folder))
    save_model(vae, folder / "vae")
    save_model(unet, folder / "unet")
    new_scheduler().save_pretrained(str(folder / "scheduler"))
    tok = folder / "tokenizer"
    tok.mkdir()
    for f in Path(tokenizer_dir).iterdir():
        if f.name in ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"):
            shutil.copy(f, tok / f.name)
    import diffusers

    index = {
        "_class_name": "StableDiffusionInpaintPipeline" if inpaint else "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None], "image_encoder": [None, None],
        "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def load_text_encoder(clip_folder: str | Path, dtype=torch.float32):
    """The starter CLIP's text tower as a standalone CLIPTextModel (SD's text_encoder class)."""
    from transformers import CLIPTextModel
    from transformers.utils import logging

    # The CLIP folder also holds the vision tower: its keys are expected leftovers, not news.
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        return CLIPTextModel.from_pretrained(str(Path(clip_folder).resolve()), dtype=dtype,
                                             local_files_only=True).eval()
    finally:
        logging.set_verbosity(level)


def load_pipeline(folder: str | Path, clip_folder: str | Path, kind: str = "t2i",
                  controlnet: str | Path | None = None, dtype=torch.float32):
    """The standard diffusers calls: `<Pipeline>.from_pretrained(folder, text_encoder=...)`."""
    import diffusers

    kwargs = dict(text_encoder=load_text_encoder(clip_folder, dtype), dtype=dtype,
                  local_files_only=True, safety_checker=None, feature_extractor=None,
                  requires_safety_checker=False)
    if controlnet is not None:
        kwargs["controlnet"] = diffusers.ControlNetModel.from_pretrained(
            str(controlnet), dtype=dtype, local_files_only=True)
        cls = diffusers.StableDiffusionControlNetPipeline
    else:
        cls = diffusers.StableDiffusionInpaintPipeline if kind == "inpaint" else diffusers.StableDiffusionPipeline
    pipe = cls.from_pretrained(str(Path(folder).resolve()), **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
