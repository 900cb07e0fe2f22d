"""The starter VLM: a LLaVA-architecture transformers model trained on Shapes-world questions.

Owns its architecture (the starter CLIP's vision tower, frozen, a two-layer projector and a small
Llama language model), its tokenizer (a byte-level BPE built offline from the question/answer
vocabulary, lowercasing its input), processor (LlavaProcessor: CLIPImageProcessor at 64x64 with
CLIP's mean/std, 65 image tokens) and chat template, the on-disk folder (`save_pretrained`, fp16,
*without* the vision tower: the studio supplies it from starter/clip, as the starter diffusion
pipelines get their text encoder) and the deterministic CPU training recipe.

`train_vlm` is what `python -m studio.starter train --only vlm` runs;
`python -m studio.starter.vlm_train --out DIR --clip CLIP_DIR [--scale S]` runs it alone.
Loading back takes only public calls: `load_vlm` (AutoProcessor + AutoModelForImageTextToText,
then the CLIP vision tower's weights copied in).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import vlm_qa as qa
from .models import CLIP_MEAN, CLIP_STD, folder_size, weights_size
from .world import SIZE, SPLITS, make_scene

Log = Callable[[str], None]

SEED0 = SPLITS["train"] + 850_000_000  # its own stream inside the train split
VAL_SEED0 = SPLITS["val"] + 3_000_000  # progress checks during training; the bar uses test seeds
STEPS, BATCH, PEAK_LR, WARMUP = 2600, 24, 2e-3, 100
TEXT_TOKENS, MAX_TURNS = 90, 8  # questions per image: as many as fit in ~90 tokens (see batch_texts)
RESTYLE_P = 0.12  # share of scenes shown on a flat background of another colour (see restyle)
SYSTEM_P = 0.1  # share of chats that open with a system prompt (the chat panel has one)
# Training-only probe on the projector's patch tokens: each must tell the shape and colour of the
# object covering it (see patch_labels). The heads are dropped at save: the folder is a plain LLaVA.
AUX_WEIGHT = 0.5
PATCH_COVER = 16  # pixels of its 8x8 patch an object must cover to be that patch's label
# Training-only binding probe: at the word a question names its object by ("what colour is the
# *circle*?", "what shape is the *red* object?"), the language model's last hidden state must tell
# the other attribute of that object (see binding_refs). Dropped at save like the patch heads.
BIND_WEIGHT = 1.0
VOCAB = 512
TEXT = dict(hidden_size=160, intermediate_size=480, num_hidden_layers=4, num_attention_heads=10,
            num_key_value_heads=10, max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0,
            tie_word_embeddings=False, attention_dropout=0.0)
# Layer -2's patch tokens (what fed the CLIP's pooled embedding) next to the last layer's,
# CLS included ("full"): 65 image tokens of 2 x 128 features.
VISION_FEATURE_LAYER = [-2, -1]
VISION_STRATEGY = "full"
N_IMAGE_TOKENS = (SIZE // 8) ** 2 + 1


def threads() -> int:
    # One thread by default: on a shared 2-core box two OpenMP threads spin against each other.
    return int(os.environ.get("STUDIO_TRAIN_THREADS", "1"))


# ---------------------------------------------------------------- tokenizer, processor, model

@functools.lru_cache(maxsize=1)
def _bpe_json() -> str:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=qa.SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    lines = qa.corpus()
    for special in qa.SPECIALS:
        lines = [line.replace(special, " ") for line in lines]
    tok.train_from_iterator(lines, trainer)
    return tok.to_str()


def build_tokenizer():
    """Byte-level BPE (any text encodes; the world's words are single tokens), lowercasing input."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(_bpe_json())
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=qa.BOS, eos_token=qa.EOS, unk_token=qa.UNK,
                                   pad_token=qa.PAD, extra_special_tokens={"image_token": qa.IMAGE},
                                   model_max_length=512, chat_template=qa.CHAT_TEMPLATE)


def build_processor(tokenizer):
    from transformers import CLIPImageProcessor, LlavaProcessor

    images = CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": SIZE}, do_center_crop=True,
        crop_size={"height": SIZE, "width": SIZE}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True)
    return LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=8,
                          vision_feature_select_strategy=VISION_STRATEGY, num_additional_image_tokens=1,
                          image_token=qa.IMAGE, chat_template=qa.CHAT_TEMPLATE)


def load_vision_tower(clip: str | Path):
    """The starter CLIP's vision half (float32, frozen) through the standard call."""
    from transformers import CLIPVisionModel

    with _quiet():  # the CLIP folder's text tower is reported as "unexpected" keys
        tower = CLIPVisionModel.from_pretrained(str(clip), dtype=torch.float32, local_files_only=True).eval()
    tower.requires_grad_(False)
    return tower


@contextlib.contextmanager
def _quiet():
    import transformers

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)


def new_vlm(vision_config: dict, tokenizer):
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig(
        vision_config={**vision_config, "model_type": "clip_vision_model"},
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), **TEXT, **ids),
        image_token_index=tokenizer.convert_tokens_to_ids(qa.IMAGE), projector_hidden_act="gelu",
        vision_feature_layer=list(VISION_FEATURE_LAYER), vision_feature_select_strategy=VISION_STRATEGY,
        image_seq_length=N_IMAGE_TOKENS, tie_word_embeddings=False)
    config.vision_config._name_or_path = ""  # not the local folder the tower config was read from
    model = LlavaForConditionalGeneration(config)
    model.generation_config.update(**ids, max_new_tokens=48)
    return model


def _tower(model):
    return model.model.vision_tower if hasattr(model, "model") else model.vision_tower


def inject_vision_tower(model, tower) -> None:
    """Copy the CLIP vision weights into the VLM's tower (same CLIPVisionModel layout, strict)."""
    target = _tower(model)
    p = next(target.parameters())
    target.load_state_dict({k: v.to(p.dtype) for k, v in tower.state_dict().items()}, strict=True)


def save_vlm(model, processor, folder: str | Path) -> Path:
    """`save_pretrained` in fp16 without the vision tower's weights (starter/clip holds them)."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
             if ".vision_tower." not in f".{k}"}
    model.save_pretrained(str(folder), state_dict=state, safe_serialization=True)
    processor.save_pretrained(str(folder))
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder


def load_vlm(folder: str | Path, clip: str | Path, dtype=torch.float32):
    """(model, processor): AutoModelForImageTextToText + AutoProcessor, then the CLIP vision tower."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = str(Path(folder).resolve())
    with _quiet():  # the omitted tower is reported as "missing" keys until it is copied in
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype, local_files_only=True).eval()
    inject_vision_tower(model, load_vision_tower(clip))
    return model, AutoProcessor.from_pretrained(folder, local_files_only=True)


# ---------------------------------------------------------------- training pieces

def pixel_values(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 at 64x64 -> what the processor's CLIPImageProcessor gives."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    return (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


@torch.no_grad()
def vision_features(tower, pixels: torch.Tensor) -> torch.Tensor:
    """What LlavaModel.get_image_features feeds its projector: (B, 65, 256)."""
    hs = tower(pixels, output_hidden_states=True).hidden_states
    return torch.cat([hs[i] for i in VISION_FEATURE_LAYER], dim=-1)


def encode(tokenizer, texts: list[str], refs=None):
    """input_ids, attention_mask and the loss weight of every token, right-padded; with `refs`
    (batch_texts) also the binding probe's targets: (row, token position, head, class) tensors.

    Only answer tokens (and their end token) carry weight, 1/sqrt(answer length) each: a one-word
    colour answer then counts about as much as a 20-token box, instead of 20 times less."""
    expanded = [t.replace(qa.IMAGE, qa.IMAGE * N_IMAGE_TOKENS) for t in texts]
    enc = tokenizer(expanded, padding=True, return_offsets_mapping=True, return_tensors="np",
                    add_special_tokens=False)
    offsets = enc["offset_mapping"]
    weight = np.zeros(enc["input_ids"].shape, np.float32)
    bind: list[tuple[int, int, int, int]] = []
    for i, text in enumerate(expanded):
        starts, ends = offsets[i, :, 0], offsets[i, :, 1]
        for a, b in qa.answer_spans(text):
            inside = (starts >= a) & (ends <= b) & (ends > starts) & (enc["attention_mask"][i] > 0)
            weight[i, inside] = 1.0 / math.sqrt(max(1, int(inside.sum())))
        cursor = 0
        for question, word, head, cls in (refs[i] if refs is not None else ()):
            q = text.find(question, cursor)
            if q < 0:
                continue
            cursor = q + len(question)
            a = q + question.find(word)
            hit = np.nonzero((ends > a) & (starts < a + len(word)) & (ends > starts))[0]
            if len(hit):
                bind.append((i, int(hit[-1]), head, cls))
    out = (torch.from_numpy(enc["input_ids"]).long(), torch.from_numpy(enc["attention_mask"]).long(),
           torch.from_numpy(weight))
    if refs is None:
        return out
    return out + (torch.tensor(bind, dtype=torch.long).reshape(-1, 4),)


def binding_refs(turns) -> list[tuple[str, str, int, int]]:
    """(question, the word naming its object, probe head, class) for each colour question that names a
    shape (head 0: the colour) and shape question that names a colour (head 1: the shape)."""
    from .world import COLOURS, SHAPES

    refs = []
    for t in turns:
        words = t.question.rstrip("?.").split()
        if t.kind == "colour":
            named = [w for w in words if w in SHAPES]
            if named:
                refs.append((t.question, named[-1], 0, COLOURS.index(t.answer)))
        elif t.kind == "shape":
            named = [w for w in words if w in COLOURS]
            if named:
                refs.append((t.question, named[-1], 1, SHAPES.index(t.answer)))
    return refs


def forward_hidden(model, ids, mask, feats, with_image_tokens: bool = False):
    """LlavaForConditionalGeneration's forward with precomputed vision features: the same
    projector, masked scatter into the image-token embeddings, and language model."""
    inner = model.model
    emb = inner.language_model.embed_tokens(ids)
    img = inner.multi_modal_projector(feats).to(emb.dtype)
    emb = emb.masked_scatter((ids == model.config.image_token_index)[..., None], img)
    h = inner.language_model(inputs_embeds=emb, attention_mask=mask).last_hidden_state
    return (h, img) if with_image_tokens else h


def patch_labels(scenes) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 64) shape and colour class of the object covering each 8x8 patch (0 = background; an
    object must cover PATCH_COVER of the 64 pixels), in the processor's patch order (row-major)."""
    from .world import COLOURS, SHAPES

    g = SIZE // 8
    shapes = np.zeros((len(scenes), g * g), np.int64)
    colours = np.zeros_like(shapes)
    for i, s in enumerate(scenes):
        n = len(s.objects) + 1
        onehot = np.eye(n, dtype=np.int32)[s.instance_mask]  # (H, W, n)
        counts = onehot.reshape(g, 8, g, 8, n).sum((1, 3)).reshape(g * g, n)
        best = counts[:, 1:].argmax(1)
        covered = counts[np.arange(g * g), best + 1] >= PATCH_COVER
        shape_id = np.array([SHAPES.index(o.shape) + 1 for o in s.objects])
        colour_id = np.array([COLOURS.index(o.colour) + 1 for o in s.objects])
        shapes[i] = np.where(covered, shape_id[best], 0)
        colours[i] = np.where(covered, colour_id[best], 0)
    return torch.from_numpy(shapes), torch.from_numpy(colours)


def new_probe_heads(width: int) -> torch.nn.ModuleDict:
    """The training-only probes: patch shape / colour (AUX_WEIGHT), binding (BIND_WEIGHT)."""
    from .world import COLOURS, SHAPES

    heads = torch.nn.ModuleDict()
    if AUX_WEIGHT > 0:
        heads["shape"] = torch.nn.Linear(width, len(SHAPES) + 1)
        heads["colour"] = torch.nn.Linear(width, len(COLOURS) + 1)
    if BIND_WEIGHT > 0:
        heads["bind_colour"] = torch.nn.Linear(width, len(COLOURS))
        heads["bind_shape"] = torch.nn.Linear(width, len(SHAPES))
    return heads


def answer_loss(model, ids, mask, weight, feats, heads=None, labels=None, bind=None):
    """Weighted next-token cross-entropy on the answer tokens, and their plain accuracy; with
    `heads`, plus AUX_WEIGHT x the patch probe's cross-entropy (`labels`: patch_labels) and
    BIND_WEIGHT x the binding probe's (`bind`: encode's targets)."""
    h, img = forward_hidden(model, ids, mask, feats, with_image_tokens=True)
    w = weight[:, 1:]
    sel = w > 0
    logits = model.lm_head(h[:, :-1][sel])
    y = ids[:, 1:][sel]
    loss = (F.cross_entropy(logits, y, reduction="none") * w[sel]).sum() / w[sel].sum()
    if heads is not None and labels is not None and AUX_WEIGHT > 0:
        patches = img[:, 1:]  # the CLS token first ("full" strategy), then 64 patches
        for name, target in zip(("shape", "colour"), labels):
            loss = loss + AUX_WEIGHT * F.cross_entropy(heads[name](patches).flatten(0, 1), target.flatten())
    hits = []
    if heads is not None and bind is not None and len(bind) and BIND_WEIGHT > 0:
        at = h[bind[:, 0], bind[:, 1]]
        for k, name in enumerate(("bind_colour", "bind_shape")):
            rows = bind[:, 2] == k
            if rows.any():
                out = heads[name](at[rows])
                loss = loss + BIND_WEIGHT * F.cross_entropy(out, bind[rows, 3]) * float(rows.float().mean())
                hits.append((out.argmax(-1) == bind[rows, 3]).float())
    probe = float(torch.cat(hits).mean()) if hits else float("nan")
    return loss, float((logits.argmax(-1) == y).float().mean()), probe


def restyle(image: np.ndarray, scene, rng: np.random.Generator) -> np.ndarray:
    """The scene on a flat background of any colour (white paper, black, vivid), kept far from
    every object's colour: users ask about drawings on white, which the world never shows."""
    objects = np.array([o.rgb for o in scene.objects], np.float32)
    for _ in range(20):
        kind = rng.random()
        if kind < 0.4:
            col = np.full(3, rng.integers(215, 256), np.float32)  # white-ish paper
        elif kind < 0.55:
            col = np.full(3, rng.integers(0, 60), np.float32)  # dark
        else:
            col = rng.integers(0, 256, 3).astype(np.float32)
        if np.sqrt(((objects - col) ** 2).sum(1)).min() > 110:
            out = image.copy()
            out[scene.instance_mask == 0] = col.astype(np.uint8)
            return out
    return image


def batch_texts(seeds, rng: np.random.Generator, tokenizer):
    """Scenes (1-3 objects, some on a restyled background) and one multi-turn chat about each,
    with as many questions as fit in TEXT_TOKENS: chats come out about equally long, so a batch
    holds little padding whatever mix of one-word and box answers it drew."""
    scenes = [make_scene(int(s)) for s in seeds]
    images, texts, refs = [], [], []
    for s in scenes:
        images.append(restyle(s.image, s, rng) if rng.random() < RESTYLE_P else s.image)
        drawn = qa.conversation(s, rng, MAX_TURNS)
        sizes = tokenizer([f"{qa.USER} {t.question}\n{qa.ASSISTANT} {t.answer}{qa.EOS}\n" for t in drawn],
                          add_special_tokens=False)["input_ids"]
        turns, used = [], 0
        for t, ids in zip(drawn, sizes):
            if turns and used + len(ids) > TEXT_TOKENS:
                break
            turns.append(t)
            used += len(ids)
        system = qa.SYSTEM_PROMPTS[int(rng.integers(len(qa.SYSTEM_PROMPTS)))] if rng.random() < SYSTEM_P else ""
        texts.append(qa.render([(t.question, t.answer) for t in turns], system=system))
        refs.append(binding_refs(turns))
    return np.stack(images), texts, scenes, refs


def _lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


def train_vlm(out: str | Path, clip: str | Path, steps: int = STEPS, batch: int = BATCH, seed: int = 0,
              log: Log = print, val_scenes: int = 60) -> Path:
    """Train from scratch into out/vlm; the CLIP vision tower in `clip` stays frozen."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out, clip = Path(out), Path(clip)
    if not (clip / "config.json").exists():
        raise FileNotFoundError(f"{clip} holds no CLIP: train it first (python -m studio.starter train --only clip)")
    t0 = time.time()
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    tower = load_vision_tower(clip)
    model = new_vlm(tower.config.to_dict(), tokenizer)
    inject_vision_tower(model, tower)
    model.train()
    _tower(model).requires_grad_(False)
    heads = new_probe_heads(TEXT["hidden_size"]) if AUX_WEIGHT > 0 or BIND_WEIGHT > 0 else None
    params = [p for n, p in model.named_parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)  # what ships; the probe heads do not
    params += list(heads.parameters()) if heads is not None else []
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                            lr=PEAK_LR, betas=(0.9, 0.98), eps=1e-6)
    log(f"[vlm] LLaVA: CLIP vision tower (frozen) + projector + Llama {TEXT['hidden_size']}x"
        f"{TEXT['num_hidden_layers']}, vocab {len(tokenizer)}: {n_params:,} trained params,"
        f" {steps} steps x {batch} scenes x <= {TEXT_TOKENS} question/answer tokens")
    stats, t_loop, cpu0 = np.zeros(4), time.time(), time.process_time()
    for step in range(steps):
        seeds = SEED0 + step * batch + np.arange(batch)
        images, texts, scenes, refs = batch_texts(seeds, rng, tokenizer)
        ids, mask, weight, bind = encode(tokenizer, texts, refs)
        labels = patch_labels(scenes) if heads is not None else None
        feats = vision_features(tower, pixel_values(images))
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, PEAK_LR, WARMUP)
        loss, acc, probe = answer_loss(model, ids, mask, weight, feats, heads, labels, bind)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        stats += [loss.item(), acc, ids.shape[1], probe]
        if (step + 1) % 25 == 0 or step + 1 == steps:
            k = 25 if (step + 1) % 25 == 0 else (step + 1) % 25
            a, el = stats / k, time.time() - t_loop
            eta = el / (step + 1) * (steps - step - 1)
            log(f"[vlm] step {step + 1:5d}/{steps}  loss {a[0]:.4f}  token-acc {a[1]:.3f}"
                + (f"  binding-probe {a[3]:.3f}" if BIND_WEIGHT > 0 else "") + f"  len {a[2]:.0f}"
                f"  {el:6.0f}s  cpu {time.process_time() - cpu0:6.0f}s  eta {eta:5.0f}s")
            stats[:] = 0
    model.eval()
    folder = save_vlm(model, processor, out / "vlm")
    log(f"[vlm] saved {folder}: weights {weights_size(folder) / 1e6:.2f} MB,"
        f" folder {folder_size(folder) / 1e6:.2f} MB (vision tower from {clip}) in {time.time() - t0:.0f}s")
    if val_scenes:
        from .vlm_eval import exact_scores

        m, p = load_vlm(folder, clip)
        scores = exact_scores(m, p, val_scenes, VAL_SEED0)
        log("[vlm] val (seeds >= 1e9, not the test seeds): "
            + "  ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)))
    return folder


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m studio.starter.vlm_train")
    p.add_argument("--out", type=Path, required=True, help="writes OUT/vlm")
    p.add_argument("--clip", type=Path, required=True, help="the starter CLIP folder (its vision tower)")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the training steps")
    p.add_argument("--val", type=int, default=60, help="held-out val scenes checked at the end (0: skip)")
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(threads())
    train_vlm(a.out, a.clip, steps=max(1, int(STEPS * a.scale)), log=lambda s: print(s, flush=True),
              val_scenes=a.val)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
