"""The palette of an image in numpy: median cut for a deterministic start, then a few k-means steps.

No Qt here: the engine runs on the studio's CPU pool and the command calls `extract` directly.
"""
from __future__ import annotations

import numpy as np

from studio.plugins import api

MAX_SAMPLES = 40_000


@api.request
class PaletteRequest:
    image: api.StudioImage
    colours: int = 6


@api.result
class PaletteResult:
    colours: tuple  # ((r, g, b), share) from the most to the least common
    size: tuple  # (width, height) of the image


def _split(box: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Cut a box of colours at the median of its widest channel, between two different values."""
    spread = box.max(axis=0) - box.min(axis=0)
    ch = int(np.argmax(spread))
    if spread[ch] == 0:
        return None
    order = np.argsort(box[:, ch], kind="stable")
    values = box[order, ch]
    mid = len(box) // 2
    # Move the cut to where the value changes so one colour never ends up on both sides.
    changes = np.flatnonzero(values[1:] != values[:-1]) + 1
    mid = int(changes[np.argmin(np.abs(changes - mid))])
    return box[order[:mid]], box[order[mid:]]


def extract(pixels: np.ndarray, colours: int = 6) -> list[tuple[tuple[int, int, int], float]]:
    """The `colours` dominant colours of HxWx3(4) uint8 `pixels` with their share of the image."""
    if colours < 1:
        raise api.BadInputError("Ask for at least one colour.")
    rgb = np.asarray(pixels)[..., :3].reshape(-1, 3)
    if len(rgb) == 0:
        raise api.BadInputError("The image is empty.")
    sample = rgb[:: max(1, len(rgb) // MAX_SAMPLES)].astype(np.float32)
    boxes = [sample]
    while len(boxes) < colours:
        # Split the box with the most colour spread times pixels: where one colour hides most.
        scores = [(b.max(0) - b.min(0)).max() * len(b) for b in boxes]
        order = np.argsort(scores)[::-1]
        for i in order:
            halves = _split(boxes[i])
            if halves is not None:
                boxes[i:i + 1] = list(halves)
                break
        else:
            break  # every box holds one colour: the image has fewer colours than asked
    centres = np.array([b.mean(axis=0) for b in boxes], np.float32)
    for _ in range(10):
        labels = ((sample[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        moved = np.array([sample[labels == j].mean(0) if np.any(labels == j) else centres[j]
                          for j in range(len(centres))], np.float32)
        if np.allclose(moved, centres, atol=0.5):
            centres = moved
            break
        centres = moved
    counts = np.bincount(labels, minlength=len(centres)).astype(np.float64)
    merged: dict[tuple[int, int, int], float] = {}
    for c, n in zip(np.clip(np.rint(centres), 0, 255).astype(int), counts):
        if n > 0:
            key = (int(c[0]), int(c[1]), int(c[2]))
            merged[key] = merged.get(key, 0.0) + n
    total = sum(merged.values())
    return sorted(((c, n / total) for c, n in merged.items()), key=lambda item: -item[1])


def hex_code(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def run(request: PaletteRequest, ctx: api.TaskContext, models) -> PaletteResult:
    ctx.check()
    colours = extract(request.image.rgb(), request.colours)
    return PaletteResult(tuple(colours), request.image.size)
