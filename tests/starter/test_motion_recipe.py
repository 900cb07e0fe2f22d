"""Starter motion model: the training recipe at tiny scale on freshly initialised starter components
(the folder it writes loads as a diffusers MotionAdapter and renders an 8-frame clip through the
studio's video engine), the zero-initialised start, the motion metrics on ground-truth world clips,
the command line, and (when assets/starter/motion is shipped) its size and that it reads the direction word."""

import numpy as np
import pytest

MB = 1e6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # On a busy 2-core box two OpenMP threads stall each other on these tiny convolutions.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fresh_assets(tmp_path_factory):
    """An assets-like folder (sd/, clip/) of untrained starter-geometry models: seconds to build."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from studio.starter import diffusion_models as dm
    from studio.starter.models import CLIP_TEXT
    from studio.starter.tokenizer import write_tokenizer

    root = tmp_path_factory.mktemp("fresh-starter")
    tok = write_tokenizer(root / "tokenizer")
    torch.manual_seed(0)
    # The starter text tower's width (the UNet's cross-attention size), one layer: same formats.
    text = CLIPTextModel(CLIPTextConfig(**{**CLIP_TEXT, "num_hidden_layers": 1}))
    text.save_pretrained(str(root / "clip"), safe_serialization=True)
    dm.save_pipeline(root / "sd", dm.new_vae(), dm.new_unet(), tok)
    return root


@pytest.fixture(scope="module")
def trained(fresh_assets, tmp_path_factory):
    from studio.starter.motion_train import train_motion

    lines = []
    out = tmp_path_factory.mktemp("motion-out")
    # the shipped recipe's loop with every option of the variants switched on
    folder = train_motion(out, fresh_assets, steps=2, batch=2, log=lines.append, twins=True, t_min=200,
                          direction_weight=0.2, probe_weight=0.05, save_every=1)
    return folder, lines


def test_fresh_adapter_starts_as_the_image_model():
    """Zero-initialised output projections: step 0 predicts exactly what the 2D UNet predicts per frame."""
    import torch

    from studio.starter import diffusion_models as dm
    from studio.starter.motion_train import motion_unet, new_adapter

    torch.manual_seed(0)
    unet = dm.new_unet().eval()
    model = motion_unet(unet, new_adapter()).eval()
    z, e = torch.randn(1, 4, 8, 16, 16), torch.randn(1, 77, dm.TEXT_WIDTH)
    with torch.no_grad():
        video = model(z, torch.tensor([500]), e.repeat_interleave(8, 0)).sample
        frames = unet(z[0].permute(1, 0, 2, 3), torch.tensor([500]), e.expand(8, -1, -1)).sample
    assert torch.allclose(video[0].permute(1, 0, 2, 3), frames, atol=1e-5)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("motion_modules" in n for n in trainable)


def test_recipe_writes_a_standard_motion_adapter_folder(trained, fresh_assets):
    import torch
    from diffusers import MotionAdapter, UNet2DConditionModel
    from safetensors.torch import load_file

    folder, lines = trained
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors",
                                                        "pytorch_lora_weights.safetensors"]
    assert any("step     2/2" in line and "probe" in line and "direction" in line for line in lines)
    assert "saved" in lines[-1]
    # the checkpoint of step 1 has the same layout; the training-only probe is not in either folder
    assert sorted(p.name for p in (folder.parent / "motion-step1").iterdir()) == sorted(p.name for p in folder.iterdir())
    adapter = MotionAdapter.from_pretrained(str(folder))
    unet = UNet2DConditionModel.from_pretrained(str(fresh_assets / "sd" / "unet"))
    assert list(adapter.config.block_out_channels) == list(unet.config.block_out_channels)
    assert adapter.config.motion_layers_per_block == unet.config.layers_per_block
    stored = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    assert {v.dtype for v in stored.values()} == {torch.float16}  # fp16, like the other starter folders
    assert any(float(v.abs().max()) > 0 for k, v in stored.items() if "proj_out" in k)  # it trained
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5 * MB


def test_the_lora_covers_only_the_image_models_cross_attention(trained):
    """The direction words reach the motion modules through a LoRA on the spatial transformers' attn2:
    a diffusers LoRA file (unet.* keys, fp16) that trained, and that leaves every other layer alone."""
    import re

    import torch
    from safetensors.torch import load_file

    from studio.starter.motion_train import LORA_RANK

    folder, _ = trained
    lora = load_file(str(folder / "pytorch_lora_weights.safetensors"))
    layers = {k.rsplit(".lora", 1)[0] for k in lora}
    assert layers and all(re.fullmatch(r"unet\.(down_blocks\.\d+\.|up_blocks\.\d+\.|mid_block\.)attentions\.\d+"
                                       r"\.transformer_blocks\.0\.attn2\.(to_q|to_k|to_v|to_out\.0)", k)
                          for k in layers), sorted(layers)[:4]
    assert {k.split(".")[-1] for k in layers} == {"to_q", "to_k", "to_v", "0"}
    assert {v.dtype for v in lora.values()} == {torch.float16}
    assert {min(v.shape) for v in lora.values()} == {LORA_RANK}
    ups = [v for k, v in lora.items() if ".up." in k or "lora_B" in k]
    assert ups and any(float(v.abs().max()) > 0 for v in ups)  # B starts at zero: nonzero means it trained


def test_the_trained_folder_renders_an_8_frame_clip_through_the_video_engine(trained, fresh_assets):
    from studio.catalog.cards import Catalog
    from studio.catalog.requests import ModelPolicy
    from studio.core.context import TaskContext
    from studio.core.tape_requests import TapeRequest
    from studio.engines import video
    from studio.engines.manager import ModelManager
    from tests.helpers.tiny_models import card

    folder, _ = trained
    cards = [card("fresh-sd", "diffusers", "diffusion", fresh_assets / "sd",
                  text_encoder=str(fresh_assets / "clip"), size=64),
             card("fresh-motion", "diffusers", "motion", folder, base="fresh-sd", width=64, height=64, frames=8)]
    models = ModelManager(Catalog(cards), policy=ModelPolicy(device="cpu"))
    req = TapeRequest(model_id="fresh-motion", base_id="", prompt="a red circle moving right", frames=8, width=64,
                      height=64, steps=2, cfg_scale=5.0, seed=1)
    result = video.run(req, TaskContext(), models)
    assert len(result.frames) == 8 and all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in result.frames)
    assert result.model_name.startswith("fresh-motion on fresh-sd")
    # The adapter's LoRA is on the AnimateDiff view's UNet, not on the shared image model's.
    view = models.pipeline("fresh-sd", pipeline=video.ANIMATEDIFF, motion_adapter="fresh-motion").model
    assert view.get_list_adapters() == {"unet": [video.MOTION_LORA_NAME]}
    assert not getattr(models.get("fresh-sd").model.unet, "peft_config", None)
    again = video.run(req, TaskContext(), models)  # the kept view is not given the LoRA twice
    assert all(np.array_equal(a, b) for a, b in zip(result.frames, again.frames))


def crossing_clip(seed):
    from studio.starter.motion_train import VARIANTS, training_clip

    kw = VARIANTS["crossing"]
    return training_clip(seed, motion_p=kw["motion_p"], two_objects_p=kw["two_objects_p"], travel=kw["travel"])


def test_crossing_clips_cross_the_frame_and_their_twins_run_backwards():
    """The crossing variant's clips travel 32-42 px in one of the four directions; a clip's
    time-reversed twin shows the same frames backwards, captioned and scored as moving the other way."""
    from studio.starter.motion_eval import clip_scores
    from studio.starter.motion_train import OPPOSITE, SEED0, VARIANTS, reversed_twin

    TRAVEL = VARIANTS["crossing"]["travel"]
    motions = set()
    for i in range(12):
        clip = crossing_clip(SEED0 + i)
        twin = reversed_twin(clip)
        motions.add(clip.motion)
        colour = clip.frames[0].objects[0].colour
        assert len(clip.frames) == 8 and len(clip.frames[0].objects) == 1
        assert twin.motion == OPPOSITE[clip.motion] and twin.caption.endswith(f"moving {twin.motion}")
        assert twin.caption.replace(twin.motion, "") == clip.caption.replace(clip.motion, "")
        assert np.array_equal(twin.images, clip.images[::-1])
        forward, backward = clip_scores(clip.images, colour, clip.motion), clip_scores(twin.images, colour, twin.motion)
        assert forward["moved"] and backward["moved"]
        assert forward["along"] >= 0.7 * TRAVEL[0]  # crosses most of the 64-px frame (less only where it must fit)
    assert motions == set(OPPOSITE)


def test_twins_get_the_same_noise_backwards_and_the_same_timestep():
    import torch

    from studio.starter.motion_train import SEED0, Base, reversed_twin, twin_prompt

    base = Base.__new__(Base)
    base.alphas = torch.linspace(0.999, 0.001, 1000)
    z = torch.randn(2, 4, 8, 16, 16)
    z = torch.cat([z, z.flip(2)])
    zt, t, noise = base.noisy(z, t_min=200, twins=True)
    assert torch.equal(t[:2], t[2:]) and bool((t >= 200).all())
    assert torch.equal(noise[2:], noise[:2].flip(2)) and torch.allclose(zt[2:], zt[:2].flip(2))
    clip = crossing_clip(SEED0)
    twin = reversed_twin(clip)
    assert twin_prompt(clip.caption, clip, twin) == twin.caption and twin_prompt("", clip, twin) == ""


def test_position_probe_targets_follow_the_actor():
    from studio.starter.motion_train import SEED0, PositionProbe

    clip = crossing_clip(SEED0 + 1)
    target = PositionProbe.targets([clip], 4).numpy()
    assert target.shape == (8, 16) and np.allclose(target.sum(1), 1.0)
    for f, row in zip(clip.frames, target):
        cx, cy = f.objects[0].centroid
        assert row.argmax() == min(3, int(cy // 16)) * 4 + min(3, int(cx // 16))


def test_direction_probe_labels_every_frame_and_skips_unconditional_rows():
    import torch

    from studio.starter.motion_train import DIRECTIONS, DirectionProbe

    labels = DirectionProbe.labels(["a red circle moving up", "", "a blue star moving left and a still red square"], 2)
    up, left = DIRECTIONS.index("up"), DIRECTIONS.index("left")
    assert labels.tolist() == [up, up, -100, -100, left, left]
    assert labels.dtype == torch.int64


def test_twins_need_an_even_batch_and_growing_clips_have_no_twin(fresh_assets, tmp_path):
    from studio.starter.motion_train import reversed_twin, train_motion
    from studio.starter.world import make_clip

    with pytest.raises(ValueError, match="even"):
        train_motion(tmp_path, fresh_assets, steps=1, batch=3, twins=True)
    with pytest.raises(ValueError, match="time-reversed"):
        reversed_twin(make_clip(5, frames=8, n_objects=1, motion="grow"))


def test_first_recipe_mix_and_the_variants():
    from studio.starter.motion_train import SEED0, VARIANTS, _main, clip_spec

    specs = [clip_spec(SEED0 + i) for i in range(400)]
    assert {m for m, _ in specs} == {"left", "right", "up", "down", "grow", "recolour"}
    assert 0.3 < np.mean([n == 2 for _, n in specs]) < 0.5
    assert set(VARIANTS) == {"crossing", "path", "repath"} and all(v["twins"] for v in VARIANTS.values())
    with pytest.raises(SystemExit):
        _main(["--assets", "x", "--variant", "nope"])


def test_motion_metrics_on_ground_truth_world_clips():
    from studio.starter.motion_eval import DIRECTIONS, clip_scores, summarise
    from studio.starter.world import SPLITS, make_clip

    right, wrong = [], []
    for i in range(40):
        d = DIRECTIONS[i % 4]
        clip = make_clip(SPLITS["test"] + 7_000_000 + i, frames=8, n_objects=1, motion=d)
        colour = clip.frames[0].objects[0].colour
        right.append(clip_scores(clip.images, colour, d))
        opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}[d]
        wrong.append(clip_scores(clip.images, colour, opposite))
    truth = summarise(right)
    assert truth["motion_direction_rate"] == 1.0 and truth["motion_colour_kept"] == 1.0
    assert truth["motion_travel_px"] > 10
    assert summarise(wrong)["motion_direction_rate"] == 0.0
    # A still clip moves nowhere; a clip of another colour does not keep the prompted colour.
    clip = make_clip(SPLITS["test"] + 7_000_000, frames=8, n_objects=1, motion="left")
    still = np.repeat(clip.images[:1], 8, 0)
    colour = clip.frames[0].objects[0].colour
    assert not clip_scores(still, colour, "left")["moved"]
    other = next(c for c in ("red", "blue") if c != colour)
    assert not clip_scores(clip.images, other, "left")["kept"]


def test_recolouring_clips_lose_the_colour_and_eval_cases_cover_the_vocabulary():
    from studio.starter.motion_eval import eval_cases, motion_prompt, object_track
    from studio.starter.world import COLOURS, SHAPES, make_clip

    clip = make_clip(11, frames=8, n_objects=1, motion="recolour")
    _, kept = object_track(clip.images, clip.frames[0].objects[0].colour)
    assert kept[0] and not kept.all()
    cases = eval_cases(40)
    assert {c for c, *_ in cases} == set(COLOURS) and {s for _, s, *_ in cases} == set(SHAPES)
    assert motion_prompt("orange", "star", "up") == "an orange star moving up"
    # no label is tied to a direction: over four rounds every label is asked for all four
    seen = {}
    for colour, shape, direction, _ in eval_cases(160):
        seen.setdefault((colour, shape), set()).add(direction)
    assert len(seen) == 40 and all(len(d) == 4 for d in seen.values())
    assert [d for *_, d, _ in eval_cases(8)] == ["left", "right", "up", "down"] * 2


def test_command_line_and_evaluator_registry_know_motion():
    from studio.starter import cli, evaluate

    args = cli._parser().parse_args(["train", "--only", "motion", "--out", "x"])
    assert args.only == "motion"
    assert cli._parser().parse_args(["evaluate", "--only", "motion"]).only == "motion"
    assert "motion" in dict(evaluate.EVALUATORS)
    assert evaluate.BARS["motion_direction_rate"] == 0.70 and "motion_colour_kept" in evaluate.BARS


def test_catalog_card_animates_the_starter_pipeline():
    from studio.catalog.cards import load_catalog
    from studio.core.paths import assets_dir
    from studio.core.tape_requests import ANIMATEDIFF, native_settings, pipeline_of

    card = load_catalog([assets_dir() / "models.toml"]).get("starter-motion")
    assert card.task == "motion" and card.source == "bundled:starter/motion"
    assert card.options["base"] == "starter-sd" and pipeline_of(card) == ANIMATEDIFF
    assert native_settings(card)["width"] == 64 and native_settings(card)["frames"] == 8


# ---------------------------------------------------------------- shipped weights

@pytest.fixture(scope="module")
def shipped():
    from studio.starter import assets_dir

    path = assets_dir()
    if not (path / "motion" / "config.json").exists():
        pytest.skip(f"starter motion weights absent under {path}: run `python -m studio.starter train --only motion`")
    if not (path / "sd" / "model_index.json").exists():
        pytest.skip("starter diffusion weights absent: the motion adapter needs sd/")
    return path


def test_shipped_motion_size_budget(shipped):
    from diffusers import MotionAdapter, UNet2DConditionModel

    folder = shipped / "motion"
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) <= 30 * MB
    assert (folder / "pytorch_lora_weights.safetensors").is_file()  # the recipe's cross-attention LoRA
    adapter = MotionAdapter.from_pretrained(str(folder))
    unet = UNet2DConditionModel.from_pretrained(str(shipped / "sd" / "unet"))
    assert list(adapter.config.block_out_channels) == list(unet.config.block_out_channels)


def test_shipped_adapter_reads_the_direction_word(shipped):
    """At the top of the schedule, where the sampler settles where the object goes, the clean clip the
    shipped adapter predicts moves the way the prompt says: with the opposite word it does not (the
    figures are in docs/starter.md; the first adapter gave the same path for every word)."""
    from studio.starter.motion_eval import word_effect

    out = word_effect(shipped, n=8, timesteps=(950, 990))
    for tt in ("t950", "t990"):
        assert out[tt]["word"] > 1.5 and out[tt]["word"] - out[tt]["opposite"] > 2.0, out
        assert out[tt]["word"] > out[tt]["across"] + 1.0, out


def test_a_resumed_run_writes_the_weights_of_an_uninterrupted_one(fresh_assets, tmp_path):
    """Long schedules can be split: the state saved with the checkpoints (weights, optimiser, heads,
    random states) continues into the same weights, bit for bit; another run's state is refused."""
    import shutil

    from studio.starter.motion_train import STATE_FILE, train_motion

    kw = dict(steps=4, batch=2, twins=True, t_min=200, direction_weight=0.2, probe_weight=0.05, save_every=2,
              log=lambda _s: None)
    whole = train_motion(tmp_path / "whole", fresh_assets, **kw)
    (tmp_path / "split").mkdir()
    shutil.copy(tmp_path / "whole" / STATE_FILE, tmp_path / "split" / STATE_FILE)
    lines = []
    split = train_motion(tmp_path / "split", fresh_assets, resume=True, **{**kw, "log": lines.append})
    assert any("resumed" in line and "step 2" in line for line in lines)
    assert not any("step     1/" in line for line in lines)
    for name in ("diffusion_pytorch_model.safetensors", "pytorch_lora_weights.safetensors"):
        assert (whole / name).read_bytes() == (split / name).read_bytes(), name
    with pytest.raises(ValueError, match="another run"):
        train_motion(tmp_path / "split", fresh_assets, resume=True, **{**kw, "steps": 6})
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_motion(tmp_path / "empty", fresh_assets, resume=True, **kw)


def _moving_blob(direction: int, frames: int = 8):
    """(1, 4, F, 16, 16) latent clip: a bright 3x3 square crossing a flat background."""
    import torch

    z = torch.full((1, 4, frames, 16, 16), -0.5)
    for k in range(frames):
        x = 2 + k if direction > 0 else 13 - k
        z[0, :, k, 6:9, x - 1:x + 2] = 2.0
    return z


def test_trajectory_follows_the_moving_object_and_ignores_the_still_background():
    import torch

    from studio.starter.motion_train import trajectory

    path = trajectory(_moving_blob(+1))[0]
    assert path.shape == (8, 2)
    assert torch.allclose(path[:, 1], torch.zeros(8), atol=1e-4)  # no vertical motion
    steps = path[1:, 0] - path[:-1, 0]
    assert bool((steps > 0.3).all()) and abs(float(path[:, 0].mean())) < 1e-4  # rightwards, centred
    assert float(path[-1, 0] - path[0, 0]) > 4.0  # most of the 7 cells the square moves
    assert torch.allclose(trajectory(_moving_blob(-1))[0, :, 0], -path[:, 0], atol=1e-4)  # mirror image
    still = torch.randn(1, 4, 1, 16, 16).expand(1, 4, 8, 16, 16)
    assert float(trajectory(still).abs().max()) < 1e-3


def test_trajectory_loss_rewards_the_prompted_path_only_where_a_direction_is_named():
    import torch

    from studio.starter.motion_train import direction_rows, trajectory_loss

    right, left = _moving_blob(+1), _moving_blob(-1)
    prompt = ["a red square moving right"]
    assert float(trajectory_loss(right, right, prompt)) < 1e-6
    still = right[:, :, :1].expand_as(right)  # the first frame held: no path at all
    assert float(trajectory_loss(left, right, prompt)) > 3 * float(trajectory_loss(still, right, prompt)) > 0.05
    pred = left.clone().requires_grad_(True)
    unconditional = trajectory_loss(pred, right, [""])
    assert float(unconditional.detach()) == 0.0
    unconditional.backward()  # still part of the graph: a batch of unconditional rows trains on
    assert direction_rows(["", "a blue star growing", "a star moving up and a still red square"]).tolist() == [0, 0, 1]


def test_high_noise_share_draws_from_the_top_of_the_schedule():
    import torch

    from studio.starter.motion_train import Base

    base = Base.__new__(Base)
    base.alphas = torch.linspace(0.999, 0.001, 1000)
    z = torch.randn(64, 4, 8, 4, 4)
    torch.manual_seed(3)
    _, t_all, _ = base.noisy(z, t_min=200, high=(900, 1.0))
    assert bool((t_all >= 900).all())
    torch.manual_seed(3)
    _, t_half, _ = base.noisy(z, t_min=200, high=(900, 0.5))
    assert 0.2 < float((t_half < 900).float().mean()) < 0.8
    torch.manual_seed(3)
    _, t_off, n_off = base.noisy(z, t_min=200, high=(900, 0.0))
    torch.manual_seed(3)
    _, t_plain, n_plain = base.noisy(z, t_min=200)
    assert torch.equal(t_off, t_plain) and torch.equal(n_off, n_plain)  # no share: the draws of before


def test_training_can_start_from_a_saved_motion_folder(trained, fresh_assets, tmp_path):
    """`init`: the adapter and its LoRA are loaded (not zero-initialised) and the path loss trains on."""
    import torch
    from safetensors.torch import load_file

    from studio.starter.motion_train import LORA_FILE, train_motion

    folder, _ = trained
    lines = []
    again = train_motion(tmp_path, fresh_assets, steps=0, batch=2, log=lines.append, init=folder)
    for name in ("diffusion_pytorch_model.safetensors", LORA_FILE):
        a, b = load_file(str(folder / name)), load_file(str(again / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert any(f"from {folder}" in line for line in lines)
    lines.clear()
    train_motion(tmp_path / "more", fresh_assets, steps=2, batch=2, log=lines.append, init=folder, twins=True,
                 trajectory_weight=1.0, high=(900, 0.5))
    assert any("path loss x 1.0" in line for line in lines) and any("  path " in line for line in lines)
    with pytest.raises(FileNotFoundError, match="not a motion folder"):
        train_motion(tmp_path / "x", fresh_assets, steps=1, batch=2, init=tmp_path / "nowhere")


def test_word_effect_reports_the_predicted_path_with_the_word_and_its_opposite(trained, fresh_assets):
    import math

    from studio.starter.motion_eval import _main, word_effect

    folder, _ = trained
    out = word_effect(fresh_assets, folder, n=4, timesteps=(500, 990))
    assert set(out) == {"true_path", "t500", "t990"}
    assert out["true_path"] > 0  # the clips move along their prompted axis (an untrained VAE blurs how far)
    for tt in ("t500", "t990"):
        assert set(out[tt]) == {"word", "opposite", "across"} and all(math.isfinite(v) for v in out[tt].values())
    with pytest.raises(SystemExit):
        _main(["--assets", str(fresh_assets), "--word-effect", "--nope"])


def test_shipped_adapter_is_the_crossing_stage_then_the_path_stages(fresh_assets, tmp_path):
    from studio.starter.motion_train import LORA_FILE, SHIPPED, VARIANTS, train_shipped, variant_kwargs

    assert SHIPPED == ("crossing", "path", "repath", "repath", "repath") and all(name in VARIANTS for name in SHIPPED)
    assert {k: v for k, v in VARIANTS["repath"].items() if k != "steps"} == {
        k: v for k, v in VARIANTS["path"].items() if k != "steps"}  # the same loss, a shorter schedule
    assert variant_kwargs("path", 0.5)["steps"] == VARIANTS["path"]["steps"] // 2
    lines = []
    folder = train_shipped(tmp_path, fresh_assets, scale=1e-4, log=lines.append)  # one step per stage
    assert folder == tmp_path / "motion" and (folder / "config.json").is_file() and (folder / LORA_FILE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["motion"]  # the stage folders are gone
    heads = [line for line in lines if "trainable params" in line]
    assert len(heads) == 5 and "direction probe" in heads[0] and "from " not in heads[0]
    assert all("path loss" in head for head in heads[1:])
    assert f"from {tmp_path / 'motion-stage1-crossing' / 'motion'}" in heads[1]
    assert f"from {tmp_path / 'motion-stage2-path' / 'motion'}" in heads[2]
    assert f"from {tmp_path / 'motion-stage3-repath' / 'motion'}" in heads[3]
    assert f"from {tmp_path / 'motion-stage4-repath' / 'motion'}" in heads[4]
