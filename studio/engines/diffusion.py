"""The paint engine: txt2img, img2img, inpaint and outpaint with Stable Diffusion 1.x/2.x and SDXL
pipelines, any number of ControlNets, LoRA files, live previews and cancellation within one step.

Pipelines come from the model manager: the base model once, every other pipeline class built from it
with `from_pipe` (components shared, nothing loaded twice). Each job goes through the manager's
preflight; out-of-memory becomes a PaintMemoryError the panel offers to retry with CPU offload and a
tiled VAE. Every image is written to the library (PNG + metadata + gallery row) as soon as it exists.
GPU lane only; torch and diffusers are imported inside functions.
"""
from __future__ import annotations

import contextlib
import logging
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import BadInputError, Cancelled, ModelError
from studio.core.paint_requests import (SCHEDULERS, PaintMemoryError, PaintPreview, PaintRequest, PaintResult,
                                        output_size, validate)

log = logging.getLogger(__name__)

# (family, mode, with ControlNet) -> diffusers pipeline class; outpaint runs as inpaint.
PIPELINES = {
    ("sd", "txt2img", False): "StableDiffusionPipeline",
    ("sd", "img2img", False): "StableDiffusionImg2ImgPipeline",
    ("sd", "inpaint", False): "StableDiffusionInpaintPipeline",
    ("sd", "txt2img", True): "StableDiffusionControlNetPipeline",
    ("sd", "img2img", True): "StableDiffusionControlNetImg2ImgPipeline",
    ("sd", "inpaint", True): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl", "txt2img", False): "StableDiffusionXLPipeline",
    ("sdxl", "img2img", False): "StableDiffusionXLImg2ImgPipeline",
    ("sdxl", "inpaint", False): "StableDiffusionXLInpaintPipeline",
    ("sdxl", "txt2img", True): "StableDiffusionXLControlNetPipeline",
    ("sdxl", "img2img", True): "StableDiffusionXLControlNetImg2ImgPipeline",
    ("sdxl", "inpaint", True): "StableDiffusionXLControlNetInpaintPipeline",
}
OUTPAINT_OVERLAP = 8  # pixels of the old image repainted along each extended side, to hide the seam


def family_of(pipe) -> str:
    return "sdxl" if "XL" in type(pipe).__name__ or getattr(pipe, "text_encoder_2", None) is not None else "sd"


def pipeline_class(family: str, mode: str, control: bool) -> str:
    return PIPELINES[(family, "inpaint" if mode == "outpaint" else mode, control)]


def make_scheduler(name: str, base_scheduler):
    """A fresh scheduler of sampler `name`, from the model's own scheduler config plus the sampler's flags."""
    import diffusers

    cls_name, flags = SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)
    return cls.from_config(base_scheduler.config, **flags)


# -- inputs --------------------------------------------------------------------------------------
def _resize(arr: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    from PIL import Image

    if (arr.shape[1], arr.shape[0]) == size:
        return arr
    return np.asarray(Image.fromarray(arr).resize(size, Image.NEAREST if nearest else Image.LANCZOS)).copy()


def _blur(mask: np.ndarray, radius: int) -> np.ndarray:
    from studio.state.paint_state import blur

    return blur(mask, radius) if radius > 0 else mask


def prepare_inputs(req: PaintRequest) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(init RGB, mask) at the output size; outpaint extends the image (edge pixels) and masks the new
    area plus a thin overlap so the seam is repainted."""
    size = output_size(req)
    if req.init_image is None or req.mode == "txt2img":
        return None, None
    rgb = req.init_image.rgb()
    if req.mode == "outpaint":
        left, top, right, bottom = req.outpaint
        w, h = size
        extra_r, extra_b = w - rgb.shape[1] - left, h - rgb.shape[0] - top
        init = np.pad(rgb, ((top, extra_b), (left, extra_r), (0, 0)), mode="edge")
        mask = np.full((h, w), 255, np.uint8)
        ov = OUTPAINT_OVERLAP
        y0, x0 = top + (ov if top else 0), left + (ov if left else 0)
        y1 = top + rgb.shape[0] - (ov if extra_b > 0 else 0)
        x1 = left + rgb.shape[1] - (ov if extra_r > 0 else 0)
        mask[y0:y1, x0:x1] = 0
        return init, mask
    init = _resize(rgb, size)
    mask = None
    if req.mode == "inpaint":
        mask = _resize(np.where(req.mask > 127, 255, 0).astype(np.uint8), size, nearest=True)
    return init, mask


def control_images(req: PaintRequest, init: np.ndarray | None, mask: np.ndarray | None, ctx, models) -> list:
    """Each unit's preprocessed control image at the output size (PIL), or a tensor for inpaint units."""
    from PIL import Image

    from studio.engines import preprocessors

    size = output_size(req)
    out = []
    for unit in req.controls:
        ctx.check()
        if unit.preprocessor == "inpaint":
            import torch

            arr = init.astype(np.float32) / 255.0
            arr[mask > 127] = -1.0  # the inpaint ControlNet reads masked pixels as -1
            out.append(torch.from_numpy(arr.transpose(2, 0, 1).copy())[None])
            continue
        rgb = preprocessors.apply(unit.preprocessor, unit.image.rgb(), ctx, models)
        out.append(Image.fromarray(_resize(rgb, size)))
    return out


# -- pipelines -----------------------------------------------------------------------------------
def _pipeline(models, req: PaintRequest, base, cls_name: str, ctx):
    """The pipeline for this job, sharing every component with the base model."""
    ids = [u.model_id for u in req.controls]
    for cid in ids:
        card = models.catalog.get(cid)
        if card.task != "controlnet":
            raise BadInputError(f"{card.name} is not a ControlNet model.")
    if not ids:
        if type(base.model).__name__ == cls_name:
            return base.model
        return models.pipeline(req.model_id, ctx, pipeline=cls_name).model
    if len(ids) == 1:
        return models.pipeline(req.model_id, ctx, pipeline=cls_name, controlnet=ids[0]).model
    import diffusers

    nets = [models.get(cid, ctx).model for cid in ids]
    try:
        # Several ControlNets: a MultiControlNet view, built per job (it is only a wrapper).
        return getattr(diffusers, cls_name).from_pipe(base.model, controlnet=nets, dtype=base.model.unet.dtype)
    except Exception as exc:
        raise ModelError(f"{base.card.name} cannot run these ControlNets together: {exc}",
                         traceback.format_exc()) from exc


@contextlib.contextmanager
def _loras(pipe, req: PaintRequest, card_name: str):
    """Load the request's LoRA files for this job only: the UNet is shared by every view of the model."""
    if not req.loras:
        yield
        return
    from diffusers.utils import USE_PEFT_BACKEND

    if not USE_PEFT_BACKEND:
        raise ModelError("LoRA files need the peft package: install it (pip install peft) and restart the studio.")
    names = []
    try:
        for i, lora in enumerate(req.loras):
            path = Path(lora.path)
            if not path.is_file():
                raise BadInputError(f"The LoRA file “{path.name}” does not exist any more ({path}).")
            name = f"studio_lora_{i}"
            try:
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
            except Exception as exc:
                raise ModelError(f"“{path.name}” cannot be applied to {card_name}: {str(exc).splitlines()[0]}",
                                 traceback.format_exc()) from exc
            names.append(name)
        pipe.set_adapters(names, adapter_weights=[lo.weight for lo in req.loras])
        yield
    finally:
        if names:
            pipe.unload_lora_weights()


@contextlib.contextmanager
def _low_memory(pipe, base, models, enabled: bool):
    if not enabled:
        yield
        return
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    if models.device != "cpu" and base.placement != "offload" and hasattr(base.model, "enable_model_cpu_offload"):
        log.info("%s: CPU offload for a low-memory retry", base.card.id)
        base.model.enable_model_cpu_offload(device=models.device)
        base.placement = "offload"
    try:
        yield
    finally:
        if vae is not None and hasattr(vae, "disable_tiling"):
            vae.disable_tiling()


# -- the engine ----------------------------------------------------------------------------------
def call_kwargs(req: PaintRequest, init, mask, controls: list, family: str) -> dict[str, Any]:
    """The pipeline arguments for this request (minus generator and callback); shared with the benchmark."""
    from PIL import Image

    w, h = output_size(req)
    kw: dict[str, Any] = {"prompt": req.prompt, "negative_prompt": req.negative_prompt or None,
                          "num_inference_steps": req.steps, "guidance_scale": req.cfg_scale, "output_type": "pil"}
    mode = "inpaint" if req.mode == "outpaint" else req.mode
    if mode in ("txt2img", "inpaint"):
        kw.update(height=h, width=w)
    if mode in ("img2img", "inpaint"):
        kw["image"] = Image.fromarray(init)
        kw["strength"] = 1.0 if req.mode == "outpaint" else req.strength
    if mode == "inpaint":
        kw["mask_image"] = Image.fromarray(_blur(mask, req.mask_blur))
        inpaint_unit = any(u.preprocessor == "inpaint" for u in req.controls)
        if req.mode == "inpaint" and req.only_masked and not inpaint_unit:
            kw["padding_mask_crop"] = req.masked_padding
    if controls:
        key = "image" if mode == "txt2img" else "control_image"
        many = len(controls) > 1
        kw[key] = controls if many else controls[0]
        kw["controlnet_conditioning_scale"] = [u.weight for u in req.controls] if many else req.controls[0].weight
        kw["control_guidance_start"] = [u.start for u in req.controls] if many else req.controls[0].start
        kw["control_guidance_end"] = [u.end for u in req.controls] if many else req.controls[0].end
    return kw


class _Steps:
    """callback_on_step_end: cancel within one step, progress, and a throttled latent preview."""

    def __init__(self, req: PaintRequest, ctx, family: str, scale: int, index: int) -> None:
        self.req, self.ctx, self.family, self.scale, self.index = req, ctx, family, scale, index
        self.last_preview = 0.0
        self.previews = 0

    def __call__(self, pipe, step: int, timestep, kwargs: dict) -> dict:
        if self.ctx.cancelled():
            pipe._interrupt = True
            raise Cancelled()
        total = int(getattr(pipe, "_num_timesteps", 0) or self.req.steps)
        done = step + 1
        n = self.req.batch_count
        self.ctx.progress((self.index + done / total) / n,
                          f"Image {self.index + 1}/{n}: step {done}/{total}" if n > 1 else f"Step {done}/{total}")
        every = int(self.req.preview_every)
        now = time.monotonic()
        if every > 0 and done < total and done % every == 0 and now - self.last_preview >= 0.1 and "latents" in kwargs:
            from studio.engines.diffusion_output import latent_preview

            self.last_preview = now
            self.previews += 1
            self.ctx.preview(PaintPreview(self.req.uid, self.index, done, total,
                                          latent_preview(kwargs["latents"], self.family, self.scale)))
        return kwargs


def composite(original: np.ndarray, generated: np.ndarray, mask: np.ndarray, blur_px: int) -> np.ndarray:
    """Keep the original outside the (blurred) mask exactly, as A1111 does after inpainting."""
    m = _blur(mask, blur_px).astype(np.float32)[..., None] / 255.0
    out = original.astype(np.float32) * (1.0 - m) + generated.astype(np.float32) * m
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def run(req: PaintRequest, ctx, models) -> PaintResult:
    """Engine: generate `req.batch_count` images, writing each to the library as it is made."""
    import torch

    from studio.engines.diffusion_output import ResultWriter

    t0 = time.perf_counter()
    validate(req)
    base = models.get(req.model_id, ctx)
    if base.card.task not in ("diffusion", "inpaint") or not hasattr(base.model, "unet"):
        raise BadInputError(f"{base.card.name} is not an image-generation model: choose a diffusion model.")
    family = family_of(base.model)
    if base.model.unet.config.in_channels == 9 and req.mode not in ("inpaint", "outpaint"):
        raise BadInputError(f"{base.card.name} is an inpainting model: use the Inpaint or Outpaint mode.")
    w, h = output_size(req)
    try:
        models.preflight(req.model_id, ctx, width=w, height=h)
    except ModelError as exc:
        if not req.low_memory:
            raise PaintMemoryError(exc.user_message + " Or press “Retry with less memory” (CPU offload and "
                                   "a tiled VAE).", exc.detail) from None
        log.warning("low-memory retry goes ahead despite the preflight: %s", exc.user_message)
    ctx.check()
    init, mask = prepare_inputs(req)
    nets = [models.get(u.model_id, ctx) for u in req.controls]
    controls = control_images(req, init, mask, ctx, models)
    pipe = _pipeline(models, req, base, pipeline_class(family, req.mode, bool(req.controls)), ctx)
    writer = ResultWriter(req, models, base, nets)
    scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    original_scheduler = pipe.scheduler
    images, seeds = [], []
    try:
        with _loras(pipe, req, base.card.name), _low_memory(pipe, base, models, req.low_memory):
            for index in range(req.batch_count):
                ctx.check()
                seed = (req.seed + index) % 2**32
                pipe.scheduler = make_scheduler(req.scheduler, original_scheduler)
                kw = call_kwargs(req, init, mask, controls, family)
                kw["generator"] = torch.Generator("cpu").manual_seed(seed)
                kw["callback_on_step_end"] = _Steps(req, ctx, family, scale, index)
                kw["callback_on_step_end_tensor_inputs"] = ["latents"]
                try:
                    with models.oom_guard("generating the image"), torch.inference_mode():
                        out = pipe(**kw).images[0]
                except ModelError as exc:
                    if exc.user_message.startswith("Out of memory") and not req.low_memory:
                        raise PaintMemoryError(exc.user_message + " Or press “Retry with less memory”.",
                                               exc.detail) from None
                    raise
                pixels = np.asarray(out.convert("RGB"), dtype=np.uint8).copy()
                if mask is not None:
                    pixels = composite(init, pixels, mask, req.mask_blur)
                images.append(writer.write(pixels, seed, index))
                seeds.append(seed)
    finally:
        pipe.scheduler = original_scheduler
        if hasattr(pipe, "_interrupt"):
            pipe._interrupt = False
    ctx.progress(1.0, "Done")
    return PaintResult(req.uid, tuple(images), tuple(seeds), tuple(i.source for i in images),
                       time.perf_counter() - t0, base.card.name, prompt_notes(pipe, req))


def prompt_notes(pipe, req: PaintRequest) -> tuple[str, ...]:
    """Say when a prompt is longer than the text encoder reads (CLIP: 77 tokens): the pipeline cuts
    it silently, and a user who pasted a page should know that most of it was ignored."""
    tok = getattr(pipe, "tokenizer", None)
    limit = int(getattr(tok, "model_max_length", 0) or 0)
    if tok is None or not 0 < limit < 100_000:
        return ()
    notes = []
    for what, text in (("prompt", req.prompt), ("negative prompt", req.negative_prompt)):
        if not text or len(text) < limit:  # a token is at least one character
            continue
        try:
            count = len(tok(text, truncation=False, verbose=False).input_ids)
        except Exception:  # a tokenizer that cannot count is no reason to fail a finished job
            log.debug("could not count the tokens of the %s", what, exc_info=True)
            continue
        if count > limit:
            notes.append(f"the {what} is {count} tokens long; the model reads the first {limit}, "
                         "the rest was ignored")
    return tuple(notes)


def register(registry) -> None:
    from studio.core.paint_requests import PaintRequest, PreprocessRequest
    from studio.engines import preprocessors
    from studio.media.gallery import ReindexRequest, ThumbnailRequest, run_reindex, run_thumbnails
    from studio.media.journal import SaveWorkspaceRequest, run_save_workspace
    from studio.runtime.scheduler import CPU, GPU

    registry.register(PaintRequest, run, GPU)
    registry.register(PreprocessRequest, preprocessors.run, GPU)
    registry.register(ThumbnailRequest, run_thumbnails, CPU)
    registry.register(ReindexRequest, run_reindex, CPU)
    registry.register(SaveWorkspaceRequest, run_save_workspace, CPU)
