"""Starter kit: the Shapes world and the tiny models the studio ships for offline use.

Owns where the shipped starter weights live (`assets_dir`) and the light, torch-free
entry points: the procedural world (`world`), prompts (`prompts`) and the offline CLIP
tokenizer builder (`tokenizer`).  Training (`train`), loading (`models`) and
evaluation (`evaluate`) import torch and are imported on demand only.
"""

from __future__ import annotations

import os
from pathlib import Path

from .world import COLOURS, LABELS, SHAPES, make_clip, make_scene, render_pose

__all__ = ["COLOURS", "LABELS", "SHAPES", "assets_dir", "make_clip", "make_scene", "render_pose"]


def assets_dir() -> Path:
    """Folder holding cnn/, clip/ and tokenizer/ ($STUDIO_STARTER_ASSETS overrides)."""
    env = os.environ.get("STUDIO_STARTER_ASSETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "assets" / "starter"
