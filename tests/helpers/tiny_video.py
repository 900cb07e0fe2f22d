"""Tiny seeded video models for the frame tape's tests: the tiny Stable Diffusion folder of
tests/helpers/tiny_models.py plus a tiny MotionAdapter (same two blocks), saved with save_pretrained
so the model manager loads them like downloaded models; their cards; a user models.toml for the
`studio` fixture. Never from a hub; torch and diffusers are imported inside the functions.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from studio.catalog.cards import ModelCard, card_to_dict, dumps_cards
from tests.helpers import tiny_models

SD_ID, MOTION_ID = "tiny-sd", "tiny-motion"
# The tiny UNet's geometry: 32x32 pixels, 2 blocks; the tape's defaults follow the card's options.
MOTION_OPTIONS = {"base": SD_ID, "width": 32, "height": 32, "frames": 8, "steps": 2, "fps": 8}


def save_tiny_motion(folder: str | os.PathLike) -> Path:
    """A MotionAdapter matching tiny_models.sd_components' UNet (channels 4 and 8, one layer per block)."""
    from diffusers import MotionAdapter

    tiny_models.seed(0)
    adapter = MotionAdapter(block_out_channels=(4, 8), motion_layers_per_block=1,
                            motion_transformer_layers_per_block=1, motion_mid_block_layers_per_block=1,
                            motion_num_attention_heads=2, motion_norm_num_groups=1, motion_max_seq_length=32,
                            use_motion_mid_block=True)
    adapter.save_pretrained(str(folder), safe_serialization=True)
    return Path(folder)


tiny_models.BUILDERS.setdefault("motion", save_tiny_motion)


def folders(tmp_path_factory) -> SimpleNamespace:
    """The tiny SD and motion folders of this test session (built once)."""
    zoo = tiny_models.zoo(tmp_path_factory)
    return SimpleNamespace(sd=zoo.path("sd"), motion=zoo.path("motion"))


def cards(paths: SimpleNamespace) -> list[ModelCard]:
    return [tiny_models.card(SD_ID, "diffusers", "diffusion", paths.sd),
            tiny_models.card(MOTION_ID, "diffusers", "motion", paths.motion, **MOTION_OPTIONS)]


def write_user_catalog(home: str | os.PathLike, paths: SimpleNamespace) -> Path:
    """STUDIO_HOME/models.toml with the tiny cards, as Models > Manager > Add would write it."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    target = home / "models.toml"
    target.write_text(dumps_cards([card_to_dict(c) for c in cards(paths)]), encoding="utf-8")
    return target
