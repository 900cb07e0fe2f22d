"""The numpy views of the probes, checked against results worked out by hand, and the
preprocessing geometry. No model and no torch is needed here."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from studio.core.inspect_requests import PreprocessSpec, spec_from_crop_pct
from studio.engines.probes import views

E = np.eye(5)


def _layer(cls_row, patch_rows=None):
    """(1 head, 5 tokens, 5 tokens): CLS row given, patch rows attend to themselves unless given."""
    a = np.eye(5)
    a[0] = cls_row
    if patch_rows is not None:
        a[1:] = patch_rows
    return a[None]


def test_rollout_two_layers_by_hand():
    # Layer 1: CLS spreads evenly over the 4 patches; layer 2: CLS looks only at patch 1.
    # Patches attend to themselves, so (A + I) / 2 keeps them one-hot.
    a1 = _layer([0, .25, .25, .25, .25])
    a2 = _layer([0, 1, 0, 0, 0])
    att = np.stack([a1, a2])
    # By hand: r1 = (A1 + I)/2 -> CLS row [.5, .125, .125, .125, .125]; r2 CLS row [.5, .5, 0, 0, 0].
    # CLS row of r2 @ r1 = .5 * r1[CLS] + .5 * r1[patch 1] = [.25, .0625 + .5, .0625, .0625, .0625].
    expected = np.array([[0.5625, 0.0625], [0.0625, 0.0625]])
    got = views.attention_rollout(att, prefix=1, grid=(2, 2))
    np.testing.assert_allclose(got, expected, atol=1e-7)
    # Only the first layer: CLS row of r1.
    np.testing.assert_allclose(views.attention_rollout(att, prefix=1, layers=1), [.125] * 4, atol=1e-7)
    # The whole joint matrix keeps rows summing to one.
    np.testing.assert_allclose(views.rollout_matrix(att).sum(1), np.ones(5), atol=1e-6)


def test_rollout_head_fusion_max_min_mean():
    h0 = _layer([0, .7, .1, .1, .1])[0]
    h1 = _layer([0, .1, .1, .1, .7])[0]
    att = np.stack([h0, h1])[None]  # 1 layer, 2 heads
    # max: [0, .7, .1, .1, .7] + I -> CLS row [1, .7, .1, .1, .7] / 2.6
    np.testing.assert_allclose(views.attention_rollout(att, head_fusion="max"),
                               np.array([.7, .1, .1, .7]) / 2.6, atol=1e-7)
    # min: [0, .1, .1, .1, .1] + I -> [1, .1, .1, .1, .1] / 1.4
    np.testing.assert_allclose(views.attention_rollout(att, head_fusion="min"),
                               np.array([.1, .1, .1, .1]) / 1.4, atol=1e-7)
    # mean: [0, .4, .1, .1, .4] + I -> / 2
    np.testing.assert_allclose(views.attention_rollout(att, head_fusion="mean"),
                               np.array([.2, .05, .05, .2]), atol=1e-7)
    with pytest.raises(ValueError):
        views.attention_rollout(att, head_fusion="median")


def test_rollout_discard_ratio_drops_lowest_per_row_never_cls():
    # CLS's own attention (.1) is below the patch value .15, but CLS is never dropped.
    att = _layer([.1, .4, .3, .15, .05])[None]
    # ratio .5 of the 4 patch columns -> the 2 lowest (.15, .05) go in every row:
    # CLS row [.1, .4, .3, 0, 0] + I -> [1.1, .4, .3, 0, 0] / 1.8
    got = views.attention_rollout(att, discard_ratio=0.5)
    np.testing.assert_allclose(got, np.array([.4, .3, 0, 0]) / 1.8, atol=1e-7)
    joint = views.rollout_matrix(att, discard_ratio=0.5)
    assert joint[0, 0] == pytest.approx(1.1 / 1.8)
    # Ratio 0 changes nothing: CLS row [1.1, .4, .3, .15, .05] / 2
    np.testing.assert_allclose(views.attention_rollout(att), np.array([.4, .3, .15, .05]) / 2, atol=1e-7)
    with pytest.raises(ValueError):
        views.attention_rollout(att, discard_ratio=1.0)


def test_cls_attention_map_head_and_mean():
    att = np.zeros((2, 2, 5, 5), np.float32)
    att[1, 0, 0] = [0, .1, .2, .3, .4]
    att[1, 1, 0] = [0, .3, .2, .1, .4]
    np.testing.assert_allclose(views.cls_attention(att, 1, head=0, grid=(2, 2)), [[.1, .2], [.3, .4]])
    np.testing.assert_allclose(views.cls_attention(att, 1, grid=(2, 2)), [[.2, .2], [.2, .4]], atol=1e-7)
    np.testing.assert_allclose(views.token_attention(att, 1, token=0, head=1), [.3, .2, .1, .4])


def test_mean_attention_distance_self_is_zero_and_uniform_is_mean_pairwise():
    grid, patch = (2, 2), (8, 8)
    selfish = np.eye(5)[None]  # every token attends only to itself
    uniform = np.full((1, 5, 5), 1 / 5)  # every token attends evenly to all 5 tokens
    att = np.stack([np.concatenate([selfish, uniform])])  # 1 layer, 2 heads
    mad = views.mean_attention_distance(att, grid, patch, prefix=1)
    assert mad.shape == (1, 2)
    assert mad[0, 0] == pytest.approx(0.0)
    # Patch centres (4,4), (12,4), (4,12), (12,12): mean over all 16 ordered pairs by hand.
    centres = [(4, 4), (12, 4), (4, 12), (12, 12)]
    pairs = [math.dist(a, b) for a in centres for b in centres]
    assert mad[0, 1] == pytest.approx(sum(pairs) / 16, rel=1e-6)
    assert mad[0, 1] == pytest.approx(4 + 2 * math.sqrt(2), rel=1e-6)


def test_token_similarity_barcode_and_cosine():
    tokens = np.zeros((1, 5, 3), np.float16)
    tokens[0, 0] = [1, 0, 0]
    tokens[0, 1:] = [[1, 0, 0], [0, 1, 0], [-1, 0, 0], [1, 1, 0]]
    sim = views.token_similarity(tokens, 0, token=0, grid=(2, 2))
    np.testing.assert_allclose(sim, [[1, 0], [-1, 1 / math.sqrt(2)]], atol=1e-3)
    np.testing.assert_allclose(views.barcode([2, -2, 0, 1]), [1, 0, .5, .75])
    np.testing.assert_allclose(views.barcode([2, -1, 0], mode="symmetric"), [1, .25, .5])
    np.testing.assert_allclose(views.barcode([3, 3]), [0, 0])
    cos = views.cosine_matrix(np.array([[1.0, 0], [0, 2.0], [3.0, 3.0]]))
    np.testing.assert_allclose(np.diag(cos), 1, atol=1e-6)


def test_grad_cam_arithmetic():
    acts = np.zeros((2, 2, 2))
    acts[0] = [[1, 0], [0, 0]]
    acts[1] = [[0, 0], [0, 1]]
    grads = np.zeros((2, 2, 2))
    grads[0] = 0.5  # pooled weight .5 for channel 0, 0 for channel 1
    cam = views.grad_cam(acts, grads, "gradcam")
    np.testing.assert_allclose(cam, [[.5, 0], [0, 0]])
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3) = .25 / (.5 + .125) = .4 per cell; w = 4 * .4 * .5
    np.testing.assert_allclose(views.grad_cam(acts, grads, "gradcam++"), [[.8, 0], [0, 0]], atol=1e-7)
    # A negative weight is clipped by the final ReLU.
    np.testing.assert_allclose(views.grad_cam(acts, -grads), np.zeros((2, 2)))


def test_occlusion_windows_cover_every_pixel():
    assert views.occlusion_positions(32, 8, 4) == [0, 4, 8, 12, 16, 20, 24]
    assert views.occlusion_positions(30, 8, 8) == [0, 8, 16, 22]
    assert views.occlusion_positions(6, 8, 4) == [0]
    vals = np.array([[1.0, 3.0]])
    heat = views.spread_windows(vals, [0], [0, 2], 4, (4, 6))
    np.testing.assert_allclose(heat[0], [1, 1, 2, 2, 3, 3])


def test_geometry_shortest_edge_centre_crop():
    # timm-style crop_pct .875 at 224: resize the short side to 256, centre-crop 224.
    spec = spec_from_crop_pct((224, 224), 0.875)
    g = spec.geometry(640, 480)
    assert g.resized_size == (341, 256)  # int(256 * 640 / 480)
    assert g.crop_offset == (58, 16)  # round((341-224)/2), round((256-224)/2)
    x0, y0, x1, y1 = g.crop_box
    assert x0 == pytest.approx(58 * 640 / 341) and y0 == pytest.approx(16 * 480 / 256)
    assert x1 - x0 == pytest.approx(224 * 640 / 341)
    # The input's centre is the image's centre, and the mapping round-trips.
    cx, cy = g.input_to_original(112, 112)
    assert cx == pytest.approx(320, abs=1.0) and cy == pytest.approx(240, abs=0.5)
    assert g.original_to_input(*g.input_to_original(10, 20)) == pytest.approx((10, 20))
    assert g.patch_box(0, 0, (16, 16))[:2] == pytest.approx((x0, y0))


def test_geometry_squash_and_longest_pad():
    sq = PreprocessSpec((32, 32), (32, 32), "squash").geometry(64, 16)
    assert sq.crop_box == pytest.approx((0, 0, 64, 16)) and sq.scale == (0.5, 2.0)
    pad = PreprocessSpec((32, 32), (32, 32), "longest").geometry(64, 16)
    assert pad.resized_size == (32, 8) and pad.crop_offset == (0, -12)
    # Padding shows as a crop box reaching past the image, above and below.
    assert pad.crop_box == pytest.approx((0, -24, 64, 40))


def test_views_import_without_torch():
    code = ("import sys, studio.engines.probes.views, studio.engines.probes, studio.core.inspect_requests;"
            "import studio.engines.probes.adapters, studio.engines.probes.vit_probe;"
            "sys.exit(3 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
