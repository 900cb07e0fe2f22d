"""Clips in and out of the frame tape: import MP4/WebM/MOV/GIF files (PyAV) and image sequences; export
MP4 (H.264, else MPEG-4 part 2), WebM (VP9, else VP8), GIF and PNG sequences at a chosen fps, with the
generation recipe in a sidecar JSON and in the container's metadata (title, comment).

Every file is written atomically: a video is encoded into a temporary file in the destination folder
and renamed over the target only once complete, so a crash never leaves half a clip under its name.
PyAV is imported inside functions (CPU lane only). Bad input ends in a BadInputError with one sentence.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.atomic import atomic_write_bytes, atomic_write_json
from studio.core.errors import BadInputError
from studio.core.tape_requests import (EXPORT_FORMATS, RECIPE_FORMAT, VIDEO_SUFFIXES, ClipData, ExportClipRequest,
                                       ExportResult, ImportClipRequest, frozen_frames)
from studio.media.imageio import SUPPORTED_SUFFIXES, load_image

log = logging.getLogger(__name__)

MAX_CLIP_BYTES = 3 * 2**30  # decoded frames kept in memory: beyond this, ask for a shorter clip
MAX_FRAME_PIXELS = 4096 * 4096
VIDEO_CODECS = {"mp4": ("libx264", "mpeg4"), "webm": ("libvpx-vp9", "libvpx")}
CONTAINERS = {"mp4": "mp4", "webm": "webm"}


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


# -- import ---------------------------------------------------------------------------------------
def read_clip(paths, max_frames: int = 4096) -> ClipData:
    """Frames of a video file, of every image in a folder (natural order), or of several image files."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise BadInputError("Choose a video, a GIF or some images to import.")
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        images = sorted((p for p in folder.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES
                         and p.suffix.lower() != ".gif" and not p.name.startswith(".")),
                        key=lambda p: _natural(p.name))
        if not images:
            raise BadInputError(f"The folder “{folder.name}” holds no images to import.")
        return _read_sequence(images, max_frames, str(folder), _sidecar_recipe(folder / "recipe.json"))
    if len(paths) == 1:
        p = paths[0]
        if not p.exists():
            raise BadInputError(f"“{p.name}” does not exist.")
        if p.suffix.lower() in VIDEO_SUFFIXES:
            return _read_video(p, max_frames)
    return _read_sequence(sorted(paths, key=lambda p: _natural(p.name)), max_frames, str(paths[0].parent), {})


def _read_sequence(images: list[Path], max_frames: int, source: str, recipe: dict) -> ClipData:
    note = ""
    if len(images) > max_frames:
        note = f"only the first {max_frames} of {len(images)} images were imported"
        images = images[:max_frames]
    frames: list[np.ndarray] = []
    size = None
    resized = 0
    for p in images:
        arr = load_image(p).rgb()
        if size is None:
            size = arr.shape[:2]
            _check_budget(arr.shape, len(images))
        elif arr.shape[:2] != size:
            arr = _resize(arr, (size[1], size[0]))
            resized += 1
        frames.append(arr)
    if resized:
        note = (note + "; " if note else "") + f"{resized} image(s) resized to the first one's size"
    return ClipData(frozen_frames(frames), recipe_fps(recipe), source, recipe, note)


def recipe_fps(recipe: dict, default: float = 8.0) -> float:
    """The fps an image sequence was exported at (its recipe), else the one it was generated at."""
    for value in ((recipe.get("export") or {}).get("fps"), recipe.get("fps")):
        if isinstance(value, (int, float)) and 1 <= value <= 120:
            return float(value)
    return default


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize(size, Image.LANCZOS))


def _check_budget(shape, count: int) -> None:
    h, w = shape[:2]
    if h * w > MAX_FRAME_PIXELS:
        raise BadInputError(f"The frames are {w}×{h}: the frame tape opens frames up to 4096×4096.")
    if h * w * 3 * count > MAX_CLIP_BYTES:
        raise BadInputError(f"{count} frames of {w}×{h} would need {h * w * 3 * count / 2**30:.1f} GB of memory: "
                            "import a shorter clip (or fewer images).")


def _read_video(path: Path, max_frames: int) -> ClipData:
    import av

    name = path.name
    if path.stat().st_size == 0:
        raise BadInputError(f"“{name}” is empty (0 bytes).")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise BadInputError(f"“{name}” is not a video the studio can read.", str(exc)) from exc
    frames: list[np.ndarray] = []
    note = ""
    try:
        if not container.streams.video:
            raise BadInputError(f"“{name}” has no video stream.")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 8.0
        expected = int(stream.frames or 0)
        meta = dict(container.metadata or {})
        try:
            for frame in container.decode(stream):
                arr = frame.to_ndarray(format="rgb24")
                if not frames:
                    _check_budget(arr.shape, max(expected, 1))
                frames.append(arr)
                if len(frames) >= max_frames:
                    note = f"only the first {max_frames} frames were imported"
                    break
                if len(frames) * arr.nbytes > MAX_CLIP_BYTES:
                    raise BadInputError(f"“{name}” is too long to edit in memory: trim it first.")
        except av.error.FFmpegError as exc:
            if not frames:
                raise BadInputError(f"“{name}” cannot be decoded: {exc}", str(exc)) from exc
            note = f"the file is damaged after frame {len(frames)}: the frames before it were imported"
    finally:
        container.close()
    if not frames:
        raise BadInputError(f"“{name}” holds no frames.")
    if path.suffix.lower() == ".gif" and not (1.0 <= fps <= 120.0):
        fps = 10.0
    recipe = _sidecar_recipe(path.with_suffix(".json")) or _comment_recipe(meta)
    return ClipData(frozen_frames(frames), round(fps, 3), str(path), recipe, note)


def _sidecar_recipe(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == RECIPE_FORMAT else {}


def _comment_recipe(meta: dict) -> dict[str, Any]:
    text = meta.get("comment") or meta.get("COMMENT") or ""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) and data.get("format") == RECIPE_FORMAT else {}


def run_import(req: ImportClipRequest, ctx, models) -> ClipData:
    ctx.check()
    return read_clip(req.paths, req.max_frames)


# -- export ---------------------------------------------------------------------------------------
def pick_codec(fmt: str) -> str:
    """The first encoder of the format's list this FFmpeg build has (`av.codecs_available`)."""
    import av

    for name in VIDEO_CODECS[fmt]:
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
                return name
            except Exception:  # listed but without an encoder in this build
                continue
    raise BadInputError(f"This FFmpeg build has no {fmt.upper()} encoder: export GIF or PNG frames instead.")


def sidecar_path(path: Path, fmt: str) -> Path:
    return path / "recipe.json" if fmt == "png" else path.with_suffix(".json")


def write_clip(req: ExportClipRequest, ctx=None) -> ExportResult:
    fmt = req.format.lower()
    if fmt not in EXPORT_FORMATS:
        raise BadInputError(f"Unknown export format “{req.format}”; choose one of {', '.join(EXPORT_FORMATS)}.")
    if not req.frames:
        raise BadInputError("There is no clip to export: generate or import one first.")
    if not 1.0 <= float(req.fps) <= 120.0:
        raise BadInputError(f"Frames per second must be between 1 and 120 (got {req.fps:g}).")
    h, w = req.frames[0].shape[:2]
    if any(f.shape[:2] != (h, w) for f in req.frames):
        raise BadInputError("The clip's frames have different sizes: the export needs one size.")
    path = Path(req.path)
    if fmt != "png" and path.suffix.lower() != f".{fmt}":
        path = path.with_suffix(f".{fmt}")
    recipe = dict(req.recipe or {})
    recipe.setdefault("format", RECIPE_FORMAT)
    recipe["export"] = {"format": fmt, "fps": float(req.fps), "frames": len(req.frames), "width": w, "height": h}
    try:
        if fmt in VIDEO_CODECS:
            codec, note = _write_video(req, path, fmt, recipe, ctx)
        elif fmt == "gif":
            codec, note = _write_gif(req, path, recipe), ""
        else:
            codec, note = _write_png(req, path, recipe, ctx), ""
        sidecar = sidecar_path(path, fmt)
        atomic_write_json(sidecar, recipe)
    except OSError as exc:
        raise BadInputError(f"Could not write {path.name}: {exc.strerror or exc}.", str(exc)) from exc
    return ExportResult(str(path), str(sidecar), codec, len(req.frames), (w, h), note)


def _write_video(req: ExportClipRequest, path: Path, fmt: str, recipe: dict, ctx) -> tuple[str, str]:
    import av

    codec = pick_codec(fmt)
    h, w = req.frames[0].shape[:2]
    # yuv420p (what every player decodes) needs even sides: pad by one replicated edge pixel.
    ph, pw = h + (h % 2), w + (w % 2)
    note = f"padded to {pw}×{ph} (video needs even sides)" if (ph, pw) != (h, w) else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        container = av.open(tmp, "w", format=CONTAINERS[fmt])
        try:
            stream = container.add_stream(codec, rate=Fraction(req.fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "17", "preset": "medium"}
            elif codec.startswith("libvpx"):
                stream.options = {"crf": "24", "b": "0"}
            else:
                stream.bit_rate = max(400_000, pw * ph * 8)
            container.metadata["title"] = req.title or recipe.get("prompt", "") or path.stem
            container.metadata["comment"] = json.dumps(recipe, ensure_ascii=False, separators=(",", ":"))
            n = len(req.frames)
            for i, arr in enumerate(req.frames):
                if ctx is not None:
                    ctx.check()
                    ctx.progress((i + 1) / n, f"Encoding frame {i + 1} of {n}")
                if (ph, pw) != (h, w):
                    arr = np.pad(arr, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr[..., :3]), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return codec, note


def _write_gif(req: ExportClipRequest, path: Path, recipe: dict) -> str:
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(f[..., :3])) for f in req.frames]
    buf = io.BytesIO()
    comment = json.dumps(recipe, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    # GIF delays are in 1/100 s: Pillow rounds the per-frame duration (ms) to that.
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, round(1000.0 / float(req.fps))), comment=comment[:65000], optimize=False)
    atomic_write_bytes(path, buf.getvalue())
    return "gif"


def _write_png(req: ExportClipRequest, path: Path, recipe: dict, ctx) -> str:
    from studio.core.image import StudioImage
    from studio.media.imageio import save_png

    path.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(len(req.frames))))
    text = {"studio": json.dumps(recipe, ensure_ascii=False)}
    n = len(req.frames)
    for i, arr in enumerate(req.frames):
        if ctx is not None:
            ctx.check()
            ctx.progress((i + 1) / n, f"Writing frame {i + 1} of {n}")
        save_png(StudioImage(np.ascontiguousarray(arr)), path / f"frame_{i:0{digits}d}.png", text if i == 0 else None)
    return "png"


def run_export(req: ExportClipRequest, ctx, models) -> ExportResult:
    return write_clip(req, ctx)


def register(registry) -> None:
    from studio.runtime.scheduler import CPU

    registry.register(ImportClipRequest, run_import, CPU)
    registry.register(ExportClipRequest, run_export, CPU)
