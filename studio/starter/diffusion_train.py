"""Training recipes of the starter latent diffusion: VAE, text-to-image UNet, inpainting UNet,
and the depth / pose / edges ControlNets, each a deterministic CPU stage.

Owns the stage order, step counts, data mixes and seed streams (all inside the train split,
disjoint from the CNN's and CLIP's), and writes the diffusers folders through
`diffusion_models`.  `train_diffusion` is what `python -m studio.starter train --only diffusion`
runs; `python -m studio.starter.diffusion_train STAGE --out DIR` runs one stage (stages after
the VAE read the earlier stages' folders from DIR and the CLIP from --clip).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import diffusion_models as dm
from .world import SPLITS, make_scene, render_pose

Log = Callable[[str], None]
SEED0 = {"vae": 500_000_000, "decoder": 800_000_000, "unet": 550_000_000, "inpaint": 600_000_000,
         "depth": 650_000_000, "pose": 700_000_000, "edges": 750_000_000}
STEPS = {"vae": 800, "decoder": 3600, "unet": 6000, "inpaint": 900, "depth": 300, "pose": 1500, "edges": 300}
BATCH = {"vae": 16, "decoder": 16, "unet": 32, "inpaint": 32, "depth": 32, "pose": 32, "edges": 32}
LR = {"vae": 1e-3, "unet": 1.5e-3, "inpaint": 1.5e-3, "depth": 1e-3, "pose": 1e-3, "edges": 1e-3}
STAGES = ("vae", "unet", "inpaint", "depth", "pose", "edges", "decoder")
UNCOND_P = 0.1  # caption dropout, so classifier-free guidance has an unconditional branch
EMA = {"unet": 0.999}  # stages whose saved weights are an exponential moving average
CHECKPOINT_EVERY = 0  # > 0: also save <stage>-step<N>/ every N steps (the CLI's --checkpoint-every)


def threads(default: int = 1) -> int:
    # One thread per process by default: stages may run beside each other, and on a loaded 2-core
    # box two OpenMP threads spin against each other (a 64-channel 16x16 conv measured 0.3 ms with
    # 1 thread, 37 ms with 2). The whole recipe in one process (`train_diffusion`) takes two: a
    # UNet step of 32 scenes measured 0.56 s with one thread, 0.32 s with two, on an idle machine.
    return int(os.environ.get("STUDIO_TRAIN_THREADS", str(default)))


def _lr(step: int, total: int, peak: float, warmup: int = 50) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


def pixels(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) in [-1, 1], as diffusers' VaeImageProcessor does."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def n_objects_for(seed: int) -> int | None:
    return 1 if seed % 10 < 6 else None  # 60% single objects (the bars), 40% 1-3 objects


def condition_image(scene, kind: str) -> np.ndarray:
    """The control image a user would feed: (H, W, 3) uint8."""
    if kind == "depth":
        return np.repeat((scene.depth * 255).astype(np.uint8)[..., None], 3, 2)
    if kind == "pose":
        return render_pose(scene.pose)
    return np.repeat(scene.edges[..., None], 3, 2)


def random_masks(rng: np.random.Generator, n: int, size: int = 64) -> np.ndarray:
    """SD-inpainting style masks: 1 = repaint. Boxes, ellipses, or the whole image (rarely)."""
    from PIL import Image, ImageDraw

    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        k = rng.random()
        if k < 0.05:
            out[i] = 1
            continue
        img = Image.new("L", (size, size), 0)
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 3))):
            w, h = rng.integers(12, 48, 2)
            x0, y0 = rng.integers(-4, size - w + 4), rng.integers(-4, size - h + 4)
            (d.rectangle if k < 0.5 else d.ellipse)((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=255)
        out[i] = np.asarray(img) > 0
    return out


def object_masks(scenes, rng) -> np.ndarray:
    """Masks covering one object's bounding box (dilated): what a user paints to replace it."""
    out = np.zeros((len(scenes), 64, 64), np.float32)
    for i, s in enumerate(scenes):
        x0, y0, x1, y1 = s.objects[int(rng.integers(len(s.objects)))].bbox
        p = int(rng.integers(1, 6))
        out[i, max(0, y0 - p):y1 + p, max(0, x0 - p):x1 + p] = 1
    return out


# ---------------------------------------------------------------- VAE

def _vae_loss(vae, x, w, sample: bool = True):
    post = vae.encode(x).latent_dist
    rec = vae.decode(post.sample() if sample else post.mode()).sample
    err = rec - x
    l1 = (err.abs() * w).mean() / w.mean()
    kl = post.kl().mean() / (dm.LATENT * dm.LATENT * 4)
    return l1 + 0.5 * (err ** 2 * w).mean() / w.mean() + 1e-4 * kl, l1, kl


def _vae_loop(name, vae, params, steps: int, seed0: int, weighted: bool, log: Log) -> None:
    opt = torch.optim.AdamW(params, lr=LR["vae"], weight_decay=0.0)
    batch, t0, acc = BATCH["vae"], time.time(), np.zeros(2)
    for step in range(steps):
        seeds = seed0 + step * batch + np.arange(batch)
        scenes = [make_scene(int(s), n_objects_for(int(s))) for s in seeds]
        x = pixels(np.stack([s.image for s in scenes]))
        w = torch.ones(1)
        if weighted:  # object pixels x3: thin stick figures and exact colours matter most
            w = 1.0 + 2.0 * torch.from_numpy(np.stack([s.instance_mask > 0 for s in scenes]))[:, None].float()
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, LR["vae"])
        loss, l1, kl = _vae_loss(vae, x, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        acc += [l1.item(), kl.item()]
        if (step + 1) % 50 == 0 or step + 1 == steps:
            k = 50 if (step + 1) % 50 == 0 else (step + 1) % 50
            el = time.time() - t0
            log(f"[{name}] step {step + 1:5d}/{steps}  l1 {acc[0] / k:.4f} ({acc[0] / k * 127.5:.1f}/255)"
                f"  kl/dim {acc[1] / k:.3f}  {el:5.0f}s  eta {el / (step + 1) * (steps - step - 1):5.0f}s")
            acc[:] = 0


def train_vae(out: Path, steps: int, log: Log) -> Path:
    """The whole AutoencoderKL, plain L1 + MSE: fixes the latent space every later stage uses."""
    torch.manual_seed(0)
    vae = dm.new_vae().train()
    log(f"[vae] AutoencoderKL {dm.VAE['block_out_channels']}: {dm.n_params(vae):,} params,"
        f" {steps} steps x {BATCH['vae']}")
    t0 = time.time()
    _vae_loop("vae", vae, list(vae.parameters()), steps, SEED0["vae"], False, log)
    vae.eval()
    with torch.no_grad():
        seeds = SEED0["vae"] - 1000 + np.arange(256)
        x = pixels(np.stack([make_scene(int(s)).image for s in seeds]))
        z = vae.encode(x).latent_dist.mean
        vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    folder = dm.save_model(vae, out / "vae")
    log(f"[vae] scaling_factor {vae.config.scaling_factor:.4f}; saved {folder} in {time.time() - t0:.0f}s")
    return folder


def train_decoder(out: Path, clip: Path | None, steps: int, log: Log) -> Path:
    """Decoder-only fine-tuning with object pixels weighted x3. The encoder (so the latent space the
    UNet, inpaint UNet and ControlNets learned) stays frozen, so this stage can run beside them."""
    from diffusers import AutoencoderKL

    torch.manual_seed(9)
    vae = AutoencoderKL.from_pretrained(str(out / "vae"), dtype=torch.float32).train()
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = [p for p in vae.parameters() if p.requires_grad]
    log(f"[decoder] {sum(p.numel() for p in params):,} decoder params, {steps} steps x {BATCH['vae']}")
    t0 = time.time()
    _vae_loop("decoder", vae, params, steps, SEED0["decoder"], True, log)
    folder = dm.save_model(vae.eval(), out / "vae-decoder")
    log(f"[decoder] saved {folder} in {time.time() - t0:.0f}s")
    return folder


# ---------------------------------------------------------------- latent diffusion stages

class Frozen:
    """The frozen parts every latent stage shares: VAE, tokenizer, the CLIP text tower, scheduler."""

    def __init__(self, out: Path, clip: Path):
        from diffusers import AutoencoderKL
        from transformers import CLIPTokenizer

        self.vae = AutoencoderKL.from_pretrained(str(out / "vae"), dtype=torch.float32).eval()
        self.tokenizer = CLIPTokenizer.from_pretrained(str(clip), local_files_only=True)
        self.text_encoder = dm.load_text_encoder(clip)
        self.scheduler = dm.new_scheduler()
        self.sf = float(self.vae.config.scaling_factor)
        self.alphas = self.scheduler.alphas_cumprod.float()

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        # Exactly StableDiffusionPipeline.encode_prompt: pad to 77, no attention mask, last hidden state.
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(ids)[0]

    @torch.no_grad()
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.sample() * self.sf

    def noisy(self, z: torch.Tensor):
        noise = torch.randn_like(z)
        t = torch.randint(0, len(self.alphas), (z.shape[0],))
        a = self.alphas[t].view(-1, 1, 1, 1)
        return a.sqrt() * z + (1 - a).sqrt() * noise, t, noise

    def loss(self, pred: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Min-SNR-5 weighted epsilon MSE (Hang et al. 2023): converges ~3x faster than plain MSE."""
        a = self.alphas[t]
        w = (a / (1 - a)).clamp(max=5.0) / (a / (1 - a))
        return (w * ((pred - noise) ** 2).mean((1, 2, 3))).mean()


def prompts_for(scenes, rng, p_uncond: float = UNCOND_P) -> list[str]:
    from .prompts import random_caption

    out = []
    for s in scenes:
        u = rng.random()
        out.append("" if u < p_uncond else s.caption if u < 0.5 else random_caption(s, rng))
    return out


def _loop(name: str, model, steps: int, batch_fn, loss_fn, log: Log, save=None) -> None:
    """AdamW with warmup + cosine; with EMA[name], the model ends holding the averaged weights.

    `save(folder)` writes the model; with CHECKPOINT_EVERY it also runs every N steps (on the
    averaged weights where EMA applies), so a long run can be sampled while it trains.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR[name], weight_decay=0.01)
    decay = EMA.get(name)
    ema = [p.detach().clone() for p in params] if decay else None
    t0, acc = time.time(), 0.0
    log(f"[{name}] {type(model).__name__}: {dm.n_params(model):,} params, {steps} steps x {BATCH[name]}"
        + (f", EMA {decay}" if decay else ""))

    def swap():  # exchange live and averaged weights (twice = back to live)
        with torch.no_grad():
            for p, e in zip(params, ema):
                tmp = p.detach().clone()
                p.copy_(e)
                e.copy_(tmp)

    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, LR[name])
        loss = loss_fn(batch_fn(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ema is not None:
            d = min(decay, (1 + step) / (10 + step))  # short warm-up: early weights fade fast
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - d)
        acc += loss.item()
        if (step + 1) % 50 == 0 or step + 1 == steps:
            k = 50 if (step + 1) % 50 == 0 else (step + 1) % 50
            el = time.time() - t0
            log(f"[{name}] step {step + 1:5d}/{steps}  loss {acc / k:.4f}  {el:5.0f}s"
                f"  eta {el / (step + 1) * (steps - step - 1):5.0f}s")
            acc = 0.0
        if save and CHECKPOINT_EVERY and (step + 1) % CHECKPOINT_EVERY == 0 and step + 1 < steps:
            if ema is not None:
                swap()
            save(f"{name}-step{step + 1}")
            if ema is not None:
                swap()
            model.train()
    if ema is not None:
        swap()


def _scenes(name: str, step: int, filt=None):
    b = BATCH[name]
    seeds = SEED0[name] + step * b * (6 if filt else 1) + np.arange(b * (6 if filt else 1))
    scenes = [make_scene(int(s), n_objects_for(int(s))) for s in seeds]
    if filt:
        # Pose: 3/4 of each batch shows a person (the skeleton's subject), 1/4 anything.
        keep = [s for s in scenes if filt(s)][: b * 3 // 4]
        scenes = keep + [s for s in scenes if not filt(s)][: b - len(keep)]
    return scenes


def train_unet(out: Path, clip: Path, steps: int, log: Log) -> Path:
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    fz = Frozen(out, clip)
    unet = dm.new_unet().train()

    def batch(step):
        scenes = _scenes("unet", step)
        return fz.encode_image(pixels(np.stack([s.image for s in scenes]))), fz.encode_text(prompts_for(scenes, rng))

    def loss(b):
        z, e = b
        zt, t, noise = fz.noisy(z)
        return fz.loss(unet(zt, t, e).sample, noise, t)

    _loop("unet", unet, steps, batch, loss, log, save=lambda name: dm.save_model(unet.eval(), out / name))
    dm.save_model(unet.eval(), out / "unet")
    return out / "unet"


def train_inpaint(out: Path, clip: Path, steps: int, log: Log) -> Path:
    """9-channel UNet trained from scratch with SD-inpainting inputs (random + object masks)."""
    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    fz = Frozen(out, clip)
    unet = dm.new_unet(9).train()

    def batch(step):
        scenes = _scenes("inpaint", step)
        n = len(scenes)
        x = pixels(np.stack([s.image for s in scenes]))
        half = n // 2
        masks = np.concatenate([object_masks(scenes[:half], rng), random_masks(rng, n - half)])
        # Object masks are prompted with the object's phrase (the studio's "replace this" use);
        # random masks with the whole caption, as SD inpainting was trained.
        prompts = prompts_for(scenes, rng)
        for i in range(half):
            if prompts[i]:
                o = scenes[i].objects[int(np.argmax([(masks[i][o.bbox[1]:o.bbox[3], o.bbox[0]:o.bbox[2]]).mean()
                                                     * o.area for o in scenes[i].objects]))]
                prompts[i] = f"{'an' if o.colour[0] in 'aeiou' else 'a'} {o.label}"
        m = torch.from_numpy(masks)[:, None]
        masked = x * (m < 0.5)
        return (fz.encode_image(x), F.interpolate(m, size=(dm.LATENT, dm.LATENT)),
                fz.encode_image(masked), fz.encode_text(prompts))

    def loss(b):
        z, m, zm, e = b
        zt, t, noise = fz.noisy(z)
        return fz.loss(unet(torch.cat([zt, m, zm], 1), t, e).sample, noise, t)

    _loop("inpaint", unet, steps, batch, loss, log)
    dm.save_model(unet.eval(), out / "inpaint_unet")
    return out / "inpaint_unet"


def has_person(scene) -> bool:
    return len(scene.pose) > 0


def train_control(kind: str, out: Path, clip: Path, steps: int, log: Log) -> Path:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(3 + dm.CONTROLS.index(kind))
    rng = np.random.default_rng(3 + dm.CONTROLS.index(kind))
    fz = Frozen(out, clip)
    unet = UNet2DConditionModel.from_pretrained(str(out / "unet"), dtype=torch.float32).eval()
    unet.requires_grad_(False)
    net = dm.new_controlnet(unet).train()

    def batch(step):
        scenes = _scenes(kind, step, has_person if kind == "pose" else None)
        cond = torch.from_numpy(np.stack([condition_image(s, kind) for s in scenes])).permute(0, 3, 1, 2)
        # Half the captions dropped: the control alone must carry the layout.
        return (fz.encode_image(pixels(np.stack([s.image for s in scenes]))),
                fz.encode_text(prompts_for(scenes, rng, 0.3)), cond.float() / 255)

    def loss(b):
        z, e, c = b
        zt, t, noise = fz.noisy(z)
        down, mid = net(zt, t, e, controlnet_cond=c, return_dict=False)
        pred = unet(zt, t, e, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        return fz.loss(pred, noise, t)

    _loop(kind, net, steps, batch, loss, log)
    dm.save_model(net.eval(), out / f"controlnet-{kind}")
    return out / f"controlnet-{kind}"


STAGE_FNS = {"unet": train_unet, "inpaint": train_inpaint, "decoder": train_decoder,
             **{k: (lambda k: lambda *a: train_control(k, *a))(k) for k in dm.CONTROLS}}


def assemble(work: Path, out: Path, tokenizer_dir: Path, log: Log = print) -> dict[str, int]:
    """Write the shipped folders from a work dir: sd/, sd-inpaint/, controlnet-*/ (sizes in bytes)."""
    import shutil

    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    vae = AutoencoderKL.from_pretrained(str(work / ("vae-decoder" if (work / "vae-decoder").exists() else "vae")))
    dm.save_pipeline(out / "sd", vae, UNet2DConditionModel.from_pretrained(str(work / "unet")), tokenizer_dir)
    if (work / "inpaint_unet").exists():
        dm.save_pipeline(out / "sd-inpaint", vae, UNet2DConditionModel.from_pretrained(str(work / "inpaint_unet")),
                         tokenizer_dir, inpaint=True)
    for kind in dm.CONTROLS:
        if (work / f"controlnet-{kind}").exists():
            dm.save_model(ControlNetModel.from_pretrained(str(work / f"controlnet-{kind}")),
                          out / f"controlnet-{kind}")
    sizes = {}
    for name in ["sd", "sd-inpaint"] + [f"controlnet-{k}" for k in dm.CONTROLS]:
        if (out / name).exists():
            sizes[name] = sum(f.stat().st_size for f in (out / name).rglob("*") if f.is_file())
    log("[diffusion] on disk: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items())
        + f"; total {sum(sizes.values()) / 1e6:.2f} MB")
    return sizes


def train_diffusion(out: str | Path, clip: str | Path | None = None, scale: float = 1.0,
                    log: Log = print, work: str | Path | None = None) -> dict:
    """All stages in order (VAE, UNet, inpaint UNet, 3 ControlNets), then the shipped folders.

    Intermediate weights live in a temporary work folder; only the final folders land in `out`.
    The text encoder is the frozen starter CLIP text tower from `clip` (default out/clip).
    """
    import shutil
    import tempfile

    torch.set_num_threads(threads(min(2, os.cpu_count() or 1)))
    out = Path(out)
    clip = Path(clip) if clip else out / "clip"
    if not (clip / "config.json").exists():
        raise FileNotFoundError(f"{clip} holds no CLIP: train it first (python -m studio.starter train --only clip)")
    tmp = Path(work) if work else Path(tempfile.mkdtemp(prefix="starter-diffusion-"))
    times = {}
    try:
        for stage in STAGES:
            t = time.time()
            steps = max(1, int(STEPS[stage] * scale))
            if stage == "vae":
                train_vae(tmp, steps, log)
            else:
                STAGE_FNS[stage](tmp, clip, steps, log)
            times[stage] = time.time() - t
        assemble(tmp, out, clip, log)
    finally:
        if not work:
            shutil.rmtree(tmp, ignore_errors=True)
    log("[diffusion] wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items())
        + f", total {sum(times.values()):.0f}s")
    return times


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m studio.starter.diffusion_train")
    p.add_argument("stage", choices=STAGES)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clip", type=Path, default=None)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="also save STAGE-stepN/ folders every N steps (to sample a long run while it trains)")
    a = p.parse_args(argv)
    global CHECKPOINT_EVERY
    CHECKPOINT_EVERY = a.checkpoint_every
    torch.set_num_threads(threads())
    steps = max(1, int(STEPS[a.stage] * a.scale))
    if a.stage == "vae":
        train_vae(a.out, steps, lambda s: print(s, flush=True))
    else:
        STAGE_FNS[a.stage](a.out, a.clip, steps, lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
