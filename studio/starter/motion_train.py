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

The shipped adapter is `VARIANTS` run in turn, each stage from the previous one's result (`SHIPPED`,
`train_shipped`): `crossing` (objects cross most of the frame, every clip beside its time-reversed
twin, the training-only `DirectionProbe`), then `path` (`trajectory_loss` on the predicted clean
clip, half of the clips at the top of the schedule), then `repath` three times (the same, shorter:
warm restarts of its cosine schedule). `python -m studio.starter train --only motion` runs them all on
assets/starter (or --out); `python -m studio.starter.motion_train --assets DIR --out DIR2 [--variant
V] [--init FOLDER]` runs one stage, reading DIR and writing DIR2/motion. Without `--variant` it runs
the first recipe (the mixed clips described above; the `PositionProbe` was tried on top of it);
docs/starter.md records what each measured.
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
from .world import CLIP_TRAVEL, SPLITS, Clip, make_clip

Log = Callable[[str], None]
FRAMES = 8
SEED0 = 900_000_000  # inside the train split, clear of the CNN, CLIP, diffusion and VLM seed streams
assert SEED0 + 10_000_000 < SPLITS["val"]
STEPS, BATCH, LR = 1200, 4, 1e-3  # BATCH clips of FRAMES frames each
X0_WEIGHT_MAX = 20.0  # loss weight 1/SNR capped here (see Base.loss); 0: the image model's min-SNR-5
UNCOND_P = 0.1
DIRECTIONS = ("left", "right", "up", "down")
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
# Motion mix: directions carry the quality bar, growing / recolouring keep the world's other captions.
MOTION_P = {"left": 0.2, "right": 0.2, "up": 0.2, "down": 0.2, "grow": 0.1, "recolour": 0.1}
TWO_OBJECTS_P = 0.4  # share of clips with a second, still object
TRAVEL = CLIP_TRAVEL  # pixels a moving actor covers over the clip (the world's default)
# Variants of the recipe made for the direction bar (docs/starter.md, "Measured"); the shipped
# adapter is `SHIPPED`, the others stay runnable. `crossing`: the actor crosses most of the frame ("moving
# right" also means "starts on the left"), every clip is trained beside its time-reversed twin
# (`reversed_twin`), timesteps below 200 are skipped, and a direction probe (`DirectionProbe`) makes
# the cross-attention LoRA carry the direction words into the features.
_CROSSING_DATA = dict(motion_p={d: 0.25 for d in DIRECTIONS}, two_objects_p=0.0, travel=(32.0, 42.0), t_min=200,
                      twins=True)
# `path` continues the crossing variant's result (`--init W/motion`) with `trajectory_loss` on half of
# the clips drawn at t >= 950, where a frame does not show the object's path yet and only the prompt can.
# `repath` is `path` again, shorter, from the previous result: a warm restart of its cosine schedule.
_PATH_LOSS = dict(trajectory_weight=10.0, high=(950, 0.5), **_CROSSING_DATA)
VARIANTS = {"crossing": dict(steps=3000, direction_weight=0.2, **_CROSSING_DATA),
            "path": dict(steps=1600, **_PATH_LOSS), "repath": dict(steps=800, **_PATH_LOSS)}
# `train_shipped`: these variants in turn, each from the previous one's result (direction rate after
# each `path` stage: 0.67, 0.71, 0.89, 0.97; docs/starter.md)
SHIPPED = ("crossing", "path", "repath", "repath", "repath")
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


def add_text_lora(model, rank: int = LORA_RANK) -> None:
    """The cross-attention LoRA (peft, as diffusers trains LoRAs); B starts at zero."""
    from peft import LoraConfig

    model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS), adapter_name=LORA_NAME)
    for block in _motion_blocks(model):  # peft leaves only its own weights trainable
        block.motion_modules.requires_grad_(True)


def load_adapter(folder: str | Path):
    """A saved MotionAdapter folder, in float32 (stored fp16)."""
    from diffusers import MotionAdapter

    return MotionAdapter.from_pretrained(str(folder), dtype=torch.float32)


def load_text_lora(model, folder: Path) -> None:
    """Load a saved cross-attention LoRA (`save_text_lora`) into the model's trainable one."""
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = folder / LORA_FILE
    state = {k.removeprefix("unet."): v.float() for k, v in load_file(str(path)).items()}
    res = set_peft_model_state_dict(model, convert_unet_state_dict_to_peft(state), adapter_name=LORA_NAME)
    if res.unexpected_keys:
        raise ValueError(f"{path} does not fit this model: {len(res.unexpected_keys)} unexpected keys")


def load_text_lora_for_inference(model, folder: Path) -> bool:
    """The saved LoRA applied to a UNetMotionModel as diffusers loads it (False: the folder has none)."""
    if not (Path(folder) / LORA_FILE).is_file():
        return False
    model.load_lora_adapter(str(Path(folder) / LORA_FILE), adapter_name=LORA_NAME, prefix="unet")
    return True


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

def clip_spec(seed: int, motion_p: dict | None = None, two_objects_p: float = TWO_OBJECTS_P) -> tuple[str, int]:
    """(motion, n_objects) of a training clip: fixed by its seed."""
    motion_p = motion_p or MOTION_P
    rng = np.random.default_rng(seed)
    motion = str(rng.choice(list(motion_p), p=list(motion_p.values())))
    return motion, 2 if rng.random() >= 1.0 - two_objects_p else 1


def training_clip(seed: int, frames: int = FRAMES, motion_p: dict | None = None,
                  two_objects_p: float = TWO_OBJECTS_P, travel: tuple[float, float] = TRAVEL):
    motion, n = clip_spec(seed, motion_p, two_objects_p)
    return make_clip(seed, frames=frames, n_objects=n, motion=motion, travel=travel)


def reversed_twin(clip):
    """The clip played backwards: the same object moving the opposite way ("moving left" for "moving
    right"), frame for frame the same pictures. Trained side by side with the same noise (flipped in
    time) and timestep, the pair differs only in the direction word and the frame order, so the
    model can lower both losses only by reading the direction from the prompt."""
    if clip.motion not in OPPOSITE:
        raise ValueError(f"a {clip.motion!r} clip has no time-reversed caption")
    back = OPPOSITE[clip.motion]
    return Clip(clip.frames[::-1], clip.caption.replace(f"moving {clip.motion}", f"moving {back}", 1), back,
                clip.seed)


def prompt_for(clip, rng: np.random.Generator, p_uncond: float = UNCOND_P) -> str:
    """The clip's caption, often without its still object (the evaluated prompts name only the actor)."""
    u = rng.random()
    if u < p_uncond:
        return ""
    actor = clip.caption.split(" and a still ")[0]
    return actor if u < 0.6 else clip.caption


def twin_prompt(prompt: str, clip, twin) -> str:
    """The twin's prompt: its clip's prompt with the direction word swapped ("" stays "")."""
    return prompt.replace(f"moving {clip.motion}", f"moving {twin.motion}", 1)


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

    def noisy(self, z: torch.Tensor, t_min: int = 0, twins: bool = False, high: tuple[int, float] | None = None):
        """Independent noise per frame, one timestep per clip (AnimateDiff's training), drawn from
        [t_min, 1000). `twins`: the second half of the batch is the first half reversed in time
        (`reversed_twin`) and gets the same noise, flipped in time, at the same timestep.
        `high` = (t_high, p): a share p of the clips draws from [t_high, 1000) instead, the steps where
        a frame alone does not yet show where the object is and only the prompt can tell."""
        n = z.shape[0] // 2 if twins else z.shape[0]
        noise = torch.randn_like(z[:n])
        t = torch.randint(t_min, len(self.alphas), (n,))
        if high is not None and high[1] > 0:
            t = torch.where(torch.rand(n) < high[1], torch.randint(high[0], len(self.alphas), (n,)), t)
        if twins:
            noise, t = torch.cat([noise, noise.flip(2)]), t.repeat(2)
        return self.add_noise(z, noise, t), t, noise

    def add_noise(self, z: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The clips `z` noised to timestep `t` (one per clip) with `noise` (DDPM's forward process)."""
        a = self.alphas[t].view(-1, 1, 1, 1, 1)
        return a.sqrt() * z + (1 - a).sqrt() * noise

    def x0(self, zt: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The clean clip a noise prediction implies (DDPM's x0 from epsilon)."""
        a = self.alphas[t].view(-1, 1, 1, 1, 1)
        return (zt - (1 - a).sqrt() * eps) / a.sqrt()

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


class _MidBlockProbe(torch.nn.Module):
    """A training-only head reading the mid block's output (after its motion module) through a
    forward hook; `remove` detaches it before the adapter is saved."""

    def __init__(self, model, head: torch.nn.Module):
        super().__init__()
        self.head = head
        self._feats = None
        self._hook = model.mid_block.register_forward_hook(lambda _m, _i, out: setattr(self, "_feats", out))

    def remove(self) -> None:
        self._hook.remove()


def _mid_channels(model) -> int:
    return model.mid_block.resnets[-1].out_channels


class PositionProbe(_MidBlockProbe):
    """Training only, dropped at save: a 1x1 conv on the mid block's output (after its motion module)
    scores each cell of the coarsest grid for "the object is here in this frame"; its loss is the
    cross-entropy to a Gaussian (sigma `SIGMA` px) around the actor's centroid in every frame. At high
    noise a frame alone does not show where the object is: the features must get it from the prompt's
    direction and the frame's place in the clip."""

    SIGMA = 8.0

    def __init__(self, model):
        super().__init__(model, torch.nn.Conv2d(_mid_channels(model), 1, 1))

    @classmethod
    def targets(cls, clips, grid: int) -> torch.Tensor:
        """(clips * frames, grid * grid) soft targets: where the actor (instance 1) is in each frame."""
        size = clips[0].frames[0].image.shape[0]
        centres = (np.arange(grid) + 0.5) * size / grid
        out = []
        for c in clips:
            for f in c.frames:
                ys, xs = np.nonzero(f.instance_mask == 1)
                cx, cy = (xs.mean(), ys.mean()) if len(xs) else (size / 2, size / 2)
                g = np.exp(-((centres[None, :] - cx) ** 2 + (centres[:, None] - cy) ** 2) / (2 * cls.SIGMA ** 2))
                out.append((g / g.sum()).ravel())
        return torch.tensor(np.stack(out), dtype=torch.float32)

    def loss(self, clips) -> torch.Tensor:
        logits = self.head(self._feats).flatten(1)
        target = self.targets(clips, self._feats.shape[-1])
        return -(target * torch.log_softmax(logits, -1)).sum(-1).mean()


class DirectionProbe(_MidBlockProbe):
    """Training only, dropped at save: a linear head on each frame's mid-block features (averaged over
    the grid) must name the prompt's direction. The direction words hardly move the frozen image
    model's features (left / right barely differ in the starter text tower), and the motion modules
    cannot learn to use a difference that is not there; this loss makes the cross-attention LoRA
    carry the direction into every frame's features. Prompts without a direction (unconditional
    rows) are left out."""

    def __init__(self, model):
        super().__init__(model, torch.nn.Linear(_mid_channels(model), len(DIRECTIONS)))

    @staticmethod
    def labels(prompts: list[str], frames: int) -> torch.Tensor:
        """(len(prompts) * frames,) direction index per frame row, -100 where the prompt names none."""
        ids = [next((i for i, d in enumerate(DIRECTIONS) if f"moving {d}" in p), -100) for p in prompts]
        return torch.tensor(ids).repeat_interleave(frames)

    def loss(self, prompts: list[str], frames: int) -> torch.Tensor:
        labels = self.labels(prompts, frames)
        if not bool((labels >= 0).any()):
            return self._feats.sum() * 0.0
        return torch.nn.functional.cross_entropy(self.head(self._feats.mean((2, 3))), labels, ignore_index=-100)


def trajectory(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) latent clips -> (B, F, 2): per frame the (x, y) centroid, in latent cells, of
    where the frame departs from the clip's mean frame, centred over the clip. On a world clip that is
    the moving object's path (the background stands still and cancels out); on noise it is about zero."""
    m = ((x - x.mean(2, keepdim=True)) ** 2).sum(1)  # (B, F, h, w)
    h, w = m.shape[-2:]
    total = m.sum((-1, -2)) + 1e-6
    cx = (m.sum(-2) * torch.arange(w, dtype=x.dtype)).sum(-1) / total
    cy = (m.sum(-1) * torch.arange(h, dtype=x.dtype)).sum(-1) / total
    c = torch.stack([cx, cy], -1)
    return c - c.mean(1, keepdim=True)


def direction_rows(prompts: list[str]) -> torch.Tensor:
    """1.0 for each prompt that names a direction ("... moving left"), else 0.0."""
    return (DirectionProbe.labels(prompts, 1) >= 0).float()


def trajectory_loss(x0_pred: torch.Tensor, z: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """How far the path of the predicted clean clip (`trajectory`) lies from the training clip's, in
    squared latent cells / 16, over the clips whose prompt names a direction. At high noise the frames
    do not show the path yet and the denoising loss hardly sees it (a wrong direction costs well under 1%
    of it); this loss is the path alone, so the prompt's direction word is what lowers it."""
    rows = direction_rows(prompts)
    if not bool(rows.any()):
        return x0_pred.sum() * 0.0
    err = ((trajectory(x0_pred) - trajectory(z)) ** 2).sum(-1).mean(-1)
    return (err * rows).sum() / rows.sum() / 16.0


# ---------------------------------------------------------------- the loop

def _save(model, adapter, folder: Path, lora_rank: int) -> Path:
    folder = dm.save_model(adapter_from(model.eval(), adapter).eval(), folder)
    if lora_rank:
        save_text_lora(model, folder)
    return folder


STATE_FILE = "train-state.pt"  # trained weights, optimiser, random states: what `resume` needs


def _save_state(path: Path, step: int, steps: int, trained: dict, heads: list, opt, rng) -> None:
    state = {"step": step, "steps": steps, "params": {n: p.detach().clone() for n, p in trained.items()},
             "heads": [h.state_dict() if h is not None else None for h in heads], "opt": opt.state_dict(),
             "torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a crash while writing keeps the previous state


def _load_state(path: Path, steps: int, trained: dict, heads: list, opt, rng) -> int:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: nothing to resume (it is written with --save-every)")
    state = torch.load(path, weights_only=True)
    if state["steps"] != steps or set(state["params"]) != set(trained):
        raise ValueError(f"{path} belongs to another run ({state['steps']} steps, {len(state['params'])} "
                         f"trained tensors; this one: {steps}, {len(trained)}): resume with the same arguments")
    with torch.no_grad():
        for n, p in trained.items():
            p.copy_(state["params"][n])
    for h, saved in zip(heads, state["heads"]):
        if (h is None) != (saved is None):
            raise ValueError(f"{path} was written with other probes: resume with the same arguments")
        if h is not None:
            h.load_state_dict(saved)
    opt.load_state_dict(state["opt"])
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]
    return int(state["step"])


def train_motion(out: str | Path, assets: str | Path | None = None, scale: float = 1.0, log: Log = print,
                 steps: int | None = None, batch: int = BATCH, frames: int = FRAMES, lr: float = LR,
                 base: Base | None = None, adapter_config: dict | None = None, lora_rank: int = LORA_RANK,
                 motion_p: dict | None = None, two_objects_p: float = TWO_OBJECTS_P,
                 travel: tuple[float, float] = TRAVEL, t_min: int = 0, twins: bool = False,
                 direction_weight: float = 0.0, probe_weight: float = 0.0, trajectory_weight: float = 0.0,
                 high: tuple[int, float] | None = None, init: str | Path | None = None, save_every: int = 0,
                 resume: bool = False) -> Path:
    """Train the motion modules and write `<out>/motion`; `assets` (default `out`) holds sd/ and clip/.

    The defaults are the first recipe (mixed clips); `VARIANTS` holds the keyword sets of the others
    (the shipped adapter: `train_shipped`).
    `twins`: each batch is `batch // 2` clips and their time-reversed twins (`reversed_twin`).
    `direction_weight` / `probe_weight`: the training-only `DirectionProbe` / `PositionProbe`.
    `trajectory_weight`: `trajectory_loss` on the predicted clean clip; `high`: see `Base.noisy`.
    `init`: start from a saved motion folder (adapter + LoRA) instead of zero-initialised modules.
    `save_every` > 0 also writes checkpoints `<out>/motion-step<N>` (same layout) every that many steps,
    and the whole training state to `<out>/train-state.pt`; `resume` continues from that file (same
    arguments), which gives the weights an uninterrupted run gives, so long schedules can be split.
    `base` injects already loaded frozen parts (tests); `adapter_config` overrides `ADAPTER` keys.
    """
    from .diffusion_train import threads

    if twins and (batch < 2 or batch % 2):
        raise ValueError(f"with twins the batch must be even (clips and their twins), not {batch}")
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
    # built with `init` too: its layers' random init keeps the torch random stream (noise, timesteps)
    # each stage of the shipped adapter was trained with
    adapter = new_adapter(**(adapter_config or {}))
    if init is not None:
        init = Path(init)
        if not (init / "config.json").is_file() or (lora_rank and not (init / LORA_FILE).is_file()):
            raise FileNotFoundError(f"{init} is not a motion folder of this recipe (config.json, weights and "
                                    f"{LORA_FILE}): train the first stage first")
        adapter = load_adapter(init)
    model = motion_unet(base.unet, adapter, fresh=init is None).train()
    if lora_rank:
        add_text_lora(model, lora_rank)
        if init is not None:
            load_text_lora(model, init)
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    params = list(trained.values())
    probe = PositionProbe(model) if probe_weight else None
    dprobe = DirectionProbe(model) if direction_weight else None
    head_params = [p for m in (probe, dprobe) if m is not None for p in m.parameters()]
    opt = torch.optim.AdamW(params + head_params, lr=lr, weight_decay=0.01)
    n_lora = sum(p.numel() for n, p in trained.items() if "lora_" in n)
    log(f"[motion] MotionAdapter {tuple(adapter.config.block_out_channels)}: {sum(p.numel() for p in params):,}"
        f" trainable params ({n_lora:,} in the cross-attention LoRA, rank {lora_rank}),"
        f" {steps} steps x {batch} clips" + (" (half of them time-reversed twins)" if twins else "")
        + f" x {frames} frames" + (f", t >= {t_min}" if t_min else "")
        + (f", position probe x {probe_weight}" if probe else "")
        + (f", direction probe x {direction_weight}" if dprobe else "")
        + (f", path loss x {trajectory_weight}" if trajectory_weight else "")
        + (f", {high[1]:.0%} of clips at t >= {high[0]}" if high and high[1] else "")
        + (f", from {init}" if init is not None else ""))
    n_src = batch // 2 if twins else batch
    state_file, start = out / STATE_FILE, 0
    if resume:
        start = _load_state(state_file, steps, trained, [probe, dprobe], opt, rng)
        log(f"[motion] resumed from {state_file} at step {start}")
    t0, acc, acc_p, acc_d, acc_t, n_acc = time.time(), 0.0, 0.0, 0.0, 0.0, 0
    for step in range(start, steps):
        seeds = SEED0 + step * n_src + np.arange(n_src)
        clips = [training_clip(int(s), frames, motion_p, two_objects_p, travel) for s in seeds]
        z = base.encode_clips(clips)
        prompts = [prompt_for(c, rng) for c in clips]
        if twins:
            back = [reversed_twin(c) for c in clips]
            z = torch.cat([z, z.flip(2)])  # the twins' latents: the same frames, backwards
            prompts += [twin_prompt(p, c, w) for p, c, w in zip(prompts, clips, back)]
            clips = clips + back
        # UNetMotionModel takes one text row per frame (AnimateDiffPipeline repeats them the same way).
        e = base.encode_text(prompts).repeat_interleave(frames, 0)
        zt, t, noise = base.noisy(z, t_min, twins=twins, high=high)
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr)
        pred = model(zt, t, e).sample
        loss = base.loss(pred, noise, t, X0_WEIGHT_MAX)
        if trajectory_weight:
            t_loss = trajectory_loss(base.x0(zt, pred, t), z, prompts)
            acc_t += t_loss.item()
            loss = loss + trajectory_weight * t_loss
        if probe is not None:
            p_loss = probe.loss(clips)
            acc_p += p_loss.item()
            loss = loss + probe_weight * p_loss
        if dprobe is not None:
            d_loss = dprobe.loss(prompts, frames)
            acc_d += d_loss.item()
            loss = loss + direction_weight * d_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        acc, n_acc = acc + loss.item(), n_acc + 1
        if (step + 1) % 25 == 0 or step + 1 == steps:
            el = time.time() - t0
            log(f"[motion] step {step + 1:5d}/{steps}  loss {acc / n_acc:.4f}"
                + (f"  probe {acc_p / n_acc:.3f}" if probe else "")
                + (f"  direction {acc_d / n_acc:.3f}" if dprobe else "")
                + (f"  path {acc_t / n_acc:.3f}" if trajectory_weight else "")
                + f"  {el:5.0f}s  eta {el / (step + 1 - start) * (steps - step - 1):5.0f}s")
            acc, acc_p, acc_d, acc_t, n_acc = 0.0, 0.0, 0.0, 0.0, 0
        if save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            _save(model, new_adapter(**(adapter_config or {})), out / f"motion-step{step + 1}", lora_rank)
            _save_state(state_file, step + 1, steps, trained, [probe, dprobe], opt, rng)
            model.train()
    for m in (probe, dprobe):
        if m is not None:
            m.remove()
    folder = _save(model, adapter, out / "motion", lora_rank)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    log(f"[motion] saved {folder} ({size / 1e6:.2f} MB) in {time.time() - t0:.0f}s")
    return folder


def variant_kwargs(name: str, scale: float = 1.0) -> dict:
    """`train_motion` keywords of a variant, its step count scaled."""
    kw = dict(VARIANTS[name])
    kw["steps"] = max(1, int(kw["steps"] * scale))
    return kw


def train_shipped(out: str | Path, assets: str | Path | None = None, scale: float = 1.0, log: Log = print) -> Path:
    """The shipped adapter (`python -m studio.starter train --only motion`): the `SHIPPED` variants in
    turn, the first from zero-initialised modules, each next one from the previous one's result; the
    last writes `<out>/motion`. The stage folders (`<out>/motion-stage1-crossing`, ...) are removed once
    the last stage has saved."""
    import shutil

    out = Path(out)
    assets = Path(assets) if assets else out
    stages = [out / f"motion-stage{i + 1}-{name}" for i, name in enumerate(SHIPPED[:-1])] + [out]
    folder = None
    for name, stage in zip(SHIPPED, stages):
        folder = train_motion(stage, assets, log=log, init=folder, **variant_kwargs(name, scale))
    for stage in stages[:-1]:
        shutil.rmtree(stage)
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
    p.add_argument("--variant", choices=sorted(VARIANTS), default=None,
                   help="a variant of the recipe (the shipped adapter: crossing, path, repath x 3, each from the last)")
    p.add_argument("--probe", type=float, default=0.0, help="weight of the position probe (0: none)")
    p.add_argument("--save-every", type=int, default=0,
                   help="also write OUT/motion-stepN and OUT/train-state.pt every N steps")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train-state.pt (same arguments)")
    p.add_argument("--init", type=Path, default=None,
                   help="start from this saved motion folder (adapter + LoRA) instead of zero-initialised modules")
    a = p.parse_args(argv)
    kw = variant_kwargs(a.variant, a.scale) if a.variant else {}
    variant_steps = kw.pop("steps", None)
    steps = a.steps if a.steps is not None else variant_steps
    train_motion(a.out or a.assets, a.assets, a.scale, lambda s: print(s, flush=True), steps, a.batch,
                 lora_rank=a.lora_rank, probe_weight=a.probe, save_every=a.save_every, resume=a.resume,
                 init=a.init, **kw)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
