"""The chat engine: one code path for every vision-language model (LLaVA, Idefics3/SmolVLM,
Qwen2.5-VL, the starter VLM): AutoProcessor + AutoModelForImageTextToText from the model manager,
`processor.apply_chat_template(messages, add_generation_prompt=True)`, then `model.generate`
with a streamer.

Threads: `generate` runs here, on the GPU lane thread, with every torch call (and the thread-local
`inference_mode` and RNG fork) on the lane that owns the models, as ARCHITECTURE.md asks. The
streamer (a transformers `BaseStreamer`) keeps the new token ids and decodes them only when a
preview is due (the runtime sends at most ~10 a second): no per-token decoding, queue or helper
thread, so streaming costs next to nothing per token. Stop: a StoppingCriteria reads the job's
cancel token after every token, so generation ends within one token.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Optional

from studio.core.chat_requests import ChatRequest, ChatResult, ChatStream
from studio.core.context import TaskContext
from studio.core.errors import BadInputError, Cancelled, ModelError

log = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 32  # smaller crops are enlarged: some processors refuse tiny images (Qwen needs 28 px)
EARLIER_IMAGE_NOTE = "(an earlier image, no longer shown)"


# -- the prompt ---------------------------------------------------------------------------------
def build_messages(request: ChatRequest) -> tuple[list[dict], list[Any]]:
    """The chat-template messages (content as typed parts, the format every VLM processor's
    template reads) and the PIL images in the order their placeholders appear. Only the last
    `max_images` images are sent; earlier ones become a short text note."""
    with_image = [i for i, t in enumerate(request.turns) if t.role == "user" and t.image is not None]
    keep = set(with_image[-max(0, int(request.max_images)):]) if request.max_images > 0 else set()
    messages: list[dict] = []
    if request.system_prompt.strip():
        messages.append({"role": "system", "content": [{"type": "text", "text": request.system_prompt.strip()}]})
    images = []
    for i, turn in enumerate(request.turns):
        parts: list[dict] = []
        text = turn.text
        if turn.role == "user" and turn.image is not None:
            if i in keep:
                parts.append({"type": "image"})
                images.append(_pil(turn.image))
            else:
                text = f"{EARLIER_IMAGE_NOTE} {text}".strip()
        parts.append({"type": "text", "text": text})
        messages.append({"role": turn.role, "content": parts})
    return messages, images


def _pil(image):
    from PIL import Image

    img = Image.fromarray(image.rgb())
    w, h = img.size
    if min(w, h) < MIN_IMAGE_SIDE:
        scale = MIN_IMAGE_SIDE / max(1, min(w, h))
        img = img.resize((max(MIN_IMAGE_SIDE, round(w * scale)), max(MIN_IMAGE_SIDE, round(h * scale))),
                         Image.BICUBIC)
    return img


def _processor_of(entry) -> Any:
    proc = getattr(entry, "processor", None)
    if proc is None:
        proc = getattr(entry, "extras", {}).get("processor")
    name = entry.card.name
    if proc is None or not hasattr(proc, "apply_chat_template") or not hasattr(proc, "tokenizer"):
        raise ModelError(f"{name} has no processor (tokenizer and image processor) in its folder, so the "
                         "studio cannot turn a question and an image into its input. Download the whole "
                         "model again (Models > Manager).")
    if not (getattr(proc, "chat_template", None) or getattr(proc.tokenizer, "chat_template", None)):
        raise ModelError(f"{name} has no chat template: it is not an instruction-tuned chat model, or "
                         "its chat_template file is missing.")
    return proc


def prepare(request: ChatRequest, entry) -> dict[str, Any]:
    """Everything `generate` needs for `request` on a loaded model: the processed inputs (on the
    model's device and dtype), the prompt length, the tokenizer and the model input size of each
    image. Shared by the engine and the benchmark's direct baseline."""
    import torch

    proc = _processor_of(entry)
    messages, images = build_messages(request)
    try:
        prompt = proc.apply_chat_template(messages, add_generation_prompt=True)
        inputs = proc(text=prompt, images=images or None, return_tensors="pt")
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ModelError(f"{entry.card.name} could not read this conversation: {exc}",
                         f"prompt built from {len(messages)} messages and {len(images)} images") from exc
    model = entry.model
    device = getattr(model, "device", None) or torch.device(entry.device)
    dtype = getattr(model, "dtype", None)
    moved = {}
    for key, value in dict(inputs).items():
        if isinstance(value, torch.Tensor):
            value = value.to(device=device, dtype=dtype) if value.is_floating_point() and dtype else value.to(device)
        moved[key] = value
    return {"inputs": moved, "prompt_tokens": int(moved["input_ids"].shape[-1]), "tokenizer": proc.tokenizer,
            "input_sizes": _input_sizes(proc, moved, images), "prompt": prompt}


def _input_sizes(proc, inputs: dict, images: list) -> tuple[Optional[tuple[int, int]], ...]:
    """(w, h) of each image as the model saw it, where the processor says so: Qwen2/2.5-VL answer
    boxes in these pixels (its `image_grid_thw` counts 14-px patches of the resized image)."""
    grid = inputs.get("image_grid_thw")
    if grid is None:
        return tuple(None for _ in images)
    patch = int(getattr(getattr(proc, "image_processor", None), "patch_size", 14) or 14)
    return tuple((int(w) * patch, int(h) * patch) for _t, h, w in grid.tolist())


# -- generation -------------------------------------------------------------------------------
def _cancel_watch(ctx: TaskContext, max_new_tokens: int):
    """A StoppingCriteria that ends generation at the next token once the job is cancelled; it also
    counts tokens and notes when the first one arrived (time to first token)."""
    import torch
    from transformers import StoppingCriteria

    class CancelWatch(StoppingCriteria):
        def __init__(self) -> None:
            self.tokens = 0
            self.first_at: Optional[float] = None

        def __call__(self, input_ids, scores, **kwargs):
            self.tokens += 1
            if self.first_at is None:
                self.first_at = time.perf_counter()
            ctx.progress(min(0.99, 0.1 + 0.9 * self.tokens / max_new_tokens), f"Answering… {self.tokens} tokens")
            return torch.full((input_ids.shape[0],), ctx.cancelled(), dtype=torch.bool, device=input_ids.device)

    return CancelWatch()


def _preview_streamer(tokenizer, ctx: TaskContext, t0: float):
    """A transformers streamer that sends the answer so far as a `ChatStream` preview, decoding the
    new tokens only when the context would send a preview (throttled), not after every token."""
    from transformers.generation.streamers import BaseStreamer

    class PreviewStreamer(BaseStreamer):
        def __init__(self) -> None:
            self.ids: list[int] = []
            self.prompt_seen = False

        def put(self, value) -> None:
            if not self.prompt_seen:  # generate's first put is the prompt
                self.prompt_seen = True
                return
            self.ids.extend(value.reshape(-1).tolist())
            if ctx.preview_due():
                self.send()

        def end(self) -> None:
            if self.ids and ctx.preview_due():
                self.send()

        def send(self) -> None:
            # A character whose bytes have not all arrived decodes as U+FFFD: hold it back.
            text = tokenizer.decode(self.ids, skip_special_tokens=True).rstrip("\ufffd")
            if text.strip():
                ctx.preview(ChatStream(text, len(self.ids), time.perf_counter() - t0))

    return PreviewStreamer()


def generate_kwargs(request: ChatRequest, model, tokenizer) -> dict[str, Any]:
    """Sampling settings for `generate`: greedy at temperature 0; otherwise temperature and top-p
    with top-k off (the UI offers no top-k, and some models ship top_k=1, which would make the
    user's temperature meaningless)."""
    kw: dict[str, Any] = {"max_new_tokens": int(request.max_new_tokens)}
    if request.sampling:
        kw.update(do_sample=True, temperature=float(request.temperature), top_p=float(request.top_p), top_k=0)
    else:
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    gen_cfg = getattr(model, "generation_config", None)
    if gen_cfg is not None and gen_cfg.pad_token_id is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is not None:
            kw["pad_token_id"] = pad
    return kw


@contextlib.contextmanager
def _seeded(seed: int, device):
    """Seed sampling without disturbing the process's own random state."""
    import torch

    devices = [device.index or 0] if getattr(device, "type", "") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def run(request: ChatRequest, ctx: TaskContext, models) -> ChatResult:
    """Engine (GPU lane): answer the last user turn, streaming the text as previews."""
    import torch
    from transformers import StoppingCriteriaList

    request.validate()
    t0 = time.perf_counter()
    entry = models.get(request.model_id, ctx)
    if entry.card.task != "vlm":
        raise BadInputError(f"{entry.card.name} is not a vision-language model; choose one made for chat.")
    ctx.check()
    ctx.progress(0.05, "Reading the image…")
    prep = prepare(request, entry)
    ctx.check()
    model, tokenizer = entry.model, prep["tokenizer"]
    watch = _cancel_watch(ctx, int(request.max_new_tokens))
    streamer = _preview_streamer(tokenizer, ctx, t0)
    kwargs = dict(prep["inputs"], streamer=streamer, stopping_criteria=StoppingCriteriaList([watch]),
                  **generate_kwargs(request, model, tokenizer))
    guard = getattr(models, "oom_guard", None)
    with (guard("answering") if guard else contextlib.nullcontext()), torch.inference_mode(), \
            _seeded(request.seed, prep["inputs"]["input_ids"].device):
        out = model.generate(**kwargs)
    if ctx.cancelled():
        raise Cancelled()
    new = out[0, prep["prompt_tokens"]:]
    text = tokenizer.decode(new.tolist(), skip_special_tokens=True).strip()
    seconds = time.perf_counter() - t0
    first = (watch.first_at - t0) if watch.first_at is not None else seconds
    finish = "length" if int(new.shape[-1]) >= int(request.max_new_tokens) else "eos"
    ctx.progress(1.0, f"{int(new.shape[-1])} tokens")
    return ChatResult(request.model_id, text, int(new.shape[-1]), prep["prompt_tokens"], seconds, first,
                      finish, prep["input_sizes"])


def register(registry) -> None:
    from studio.runtime.scheduler import GPU

    registry.register(ChatRequest, run, GPU)
