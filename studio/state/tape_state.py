"""Frame tape state (Qt-free): the clip (frames, fps, recipe), the playhead, the in/out range, prompt and
image keyframes, the generation settings, onion skin, the consistency diagnostics and the run status.
Widgets subscribe to `changed`; the frames are a tuple of read-only arrays with one id per frame, so a
range re-render swaps only the frames it made (the others stay the very same objects, byte for byte)
and the timeline re-makes only their thumbnails.

Also the pixel work behind the onion skin, done in numpy so it is tested without Qt.
"""
from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np

from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.core.tape_requests import (MAX_SEED, PromptKey, RerenderRequest, TapeRequest, frozen_frames)
from studio.state.observable import Observable

_ids = itertools.count(1)
MAX_ONION_DEPTH = 5


class TapeState(Observable):
    _fields = ("frames", "frame_ids", "fps", "playhead", "in_point", "out_point", "playing", "loop",
               "model_id", "base_id", "prompt", "negative_prompt", "num_frames", "width", "height", "steps",
               "cfg_scale", "seed", "window", "travel", "keys", "first_image", "last_image", "image_strength",
               "strength", "context", "onion", "onion_depth", "onion_opacity", "inbetween_count",
               "busy", "status", "progress", "preview", "similarity", "warp_error", "metric", "recipe",
               "source", "edit_frame", "last_seed")

    def __init__(self) -> None:
        self.frames: tuple[np.ndarray, ...] = ()
        self.frame_ids: tuple[int, ...] = ()
        self.fps = 8.0
        self.playhead = 0
        self.in_point: int | None = None
        self.out_point: int | None = None
        self.playing = False
        self.loop = True
        self.model_id = ""
        self.base_id = ""
        self.prompt = ""
        self.negative_prompt = ""
        self.num_frames = 16
        self.width = 512
        self.height = 512
        self.steps = 20
        self.cfg_scale = 7.5
        self.seed = -1  # -1: a new random seed each time
        self.window = 0
        self.travel = "interpolate"
        self.keys: tuple[PromptKey, ...] = ()
        self.first_image: StudioImage | None = None
        self.last_image: StudioImage | None = None
        self.image_strength = 0.8
        self.strength = 0.6  # range re-render
        self.context = 4
        self.onion = False
        self.onion_depth = 2
        self.onion_opacity = 0.5
        self.inbetween_count = 1
        self.busy = False
        self.status = ""
        self.progress = 0.0
        self.preview: Any = None  # TapePreview while a clip renders
        self.similarity: np.ndarray | None = None  # (n-1,) per transition
        self.warp_error: np.ndarray | None = None
        self.metric = "ssim"
        self.recipe: dict[str, Any] = {}
        self.source = ""
        self.edit_frame: int | None = None  # the frame sent to paint, to bring back
        self.last_seed: int | None = None

    # -- the clip --------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the clip's frames, or None without a clip."""
        return (int(self.frames[0].shape[1]), int(self.frames[0].shape[0])) if self.frames else None

    def frame(self, index: int) -> np.ndarray:
        return self.frames[index]

    def current(self) -> np.ndarray | None:
        return self.frames[self.playhead] if self.frames else None

    def _set_frames(self, frames: tuple[np.ndarray, ...], ids: tuple[int, ...]) -> None:
        # Diagnostics describe the old frames: drop them before listeners see the new ones.
        self.similarity = None
        self.warp_error = None
        self.frame_ids = ids
        self.frames = frames
        self.in_point = None if self.in_point is None or self.in_point >= len(frames) else self.in_point
        self.out_point = None if self.out_point is None or self.out_point >= len(frames) else self.out_point
        self.playhead = min(self.playhead, max(0, len(frames) - 1))

    def set_clip(self, frames, fps: float | None = None, recipe: dict | None = None, source: str = "") -> None:
        frames = frozen_frames(frames)
        if frames and any(f.shape != frames[0].shape for f in frames):
            raise BadInputError("The frames of a clip must all have the same size.")
        self.playing = False
        self.in_point = self.out_point = None
        self.edit_frame = None
        self.playhead = 0
        if fps:
            self.fps = float(fps)
        self.recipe = dict(recipe or {})
        self.source = source
        self._set_frames(frames, tuple(next(_ids) for _ in frames))

    def _check_size(self, arrays) -> None:
        shape = self.frames[0].shape if self.frames else None
        for a in arrays:
            if shape is not None and a.shape != shape:
                raise BadInputError(f"The new frame is {a.shape[1]}×{a.shape[0]}, the clip {shape[1]}×{shape[0]}: "
                                    "resize it first.")

    def replace_range(self, start: int, frames, edit: dict | None = None) -> None:
        """Put `frames` at start, start+1, ...; every other frame stays the same object."""
        new = frozen_frames(frames)
        if not 0 <= start or start + len(new) > self.count:
            raise BadInputError("The new frames do not fit inside the clip.")
        self._check_size(new)
        frames = list(self.frames)
        ids = list(self.frame_ids)
        for i, f in enumerate(new):
            frames[start + i] = f
            ids[start + i] = next(_ids)
        self._note(edit)
        self._set_frames(tuple(frames), tuple(ids))

    def insert_frames(self, after: int, frames, edit: dict | None = None) -> None:
        """Insert `frames` after frame `after` (the in-betweens of after and after+1)."""
        new = frozen_frames(frames)
        self._check_size(new)
        at = after + 1
        self._note(edit)
        self._set_frames(self.frames[:at] + new + self.frames[at:],
                         self.frame_ids[:at] + tuple(next(_ids) for _ in new) + self.frame_ids[at:])

    def delete_range(self, start: int, end: int) -> None:
        if self.count - (end - start + 1) < 1:
            raise BadInputError("A clip keeps at least one frame.")
        self._note({"edit": "delete", "start": start, "end": end})
        self._set_frames(self.frames[:start] + self.frames[end + 1:], self.frame_ids[:start] + self.frame_ids[end + 1:])

    def _note(self, edit: dict | None) -> None:
        if edit:
            rec = dict(self.recipe)
            rec["edits"] = list(rec.get("edits", [])) + [edit]
            self.recipe = rec

    # -- playhead and range ----------------------------------------------------------------
    def seek(self, index: int) -> None:
        if self.frames:
            self.playhead = max(0, min(self.count - 1, int(index)))

    def step(self, delta: int) -> None:
        self.seek(self.playhead + delta)

    def range(self) -> tuple[int, int]:
        """The in/out range (inclusive); the whole clip when none is set."""
        if not self.frames:
            return 0, -1
        lo = 0 if self.in_point is None else self.in_point
        hi = self.count - 1 if self.out_point is None else self.out_point
        return (lo, hi) if lo <= hi else (hi, lo)

    def has_range(self) -> bool:
        return self.in_point is not None or self.out_point is not None

    def set_in(self, index: int | None = None) -> None:
        self.in_point = self.playhead if index is None else int(index)
        if self.out_point is not None and self.out_point < self.in_point:
            self.out_point = None

    def set_out(self, index: int | None = None) -> None:
        self.out_point = self.playhead if index is None else int(index)
        if self.in_point is not None and self.in_point > self.out_point:
            self.in_point = None

    def clear_range(self) -> None:
        self.in_point = self.out_point = None

    def advance(self) -> bool:
        """One playback tick: the next frame inside the range; past its end, loop or stop (False)."""
        lo, hi = self.range()
        nxt = self.playhead + 1
        if self.playhead < lo or self.playhead > hi:
            nxt = lo  # the playhead was left outside the range: playing starts at In
        elif nxt > hi:
            if not self.loop:
                self.playing = False
                return False
            nxt = lo
        self.seek(nxt)
        return True

    # -- keyframes -------------------------------------------------------------------------
    def add_key(self, frame: int, prompt: str, seed: int | None = None) -> None:
        if not prompt.strip():
            raise BadInputError("Type the prompt of the keyframe first.")
        frame = max(0, int(frame))
        keys = [k for k in self.keys if k.frame != frame] + [PromptKey(frame, prompt.strip(), seed)]
        self.keys = tuple(sorted(keys, key=lambda k: k.frame))

    def remove_key(self, frame: int) -> None:
        self.keys = tuple(k for k in self.keys if k.frame != frame)

    def prompt_at(self, frame: int) -> str:
        text = self.prompt
        for k in self.keys:
            if k.frame <= frame:
                text = k.prompt
        return text

    # -- requests --------------------------------------------------------------------------
    def next_seed(self) -> int:
        return random.randrange(MAX_SEED + 1) if self.seed < 0 else int(self.seed)

    def build_request(self, *, uid: str = "", output_dir: str = "", seed: int | None = None) -> TapeRequest:
        return TapeRequest(
            model_id=self.model_id, base_id=self.base_id, prompt=self.prompt, negative_prompt=self.negative_prompt,
            keys=tuple(k for k in self.keys if k.frame < self.num_frames), travel=self.travel,
            first_image=self.first_image, last_image=self.last_image, image_strength=float(self.image_strength),
            frames=int(self.num_frames), width=int(self.width), height=int(self.height), steps=int(self.steps),
            cfg_scale=float(self.cfg_scale), seed=self.next_seed() if seed is None else int(seed),
            fps=int(round(self.fps)), window=int(self.window), output_dir=output_dir, uid=uid)

    def build_rerender(self, *, uid: str = "", seed: int | None = None) -> RerenderRequest:
        if not self.frames:
            raise BadInputError("There is no clip to re-render: generate or import one first.")
        if not self.has_range():
            raise BadInputError("Select the frames to re-render first: set In (I) and Out (O) on the tape.")
        start, end = self.range()
        return RerenderRequest(
            model_id=self.model_id, base_id=self.base_id, clip=self.frames, start=start, end=end,
            prompt=self.prompt_at(start) or self.prompt, negative_prompt=self.negative_prompt,
            context=int(self.context), strength=float(self.strength), steps=int(self.steps),
            cfg_scale=float(self.cfg_scale), seed=self.next_seed() if seed is None else int(seed),
            window=int(self.window), uid=uid)

    def spikes(self, top: int = 3) -> list[int]:
        """Transitions (t -> t+1, by t) that change the most: lowest similarity, highest warp error."""
        if self.similarity is None or len(self.similarity) == 0:
            return []
        score = change_score(self.similarity, self.warp_error)
        return [int(i) for i in np.argsort(-score)[:top]]


def change_score(similarity: np.ndarray, warp_error: np.ndarray | None) -> np.ndarray:
    """One number per transition, 0 = no change, larger = a jump (what the sparkline plots)."""
    score = np.clip(1.0 - np.asarray(similarity, np.float32), 0.0, 2.0)
    if warp_error is not None and len(warp_error) == len(score):
        score = 0.5 * score + 0.5 * np.clip(np.asarray(warp_error, np.float32) * 4.0, 0.0, 2.0)
    return score


# -- onion skin ----------------------------------------------------------------------------------
PAST_TINT = np.array([255, 70, 70], np.float32)
FUTURE_TINT = np.array([60, 200, 255], np.float32)


def onion_overlay(frames, index: int, depth: int = 2) -> np.ndarray | None:
    """RGBA (H, W, 4) uint8 of the previous frames (red) and the next ones (blue) ghosted over frame
    `index`: each ghost is opaque where it differs from the current frame (so what moved shows) and
    fades with its distance. None when there is nothing to ghost."""
    n = len(frames)
    if n < 2 or not 0 <= index < n or depth < 1:
        return None
    cur = np.asarray(frames[index], np.float32)[..., :3]
    h, w = cur.shape[:2]
    rgb = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    # Far ghosts first, so nearer ones are composited over them.
    for dist in range(min(depth, MAX_ONION_DEPTH), 0, -1):
        fade = 1.0 - (dist - 1) / (depth + 1)
        for j, tint in ((index - dist, PAST_TINT), (index + dist, FUTURE_TINT)):
            if not 0 <= j < n:
                continue
            ghost = np.asarray(frames[j], np.float32)[..., :3]
            if ghost.shape != cur.shape:
                continue
            diff = np.abs(ghost - cur).mean(axis=2) / 255.0
            a = np.clip(diff * 4.0, 0.0, 1.0) * fade
            colour = ghost * 0.5 + tint * 0.5
            # "Over" compositing with premultiplied colour; Qt's RGBA8888 wants it straight, below.
            rgb = colour * a[..., None] + rgb * (1.0 - a[..., None])
            alpha = a + alpha * (1.0 - a)
    if float(alpha.max()) <= 0.0:
        return None
    straight = rgb / np.maximum(alpha, 1e-6)[..., None]
    return np.dstack([np.clip(straight + 0.5, 0, 255), np.clip(alpha * 255.0 + 0.5, 0, 255)]).astype(np.uint8)
