"""Reading images the user gives us, safely.

Every way a file can be wrong ends in a :class:`BadInputError` with one clear sentence:
empty, truncated, not an image, too large (decompression bombs), or a mode we convert
(CMYK, 16-bit, palette with transparency, greyscale). EXIF orientation is applied so photos
are shown upright; animated files open on their first frame and say so.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from studio.core.errors import BadInputError
from studio.core.image import StudioImage

MAX_PIXELS = 100_000_000
SUPPORTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _to_rgb_array(img) -> np.ndarray:
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to the data range so it is not a white or black square.
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
        arr = ((arr - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
    elif mode != "RGB" and mode != "RGBA":
        img = img.convert("RGB")  # CMYK, YCbCr, L, 1, LAB, HSV
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.uint8)
    return arr


def load_image(path: str | os.PathLike) -> StudioImage:
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    name = p.name
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise BadInputError(f"“{name}” does not exist.") from None
    except OSError as exc:
        raise BadInputError(f"“{name}” cannot be read: {exc.strerror or exc}.") from exc
    if p.is_dir():
        raise BadInputError(f"“{name}” is a folder, not an image.")
    if size == 0:
        raise BadInputError(f"“{name}” is empty (0 bytes).")
    info: dict = {"bytes": size}
    try:
        with Image.open(p) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise BadInputError(
                    f"“{name}” is {w}x{h} ({w * h / 1e6:.0f} megapixels); the studio opens images "
                    f"up to {MAX_PIXELS // 1_000_000} megapixels."
                )
            info["format"] = img.format or ""
            info["mode"] = img.mode
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                info["frames"] = frames
                info["note"] = f"animated image: showing frame 1 of {frames}"
                img.seek(0)
            for key in ("parameters", "studio", "dpi"):
                if key in img.info:
                    info[key] = img.info[key]
            img.load()
            img = ImageOps.exif_transpose(img) or img
            arr = _to_rgb_array(img)
    except BadInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise BadInputError(
            f"“{name}” is too large to open safely (over {MAX_PIXELS // 1_000_000} megapixels).", str(exc)
        ) from exc
    except UnidentifiedImageError as exc:
        raise BadInputError(f"“{name}” is not an image the studio can read.", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc)
        if "truncated" in msg or "broken data stream" in msg or isinstance(exc, EOFError):
            raise BadInputError(f"“{name}” is damaged or incomplete (truncated file).", msg) from exc
        raise BadInputError(f"“{name}” cannot be decoded: {msg}", msg) from exc
    return StudioImage(np.ascontiguousarray(arr), str(p), info)


def save_png(image: StudioImage, path: str | os.PathLike, text: dict[str, str] | None = None) -> None:
    """Write a PNG atomically, with optional text chunks (generation metadata)."""
    import io

    from PIL import PngImagePlugin

    from studio.core.atomic import atomic_write_bytes

    meta = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        meta.add_itxt(k, v)
    buf = io.BytesIO()
    image.to_pil().save(buf, format="PNG", pnginfo=meta)
    atomic_write_bytes(path, buf.getvalue())
