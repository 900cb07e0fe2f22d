"""The paint engine on a tiny random SD pipeline loaded by the real model manager: determinism, the
PNG and its metadata (A1111 text + recipe that regenerates the same pixels), previews, cancel within
one step, img2img/inpaint/outpaint, ControlNets (one and several), samplers, and clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from studio.catalog.cards import Catalog, load_catalog
from studio.catalog.requests import ModelPolicy
from studio.core.context import TaskContext
from studio.core.errors import BadInputError, Cancelled, ModelError
from studio.core.image import StudioImage
from studio.core.paint_requests import (SCHEDULERS, ControlUnit, LoraSpec, PaintMemoryError, PaintRequest,
                                        PreprocessRequest, render_pose, standing_person)
from studio.core.paths import assets_dir
from studio.engines import diffusion, preprocessors
from studio.engines.manager import ModelManager
from studio.media.gallery import Gallery
from studio.media.metadata import parse_parameters, parse_recipe, read_png_text, request_from_recipe
from tests.helpers import tiny_models
from tests.helpers.tiny_models import card


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return tiny_models.zoo(tmp_path_factory)


@pytest.fixture(scope="module")
def models(zoo):
    cards = [card("sd", "diffusers", "diffusion", zoo.path("sd")),
             card("cn-a", "diffusers", "controlnet", zoo.path("controlnet")),
             card("cn-b", "diffusers", "controlnet", zoo.path("controlnet"))]
    return ModelManager(Catalog(cards), policy=ModelPolicy(device="cpu"))


@pytest.fixture
def photo():
    rng = np.random.default_rng(1)
    px = np.zeros((32, 32, 3), np.uint8)
    px[8:24, 8:24] = (220, 40, 40)
    return StudioImage(np.clip(px.astype(int) + rng.integers(0, 30, px.shape), 0, 255).astype(np.uint8))


def req(**kw) -> PaintRequest:
    base = dict(prompt="a red cube", model_id="sd", steps=3, width=32, height=32, seed=7, cfg_scale=5.0,
                uid="test")
    base.update(kw)
    return PaintRequest(**base)


def pixels(result, i=0):
    return result.images[i].pixels


def test_txt2img_is_deterministic_and_its_png_metadata_regenerates_it(models, tmp_path):
    library, db = tmp_path / "library", tmp_path / "gallery.sqlite"
    r = req(prompt="a red cube,\nstudio light: soft", negative_prompt="blurry", output_dir=str(library),
            gallery=str(db), batch_count=2, scheduler="DPM++ 2M Karras")
    first = diffusion.run(r, TaskContext(), models)
    assert first.seeds == (7, 8) and len(first.paths) == 2
    assert not np.array_equal(pixels(first), pixels(first, 1))  # seed, seed + 1

    text = read_png_text(first.paths[0])
    params = parse_parameters(text["parameters"])
    assert params.prompt == "a red cube,\nstudio light: soft" and params.negative_prompt == "blurry"
    assert params.settings["Steps"] == "3" and params.settings["Sampler"] == "DPM++ 2M Karras"
    assert params.settings["Seed"] == "7" and params.settings["Size"] == "32x32"
    assert params.settings["Model"] == "sd" and len(params.settings["Model hash"]) == 10
    recipe = parse_recipe(text["studio"])
    assert recipe["model"]["id"] == "sd" and all(len(h) == 64 for h in recipe["model"]["hashes"].values())
    regen = diffusion.run(request_from_recipe(parse_recipe(read_png_text(first.paths[1])["studio"]), library),
                          TaskContext(), models)
    assert regen.seeds == (8,) and np.array_equal(pixels(regen), pixels(first, 1))

    entries = Gallery(db, library).search("cube")
    assert {e.path for e in entries} == set(first.paths) and entries[0].model_id == "sd"


def test_previews_progress_and_cancel_within_one_step(models):
    previews, progress = [], []
    ctx = TaskContext(on_progress=lambda f, t: progress.append(t), on_preview=previews.append, min_interval=0)
    diffusion.run(req(steps=4, preview_every=1), ctx, models)
    assert previews and previews[0].pixels.shape == (32, 32, 3) and previews[0].pixels.dtype == np.uint8
    assert progress[-1] == "Done" and "Step 1/4" in progress

    unet = models.get("sd").model.unet
    calls = []
    hook = unet.register_forward_hook(lambda *a: calls.append(1))
    ctx = TaskContext(min_interval=0)
    ctx._on_progress = lambda f, t: ctx.token.cancel() if t == "Step 2/30" else None
    try:
        with pytest.raises(Cancelled):
            diffusion.run(req(steps=30), ctx, models)
    finally:
        hook.remove()
    assert len(calls) <= 3  # cancelled during step 2: step 3 is the last one that runs
    # The shared pipeline is left usable.
    assert diffusion.run(req(steps=1), TaskContext(), models).images


def test_img2img_inpaint_and_outpaint(models, photo):
    out = diffusion.run(req(mode="img2img", init_image=photo, strength=0.5), TaskContext(), models)
    assert pixels(out).shape == (32, 32, 3)

    mask = np.zeros((32, 32), np.uint8)
    mask[:, :16] = 255
    out = diffusion.run(req(mode="inpaint", init_image=photo, mask=mask, mask_blur=0, strength=1.0),
                        TaskContext(), models)
    assert np.array_equal(pixels(out)[:, 16:], photo.pixels[:, 16:])  # untouched outside the mask
    assert not np.array_equal(pixels(out)[:, :16], photo.pixels[:, :16])
    only = diffusion.run(req(mode="inpaint", init_image=photo, mask=mask, mask_blur=2, only_masked=True,
                             masked_padding=4), TaskContext(), models)
    assert np.array_equal(pixels(only)[:, 24:], photo.pixels[:, 24:])

    out = diffusion.run(req(mode="outpaint", init_image=photo, outpaint=(8, 0, 8, 0), mask_blur=0), TaskContext(),
                        models)
    assert pixels(out).shape == (32, 48, 3)
    inner = slice(8 + diffusion.OUTPAINT_OVERLAP, 40 - diffusion.OUTPAINT_OVERLAP)
    assert np.array_equal(pixels(out)[:, inner], photo.pixels[:, inner.start - 8:inner.stop - 8])


def test_one_and_several_controlnets(models, photo):
    pose = StudioImage(render_pose((standing_person(),), 32, 32))
    one = diffusion.run(req(controls=(ControlUnit("edges", "cn-a", photo, "canny", 1.0, 0.0, 1.0),)),
                        TaskContext(), models)
    two = diffusion.run(req(controls=(ControlUnit("edges", "cn-a", photo, "canny", 0.8, 0.0, 0.6),
                                      ControlUnit("pose", "cn-b", pose, "none", 1.0, 0.2, 1.0))),
                        TaskContext(), models)
    assert pixels(one).shape == pixels(two).shape == (32, 32, 3)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:20, 4:20] = 255
    inp = diffusion.run(req(mode="inpaint", init_image=photo, mask=mask, mask_blur=0,
                            controls=(ControlUnit("inpaint", "cn-a", None, "inpaint"),)), TaskContext(), models)
    assert np.array_equal(pixels(inp)[24:], photo.pixels[24:])
    with pytest.raises(BadInputError, match="not a ControlNet"):
        diffusion.run(req(controls=(ControlUnit("edges", "sd", photo, "canny"),)), TaskContext(), models)


def test_every_sampler_name_maps_to_a_diffusers_scheduler(models):
    base = models.get("sd").model.scheduler
    for name, (cls_name, flags) in SCHEDULERS.items():
        sched = diffusion.make_scheduler(name, base)
        assert type(sched).__name__ == cls_name
        for k, v in flags.items():
            assert sched.config[k] == v
    assert diffusion.make_scheduler("DPM++ 2M", diffusion.make_scheduler("DPM++ 2M Karras", base)) \
        .config.use_karras_sigmas in (False, True)
    assert diffusion.pipeline_class("sdxl", "outpaint", True) == "StableDiffusionXLControlNetInpaintPipeline"
    assert diffusion.pipeline_class("sd", "img2img", False) == "StableDiffusionImg2ImgPipeline"


def test_bad_input_gets_one_clear_sentence(models, photo):
    cases = [(req(steps=0), "Steps"), (req(width=30), "multiple of 8"), (req(mode="inpaint", init_image=photo),
             "Paint a mask"), (req(mode="img2img"), "needs an image"), (req(scheduler="Nope"), "sampler"),
             (req(model_id="missing"), "No model"), (req(loras=(LoraSpec("x.ckpt"),)), "safetensors"),
             (req(controls=(ControlUnit("depth", "cn-a", None, "none"),)), "has no image")]
    for r, text in cases:
        with pytest.raises(BadInputError, match=text):
            diffusion.run(r, TaskContext(), models)


def test_out_of_memory_offers_a_low_memory_retry(models, monkeypatch):
    pipe_cls = type(models.get("sd").model)

    def oom(self, *a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pipe_cls, "__call__", oom)
    with pytest.raises(PaintMemoryError, match="Retry with less memory") as info:
        diffusion.run(req(), TaskContext(), models)
    assert info.value.retryable
    with pytest.raises(ModelError, match="Out of memory") as info:
        diffusion.run(req(low_memory=True), TaskContext(), models)
    assert not isinstance(info.value, PaintMemoryError)
    assert not models.get("sd").model.vae.use_tiling  # tiling was only for that job


def test_lora_files_are_checked(models, tmp_path):
    from diffusers.utils import USE_PEFT_BACKEND

    bad = tmp_path / "style.safetensors"
    bad.write_bytes(b"not a lora")
    with pytest.raises((ModelError, BadInputError)) as info:
        diffusion.run(req(loras=(LoraSpec(str(bad), 0.8),)), TaskContext(), models)
    msg = info.value.user_message
    assert ("peft" in msg) if not USE_PEFT_BACKEND else ("style.safetensors" in msg)


def test_a_lora_changes_the_image_for_its_job_only(zoo, models, tmp_path):
    """A diffusers LoRA file (made here with peft on the tiny UNet, saved by diffusers' own call) changes
    the image in proportion to its weight, and is unloaded after the job: the shared UNet is clean."""
    pytest.importorskip("peft")
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(zoo.path("sd") / "unet"))
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_k", "to_v", "to_q", "to_out.0"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    StableDiffusionPipeline.save_lora_weights(
        str(tmp_path), unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        weight_name="style.safetensors")
    lora = str(tmp_path / "style.safetensors")

    plain = pixels(diffusion.run(req(), TaskContext(), models))
    full = pixels(diffusion.run(req(loras=(LoraSpec(lora, 1.0),)), TaskContext(), models))
    half = pixels(diffusion.run(req(loras=(LoraSpec(lora, 0.5),)), TaskContext(), models))
    zero = pixels(diffusion.run(req(loras=(LoraSpec(lora, 0.0),)), TaskContext(), models))
    after = pixels(diffusion.run(req(), TaskContext(), models))

    def diff(a, b):
        return float(np.abs(a.astype(int) - b.astype(int)).mean())

    assert diff(full, plain) > diff(half, plain) > 0
    assert diff(zero, plain) < 0.5
    assert np.array_equal(after, plain)  # unloaded: the next job is the model's own
    assert not getattr(models.get("sd").model.unet, "peft_config", None)


def test_preprocessors_without_weights_and_a_clear_message_with_missing_ones(zoo, monkeypatch, tmp_path, photo):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    catalog = load_catalog([assets_dir() / "models.toml"])
    m = ModelManager(catalog, policy=ModelPolicy(device="cpu"))
    edges = preprocessors.run(PreprocessRequest(photo, "canny"), TaskContext(), m).image.pixels
    assert edges.shape == (32, 32, 3) and set(np.unique(edges)) <= {0, 255} and edges.max() == 255
    scrib = preprocessors.scribble(np.full((8, 8, 3), 250, np.uint8))
    assert scrib.max() == 0  # blank paper: no strokes
    for pre, card_id in (("depth_midas", "annotator-depth-midas"), ("openpose", "annotator-openpose")):
        with pytest.raises(ModelError, match=card_id):
            preprocessors.run(PreprocessRequest(photo, pre), TaskContext(), m)
    with pytest.raises(ModelError, match="annotator-openpose"):
        preprocessors.run(PreprocessRequest(photo, "openpose", keypoints=True), TaskContext(), m)


def test_recipe_json_is_compact_and_complete(models, tmp_path, photo):
    mask = np.zeros((32, 32), np.uint8)
    mask[:8] = 255
    r = req(mode="inpaint", init_image=photo, mask=mask, output_dir=str(tmp_path), steps=2)
    out = diffusion.run(r, TaskContext(), models)
    recipe = json.loads(out.images[0].info["studio"])
    assert set(recipe["inputs"]) == {"init", "mask"}
    assert (tmp_path / recipe["inputs"]["mask"]["file"]).exists()
    again = request_from_recipe(recipe, tmp_path)
    assert np.array_equal(again.mask, mask) and np.array_equal(again.init_image.pixels, photo.pixels)
