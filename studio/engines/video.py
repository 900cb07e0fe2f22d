"""The frame tape's generation engine: text- and image-to-video with AnimateDiff (a motion adapter on a
Stable Diffusion 1.5 model), and SVD, CogVideoX and LTX-Video through the same entry point, dispatched
on the card's pipeline class; plus re-rendering a range of a clip by AnimateDiff video-to-video.

AnimateDiff pipelines come from the model manager (`pipeline(base, pipeline="AnimateDiffPipeline",
motion_adapter=...)`: the base model's components are shared, nothing is loaded twice). Long clips run
in context windows that fit the memory budget (FreeNoise: overlapping windows of the motion modules
blended with pyramid weights, the spatial layers split per window); prompt keyframes travel by
interpolating text embeddings or by switching at each key; each segment may have its own noise seed.
Progress is reported per denoising step and per decoded frame, and a cancel lands within one step.
GPU lane only; torch and diffusers are imported inside functions; results are numpy arrays.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np

from studio.core.errors import BadInputError, Cancelled, ModelError
from studio.core.tape_requests import (ANIMATEDIFF, VIDEO_TASKS, RerenderRequest, TapePreview, TapeRequest,
                                       TapeResult, frozen_frames, pipeline_of, recipe, rerender_record,
                                       validate, validate_rerender)

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 16  # AnimateDiff's motion modules were trained on 16-frame clips
MIN_WINDOW = 4
# Linear map from SD 1.x latents to RGB (a preview without the VAE; see diffusers' discussions of it).
SD15_FACTORS = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))


def latent_strip(latents) -> np.ndarray:
    """(F, h, w, 3) uint8: what each frame's latents roughly look like, at latent resolution."""
    import torch

    x = latents[0].detach().to("cpu", torch.float32)  # (C, F, h, w)
    if x.shape[0] == 4:
        rgb = torch.einsum("cfhw,cr->fhwr", x, torch.tensor(SD15_FACTORS))
        rgb = (rgb + 1.0) * 0.5
    else:
        rgb = x[:3].permute(1, 2, 3, 0)
        rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min() + 1e-6)
    return np.ascontiguousarray((rgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy())


class _Steps:
    """callback_on_step_end: cancel within one step, progress per step, a throttled latent preview."""

    def __init__(self, ctx, uid: str, steps: int, span: float, label: str) -> None:
        self.ctx, self.uid, self.steps, self.span, self.label = ctx, uid, steps, span, label
        self.last_preview = 0.0

    def __call__(self, pipe, step: int, timestep, kwargs: dict) -> dict:
        if self.ctx.cancelled():
            pipe._interrupt = True
            raise Cancelled()
        total = int(getattr(pipe, "_num_timesteps", 0) or self.steps)
        done = step + 1
        text = f"Step {done}/{total} · {self.label}"
        self.ctx.progress(self.span * done / total, text)
        now = time.monotonic()
        if done < total and now - self.last_preview >= 0.1 and "latents" in kwargs:
            self.last_preview = now
            self.ctx.preview(TapePreview(self.uid, done, total, latent_strip(kwargs["latents"]), text))
        return kwargs


# -- AnimateDiff ---------------------------------------------------------------------------------
def motion_view(models, ctx, model_id: str, base_id: str):
    """The manager's AnimateDiff view of the base model with the motion adapter (LoadedModel)."""
    card = models.catalog.get(model_id)
    base_id = base_id or str(card.options.get("base", ""))
    if not base_id:
        raise BadInputError(f"{card.name} is a motion adapter: choose the image model it animates "
                            "(a Stable Diffusion 1.5 model).")
    base_card = models.catalog.get(base_id)
    if base_card.task != "diffusion":
        raise BadInputError(f"{base_card.name} is not an image-generation model: choose an SD 1.5 model.")
    base = models.get(base_id, ctx)
    if getattr(base.model, "text_encoder_2", None) is not None or not hasattr(base.model, "unet"):
        raise BadInputError(f"{card.name} animates Stable Diffusion 1.5 models; {base_card.name} is not one.")
    models.get(model_id, ctx)
    view = models.pipeline(base_id, ctx, pipeline=ANIMATEDIFF, motion_adapter=model_id)
    _motion_lora(view.model, card, models)
    return view


MOTION_LORA = "pytorch_lora_weights.safetensors"  # a LoRA shipped inside a motion adapter's folder
MOTION_LORA_NAME = "motion-text"


def load_motion_lora(pipe, folder: Path) -> bool:
    """Apply the LoRA a motion adapter's folder ships with it (the starter adapter's cross-attention
    LoRA, like AnimateDiff v3's domain adapter) to an AnimateDiff pipeline's UNet, once. False: the
    folder has none. Needs diffusers' PEFT backend (the peft package)."""
    if not folder.is_dir() or not (folder / MOTION_LORA).is_file():
        return False
    if MOTION_LORA_NAME in (pipe.get_list_adapters().get("unet") or []):
        return True
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity_error()  # "no LoRA keys for the text encoder": by design, not news
    try:
        pipe.load_lora_weights(str(folder), weight_name=MOTION_LORA, adapter_name=MOTION_LORA_NAME)
    finally:
        dlog.set_verbosity(level)
    return True


def _motion_lora(pipe, card, models) -> None:
    """`load_motion_lora` on the manager's AnimateDiff view (kept, so this runs once per view), with
    clear messages when peft is missing or the file does not fit."""
    from studio.catalog import store

    folder = store.local_path(card, models.assets)
    if folder is None or not (folder / MOTION_LORA).is_file():
        return
    from diffusers.utils import USE_PEFT_BACKEND

    if not USE_PEFT_BACKEND:
        raise ModelError(f"{card.name} comes with a LoRA, which needs the peft package: install it "
                         "(pip install peft) and restart the studio.")
    try:
        load_motion_lora(pipe, folder)
    except Exception as exc:
        raise ModelError(f"The LoRA of {card.name} cannot be applied: {str(exc).splitlines()[0]}") from exc


def fit_window(models, view, ctx, frames: int, width: int, height: int, wanted: int = 0) -> int:
    """Frames the model sees at once: the adapter's training length (or `wanted`), halved until a window
    of that many frames fits the memory budget (the manager's preflight), at least MIN_WINDOW."""
    max_seq = int(getattr(view.model.motion_adapter.config, "motion_max_seq_length", 32) or 32)
    window = min(frames, wanted or min(DEFAULT_WINDOW, max_seq))
    while True:
        try:
            models.preflight(view.key, ctx, width=width, height=height, frames=window)
            return window
        except ModelError:
            if window <= MIN_WINDOW:
                raise
            window = max(MIN_WINDOW, window // 2)
            log.info("context window lowered to %d frames to fit the memory budget", window)


def _switch(start: int, end: int, a, b):
    """Prompt travel by segments: frames before a key keep the previous prompt exactly. (diffusers calls
    the callback as a plain attribute: no pipeline argument.)"""
    out = a.repeat(end - start + 1, *([1] * (a.dim() - 1)))
    out[-1:] = b
    return out


def _motion_blocks(pipe) -> list:
    unet = pipe.unet
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    return [b for b in blocks if b is not None]


def _unwrap_split(pipe) -> None:
    """Undo enable_free_noise_split_inference (diffusers has no switch for it): the view is shared, and
    a wrapped block would break the next job's FreeNoise setup."""
    from diffusers.pipelines.free_noise_utils import SplitInferenceModule

    def bare(m):
        return m.module if isinstance(m, SplitInferenceModule) else m

    for block in _motion_blocks(pipe):
        for mm in getattr(block, "motion_modules", None) or []:
            mm.proj_in, mm.proj_out = bare(mm.proj_in), bare(mm.proj_out)
            for i in range(len(mm.transformer_blocks)):
                mm.transformer_blocks[i] = bare(mm.transformer_blocks[i])
        for name in ("attentions", "resnets", "downsamplers", "upsamplers"):
            mods = getattr(block, name, None)
            if mods is not None:
                for i in range(len(mods)):
                    mods[i] = bare(mods[i])


@contextlib.contextmanager
def context_windows(pipe, window: int, frames: int, travel: str, keyed: bool):
    """FreeNoise for this job only: windows of `window` frames overlapping by 3/4 when the clip is longer
    (spatial layers split per window too), and prompt travel when there are prompt keys."""
    longer = window < frames
    if not (longer or keyed):
        yield False
        return
    callback = _switch if travel == "segments" else None
    pipe.enable_free_noise(context_length=min(window, frames), context_stride=max(1, window // 4),
                           weighting_scheme="pyramid", noise_type="random", prompt_interpolation_callback=callback)
    if longer:
        pipe.enable_free_noise_split_inference(spatial_split_size=256, temporal_split_size=window)
    try:
        yield True
    finally:
        if longer:
            _unwrap_split(pipe)
        pipe._free_noise_context_length = None
        for block in _motion_blocks(pipe):
            if getattr(block, "motion_modules", None) is not None:
                pipe._disable_free_noise_in_block(block)


def segment_noise(req: TapeRequest, shape: tuple[int, ...], dtype):
    """Initial noise (1, C, F, h, w): frames of a segment whose key has a seed use that seed's noise,
    the others the clip's seed, so re-rolling one segment leaves the rest of the noise alone."""
    import torch

    keys = req.prompt_keys()
    bounds = [k.frame for k in keys] + [req.frames]
    seeds = np.full(req.frames, req.seed, np.int64)
    for k, end in zip(keys, bounds[1:]):
        if k.seed is not None:
            seeds[k.frame:end] = k.seed
    out = torch.empty(shape, dtype=torch.float32)
    for s in np.unique(seeds):
        noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s)), dtype=torch.float32)
        idx = torch.from_numpy(np.nonzero(seeds == s)[0])
        out[:, :, idx] = noise[:, :, idx]
    return out.to(dtype)


def _pil(arr: np.ndarray, size: tuple[int, int]):
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(arr[..., :3]))
    return img if img.size == size else img.resize(size, Image.LANCZOS)


def keyframe_video(req: TapeRequest) -> list:
    """The starting video of an image-keyed AnimateDiff clip: the first image fading into the last."""
    size = (req.width, req.height)
    first = req.first_image.rgb() if req.first_image is not None else None
    last = req.last_image.rgb() if req.last_image is not None else None
    a = np.asarray(_pil(first if first is not None else last, size), np.float32)
    b = np.asarray(_pil(last if last is not None else first, size), np.float32)
    out = []
    for i in range(req.frames):
        t = i / max(1, req.frames - 1)
        out.append(_pil(np.clip(a * (1 - t) + b * t + 0.5, 0, 255).astype(np.uint8), size))
    return out


def decode(pipe, latents, ctx, start: float, chunk: int) -> list[np.ndarray]:
    """Latents -> uint8 frames, `chunk` frames at a time, with progress per frame and a cancel check."""
    import torch

    n = latents.shape[2]
    out: list[np.ndarray] = []
    for i in range(0, n, chunk):
        ctx.check()
        with torch.inference_mode():
            video = pipe.decode_latents(latents[:, :, i:i + chunk], chunk)
            arr = pipe.video_processor.postprocess_video(video=video, output_type="np")[0]
        out += [np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8) for f in np.asarray(arr)]
        done = min(n, i + chunk)
        ctx.progress(start + (1.0 - start) * done / n, f"Decoding frame {done}/{n}")
    return out


def _prompt_arg(keys, keyed: bool):
    return {k.frame: k.prompt for k in keys} if keyed else keys[0].prompt


def _animatediff(req: TapeRequest, ctx, models, card) -> tuple[list[np.ndarray], int, str]:
    import torch

    view = motion_view(models, ctx, req.model_id, req.base_id)
    pipe = view.model
    window = fit_window(models, view, ctx, req.frames, req.width, req.height, req.window)
    keys = req.prompt_keys()
    keyed = len(keys) > 1
    label = f"{req.frames} frames" + (f" in windows of {window}" if window < req.frames else "")
    steps = _Steps(ctx, req.uid, req.steps, 0.85, label)
    common = dict(prompt=_prompt_arg(keys, keyed), negative_prompt=req.negative_prompt or None,
                  height=req.height, width=req.width, num_inference_steps=req.steps, guidance_scale=req.cfg_scale,
                  output_type="latent", callback_on_step_end=steps, callback_on_step_end_tensor_inputs=["latents"],
                  decode_chunk_size=min(window, 8))
    ctx.check()
    try:
        with context_windows(pipe, window, req.frames, req.travel, keyed), torch.inference_mode(), \
                models.oom_guard("generating the clip"):
            if req.first_image is not None or req.last_image is not None:
                v2v = video_to_video(pipe)
                out = v2v(video=keyframe_video(req), strength=req.image_strength,
                          generator=torch.Generator("cpu").manual_seed(req.seed), **common)
                runner = v2v
            else:
                scale = pipe.vae_scale_factor
                shape = (1, pipe.unet.config.in_channels, req.frames, req.height // scale, req.width // scale)
                out = pipe(num_frames=req.frames, latents=segment_noise(req, shape, pipe.unet.dtype), **common)
                runner = pipe
            frames = decode(runner, out.frames, ctx, 0.85, min(window, 8))
    finally:
        pipe._interrupt = False
    return frames, window, f"{card.name} on {models.catalog.get(view.requires[0]).name}"


def video_to_video(pipe):
    """An AnimateDiff video-to-video view sharing every component (UNet with motion modules included)."""
    import diffusers

    v2v = diffusers.AnimateDiffVideoToVideoPipeline.from_pipe(pipe)
    v2v.set_progress_bar_config(disable=True)
    if getattr(pipe, "_free_noise_context_length", None) is not None:
        for name in ("_free_noise_context_length", "_free_noise_context_stride", "_free_noise_weighting_scheme",
                     "_free_noise_noise_type", "_free_noise_prompt_interpolation_callback"):
            setattr(v2v, name, getattr(pipe, name))
    return v2v


# -- engines -------------------------------------------------------------------------------------
def run(req: TapeRequest, ctx, models) -> TapeResult:
    """Engine: generate a clip with the card's pipeline."""
    t0 = time.perf_counter()
    if not req.model_id:
        raise BadInputError("Choose a video or motion model first.")
    card = models.catalog.get(req.model_id)
    if card.task not in VIDEO_TASKS:
        raise BadInputError(f"{card.name} is not a video or motion model.")
    cls = pipeline_of(card)
    validate(req, cls)
    if cls == ANIMATEDIFF:
        frames, window, name = _animatediff(req, ctx, models, card)
    else:
        from studio.engines.video_models import generate

        frames, window, name = generate(req, ctx, models, card, cls)
    frozen = frozen_frames(frames)
    rec = recipe(req, name, window)
    saved = save_frames(req.output_dir, frozen, req.fps, rec) if req.output_dir else ""
    ctx.progress(1.0, "Done")
    return TapeResult(req.uid, frozen, req.fps, rec, time.perf_counter() - t0, name, window_frames=window,
                      saved_to=saved)


def save_frames(folder: str, frames, fps: float, rec: dict) -> str:
    """Keep the clip in the library as PNG frames + recipe.json (written atomically, file by file)."""
    from studio.core.tape_requests import ExportClipRequest
    from studio.media.video import write_clip

    try:
        write_clip(ExportClipRequest(frames, folder, "png", float(fps), rec))
    except (OSError, BadInputError) as exc:  # the clip still reaches the tape; the log says why it is not kept
        log.error("could not keep the clip in %s: %s", folder, exc)
        return ""
    return str(Path(folder))


def run_rerender(req: RerenderRequest, ctx, models) -> TapeResult:
    """Engine: video-to-video on a window around start..end; only the selected frames come back."""
    import torch

    t0 = time.perf_counter()
    validate_rerender(req)
    card = models.catalog.get(req.model_id)
    if pipeline_of(card) != ANIMATEDIFF:
        raise BadInputError(f"Re-rendering a range needs an AnimateDiff motion model; {card.name} is not one.")
    lo, hi = req.span
    h, w = req.clip[0].shape[:2]
    # The model needs sides in multiples of 8: work at the nearest such size, come back to the clip's.
    ww, wh = max(16, round(w / 8) * 8), max(16, round(h / 8) * 8)
    view = motion_view(models, ctx, req.model_id, req.base_id)
    pipe = view.model
    n = hi - lo
    window = fit_window(models, view, ctx, n, ww, wh, req.window)
    v2v = None
    try:
        with context_windows(pipe, window, n, "interpolate", False), torch.inference_mode(), \
                models.oom_guard("re-rendering the range"):
            v2v = video_to_video(pipe)
            steps = _Steps(ctx, req.uid, req.steps, 0.85, f"frames {req.start + 1}–{req.end + 1} (+{req.context} context)")
            out = v2v(video=[_pil(f, (ww, wh)) for f in req.clip[lo:hi]], prompt=req.prompt,
                      negative_prompt=req.negative_prompt or None, height=wh, width=ww, strength=req.strength,
                      num_inference_steps=req.steps, guidance_scale=req.cfg_scale,
                      generator=torch.Generator("cpu").manual_seed(req.seed), output_type="latent",
                      callback_on_step_end=steps, callback_on_step_end_tensor_inputs=["latents"],
                      decode_chunk_size=min(window, 8))
            latents = out.frames[:, :, req.start - lo:req.end - lo + 1]
            frames = decode(v2v, latents, ctx, 0.85, min(window, 8))
    finally:
        pipe._interrupt = False
        if v2v is not None:
            v2v._interrupt = False
    if (ww, wh) != (w, h):
        frames = [np.asarray(_pil(f, (w, h))) for f in frames]
    ctx.progress(1.0, "Done")
    return TapeResult(req.uid, frozen_frames(frames), 0, rerender_record(req), time.perf_counter() - t0,
                      card.name, start=req.start, window=(lo, hi), window_frames=window)


def register(registry) -> None:
    from studio.core.tape_requests import (ClipConsistencyRequest, ConsistencyRequest, InbetweenRequest,
                                           RerenderRequest, TapeRequest)
    from studio.engines import flow
    from studio.media import video as media_video
    from studio.runtime.scheduler import CPU, GPU

    registry.register(TapeRequest, run, GPU)
    registry.register(RerenderRequest, run_rerender, GPU)
    registry.register(ClipConsistencyRequest, flow.run_clip_consistency, GPU)
    registry.register(InbetweenRequest, flow.run_inbetween, CPU)
    registry.register(ConsistencyRequest, flow.run_consistency, CPU)
    media_video.register(registry)
