"""Clip import and export (PyAV, Pillow): MP4/WebM/GIF/PNG-sequence round trips keep frame count and size,
the recipe travels in a sidecar JSON and the container's metadata, writes are atomic, bad input says why."""
from __future__ import annotations

import json

import numpy as np
import pytest

from studio.core.errors import BadInputError
from studio.core.tape_requests import ExportClipRequest
from studio.media.video import pick_codec, read_clip, write_clip


def moving_square(n: int = 8, w: int = 48, h: int = 32) -> tuple[np.ndarray, ...]:
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 40, np.uint8)
        x = 4 + i * 4
        f[10:22, x:x + 12] = (220, 40, 40)
        frames.append(f)
    return tuple(frames)


RECIPE = {"format": "studio.tape", "prompt": "a red square moving right", "seed": 7}


@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
def test_video_round_trip_keeps_frame_count_size_and_recipe(tmp_path, fmt):
    frames = moving_square()
    res = write_clip(ExportClipRequest(frames, str(tmp_path / "clip"), fmt, 8.0, RECIPE, title="square"))
    assert res.path.endswith(f"clip.{fmt}") and res.frames == 8 and res.size == (48, 32)
    if fmt == "mp4":
        assert res.codec in ("libx264", "mpeg4") and res.codec == pick_codec("mp4")
    assert json.loads((tmp_path / "clip.json").read_text())["prompt"] == RECIPE["prompt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    back = read_clip(res.path)
    assert len(back.frames) == 8 and back.frames[0].shape == (32, 48, 3)
    assert back.fps == pytest.approx(8.0, rel=0.05)
    assert back.recipe["seed"] == 7
    # Lossy codecs: close to the original, the square where it was.
    err = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames, back.frames)])
    assert err < 12, err


def test_mp4_carries_title_and_recipe_in_its_metadata(tmp_path):
    import av

    res = write_clip(ExportClipRequest(moving_square(4), str(tmp_path / "m.mp4"), "mp4", 12.0, RECIPE, "square"))
    (tmp_path / "m.json").unlink()  # without the sidecar the recipe still comes back
    with av.open(res.path) as c:
        assert c.metadata["title"] == "square"
        assert json.loads(c.metadata["comment"])["export"]["fps"] == 12.0
    assert read_clip(res.path).recipe["prompt"] == RECIPE["prompt"]


def test_odd_sizes_are_padded_for_yuv420(tmp_path):
    frames = tuple(np.full((31, 45, 3), 100, np.uint8) for _ in range(3))
    res = write_clip(ExportClipRequest(frames, str(tmp_path / "odd.mp4"), "mp4", 8.0))
    assert "padded to 46×32" in res.note
    assert read_clip(res.path).frames[0].shape == (32, 46, 3)


def test_png_sequence_and_folder_import(tmp_path):
    frames = moving_square(12)
    res = write_clip(ExportClipRequest(frames, str(tmp_path / "seq"), "png", 6.0, RECIPE))
    files = sorted(p.name for p in (tmp_path / "seq").iterdir())
    assert files[0] == "frame_00000.png" and files[-1] == "recipe.json" and len(files) == 13
    back = read_clip(tmp_path / "seq")
    assert len(back.frames) == 12 and back.fps == 6.0 and back.recipe["prompt"] == RECIPE["prompt"]
    assert all(np.array_equal(a, b) for a, b in zip(frames, back.frames))  # PNG is lossless
    # A hand-picked list of images is a sequence too, in natural order (frame_2 before frame_10).
    picked = [tmp_path / "seq" / f"frame_{i:05d}.png" for i in (10, 2, 3)]
    assert [f[16, 8 + 4 * 2:8 + 4 * 2 + 1].tolist() for f in read_clip(picked).frames][0] == [[220, 40, 40]]


def test_bad_input_is_a_clear_message(tmp_path, write_image):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(BadInputError, match="empty"):
        read_clip(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 50)
    with pytest.raises(BadInputError, match="not a video|cannot be decoded|no video"):
        read_clip(tmp_path / "junk.mp4")
    with pytest.raises(BadInputError, match="does not exist"):
        read_clip(tmp_path / "missing.webm")
    (tmp_path / "none").mkdir()
    with pytest.raises(BadInputError, match="no images"):
        read_clip(tmp_path / "none")
    with pytest.raises(BadInputError, match="no clip"):
        write_clip(ExportClipRequest((), str(tmp_path / "x.mp4")))
    with pytest.raises(BadInputError, match="Unknown export format"):
        write_clip(ExportClipRequest(moving_square(2), str(tmp_path / "x.avi"), "avi"))
    mixed = (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8))
    with pytest.raises(BadInputError, match="different sizes"):
        write_clip(ExportClipRequest(mixed, str(tmp_path / "x.gif"), "gif"))
