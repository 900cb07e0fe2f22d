"""The feature-map engine's helpers: the torch normalisation equals the usual numpy one, and the
per-model layer cache neither changes the answer nor keeps an unloaded model alive."""
from __future__ import annotations

import gc
import weakref

import numpy as np

from studio.core.image import StudioImage
from studio.engines import featuremaps


def test_preprocess_matches_the_numpy_normalisation():
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    x = featuremaps._preprocess(StudioImage(rgb), 64, "cpu")
    small = np.asarray(Image.fromarray(rgb).resize((64, 64), Image.BILINEAR), np.float32) / 255.0
    want = (small - np.asarray(featuremaps.IMAGENET_MEAN, np.float32)) / np.asarray(featuremaps.IMAGENET_STD, np.float32)
    assert x.shape == (1, 3, 64, 64) and x.is_contiguous()
    np.testing.assert_allclose(x[0].numpy(), want.transpose(2, 0, 1), atol=1e-5)


def test_the_layer_cache_answers_the_same_and_lets_the_model_go():
    import torch.nn as nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)))
    first = featuremaps.spatial_layers(model)
    assert first == ("0", "1", "2", "2.0", "2.1")
    assert featuremaps.spatial_layers(model) == first
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None
