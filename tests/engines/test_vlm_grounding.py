"""Boxes and points in VLM answers: every format the parser knows, labels, spaces, and the mapping
onto the image (including Qwen2.5-VL's resized-input pixels)."""
from __future__ import annotations

import pytest

from studio.engines.vlm_grounding import Grounded, parse, point_region, to_pixels


def test_qwen25_json_boxes_and_points_in_model_input_pixels():
    text = ('Here you go:\n```json\n[\n  {"bbox_2d": [28, 56, 140, 112], "label": "cat"},\n'
            '  {"bbox_2d": [200, 10, 250, 60], "label": "red ball"},\n  {"point_2d": [14, 28], "label": "eye"}\n]\n```')
    found = parse(text)
    assert [(g.label, g.kind, g.space) for g in found] == [("cat", "box", "input"), ("red ball", "box", "input"),
                                                          ("eye", "point", "input")]
    assert found[0].box == (28, 56, 140, 112)
    # The model saw a 280x140 resize of a 560x280 image: coordinates double.
    assert to_pixels(found[0], (560, 280), (280, 140)) == (56, 112, 280, 224)
    assert to_pixels(found[2], (560, 280), (280, 140)) == (28, 56, 28, 56)
    # Without the input size the numbers are taken as image pixels.
    assert to_pixels(found[0], (560, 280)) == (28, 56, 140, 112)


def test_almost_json_from_a_model_is_still_read():
    found = parse('{"bbox_2d": [10, 20, 30, 40], "label": "dog",}')
    assert len(found) == 1 and found[0].label == "dog" and found[0].box == (10, 20, 30, 40)


def test_qwen2_box_tokens_on_the_thousand_grid():
    text = "<|object_ref_start|>the cat<|object_ref_end|><|box_start|>(100,200),(500,800)<|box_end|>"
    (g,) = parse(text)
    assert (g.label, g.space) == ("the cat", "thousand")
    assert to_pixels(g, (1000, 500)) == (100, 100, 500, 400)


def test_molmo_points_in_percent():
    text = 'The eyes: <points x1="25.0" y1="40.0" x2="75.0" y2="40.0" alt="eyes">eyes</points> and ' \
           '<point x="50" y="90" alt="nose">nose</point>.'
    found = parse(text)
    assert [(g.label, g.kind, g.space) for g in found] == [("eyes", "point", "percent")] * 2 + [("nose", "point", "percent")]
    assert to_pixels(found[1], (200, 100)) == (150, 40, 150, 40)


def test_point_tag_with_bracketed_numbers():
    (g,) = parse("<point>[0.5, 0.25]</point>")
    assert g.kind == "point" and g.space == "unit"
    assert to_pixels(g, (200, 100)) == (100, 25, 100, 25)


@pytest.mark.parametrize("text, label, space", [
    ("The red circle is at [0.1, 0.2, 0.5, 0.6].", "red circle", "unit"),
    ("blue square: [12, 30, 40, 64]", "blue square", "pixels"),
    ("A green triangle (0.5, 0.5, 1.0, 1.0) sits in the corner", "green triangle", "unit"),
    ("[0, 0, 1, 1]", "", "unit"),
])
def test_plain_boxes_as_the_starter_vlm_writes_them(text, label, space):
    (g,) = parse(text)
    assert (g.label, g.space, g.kind) == (label, space, "box")


def test_several_plain_boxes_each_take_their_own_label():
    found = parse("a red circle [0.1, 0.1, 0.3, 0.3] and a blue star [0.6, 0.6, 0.9, 0.8]")
    assert [g.label for g in found] == ["red circle", "blue star"]
    assert to_pixels(found[1], (100, 50)) == pytest.approx((60, 30, 90, 40))


@pytest.mark.parametrize("text", [
    "No boxes here, just 3 numbers: 1, 2, 3.",
    "A list [4, 3, 2, 1] is not a box (corners out of order).",
    "Version [1, 2] of the model",
    "",
])
def test_text_without_boxes_finds_none(text):
    assert parse(text) == []


def test_boxes_are_clipped_to_the_image_and_empty_ones_dropped():
    assert to_pixels(Grounded((-10, -10, 50, 50), space="pixels"), (40, 30)) == (0, 0, 40, 30)
    assert to_pixels(Grounded((100, 100, 120, 120), space="pixels"), (40, 30)) is None
    assert to_pixels(Grounded((10, 10, 10, 10), kind="point", space="pixels"), (40, 30)) == (10, 10, 10, 10)
    assert to_pixels(Grounded((90, 10, 90, 10), kind="point", space="pixels"), (40, 30)) is None


def test_json_boxes_are_not_found_twice():
    found = parse('{"bbox_2d": [0.1, 0.2, 0.3, 0.4], "label": "x"}')
    assert len(found) == 1 and found[0].space == "unit"


def test_a_point_becomes_a_square_region_inside_the_image():
    assert point_region((5, 5), (100, 50)) == (0, 0, 13, 13)  # at least 16 px wide, clipped
    x0, y0, x1, y1 = point_region((50, 25), (100, 50))
    assert (x1 - x0, y1 - y0) == (16, 16) and x0 < 50 < x1
