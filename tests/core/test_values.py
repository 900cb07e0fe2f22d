"""Value types and errors: StudioImage, frozen requests, StudioError wrapping, paths."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from studio.core.errors import BadInputError, StudioError, as_studio_error
from studio.core.image import StudioImage
from studio.core.paths import StudioPaths, studio_home
from studio.core.requests import FeatureMapRequest, OpenImageRequest


def test_studio_image_is_read_only_and_copies_its_input():
    arr = np.zeros((4, 6, 3), np.uint8)
    img = StudioImage(arr)
    arr[0, 0] = 255
    assert img.pixels[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        img.pixels[0, 0] = 1
    assert img.size == (6, 4) and (img.width, img.height) == (6, 4)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 2), np.uint8),
                                 np.zeros((4, 4, 3), np.float32)])
def test_studio_image_rejects_other_shapes_and_types(bad):
    with pytest.raises(ValueError):
        StudioImage(bad)


def test_rgb_composites_transparency_over_white():
    px = np.array([[[255, 0, 0, 0], [255, 0, 0, 255], [0, 0, 0, 128]]], np.uint8)
    rgb = StudioImage(px).rgb()
    assert rgb.shape == (1, 3, 3)
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [255, 0, 0]
    assert rgb[0, 2].tolist() == [127, 127, 127]


def test_from_pil_converts_modes():
    from PIL import Image

    assert StudioImage.from_pil(Image.new("L", (3, 2), 9)).pixels.shape == (2, 3, 3)
    assert StudioImage.from_pil(Image.new("LA", (3, 2))).pixels.shape == (2, 3, 4)


def test_requests_are_frozen():
    req = OpenImageRequest("/x.png")
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.path = "/y.png"
    img = StudioImage(np.zeros((2, 2, 3), np.uint8))
    assert FeatureMapRequest(img, "m").layer == ""


def test_as_studio_error_wraps_anything_with_a_traceback():
    try:
        1 / 0
    except ZeroDivisionError as exc:
        err = as_studio_error(exc)
    assert isinstance(err, StudioError)
    assert "ZeroDivisionError" in err.user_message
    assert "Traceback" in err.detail and "1 / 0" in err.detail


def test_as_studio_error_keeps_studio_errors():
    try:
        raise BadInputError("The file is empty.")
    except BadInputError as exc:
        err = as_studio_error(exc)
        assert err is exc
    assert err.user_message == "The file is empty." and "Traceback" in err.detail


def test_paths_follow_studio_home(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "h"))
    assert studio_home() == tmp_path / "h"
    p = StudioPaths.from_env().ensure()
    for sub in (p.home, p.library, p.logs, p.models, p.journal):
        assert sub.is_dir()
    assert p.settings_file == tmp_path / "h" / "settings.json"
