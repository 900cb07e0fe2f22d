"""Reading images the user gives us: every bad file is a BadInputError with one clear sentence,
every odd-but-valid file becomes an upright RGB(A) uint8 image."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.media.imageio import MAX_PIXELS, load_image, save_png

RNG = np.random.default_rng(1)


def _noise(w=64, h=48):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encoded(fmt, arr=None, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_noise() if arr is None else arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height, with a tiny IDAT: a few bytes
    on disk, an enormous image once decoded (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * min(width, 64)))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _bad(path, *words):
    with pytest.raises(BadInputError) as info:
        load_image(path)
    err = info.value
    msg = err.user_message
    assert path.name in msg, msg  # the user learns which file
    for w in words:
        assert w in msg, msg
    assert "Traceback" not in msg and "\n" not in msg  # one sentence, not a dump
    return err


# -- bad input --------------------------------------------------------------------------------
def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    _bad(p, "empty")


def test_missing_file_and_folder(tmp_path):
    _bad(tmp_path / "nowhere.png", "does not exist")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    _bad(folder, "folder")


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files(tmp_path, fmt, suffix, keep):
    data = _encoded(fmt, _noise(128, 96))
    p = tmp_path / f"cut{suffix}"
    p.write_bytes(data[: int(len(data) * keep)])
    err = _bad(p, "damaged or incomplete")
    assert err.detail  # the decoder's own words go to the details


def test_text_file_with_a_png_extension(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("these are my notes, not a picture\n" * 20)
    _bad(p, "not an image")


def test_random_bytes_with_a_jpeg_extension(tmp_path):
    p = tmp_path / "noise.jpg"
    p.write_bytes(bytes(RNG.integers(0, 256, 4096, dtype=np.uint8)))
    _bad(p, "not an image")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_png_header_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(12000, 10000))
    assert p.stat().st_size < 1000 and 12000 * 10000 > MAX_PIXELS
    _bad(p, "12000x10000", "megapixels")


def test_png_header_far_over_the_limit_is_a_decompression_bomb(tmp_path):
    p = tmp_path / "huge.png"
    p.write_bytes(_png_header_only(30000, 30000))  # Pillow itself refuses this one
    _bad(p, "too large")


# -- odd but valid input ------------------------------------------------------------------------
def _check(img: StudioImage, w, h, channels=3):
    assert isinstance(img, StudioImage)
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (h, w, channels)


def test_plain_rgb_png_round_trips_exactly(tmp_path):
    arr = _noise(40, 30)
    p = tmp_path / "plain.png"
    Image.fromarray(arr).save(p)
    img = load_image(p)
    _check(img, 40, 30)
    assert np.array_equal(img.pixels, arr)
    assert img.info["format"] == "PNG" and img.source == str(p)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(p, quality=95)  # pure red ink
    img = load_image(p)
    _check(img, 32, 24)
    r, g, b = img.pixels[12, 16].tolist()
    assert r > 200 and g < 60 and b < 60, (r, g, b)
    assert img.info["mode"] == "CMYK"


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    p = tmp_path / "deep.png"
    Image.fromarray(ramp).save(p)
    img = load_image(p)
    _check(img, 64, 8)
    px = img.pixels[0, :, 0].astype(int)
    assert px[0] == 0 and px[-1] == 255
    assert abs(px[32] - round(ramp[0, 32] / 65535 * 255)) <= 1
    assert np.all(np.diff(px) >= 0)  # still a ramp
    assert np.array_equal(img.pixels[..., 0], img.pixels[..., 2])


def test_palette_png_with_transparency_keeps_alpha(tmp_path):
    idx = np.zeros((10, 20), np.uint8)
    idx[:, 10:] = 1
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    p = tmp_path / "pal.png"
    pal.save(p, transparency=0)
    img = load_image(p)
    _check(img, 20, 10, 4)
    assert img.pixels[5, 2, 3] == 0                       # index 0 is transparent
    assert img.pixels[5, 15].tolist() == [255, 0, 0, 255]  # index 1 is opaque red


def test_palette_png_without_transparency_is_rgb(tmp_path):
    pal = Image.fromarray(np.ones((6, 6), np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    p = tmp_path / "pal3.png"
    pal.save(p)
    img = load_image(p)
    _check(img, 6, 6)
    assert img.pixels[0, 0].tolist() == [0, 0, 255]


def test_exif_rotated_jpeg_is_shown_upright(tmp_path):
    # Stored 60 wide x 30 high with a red block at the stored top-left. EXIF orientation 6 says
    # "rotate 90° clockwise to view": upright it is 30 x 60 with the block at the top-right.
    arr = np.full((30, 60, 3), 255, np.uint8)
    arr[:10, :10] = (255, 0, 0)
    stored = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    stored.save(p, exif=exif.tobytes(), quality=95)
    img = load_image(p)
    _check(img, 30, 60)
    top_right = img.pixels[4, 25].tolist()
    top_left = img.pixels[4, 4].tolist()
    bottom_right = img.pixels[55, 25].tolist()
    assert top_right[0] > 200 and top_right[1] < 60, top_right
    assert min(top_left) > 200 and min(bottom_right) > 200


def test_animated_gif_opens_on_its_first_frame_with_a_note(tmp_path):
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    img = load_image(p)
    _check(img, 16, 12)
    assert img.pixels[6, 8].tolist() == [255, 0, 0]
    assert img.info["frames"] == 3
    assert "frame 1 of 3" in img.info["note"]


@pytest.mark.parametrize("mode, channels", [("L", 3), ("LA", 4), ("1", 3)])
def test_greyscale_modes(tmp_path, mode, channels):
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1))
    base = Image.fromarray(grey, mode="L")
    p = tmp_path / f"grey_{mode}.png"
    base.convert(mode).save(p)
    img = load_image(p)
    _check(img, 16, 4, channels)
    assert np.array_equal(img.pixels[..., 0], img.pixels[..., 1])
    if mode in ("L", "LA"):
        assert img.pixels[0, :, 0].tolist() == grey[0].tolist()


def test_rgba_png_keeps_alpha(tmp_path):
    arr = np.dstack([_noise(8, 8), np.full((8, 8), 77, np.uint8)])
    p = tmp_path / "rgba.png"
    Image.fromarray(arr).save(p)
    img = load_image(p)
    _check(img, 8, 8, 4)
    assert np.array_equal(img.pixels, arr)


def test_content_decides_not_the_extension(tmp_path):
    p = tmp_path / "really_a_png.jpg"
    p.write_bytes(_encoded("PNG"))
    assert load_image(p).info["format"] == "PNG"


def test_save_png_writes_metadata_atomically(tmp_path):
    img = StudioImage(_noise(12, 10))
    p = tmp_path / "out.png"
    save_png(img, p, {"parameters": "a cat, Steps: 20"})
    back = load_image(p)
    assert np.array_equal(back.pixels, img.pixels)
    assert back.info["parameters"] == "a cat, Steps: 20"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.png"]
