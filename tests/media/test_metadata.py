"""A1111 `parameters` text: writing, reading (quoted values, multi-line prompts, with or without a
negative prompt, real-world strings) and the studio recipe's input images."""
from __future__ import annotations

import numpy as np
import pytest

from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.core.paint_requests import ControlUnit, PaintRequest, request_to_record
from studio.media.metadata import (build_recipe, format_parameters, load_inputs, parameters_for,
                                   parse_parameters, parse_recipe, quote, recipe_json, request_from_recipe,
                                   settings_from_parameters, store_inputs, unquote)

A1111 = """masterpiece, a cat wearing a hat, (detailed:1.2)
Negative prompt: lowres, bad anatomy
Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3141592653, Size: 512x768, \
Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.6, \
Lora hashes: "detail: 8a7b6c5d4e, style: 0f1e2d3c4b", Version: v1.10.1"""


def test_quote_only_what_needs_it():
    assert quote("Euler a") == "Euler a"
    for text in ("a, b", "a: b", "two\nlines", '"quoted"'):
        assert unquote(quote(text)) == text and quote(text).startswith('"')


def test_parse_a_real_a1111_string():
    p = parse_parameters(A1111)
    assert p.prompt == "masterpiece, a cat wearing a hat, (detailed:1.2)"
    assert p.negative_prompt == "lowres, bad anatomy"
    assert p.settings["Lora hashes"] == "detail: 8a7b6c5d4e, style: 0f1e2d3c4b"
    s = settings_from_parameters(p)
    assert s["scheduler"] == "DPM++ 2M Karras" and s["steps"] == 28 and s["cfg_scale"] == 6.5
    assert (s["width"], s["height"]) == (512, 768) and s["seed"] == 3141592653
    assert s["strength"] == 0.6 and s["model_name"] == "v1-5-pruned-emaonly" and s["model_hash"] == "6ce0161689"


@pytest.mark.parametrize("prompt,negative", [
    ("line one,\nline two: with colon\n\nline four", "neg one\nneg, two"),
    ("just a prompt", ""),
    ('a "quoted" word, Steps: 3, Seed: 4, Size: 9x9', ""),
    ("", "only negative"),
])
def test_round_trip_of_multi_line_and_awkward_prompts(prompt, negative):
    text = format_parameters(prompt, negative, [("Steps", 20), ("Sampler", "Euler a"), ("CFG scale", 7),
                                                ("Seed", 1), ("Model", "my, model: v2\nx")])
    p = parse_parameters(text)
    assert (p.prompt, p.negative_prompt) == (prompt.strip(), negative.strip())
    assert p.settings["Model"] == "my, model: v2\nx" and p.settings["Sampler"] == "Euler a"


def test_text_without_settings_is_all_prompt_and_garbage_never_raises():
    assert parse_parameters("a cat\nNegative prompt: dog").negative_prompt == "dog"
    assert parse_parameters("a cat").settings == {}
    for junk in ("", None, "\n\n", 'Steps: "unterminated, Seed: x, Size: big'):
        parse_parameters(junk)
    s = settings_from_parameters(parse_parameters("p\nSteps: many, Sampler: Warp drive, Seed: 1, Size: 8x8"))
    assert "steps" not in s and "scheduler" not in s and len(s["unread"]) == 2


def test_parameters_of_a_request():
    req = PaintRequest(prompt="a, b", model_id="m", mode="inpaint", negative_prompt="c", steps=5, cfg_scale=7.5,
                       width=64, height=32, strength=0.4, only_masked=True,
                       controls=(ControlUnit("depth", "cn", None, "depth_midas", 0.5, 0.1, 0.9),))
    p = parse_parameters(parameters_for(req, 99, "My model", "abcdef0123456789"))
    assert p.prompt == "a, b" and p.negative_prompt == "c"
    assert p.settings["Seed"] == "99" and p.settings["Size"] == "64x32" and p.settings["Model hash"] == "abcdef0123"
    assert p.settings["CFG scale"] == "7.5" and p.settings["Denoising strength"] == "0.4"
    assert p.settings["Inpaint area"] == "Only masked"
    assert "Module: depth_midas" in p.settings["ControlNet 0"] and p.settings["Studio mode"] == "inpaint"


def test_recipe_inputs_inline_and_on_disk(tmp_path):
    init = StudioImage(np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8))
    mask = np.zeros((16, 24), np.uint8)
    mask[4:8] = 255
    req = PaintRequest(prompt="p", model_id="m", mode="inpaint", init_image=init, mask=mask, seed=5,
                       batch_count=3, output_dir=str(tmp_path))
    _, images = request_to_record(req)
    inputs = store_inputs(images, tmp_path)
    recipe = parse_recipe(recipe_json(build_recipe(req, 6, 1, {"id": "m"}, [], [], inputs)))
    back = request_from_recipe(recipe, tmp_path)
    assert back.seed == 6 and back.batch_count == 1 and back.output_dir == ""
    assert np.array_equal(back.mask, mask) and np.array_equal(back.init_image.pixels, init.pixels)
    for entry in recipe["inputs"].values():
        entry.pop("png")  # only the library copy is left
    assert np.array_equal(load_inputs(recipe, tmp_path)["mask"], mask)
    (tmp_path / recipe["inputs"]["mask"]["file"]).unlink()
    with pytest.raises(BadInputError, match="mask image is missing"):
        load_inputs(recipe, tmp_path)
    with pytest.raises(BadInputError):
        parse_recipe('{"format": "other"}')
    with pytest.raises(BadInputError):
        parse_recipe("{not json")
