"""Training recipe of the starter motion model: an AnimateDiff MotionAdapter for the starter UNet.

Owns the adapter's geometry (diffusers `MotionAdapter` with the starter UNet's block channels, one
temporal transformer per UNet layer), the clip data (8-frame Shapes-world clips at 64x64 from a seed
range of their own inside the train split, 80% "a red circle moving right"-style clips, the rest
growing / colour-changing ones), and the loop.  The starter VAE, UNet and CLIP text tower are loaded
frozen from `<assets>/sd` and `<assets>/clip` through the standard diffusers calls; the UNet becomes a
`UNetMotionModel.from_unet2d(unet, adapter)` whose 2D weights stay frozen, so only the motion modules
learn (their output projections start at zero: step 0 renders exactly what the image model renders).

Motion modules never see the prompt (AnimateDiff's temporal attention has no cross-attention): the
direction words reach them only through what the image model's cross-attention makes of the text,
and the frozen image model learned to ignore "moving right". So a LoRA on the image model's
cross-attention (`attn2` of the spatial transformers, rank `LORA_RANK`) trains together with the
motion modules, like AnimateDiff v3's domain adapter, and ships beside them. It starts at zero too.

The result is a standard MotionAdapter folder (config.json + fp16 safetensors) at `<out>/motion`, plus
`pytorch_lora_weights.safetensors`, a diffusers LoRA file (`pipe.load_lora_weights(folder)`) that the
studio's video engine loads with the adapter.

`python -m studio.starter train --only motion` runs it on assets/starter (or --out);
`python -m studio.starter.motion_train --assets DIR --out DIR2` reads DIR and writes DIR2/motion.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from studio.engines.video import MOTION_LORA, MOTION_LORA_NAME

from . import diffusion_models as dm
from .world import SPLITS, make_clip

Log = Callable[[str], None]
FRAMES = 8
SEED0 = 900_000_000  # inside the train split, clear of the CNN, CLIP, diffusion and VLM seed streams
assert SEED0 + 10_000_000 < SPLITS["val"]
STEPS, BATCH, LR = 1200, 4, 1e-3  # BATCH clips of FRAMES frames each
X0_WEIGHT_MAX = 20.0  # loss weight 1/SNR capped here (see Base.loss); 0: the image model's min-SNR-5
UNCOND_P = 0.1
DIRECTIONS = ("left", "right", "up", "down")
# Motion mix: directions carry the quality bar, growing / recolouring keep the world's other captions.
MOTION_P = {"left": 0.2, "right": 0.2, "up": 0.2, "down": 0.2, "grow": 0.1, "recolour": 0.1}
LORA_RANK = 8  # 0: motion modules only (the pre-LoRA recipe)
# The file the studio's video engine applies with the adapter (diffusers' default LoRA file name).
LORA_FILE, LORA_NAME = MOTION_LORA, MOTION_LORA_NAME
# The spatial transformers' cross-attention only: `attentions.N` are the image model's blocks, the
# motion modules live under `motion_modules.N` and are trained in full.
LORA_TARGETS = r".*attentions\.\d+\.transformer_blocks\.\d+\.attn2\.(to_q|to_k|to_v|to_out\.0)"
ADAPTER = dict(block_out_channels=dm.UNET["block_out_channels"],
               motion_layers_per_block=dm.UNET["layers_per_block"],
               motion_transformer_layers_per_block=1, motion_mid_block_layers_per_block=1,
               motion_num_attention_heads=4, motion_norm_num_groups=dm.UNET["norm_num_groups"],
               motion_max_seq_length=32, use_motion_mid_block=True)


def new_adapter(**overrides):
    from diffusers import MotionAdapter

    return MotionAdapter(**{**ADAPTER, **overrides})


def _motion_blocks(model) -> list:
    """Every MotionModules container of a UNetMotionModel or a MotionAdapter (down, mid, up)."""
    blocks = [*model.down_blocks, model.mid_block, *model.up_blocks]
    return [b for b in blocks if b is not None and hasattr(b, "motion_modules")]


def zero_outputs(model) -> None:
    """AnimateDiff's zero-initialised output projections: each temporal block starts as identity."""
    for block in _motion_blocks(model):
        for mm in block.motion_modules:
            torch.nn.init.zeros_(mm.proj_out.weight)
            torch.nn.init.zeros_(mm.proj_out.bias)


def motion_unet(unet, adapter, fresh: bool = True):
    """UNetMotionModel with the 2D weights frozen and only the motion modules trainable."""
    from diffusers import UNetMotionModel

    model = UNetMotionModel.from_unet2d(unet, adapter)
    model.freeze_unet2d_params()
    if fresh:
        zero_outputs(model)
    return model


def adapter_from(model, adapter):
    """Copy the trained motion modules back into the MotionAdapter (the shipped container)."""
    for src, dst in zip(_motion_blocks(model), _motion_blocks(adapter)):
        dst.motion_modules.load_state_dict(src.motion_modules.state_dict())
    return adapter


def trainable(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


def add_text_lora(model, rank: int = LORA_RANK) -> None:
    """The cross-attention LoRA (peft, as diffusers trains LoRAs); B starts at zero."""
    from peft import LoraConfig

    model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS), adapter_name=LORA_NAME)
    for block in _motion_blocks(model):  # peft leaves only its own weights trainable
        block.motion_modules.requires_grad_(True)


def save_text_lora(model, folder: Path) -> Path:
    """The LoRA in diffusers' file format (fp16), next to the adapter's weights."""
    from diffusers import AnimateDiffPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(model, adapter_name=LORA_NAME))
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}
    AnimateDiffPipeline.save_lora_weights(str(folder), unet_lora_layers=state, weight_name=LORA_FILE,
                                          safe_serialization=True)
    return folder / LORA_FILE


# ---------------------------------------------------------------- data

def clip_spec(seed: int) -> tuple[str, int]:
    """(motion, n_objects) of a training clip: fixed by its seed."""
    rng = np.random.default_rng(seed)
    motion = str(rng.choice(list(MOTION_P), p=list(MOTION_P.values())))
    return motion, 1 if rng.random() < 0.6 else 2


def training_clip(seed: int, frames: int = FRAMES):
    motion, n = clip_spec(seed)
    return make_clip(seed, frames=frames, n_objects=n, motion=motion)


def prompt_for(clip, rng: np.random.Generator, p_uncond: float = UNCOND_P) -> str:
    """The clip's caption, often without its still object (the evaluated prompts name only the actor)."""
    u = rng.random()
    if u < p_uncond:
        return ""
    actor = clip.caption.split(" and a still ")[0]
    return actor if u < 0.6 else clip.caption


def clip_pixels(clips) -> torch.Tensor:
    """(B clips) -> (B * F, 3, H, W) in [-1, 1], frames of a clip consecutive."""
    from .diffusion_train import pixels

    return pixels(np.concatenate([c.images for c in clips]))


# ---------------------------------------------------------------- frozen base

class Base:
    """The frozen starter pipeline parts: VAE, tokenizer + CLIP text tower, scheduler, UNet."""

    def __init__(self, pipe):
        self.vae, self.unet = pipe.vae.eval(), pipe.unet.eval()
        self.tokenizer, self.text_encoder = pipe.tokenizer, pipe.text_encoder.eval()
        for m in (self.vae, self.unet, self.text_encoder):
            m.requires_grad_(False)
        self.sf = float(self.vae.config.scaling_factor)
        self.alphas = pipe.scheduler.alphas_cumprod.float()
        self._text: dict[str, torch.Tensor] = {}

    @classmethod
    def load(cls, assets: Path) -> "Base":
        return cls(dm.load_pipeline(assets / "sd", assets / "clip"))

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        # StableDiffusionPipeline.encode_prompt: padded to the tokenizer's length, last hidden state.
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text]
        if missing:
            ids = self.tokenizer(missing, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            for p, e in zip(missing, self.text_encoder(ids)[0]):
                self._text[p] = e
        return torch.stack([self._text[p] for p in prompts])

    @torch.no_grad()
    def encode_clips(self, clips) -> torch.Tensor:
        """(B, C, F, h, w) scaled latents, as AnimateDiffPipeline denoises them."""
        z = self.vae.encode(clip_pixels(clips)).latent_dist.sample() * self.sf
        b, f = len(clips), z.shape[0] // len(clips)
        return z.reshape(b, f, *z.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()

    def noisy(self, z: torch.Tensor):
        """Independent noise per frame, one timestep per clip (AnimateDiff's training)."""
        noise = torch.randn_like(z)
        t = torch.randint(0, len(self.alphas), (z.shape[0],))
        a = self.alphas[t].view(-1, 1, 1, 1, 1)
        return a.sqrt() * z + (1 - a).sqrt() * noise, t, noise

    def loss(self, pred: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, x0_max: float = 0.0) -> torch.Tensor:
        """Epsilon MSE, min-SNR-5 weighted as the starter UNet was trained; with `x0_max` > 0, weighted
        1/SNR (capped there) instead: the error of the predicted clean clip. Where an object is in each
        frame is decided at high noise, where an epsilon error is tiny for a large x0 error (the
        image model already denoises the details that low-noise steps are about)."""
        a = self.alphas[t]
        snr = a / (1 - a)
        w = (1 / snr).clamp(max=x0_max) if x0_max > 0 else snr.clamp(max=5.0) / snr
        return (w * ((pred - noise) ** 2).mean((1, 2, 3, 4))).mean()


def _lr(step: int, total: int, peak: float, warmup: int = 50) -> float:
    warmup = min(warmup, max(1, total // 5))
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


# ---------------------------------------------------------------- the loop

def train_motion(out: str | Path, assets: str | Path | None = None, scale: float = 1.0, log: Log = print,
                 steps: int | None = None, batch: int = BATCH, frames: int = FRAMES, lr: float = LR,
                 base: Base | None = None, adapter_config: dict | None = None, lora_rank: int = LORA_RANK) -> Path:
    """Train the motion modules and write `<out>/motion`; `assets` (default `out`) holds sd/ and clip/.

    `base` injects already loaded frozen parts (tests); `adapter_config` overrides `ADAPTER` keys.
    """
    from .diffusion_train import threads

    torch.set_num_threads(threads())
    out = Path(out)
    assets = Path(assets) if assets else out
    if base is None:
        for need in ("sd/model_index.json", "clip/config.json"):
            if not (assets / need).exists():
                raise FileNotFoundError(f"{assets / need} is missing: train the starter diffusion first "
                                        "(python -m studio.starter train --only diffusion)")
        base = Base.load(assets)
    steps = steps if steps is not None else max(1, int(STEPS * scale))
    torch.manual_seed(10)
    rng = np.random.default_rng(10)
    adapter = new_adapter(**(adapter_config or {}))
    model = motion_unet(base.unet, adapter).train()
    if lora_rank:
        add_text_lora(model, lora_rank)
    params = trainable(model)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    n_lora = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n)
    log(f"[motion] MotionAdapter {tuple(adapter.config.block_out_channels)}: {sum(p.numel() for p in params):,}"
        f" trainable params ({n_lora:,} in the cross-attention LoRA, rank {lora_rank}),"
        f" {steps} steps x {batch} clips x {frames} frames")
    t0, acc, n_acc = time.time(), 0.0, 0
    for step in range(steps):
        seeds = SEED0 + step * batch + np.arange(batch)
        clips = [training_clip(int(s), frames) for s in seeds]
        z = base.encode_clips(clips)
        # UNetMotionModel takes one text row per frame (AnimateDiffPipeline repeats them the same way).
        e = base.encode_text([prompt_for(c, rng) for c in clips]).repeat_interleave(frames, 0)
        zt, t, noise = base.noisy(z)
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr)
        loss = base.loss(model(zt, t, e).sample, noise, t, X0_WEIGHT_MAX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        acc, n_acc = acc + loss.item(), n_acc + 1
        if (step + 1) % 25 == 0 or step + 1 == steps:
            el = time.time() - t0
            log(f"[motion] step {step + 1:5d}/{steps}  loss {acc / n_acc:.4f}  {el:5.0f}s"
                f"  eta {el / (step + 1) * (steps - step - 1):5.0f}s")
            acc, n_acc = 0.0, 0
    folder = dm.save_model(adapter_from(model.eval(), adapter).eval(), out / "motion")
    if lora_rank:
        save_text_lora(model, folder)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    log(f"[motion] saved {folder} ({size / 1e6:.2f} MB) in {time.time() - t0:.0f}s")
    return folder


def _main(argv=None) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(prog="python -m studio.starter.motion_train",
                                description="Train the starter MotionAdapter (writes OUT/motion).")
    p.add_argument("--assets", type=Path, required=True, help="folder with the trained sd/ and clip/")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: --assets)")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the training steps")
    p.add_argument("--steps", type=int, default=None, help="exact step count (overrides --scale)")
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--lora-rank", type=int, default=LORA_RANK,
                   help="rank of the cross-attention LoRA trained with the motion modules (0: none)")
    a = p.parse_args(argv)
    train_motion(a.out or a.assets, a.assets, a.scale, lambda s: print(s, flush=True), a.steps, a.batch,
                 lora_rank=a.lora_rank)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
