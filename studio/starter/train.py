"""Training loops that rebuild the starter CNN and tiny CLIP from scratch on a CPU.

Owns the recipes (data mix, losses, schedules, step counts) and their fixed seeds, so
`python -m studio.starter train` reproduces the shipped weights.  Scenes come from
the train seed split only (seeds < SPLITS["val"]); evaluation never sees them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import models
from .prompts import LABEL_TEMPLATES, label_prompts, random_caption
from .tokenizer import write_tokenizer
from .world import LABELS, SPLITS, make_scene

# Separate seed streams inside the train split, so the two models see different scenes.
CNN_SEED0 = SPLITS["train"]
CLIP_SEED0 = SPLITS["train"] + 300_000_000
CNN_STEPS, CNN_BATCH = 700, 128
CLIP_STEPS, CLIP_BATCH = 3000, 128

Log = Callable[[str], None]


def to_tensor(images: np.ndarray, mean, std) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> normalised (B, 3, H, W) float, as timm / CLIPProcessor do at 64x64."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _param_groups(model: torch.nn.Module, decay: float):
    # Weight decay only on matrices: decaying the 49k-row token table would also shrink
    # the rows of tokens the world never uses, for no benefit.
    yes, no = [], []
    for name, p in model.named_parameters():
        (yes if p.ndim >= 2 and "embedding" not in name else no).append(p)
    return [{"params": yes, "weight_decay": decay}, {"params": no, "weight_decay": 0.0}]


def _cnn_n_objects(seed: int) -> int | None:
    # 70% single-object scenes (the bar), 30% 1-3 objects with the dominant object as target.
    return 1 if seed % 10 < 7 else None


def _clip_n_objects(seed: int) -> int | None:
    return 1 if seed % 3 == 0 else None  # ~56% single, ~22% two, ~22% three objects


def train_cnn(out: str | Path, steps: int = CNN_STEPS, batch: int = CNN_BATCH, seed: int = 0,
              log: Log = print) -> Path:
    torch.manual_seed(seed)
    model = models.new_cnn().train()
    opt = torch.optim.AdamW(_param_groups(model, 0.05), lr=3e-3, betas=(0.9, 0.99))
    t0, hits, seen, run_loss = time.time(), 0, 0, 0.0
    n_params = sum(p.numel() for p in model.parameters())
    log(f"[cnn] {models.CNN_ARCH} {models.CNN_ARGS}: {n_params:,} params, {steps} steps x {batch}")
    for step in range(steps):
        seeds = CNN_SEED0 + step * batch + np.arange(batch)
        scenes = [make_scene(int(s), _cnn_n_objects(int(s))) for s in seeds]
        x = to_tensor(np.stack([s.image for s in scenes]), models.IMAGENET_MEAN, models.IMAGENET_STD)
        y = torch.tensor([s.objects[s.main_object].label_id for s in scenes])
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, 3e-3, 50)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hits += int((logits.argmax(1) == y).sum())
        seen += batch
        run_loss += loss.item()
        if (step + 1) % 50 == 0 or step + 1 == steps:
            el = time.time() - t0
            log(f"[cnn] step {step + 1:5d}/{steps}  loss {run_loss / 50:.4f}  train-acc {hits / seen:.3f}"
                f"  {el:6.0f}s  eta {el / (step + 1) * (steps - step - 1):5.0f}s")
            hits, seen, run_loss = 0, 0, 0.0
    folder = models.save_cnn(model, Path(out) / "cnn")
    log(f"[cnn] saved {folder} ({models.folder_size(folder) / 1e6:.2f} MB) in {time.time() - t0:.0f}s")
    return folder


def _positives(scenes) -> torch.Tensor:
    """Pairs whose scenes hold the same label set count as matches, not as negatives."""
    keys = [tuple(sorted(s.label_ids)) for s in scenes]
    return torch.tensor([[float(a == b) for b in keys] for a in keys])


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * logits.log_softmax(1)).sum(1).mean()


def train_clip(out: str | Path, steps: int = CLIP_STEPS, batch: int = CLIP_BATCH, seed: int = 0,
               log: Log = print, peak: float = 1e-3) -> Path:
    """Contrastive image-caption training plus a label-prompt objective (see docs/starter.md)."""
    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out = Path(out)
    tok_dir = write_tokenizer(out / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    model = models.new_clip().train()
    # Training-only sigmoid scale/bias (SigLIP-style init); the saved CLIPModel stays standard.
    sig = torch.nn.Parameter(torch.tensor([math.log(10.0), -10.0]))
    groups = _param_groups(model, 0.05)
    groups[1]["params"].append(sig)
    opt = torch.optim.AdamW(groups, lr=peak, betas=(0.9, 0.98), eps=1e-6)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"[clip] CLIPModel vision {models.CLIP_VISION['hidden_size']}x{models.CLIP_VISION['num_hidden_layers']}"
        f" text {models.CLIP_TEXT['hidden_size']}x{models.CLIP_TEXT['num_hidden_layers']}:"
        f" {n_params:,} params, {steps} steps x {batch}")
    t0 = time.time()
    stats = np.zeros(5)
    for step in range(steps):
        seeds = CLIP_SEED0 + step * batch + np.arange(batch)
        scenes = [make_scene(int(s), _clip_n_objects(int(s))) for s in seeds]
        captions = [random_caption(s, rng) for s in scenes]
        prompts = label_prompts(LABEL_TEMPLATES[step % len(LABEL_TEMPLATES)])
        enc = tokenizer(captions + prompts, padding=True, return_tensors="pt")
        x = to_tensor(np.stack([s.image for s in scenes]), models.CLIP_MEAN, models.CLIP_STD)
        multi_hot = torch.from_numpy(np.stack([s.multi_hot for s in scenes]))
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, peak, 150)

        img = F.normalize(models.image_embeds(model, x), dim=-1)
        txt = F.normalize(models.text_embeds(model, enc["input_ids"], enc["attention_mask"]), dim=-1)
        cap, lab = txt[:batch], txt[batch:]
        scale = model.logit_scale.exp().clamp(max=100)
        pos = _positives(scenes)
        logits = scale * img @ cap.t()
        target = pos / pos.sum(1, keepdim=True)
        loss_clip = 0.5 * (_soft_ce(logits, target) + _soft_ce(logits.t(), target))
        sims = img @ lab.t()
        label_logits = scale * sims
        # Multi-positive softmax over the 40 label prompts: all present labels above absent ones.
        loss_label = (label_logits.logsumexp(1)
                      - label_logits.masked_fill(multi_hot == 0, -1e4).logsumexp(1)).mean()
        loss_sig = F.binary_cross_entropy_with_logits(sims * sig[0].exp() + sig[1], multi_hot,
                                                      reduction="sum") / batch
        loss = loss_clip + loss_label + 0.2 * loss_sig
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

        with torch.no_grad():
            i2t = float(pos[torch.arange(batch), logits.argmax(1)].mean())
            single = multi_hot.sum(1) == 1
            top1 = float((sims[single].argmax(1) == multi_hot[single].argmax(1)).float().mean())
        stats += [loss_clip.item(), loss_label.item(), loss_sig.item(), i2t, top1]
        if (step + 1) % 50 == 0 or step + 1 == steps:
            el = time.time() - t0
            k = 50 if (step + 1) % 50 == 0 else (step + 1) % 50
            a = stats / k
            log(f"[clip] step {step + 1:5d}/{steps}  clip {a[0]:.3f}  label {a[1]:.3f}  sig {a[2]:.3f}"
                f"  i2t {a[3]:.3f}  label-top1 {a[4]:.3f}  scale {scale.item():.1f}"
                f"  {el:6.0f}s  eta {el / (step + 1) * (steps - step - 1):5.0f}s")
            stats[:] = 0
    folder = models.save_clip(model, out / "clip", tok_dir)
    log(f"[clip] saved {folder} ({models.folder_size(folder) / 1e6:.2f} MB) in {time.time() - t0:.0f}s")
    return folder


def train_all(out: str | Path, only: str | None = None, scale: float = 1.0, log: Log = print) -> dict:
    """Rebuild the tokenizer and the chosen models; returns wall seconds per part."""
    torch.set_num_threads(2)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    cpu0 = time.process_time()
    t = time.time()
    write_tokenizer(out / "tokenizer")
    times["tokenizer"] = time.time() - t
    if only in (None, "cnn"):
        t = time.time()
        train_cnn(out, steps=max(1, int(CNN_STEPS * scale)), log=log)
        times["cnn"] = time.time() - t
    if only in (None, "clip"):
        t = time.time()
        train_clip(out, steps=max(1, int(CLIP_STEPS * scale)), log=log)
        times["clip"] = time.time() - t
    # CPU seconds / 2 is what an otherwise idle 2-core machine would need (threads = 2).
    times["cpu_seconds"] = time.process_time() - cpu0
    log("[train] wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items() if k != "cpu_seconds")
        + f", total {sum(v for k, v in times.items() if k != 'cpu_seconds'):.0f}s;"
        f" process CPU time {times['cpu_seconds']:.0f}s")
    return times
