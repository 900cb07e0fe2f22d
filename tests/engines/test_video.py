"""The frame tape's engine on a tiny random AnimateDiff (tiny SD 1.5 + tiny MotionAdapter, loaded by
the real model manager): an 8-frame clip with per-step and per-frame progress and previews, seeds,
prompt travel in context windows, per-segment seeds, cancel within a step, a range re-render that
returns only the selected frames, and the catalog's other video models failing with the manager's
"not downloaded" message."""
from __future__ import annotations

import numpy as np
import pytest

from studio.catalog.cards import Catalog, load_catalog
from studio.catalog.requests import ModelPolicy
from studio.core.context import TaskContext
from studio.core.errors import BadInputError, Cancelled, ModelError
from studio.core.image import StudioImage
from studio.core.paths import assets_dir
from studio.core.tape_requests import PromptKey, RerenderRequest, TapeRequest, pipeline_of
from studio.engines import video
from studio.engines.manager import ModelManager
from tests.helpers import tiny_video
from tests.helpers.tiny_video import MOTION_ID, SD_ID


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    paths = tiny_video.folders(tmp_path_factory)
    return ModelManager(Catalog(tiny_video.cards(paths)), policy=ModelPolicy(device="cpu"))


def request(**kw) -> TapeRequest:
    base = dict(model_id=MOTION_ID, base_id=SD_ID, prompt="a red circle moving right", frames=8, width=32,
                height=32, steps=2, cfg_scale=1.0, seed=3)
    base.update(kw)
    return TapeRequest(**base)


def recording_ctx():
    seen = {"progress": [], "previews": []}
    ctx = TaskContext(on_progress=lambda f, t: seen["progress"].append((f, t)),
                      on_preview=seen["previews"].append, min_interval=0.0)
    return ctx, seen


def test_an_8_frame_clip_with_progress_previews_and_a_repeatable_seed(models, tmp_path):
    ctx, seen = recording_ctx()
    result = video.run(request(output_dir=str(tmp_path / "clip")), ctx, models)
    assert len(result.frames) == 8 and result.fps == 8
    assert all(f.shape == (32, 32, 3) and f.dtype == np.uint8 and not f.flags.writeable for f in result.frames)
    texts = [t for _, t in seen["progress"]]
    assert "Step 1/2 · 8 frames" in texts and "Decoding frame 8/8" in texts and texts[-1] == "Done"
    first = texts.index("Step 1/2 · 8 frames")  # before it: the manager's own loading progress
    fractions = [f for f, _ in seen["progress"][first:]]
    assert fractions == sorted(fractions)
    assert seen["previews"] and seen["previews"][0].frames.shape == (8, 16, 16, 3)  # the tiny VAE downsamples 2x
    assert result.recipe["format"] == "studio.tape" and result.recipe["seed"] == 3
    # The clip is kept in the library as PNG frames + recipe (what a restart or an export reads).
    assert sorted(p.name for p in (tmp_path / "clip").iterdir())[-1] == "recipe.json"
    assert len(list((tmp_path / "clip").glob("frame_*.png"))) == 8
    short = dict(frames=4, steps=1)  # the seed checks need no long clip
    first, again = (video.run(request(**short), TaskContext(), models) for _ in range(2))
    assert all(np.array_equal(a, b) for a, b in zip(first.frames, again.frames))
    other = video.run(request(seed=4, **short), TaskContext(), models)
    assert not all(np.array_equal(a, b) for a, b in zip(first.frames, other.frames))
    view = models.pipeline(SD_ID, None, pipeline="AnimateDiffPipeline", motion_adapter=MOTION_ID)
    base = models.get(SD_ID)
    assert view.model.vae is base.model.vae and view.model.text_encoder is base.model.text_encoder


def test_prompt_travel_in_context_windows_leaves_the_pipeline_as_it_was(models):
    short = dict(frames=6, steps=1)
    plain = video.run(request(**short), TaskContext(), models)
    keyed = video.run(request(keys=(PromptKey(3, "a blue square", seed=9),), window=4, travel="segments", **short),
                      TaskContext(), models)
    assert len(keyed.frames) == 6 and keyed.window_frames == 4
    assert keyed.recipe["keys"] == [{"frame": 3, "prompt": "a blue square", "seed": 9}]
    # FreeNoise and split inference were undone: the shared view renders exactly as before.
    after = video.run(request(**short), TaskContext(), models)
    assert all(np.array_equal(a, b) for a, b in zip(plain.frames, after.frames))


def test_segment_seeds_change_only_their_segment_noise():
    import torch

    shape = (1, 4, 8, 4, 4)
    a = video.segment_noise(request(keys=(PromptKey(4, "b", seed=1),)), shape, torch.float32)
    b = video.segment_noise(request(keys=(PromptKey(4, "b", seed=2),)), shape, torch.float32)
    assert torch.equal(a[:, :, :4], b[:, :, :4]) and not torch.equal(a[:, :, 4:], b[:, :, 4:])


def test_cancel_lands_within_one_step(models):
    ctx = TaskContext(min_interval=0.0)
    steps = []

    def progress(f, t):
        steps.append(t)
        if t.startswith("Step 1/"):
            ctx.token.cancel()

    ctx._on_progress = progress
    with pytest.raises(Cancelled):
        video.run(request(steps=5, frames=4), ctx, models)
    assert not any(t.startswith("Step 2/") for t in steps)
    assert video.run(request(frames=4, steps=1), TaskContext(), models).frames  # the view works after a cancel


def test_range_rerender_returns_only_the_selected_frames(models):
    clip = tuple(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(8))
    req = RerenderRequest(MOTION_ID, SD_ID, clip, start=3, end=4, prompt="a green star", context=2, strength=0.7,
                          steps=2, cfg_scale=1.0, seed=5)
    out = video.run_rerender(req, TaskContext(), models)
    assert out.start == 3 and out.window == (1, 7) and len(out.frames) == 2
    assert all(f.shape == (32, 32, 3) for f in out.frames)
    assert not np.array_equal(out.frames[0], clip[3])
    assert out.recipe["edit"] == "rerender"


def test_bad_requests_say_what_to_do(models):
    with pytest.raises(BadInputError, match="Type a prompt"):
        video.run(request(prompt=""), TaskContext(), models)
    with pytest.raises(BadInputError, match="multiple of 8"):
        video.run(request(width=30), TaskContext(), models)
    with pytest.raises(BadInputError, match="not a video or motion model"):
        video.run(request(model_id=SD_ID), TaskContext(), models)
    with pytest.raises(BadInputError, match="not inside the clip"):
        video.run_rerender(RerenderRequest(MOTION_ID, SD_ID, (np.zeros((8, 8, 3), np.uint8),) * 3, 2, 5, "x"),
                           TaskContext(), models)


@pytest.mark.parametrize("model_id, extra", [
    ("svd-xt", {"first_image": StudioImage(np.zeros((64, 64, 3), np.uint8)), "width": 64, "height": 64, "frames": 9}),
    ("cogvideox-2b", {"frames": 9, "width": 64, "height": 64}),
    ("ltx-video", {"frames": 9, "width": 64, "height": 64}),
    ("animatediff-motion-v1-5-3", {}),
])
def test_catalog_video_models_dispatch_and_fail_as_not_downloaded(model_id, extra, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    catalog = load_catalog([assets_dir() / "models.toml"])
    card = catalog.get(model_id)
    assert pipeline_of(card) == {"svd-xt": "StableVideoDiffusionPipeline", "cogvideox-2b": "CogVideoXPipeline",
                                 "ltx-video": "LTXPipeline"}.get(model_id, "AnimateDiffPipeline")
    manager = ModelManager(catalog, policy=ModelPolicy(device="cpu"))
    kw = {"base_id": "sd15"} if model_id.startswith("animatediff") else {"base_id": ""}
    with pytest.raises(ModelError, match="is not downloaded: open Models > Manager"):
        video.run(request(model_id=model_id, **{**kw, **extra}), TaskContext(), manager)
