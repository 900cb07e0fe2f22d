"""Text side of the Shapes world: label prompts and the caption variety CLIP trains on.

Owns the zero-shot prompt template the evaluation uses and the randomised phrasings
(templates, object order, counts, sizes, backgrounds) that keep the tiny CLIP from
memorising one sentence shape.  No torch: the studio can build prompts without it.
"""

from __future__ import annotations

import numpy as np

from .world import LABELS, Scene, article

ZERO_SHOT_TEMPLATE = "a photo of {}"
# Phrasings for single labels; the zero-shot template is among them on purpose: the bar
# measures prompt-based classification, CLIP-style, not unseen wording.
LABEL_TEMPLATES = ["a photo of {}", "{}", "a picture of {}", "a drawing of {}", "there is {}"]
_BACKGROUND_WORDS = {"plain": "on a plain background", "sky": "under the sky",
                     "noise": "on a textured background"}
_COUNTS = {1: "one", 2: "two", 3: "three"}


def with_article(label: str) -> str:
    return f"{article(label)} {label}"


def label_prompt(label: str, template: str = ZERO_SHOT_TEMPLATE) -> str:
    """'red circle' -> 'a photo of a red circle'."""
    return template.format(with_article(label))


def label_prompts(template: str = ZERO_SHOT_TEMPLATE) -> list[str]:
    return [label_prompt(lab, template) for lab in LABELS]


def _listing(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def random_caption(scene: Scene, rng: np.random.Generator) -> str:
    """One of many faithful descriptions of `scene` (every object named, nothing invented)."""
    objs = scene.objects
    phrases = [with_article(o.label) for o in objs]
    k = int(rng.integers(6))
    if len(objs) == 1:
        o = objs[0]
        return [
            phrases[0],
            f"a photo of {phrases[0]}",
            f"{article(o.size_word)} {o.size_word} {o.label}",
            f"{phrases[0]} {_BACKGROUND_WORDS[scene.background]}",
            LABEL_TEMPLATES[int(rng.integers(2, len(LABEL_TEMPLATES)))].format(phrases[0]),
            f"one {o.label}",
        ][k]
    shuffled = [phrases[i] for i in rng.permutation(len(phrases))]
    return [
        scene.caption,
        f"a photo of {scene.caption}",
        f"{_COUNTS[len(objs)]} objects: {_listing(shuffled)}",
        _listing(shuffled),
        f"a picture of {_listing(shuffled)}",
        f"{scene.caption} {_BACKGROUND_WORDS[scene.background]}",
    ][k]
