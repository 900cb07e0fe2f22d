"""Shared fixtures of the reliability suite: a STUDIO_HOME whose catalog holds every tiny model a
full session needs (paint, label, chat, tape), and helpers to pick them through their combo boxes.

The models are tiny and random, built from configs (tests/helpers), never from a hub; they are
built once per session and declared in the home's models.toml, so the studio loads them through the
real model manager like downloaded ones.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from studio.catalog.cards import card_to_dict, dumps_cards
from tests.helpers import tiny_models, tiny_sd, tiny_video
from tests.helpers.tiny_vlm import card_toml, tiny_vlm, vlm_zoo

CLIP_ID, VLM_ID = "tiny-clip", "tiny-llava"


@pytest.fixture(scope="session")
def reliability_models(tmp_path_factory):
    """Folders of the tiny SD, ControlNet, motion adapter, CLIP and LLaVA (built once per session)."""
    from studio.engines import clip_tiny

    zoo = tiny_models.zoo(tmp_path_factory)
    return {"sd": zoo.path("sd"), "controlnet": zoo.path("controlnet"),
            "motion": tiny_video.folders(tmp_path_factory).motion,
            "clip": clip_tiny.cached_hf_clip_folder(),
            "vlm": tiny_vlm(vlm_zoo(tmp_path_factory), "llava-chat")}


def write_full_home(home: str | os.PathLike, models: dict) -> Path:
    """A STUDIO_HOME with every tiny model in its catalog and paint set to the tiny pipeline."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    motion = tiny_models.card(tiny_video.MOTION_ID, "diffusers", "motion", models["motion"],
                              **tiny_video.MOTION_OPTIONS)
    text = (tiny_sd.catalog_text(models["sd"], models["controlnet"]) + "\n"
            + dumps_cards([card_to_dict(motion)]) + "\n"
            f'[[model]]\nid = "{CLIP_ID}"\nname = "Tiny CLIP"\ntask = "clip"\nlibrary = "transformers"\n'
            f'source = "local:{Path(models["clip"]).as_posix()}"\ntrained = false\n\n'
            + card_toml(VLM_ID, models["vlm"], "Tiny LLaVA"))
    (home / "models.toml").write_text(text, encoding="utf-8")
    settings = home / "settings.json"
    values = json.loads(settings.read_text()) if settings.exists() else {}
    values.update({"paint.model": tiny_sd.TINY_SD, "paint.width": 32, "paint.height": 32, "paint.steps": 2})
    settings.write_text(json.dumps(values))
    return home


@pytest.fixture
def full_home(tmp_path, reliability_models) -> Path:
    return write_full_home(tmp_path / "studio-home", reliability_models)


def choose(studio, name: str, data) -> None:
    """Pick the item whose data is `data` in combo box `name`, as choosing it with the mouse does."""
    combo = studio.widget(name)
    index = combo.findData(data)
    assert index >= 0, f"{data!r} is not offered in {name}: {[combo.itemData(i) for i in range(combo.count())]}"
    combo.setCurrentIndex(index)


def use_tiny_models(studio, max_tokens: int = 8) -> None:
    """Point label, chat and tape at the tiny models through their combo boxes."""
    for workspace, name, data in (("label", "label.model", CLIP_ID), ("chat", "chat.model", VLM_ID),
                                  ("tape", "tape.model", tiny_video.MOTION_ID)):
        studio.switch_to(workspace)
        choose(studio, name, data)
    studio.widget("chat.max_tokens").setValue(max_tokens)  # random weights never stop by themselves
    studio.wait_idle()


@pytest.fixture
def shapes_png(tmp_path) -> Path:
    """A 96x64 picture: a red disc on the left, a blue square on the right, white elsewhere."""
    from PIL import Image

    px = np.full((64, 96, 3), 255, np.uint8)
    yy, xx = np.mgrid[:64, :64]
    px[:, :64][(yy - 32) ** 2 + (xx - 28) ** 2 < 18 ** 2] = (220, 30, 30)
    px[20:44, 66:90] = (30, 60, 220)
    path = tmp_path / "shapes.png"
    Image.fromarray(px).save(path)
    return path
