"""Colormaps, per-channel normalisation and tiling of activations (numpy only)."""
from __future__ import annotations

import numpy as np
import pytest

from studio.core import colormap as cm


@pytest.mark.parametrize("name", cm.COLORMAPS)
def test_lut_is_256_rgb_from_first_to_last_control_point(name):
    lut = cm.lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == cm._POINTS[name][0]
    assert tuple(lut[-1]) == cm._POINTS[name][-1]


def test_gray_is_the_identity_ramp():
    assert np.array_equal(cm.lut("gray")[:, 0], np.arange(256, dtype=np.uint8))


def test_unknown_colormap_raises():
    with pytest.raises(KeyError):
        cm.lut("jet")


def test_normalise_scales_each_channel_on_its_own():
    maps = np.stack([np.array([[0.0, 5.0], [10.0, 2.5]]),
                     np.array([[-1.0, -1.0], [-1.0, 3.0]]),
                     np.full((2, 2), 7.0)])
    out = cm.normalise(maps)
    assert out.dtype == np.float32 and out.shape == (3, 2, 2)
    np.testing.assert_allclose(out[0], [[0, 0.5], [1, 0.25]])
    np.testing.assert_allclose(out[1], [[0, 0], [0, 1]])
    assert np.all(out[2] == 0)  # a flat channel is 0, not NaN
    assert np.isfinite(out).all()


def test_apply_maps_0_and_1_to_the_lut_ends():
    rgb = cm.apply(np.array([[0.0, 1.0], [0.5, 2.0]]), "gray")
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[1, 1].tolist() == [255, 255, 255]  # clipped
    assert rgb[1, 0, 0] in (127, 128)


def test_tile_lays_out_channels_with_nan_padding():
    maps = np.stack([np.full((2, 3), i, np.float32) for i in range(5)])
    out = cm.tile(maps, cols=3, pad=1)
    assert out.shape == (2 * 2 + 1, 3 * 3 + 2)
    assert out[0, 0] == 0 and out[0, 4] == 1 and out[0, 8] == 2
    assert out[3, 0] == 3 and out[3, 4] == 4
    assert np.isnan(out[2, :]).all()             # padding row
    assert np.isnan(out[:, 3]).all()             # padding column
    assert np.isnan(out[3:, 8:]).all()           # the empty sixth slot


def test_tile_default_is_square_and_empty_is_safe():
    assert cm.tile(np.zeros((9, 4, 4), np.float32)).shape == (3 * 5 - 1, 3 * 5 - 1)
    assert cm.tile(np.zeros((0, 4, 5), np.float32)).shape == (4, 5)


def test_mosaic_paints_padding_with_the_background():
    maps = np.random.default_rng(0).normal(size=(4, 5, 5)).astype(np.float32)
    rgb = cm.mosaic_rgb(maps, "viridis", background=(1, 2, 3))
    assert rgb.shape == (11, 11, 3) and rgb.dtype == np.uint8
    assert rgb[5, 5].tolist() == [1, 2, 3]
    lut = {tuple(c) for c in cm.lut("viridis").tolist()}
    assert tuple(rgb[0, 0].tolist()) in lut
