"""The probe engines end to end on tiny models: ViT probe, Grad-CAM(++), occlusion, layer tree,
channel statistics and receptive field, called like the runtime calls them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from studio.core.cancel import CancelToken
from studio.core.context import TaskContext
from studio.core.errors import BadInputError, Cancelled
from studio.core.image import StudioImage
from studio.core.inspect_requests import (ChannelStatsRequest, GradCamRequest, LayerTreeRequest,
                                          OcclusionRequest, ReceptiveFieldRequest, VitProbeRequest)
from studio.engines.probes import cam, features, occlusion, views, vit_probe
from studio.engines.probes.adapters import adapter_for


def _no_tensors(result):
    import torch

    for value in vars(result).values():
        assert not isinstance(value, torch.Tensor)


@pytest.mark.parametrize("builder,library,tokens,grid", [
    ("timm_vit", "timm", 17, (4, 4)), ("hf_vit", "transformers", 17, (4, 4)),
    ("hf_clip", "transformers", 65, (8, 8)), ("open_clip_vit", "open_clip", 17, (4, 4)),
    ("tv_vit", "torchvision", 17, (4, 4))])
def test_vit_probe_result(probe_models, probe_kit, probe_photo, builder, library, tokens, grid):
    probe_models.add("m", getattr(probe_kit, builder)(), library)
    seen = []
    res = vit_probe.run(VitProbeRequest(probe_photo, "m"), TaskContext(on_progress=lambda f, t: seen.append(f),
                                                                 min_interval=0), probe_models)
    _no_tensors(res)
    assert res.attentions.shape == (2, 2, tokens, tokens) and res.attentions.dtype == np.float32
    np.testing.assert_allclose(res.attentions.sum(-1), 1.0, atol=1e-5)
    assert res.tokens.shape == (2, tokens, 32) and res.tokens.dtype == np.float16
    assert res.grid == grid and res.prefix_tokens == 1 and res.patch_size == (8, 8)
    assert len(res.token_labels) == tokens and res.token_labels[0] == "CLS"
    assert res.model_input.shape == (grid[0] * 8, grid[1] * 8, 3) and res.model_input.dtype == np.uint8
    assert res.pos_similarity.shape == (tokens - 1, tokens - 1)
    np.testing.assert_allclose(np.diag(res.pos_similarity), 1.0, atol=1e-5)
    assert res.geometry.original_size == (48, 40) and res.geometry.input_size == (grid[1] * 8, grid[0] * 8)
    assert seen[-1] == 1.0
    # The views redraw from the cached arrays.
    assert views.cls_attention(res.attentions, -1, 0, res.prefix_tokens, res.grid).shape == grid
    assert views.attention_rollout(res.attentions, res.prefix_tokens, res.grid).shape == grid
    assert views.mean_attention_distance(res.attentions, res.grid, res.patch_size).shape == (2, 2)
    assert views.token_similarity(res.tokens, 1, 3, res.prefix_tokens, res.grid).shape == grid
    if library == "timm":
        assert len(res.top5) == 5 and abs(sum(s.probability for s in res.top5) - 1) < 1e-5
    elif builder == "tv_vit":
        assert len(res.top5) == 3
    elif builder == "hf_vit":
        assert len(res.top5) == 4 and res.top5[0].label in ("circle", "square", "triangle", "star")
    else:
        assert res.top5 == ()


def test_vit_probe_counts_register_tokens(probe_models, probe_kit, probe_photo):
    probe_models.add("reg", probe_kit.timm_vit(reg_tokens=2), "timm")
    res = vit_probe.run(VitProbeRequest(probe_photo, "reg"), TaskContext(), probe_models)
    assert res.prefix_tokens == 3 and res.attentions.shape[-1] == 19
    assert res.pos_similarity.shape == (16, 16)
    assert views.attention_rollout(res.attentions, res.prefix_tokens, res.grid).shape == (4, 4)


def test_vit_probe_rejects_a_cnn(probe_models, probe_kit, probe_photo):
    probe_models.add("cnn", probe_kit.left_red_cnn(), "torchvision", task="cnn", **probe_kit.LEFT_RED_OPTIONS)
    with pytest.raises(BadInputError):
        vit_probe.run(VitProbeRequest(probe_photo, "cnn"), TaskContext(), probe_models)


def test_transformers_preprocessing_follows_preprocessor_config(probe_models, probe_kit, tmp_path):
    model = probe_kit.hf_clip()
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": {"shortest_edge": 64}, "do_center_crop": True,
        "crop_size": {"height": 64, "width": 64}, "image_mean": [0.1, 0.2, 0.3], "image_std": [0.5, 0.5, 0.5],
        "resample": 3}))
    model.name_or_path = str(tmp_path)
    probe_models.add("clip", model, "transformers", task="clip")
    ad = adapter_for(probe_models.get("clip"))
    assert ad.spec.mean == (0.1, 0.2, 0.3) and ad.spec.resize_mode == "shortest"
    assert ad.spec.interpolation == "bicubic" and ad.spec.source == "preprocessor_config.json"
    g = ad.spec.geometry(128, 96)  # short side 96 -> 64, long side 128 -> 85, centre crop 64
    assert g.resized_size == (85, 64) and g.crop_offset == (10, 0)


def test_gradcam_lights_up_where_the_class_evidence_is(probe_models, probe_kit, probe_red_blue):
    probe_models.add("cnn", probe_kit.left_red_cnn(), "torchvision", task="cnn", **probe_kit.LEFT_RED_OPTIONS)
    for method in ("gradcam", "gradcam++"):
        res = cam.run(GradCamRequest(probe_red_blue, "cnn", method=method), TaskContext(), probe_models)
        _no_tensors(res)
        assert res.layer == "features"  # the last spatial stage
        assert res.target_class in (0, 1) and res.heatmap.shape == (32, 32)
        left = cam.run(GradCamRequest(probe_red_blue, "cnn", target_class=0, method=method), TaskContext(), probe_models)
        assert left.target_label == "red on the left"
        assert left.heatmap[8:16, 4:12].min() > 0.99  # the red square
        assert left.heatmap[:, 16:].max() == 0.0  # nothing on the right half
        right = cam.run(GradCamRequest(probe_red_blue, "cnn", target_class=1, method=method), TaskContext(), probe_models)
        assert right.heatmap[16:24, 20:28].min() > 0.99 and right.heatmap[:, :16].max() == 0.0


def test_gradcam_pools_the_gradient_but_occlusion_does_not(probe_models, probe_kit):
    # Red on both halves: logit 0 only reads the left half, yet Grad-CAM's spatially averaged
    # gradient weights channel 0 everywhere, so both squares light up. Occlusion tells them apart.
    px = np.zeros((32, 32, 3), np.uint8)
    px[8:16, 4:12, 0] = 255
    px[8:16, 20:28, 0] = 255
    img = StudioImage(px)
    probe_models.add("cnn", probe_kit.left_red_cnn(), "torchvision", task="cnn", **probe_kit.LEFT_RED_OPTIONS)
    res = cam.run(GradCamRequest(img, "cnn", target_class=0), TaskContext(), probe_models)
    assert res.heatmap[8:16, 20:28].min() > 0.99 and res.heatmap[8:16, 4:12].min() > 0.99
    occ = occlusion.run(OcclusionRequest(img, "cnn", target_class=0, window=8, stride=4), TaskContext(), probe_models)
    assert occ.heatmap[8:16, 4:12].min() > 0 and occ.heatmap[:, 16:].max() == 0


def test_gradcam_on_a_vit_and_bad_requests(probe_models, probe_kit, probe_photo):
    probe_models.add("vit", probe_kit.timm_vit(), "timm")
    res = cam.run(GradCamRequest(probe_photo, "vit", target_class=2), TaskContext(), probe_models)
    assert res.layer == "blocks.1.norm1" and res.cam.shape == (4, 4) and res.heatmap.shape == (32, 32)
    assert res.target_class == 2
    lit = [cam.run(GradCamRequest(probe_photo, "vit", target_class=c), TaskContext(), probe_models).cam.max() for c in range(5)]
    assert max(lit) > 0
    # Why the default is the last block's first norm: the last block's patch outputs reach the
    # CLS-token head only through a per-token norm, so their gradient (and CAM) is zero.
    last = [cam.run(GradCamRequest(probe_photo, "vit", target_class=c, layer="blocks.1"), TaskContext(), probe_models)
            for c in range(5)]
    assert all(r.cam.max() == 0 for r in last)
    block = cam.run(GradCamRequest(probe_photo, "vit", layer="blocks.0", method="gradcam++"), TaskContext(), probe_models)
    assert block.cam.shape == (4, 4)
    with pytest.raises(BadInputError):
        cam.run(GradCamRequest(probe_photo, "vit", target_class=99), TaskContext(), probe_models)
    with pytest.raises(BadInputError):
        cam.run(GradCamRequest(probe_photo, "vit", layer="no.such.layer"), TaskContext(), probe_models)
    with pytest.raises(BadInputError):
        cam.run(GradCamRequest(probe_photo, "vit", layer="head"), TaskContext(), probe_models)  # not spatial
    with pytest.raises(BadInputError):
        cam.run(GradCamRequest(probe_photo, "vit", method="lime"), TaskContext(), probe_models)
    probe_models.add("clip", probe_kit.hf_clip(), "transformers", task="clip")
    with pytest.raises(BadInputError, match="no classification head"):
        cam.run(GradCamRequest(probe_photo, "clip"), TaskContext(), probe_models)


def test_occlusion_finds_the_evidence_and_reports_per_batch(probe_models, probe_kit, probe_red_blue):
    probe_models.add("cnn", probe_kit.left_red_cnn(), "torchvision", task="cnn", **probe_kit.LEFT_RED_OPTIONS)
    progress = []
    req = OcclusionRequest(probe_red_blue, "cnn", target_class=0, window=8, stride=4, batch_size=10)
    res = occlusion.run(req, TaskContext(on_progress=lambda f, t: progress.append(f), min_interval=0), probe_models)
    _no_tensors(res)
    assert res.drops.shape == (7, 7) and res.ys == (0, 4, 8, 12, 16, 20, 24)
    assert res.baseline == pytest.approx(0.5)  # both logits are 10 * 64 / 512
    i, j = np.unravel_index(np.argmax(res.drops), res.drops.shape)
    assert res.ys[i] == 8 and res.xs[j] == 4  # the window exactly over the red square
    assert res.heatmap[8:16, 4:12].min() > 0  # hiding red lowers "red on the left"
    assert res.heatmap[16:24, 20:28].max() < 0  # hiding blue lowers the rival class
    assert res.heatmap[0, 0] == 0 and res.heatmap[0:4, 28:32].max() == 0  # blank corners
    assert len(progress) == 1 + 5 and progress[-1] == 1.0  # 49 windows in batches of 10, then done


def test_occlusion_cancels_between_batches(probe_models, probe_kit, probe_red_blue):
    probe_models.add("cnn", probe_kit.left_red_cnn(), "torchvision", task="cnn", **probe_kit.LEFT_RED_OPTIONS)
    token = CancelToken()
    ctx = TaskContext(token, on_progress=lambda f, t: token.cancel(), min_interval=0)
    with pytest.raises(Cancelled):
        occlusion.run(OcclusionRequest(probe_red_blue, "cnn", window=4, stride=1, batch_size=8), ctx, probe_models)


def test_layer_tree_and_channel_stats(probe_models, probe_kit, probe_red_blue, probe_photo):
    probe_models.add("cnn", probe_kit.left_red_cnn(), "torchvision", task="cnn", **probe_kit.LEFT_RED_OPTIONS)
    tree = features.run_layer_tree(LayerTreeRequest("cnn"), TaskContext(), probe_models)
    assert tree.layers == (("features", "Sequential", (2, 32, 32)), ("features.0", "Conv2d", (2, 32, 32)),
                           ("features.1", "ReLU", (2, 32, 32)))
    assert tree.default_cam_layer == "features" and tree.kind == "cnn"
    stats = features.run_channel_stats(ChannelStatsRequest(probe_red_blue, "cnn", "features.1", top_k=1, bins=4),
                                       TaskContext(), probe_models)
    np.testing.assert_allclose(stats.channel_means, [64 / 1024, 64 / 1024])
    assert stats.top_channels.tolist() == [0] and stats.top_maps.shape == (1, 32, 32)
    assert stats.hist_counts.sum() == 2 * 32 * 32 and stats.hist_counts[0] == 2048 - 128
    assert stats.hist_edges.shape == (5,)
    probe_models.add("vit", probe_kit.timm_vit(), "timm")
    vtree = features.run_layer_tree(LayerTreeRequest("vit"), TaskContext(), probe_models)
    shapes = dict((n, s) for n, _t, s in vtree.layers)
    assert shapes["blocks.0"] == (17, 32) and shapes["head"] == (5,)
    vstats = features.run_channel_stats(ChannelStatsRequest(probe_photo, "vit", "blocks.0", top_k=3), TaskContext(), probe_models)
    assert vstats.top_maps.shape == (3, 4, 4) and vstats.channel_means.shape == (32,)


def _conv_stack(*layers):
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(*layers).eval()


def test_receptive_field_of_stacked_convs(probe_models):
    from torch import nn

    opts = dict(input_size=32, crop_pct=1.0, resize_mode="squash", has_head=False)
    probe_models.add("two3x3", _conv_stack(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)),
               "torchvision", task="cnn", **opts)
    rf = features.run_receptive_field(ReceptiveFieldRequest("two3x3", "1", row=10, col=20), TaskContext(), probe_models)
    assert rf.box == (18, 8, 23, 13)  # 5x5 around (x=20, y=10)
    assert rf.centre == pytest.approx((20.5, 10.5), abs=0.5) and rf.erf.max() == 1.0
    # A stride-2 3x3 conv under a 3x3 conv: 3 + (3 - 1) * 2 = 7 pixels.
    probe_models.add("strided", _conv_stack(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3, padding=1)),
               "torchvision", task="cnn", **opts)
    rf2 = features.run_receptive_field(ReceptiveFieldRequest("strided", "1", row=8, col=8), TaskContext(), probe_models)
    assert rf2.layer_grid == (16, 16)
    assert rf2.box[2] - rf2.box[0] == 7 and rf2.box[3] - rf2.box[1] == 7
    with pytest.raises(BadInputError):
        features.run_receptive_field(ReceptiveFieldRequest("strided", "1", row=99), TaskContext(), probe_models)


def test_receptive_field_of_resnet18_layer1_is_43_pixels(probe_models):
    import torch
    import torchvision

    torch.manual_seed(0)
    probe_models.add("r18", torchvision.models.resnet18(weights=None), "torchvision", task="cnn")
    # 7x7/2 conv -> 7, 3x3/2 max-pool -> 7 + 2*2 = 11, four 3x3 convs at stride 4 -> 11 + 4*2*4 = 43.
    rf = features.run_receptive_field(ReceptiveFieldRequest("r18", "layer1"), TaskContext(), probe_models)
    assert rf.layer_grid == (56, 56) and (rf.row, rf.col) == (28, 28)
    assert (rf.box[2] - rf.box[0], rf.box[3] - rf.box[1]) == (43, 43)


def test_receptive_field_of_a_vit_block_covers_the_image(probe_models, probe_kit):
    probe_models.add("vit", probe_kit.timm_vit(), "timm")
    img = StudioImage(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    rf = features.run_receptive_field(ReceptiveFieldRequest("vit", "blocks.0", row=1, col=2, image=img),
                                      TaskContext(), probe_models)
    assert rf.layer_grid == (4, 4) and rf.box == (0, 0, 32, 32) and rf.geometry is not None
