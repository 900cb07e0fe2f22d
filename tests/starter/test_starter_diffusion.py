"""Starter latent diffusion: standard diffusers loading, seeded determinism, size budget, and
small-sample versions of the quality bars (thresholds a little below the full bars).

The shipped weights pass every small-sample check and every full bar (docs/starter.md, "Measured").
The floors are what the shipped weights do achieve, as regression guards (chance is 1/8 for colour,
1/5 for shape).
"""

import json

import numpy as np
import pytest

MB = 1e6
STEPS = 10
# Small-sample thresholds: the full bars are 0.70 (rates) and 2/255 (outside change).
T2I_MIN, CONTROL_MIN, INPAINT_MIN = 0.60, 0.60, 0.60


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # On a busy 2-core box two OpenMP threads stall each other on these tiny convolutions
    # (measured 100x slower); one thread keeps the module well under a minute.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sd_assets():
    from studio.starter import assets_dir

    path = assets_dir()
    missing = [p for p in ("sd/model_index.json", "sd-inpaint/model_index.json", "clip/config.json",
                           "controlnet-depth/config.json", "controlnet-pose/config.json",
                           "controlnet-edges/config.json") if not (path / p).exists()]
    if missing:
        pytest.skip(f"starter diffusion weights absent ({', '.join(missing)} under {path}): "
                    "run `python -m studio.starter train --only diffusion`")
    return path


@pytest.fixture(scope="module")
def text_encoder(sd_assets):
    import torch
    from transformers import CLIPTextModel

    return CLIPTextModel.from_pretrained(str(sd_assets / "clip"), dtype=torch.float32).eval()


def _from_pretrained(cls, folder, text_encoder, **kw):
    import torch

    pipe = cls.from_pretrained(str(folder), text_encoder=text_encoder, dtype=torch.float32, **kw)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def t2i(sd_assets, text_encoder):
    from diffusers import StableDiffusionPipeline

    return _from_pretrained(StableDiffusionPipeline, sd_assets / "sd", text_encoder)


def _seeded(seed):
    import torch

    return torch.Generator().manual_seed(seed)


def _size(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_size_budget_and_shared_text_encoder(sd_assets):
    names = ["sd", "sd-inpaint", "controlnet-depth", "controlnet-pose", "controlnet-edges"]
    assert sum(_size(sd_assets / n) for n in names) <= 20 * MB
    for n in ("sd", "sd-inpaint"):
        index = json.loads((sd_assets / n / "model_index.json").read_text())
        assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
        assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False
        assert not (sd_assets / n / "text_encoder").exists()  # supplied from clip/, stored once


def test_t2i_pipeline_is_standard_and_deterministic(t2i):
    assert t2i.unet.config.cross_attention_dim == t2i.text_encoder.config.hidden_size
    assert t2i.vae_scale_factor == 4 and t2i.unet.config.sample_size == 16
    a = t2i("a red star", num_inference_steps=STEPS, generator=_seeded(3), output_type="np").images
    b = t2i("a red star", num_inference_steps=STEPS, generator=_seeded(3), output_type="np").images
    c = t2i("a red star", num_inference_steps=STEPS, generator=_seeded(4), output_type="np").images
    assert a.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3




@pytest.fixture(scope="module")
def t2i_small(t2i, sd_assets):
    from studio.starter.diffusion_eval import t2i_following
    from studio.starter.models import load_cnn

    return t2i_following(t2i, load_cnn(sd_assets / "cnn"), 16, steps=STEPS)


def test_t2i_follows_the_prompted_colour(t2i_small):
    assert t2i_small["t2i_colour_correct"] >= 0.7, t2i_small  # 1.0 measured on 200 prompts


def test_t2i_prompt_following_small(t2i_small):
    # 0.805 on the full 200 prompts (colour 1.0, shape 0.805).
    assert t2i_small["t2i_prompt_following"] >= T2I_MIN, t2i_small


@pytest.fixture(scope="module")
def control_small(sd_assets, t2i):
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    from studio.starter.diffusion_eval import control_iou

    out = {}
    for kind in ("depth", "pose", "edges"):
        net = ControlNetModel.from_pretrained(str(sd_assets / f"controlnet-{kind}"), dtype=torch.float32)
        pipe = StableDiffusionControlNetPipeline(**t2i.components, controlnet=net)
        pipe.set_progress_bar_config(disable=True)
        first = control_iou(pipe, kind, 8, steps=STEPS)
        assert first == control_iou(pipe, kind, 8, steps=STEPS)  # seeded
        out[kind] = first
    return out


@pytest.mark.parametrize("kind", ["depth", "pose", "edges"])
def test_controlnet_places_the_object(kind, control_small):
    # Mean IoU of the generated object with the control's region (0.66 / 0.60 / 0.54 measured on
    # 100 conditions); an unconditioned generation lands anywhere.
    assert control_small[kind][f"control_{kind}_iou_mean"] >= 0.25, control_small[kind]


def test_controlnet_depth_small_bar(control_small):
    # 0.84 on the full 100 conditions (bar 0.70).
    assert control_small["depth"]["control_depth_iou_rate"] >= CONTROL_MIN, control_small["depth"]


def test_controlnet_pose_small_bar(control_small):
    # 0.79 on the full 100 conditions (bar 0.70).
    assert control_small["pose"]["control_pose_iou_rate"] >= CONTROL_MIN, control_small["pose"]


def test_controlnet_from_pretrained_folder(sd_assets, text_encoder):
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    from PIL import Image

    net = ControlNetModel.from_pretrained(str(sd_assets / "controlnet-depth"), dtype=torch.float32)
    pipe = _from_pretrained(StableDiffusionControlNetPipeline, sd_assets / "sd", text_encoder, controlnet=net)
    cond = Image.new("RGB", (64, 64))
    a = pipe("a blue circle", image=cond, num_inference_steps=4, generator=_seeded(1), output_type="np").images
    b = pipe("a blue circle", image=cond, num_inference_steps=4, generator=_seeded(1), output_type="np").images
    np.testing.assert_array_equal(a, b)


def test_inpaint_pipeline_small_bars(sd_assets, text_encoder):
    from diffusers import StableDiffusionInpaintPipeline

    from studio.starter.diffusion_eval import inpaint_metrics

    pipe = _from_pretrained(StableDiffusionInpaintPipeline, sd_assets / "sd-inpaint", text_encoder)
    assert pipe.unet.config.in_channels == 9
    out = inpaint_metrics(pipe, 12, steps=STEPS)
    assert out == inpaint_metrics(pipe, 12, steps=STEPS)  # seeded
    assert out["inpaint_colour_rate"] >= INPAINT_MIN, out
    assert out["inpaint_outside_change"] <= 2 / 255, out


def test_training_loop_keeps_a_moving_average_and_checkpoints_it(monkeypatch):
    """The UNet stage's loop: checkpoints every N steps hold the exponential moving average of the
    weights (not the live ones), training goes on from the live weights, and the model ends holding
    the average, computed here independently from the live weights of every step."""
    import torch

    from studio.starter import diffusion_train as dt

    monkeypatch.setattr(dt, "CHECKPOINT_EVERY", 10)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    live, saved = [], {}

    def batch(step):
        live.append([p.detach().clone() for p in model.parameters()])  # before this step's update
        return torch.randn(8, 4), torch.randn(8, 4)

    def loss(b):
        return ((model(b[0]) - b[1]) ** 2).mean()

    def save(name):
        saved[name] = [p.detach().clone() for p in model.parameters()]

    dt._loop("unet", model, 30, batch, loss, lambda s: None, save=save)
    assert sorted(saved) == ["unet-step10", "unet-step20"]
    final = [p.detach().clone() for p in model.parameters()]

    def average(upto):  # live weights after updates 1..upto are recorded before steps 1..upto
        ema = [t.clone() for t in live[0]]
        for s in range(upto):
            d = min(dt.EMA["unet"], (1 + s) / (10 + s))
            ema = [e + (1 - d) * (a - e) for e, a in zip(ema, live[s + 1])]
        return ema

    for name, upto in (("unet-step10", 10), ("unet-step20", 20)):
        for got, want in zip(saved[name], average(upto)):
            torch.testing.assert_close(got, want)
        assert not all(torch.equal(a, b) for a, b in zip(saved[name], live[upto]))  # not the live weights
    # Training went on from the live weights (live[10] is not the checkpoint's average), and the
    # model ends holding the average, which moved on after the last checkpoint.
    assert len(live) == 30
    assert not all(torch.equal(a, b) for a, b in zip(final, saved["unet-step20"]))
    assert not all(torch.equal(a, b) for a, b in zip(final, live[-1]))
