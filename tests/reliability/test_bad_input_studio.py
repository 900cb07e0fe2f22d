"""Bad input through the real window: every case of issue 11 ends in a clear message the user reads
(or, for odd but valid input, in a correct picture), never a crash, and the studio keeps working.

The decoding rules themselves are tested file by file in tests/media/test_imageio.py; here each case
goes through the open path, the banner and the workspaces a user drives.
"""
from __future__ import annotations

import io
import shutil
import struct
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.media.imageio import load_image
from studio.media.metadata import parse_parameters, read_png_text
from tests.reliability.conftest import CLIP_ID, choose, use_tiny_models

RNG = np.random.default_rng(11)


def _noise(w=64, h=48):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encoded(fmt: str, arr=None, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_noise(128, 96) if arr is None else arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: a few bytes on disk, gigabytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 193))
            + chunk(b"IEND", b""))


def bad_files(folder: Path) -> dict[str, tuple[bytes, str]]:
    png, jpg = _encoded("PNG"), _encoded("JPEG", quality=90)
    return {
        "empty.png": (b"", "empty"),
        "cut.png": (png[: len(png) // 2], "damaged or incomplete"),
        "cut.jpg": (jpg[: len(jpg) // 2], "damaged or incomplete"),
        "notes.jpg": (b"my shopping list, not a photo\n" * 40, "not an image"),
        "bomb.png": (_bomb(12000, 10000), "megapixels"),
    }


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bad_image_files_are_explained_in_the_banner_and_the_studio_keeps_working(studio, tmp_path, write_image):
    banner = studio.widget("error.message")
    for name, (data, words) in bad_files(tmp_path).items():
        (tmp_path / name).write_bytes(data)
        assert studio.open_image(tmp_path / name) is None, name
        err = studio.last_error()
        assert err is not None and name in err and words in err, err
        assert "Traceback" not in err and "\n" not in err  # one sentence; details are one click away
        assert banner.isVisible() and banner.text() == err
        assert studio.widget("error.details").isVisible()
    assert studio.canvas.image() is None  # nothing half-opened is shown
    assert studio.open_image(write_image((20, 10))) is not None and studio.last_error() is None
    assert studio.take_internal_errors() == []  # handled, not crashed


def _exif_rotated(path: Path) -> None:
    """Stored 60x30 with a red block at the top-left; EXIF orientation 6 (rotate 90° clockwise)."""
    arr = np.full((30, 60, 3), 255, np.uint8)
    arr[:10, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)


def _animated(path: Path, fmt: str) -> None:
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)


def _palette(path: Path) -> None:
    idx = np.zeros((10, 20), np.uint8)
    idx[:, 10:] = 1
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    pal.save(path, transparency=0)


def test_animated_webp_opens_on_its_first_frame_with_a_note(tmp_path):
    p = tmp_path / "anim.webp"
    _animated(p, "WEBP")
    img = load_image(p)
    assert img.pixels.shape == (12, 16, 3) and img.pixels[6, 8].tolist() == [255, 0, 0]
    assert img.info["frames"] == 3 and "frame 1 of 3" in img.info["note"]


def test_odd_but_valid_images_open_upright_and_in_colour(studio, tmp_path):
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))).save(tmp_path / "deep16.png")
    _palette(tmp_path / "palette.png")
    _exif_rotated(tmp_path / "rotated.jpg")
    _animated(tmp_path / "anim.gif", "GIF")
    _animated(tmp_path / "anim.webp", "WEBP")
    Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1)), mode="L").save(tmp_path / "grey.png")

    img = studio.open_image(tmp_path / "cmyk.jpg")
    r, g, b = img.pixels[12, 16].tolist()
    assert img.pixels.shape == (24, 32, 3) and r > 200 and g < 60 and b < 60

    img = studio.open_image(tmp_path / "deep16.png")
    assert img.pixels[0, 0, 0] == 0 and img.pixels[0, -1, 0] == 255  # scaled, not clipped to white

    img = studio.open_image(tmp_path / "palette.png")
    assert img.pixels.shape == (10, 20, 4) and img.pixels[5, 2, 3] == 0 and img.pixels[5, 15].tolist() == [255, 0, 0, 255]

    img = studio.open_image(tmp_path / "rotated.jpg")
    assert (img.width, img.height) == (30, 60)  # upright: portrait
    assert img.pixels[4, 25, 0] > 200 and img.pixels[4, 25, 1] < 60  # the block is now top-right
    assert studio.canvas.image() is img
    assert "rotated.jpg: 30×60" in studio.session.app.message

    for name in ("anim.gif", "anim.webp"):
        img = studio.open_image(tmp_path / name)
        assert img.pixels[6, 8].tolist() == [255, 0, 0]
        assert "frame 1 of 3" in studio.session.app.message, studio.session.app.message

    img = studio.open_image(tmp_path / "grey.png")
    assert img.pixels.shape == (4, 16, 3) and img.pixels[0, 3].tolist() == [48, 48, 48]
    assert studio.errors() == [] and studio.take_internal_errors() == []


# -- prompts and labels ------------------------------------------------------------------------------
LONG = ("a red cube on a wooden table, soft light, " * 300)[:10_500].rstrip(", ")
UNICODE = "un chat 🐱 sur la lune — 月の猫, naïve café, emoji 👩‍🚀 and a zero\u200bwidth space"


def test_long_unicode_and_emoji_prompts_in_paint_chat_label_and_tape(studio_factory, full_home, shapes_png):
    studio = studio_factory(full_home)
    use_tiny_models(studio)
    assert studio.open_image(shapes_png) is not None

    # Paint: a 10,500-character prompt runs, and the user learns that the model read only its start.
    assert len(LONG) > 10_000
    image = studio.generate(LONG, seed=3)
    assert image is not None and studio.last_error() is None
    assert studio.widget("paint.prompt").toPlainText() == LONG
    status = studio.widget("paint.status").text()
    assert "the prompt is" in status and "the model reads the first 77" in status, status
    path = studio.session.paint.last_result.info["path"]
    assert parse_parameters(read_png_text(path)["parameters"]).prompt == LONG  # kept whole in the metadata

    image = studio.generate(UNICODE, seed=4)
    assert image is not None and studio.last_error() is None
    assert studio.widget("paint.prompt").toPlainText() == UNICODE  # typed, emoji included
    assert "note:" not in studio.widget("paint.status").text()
    path = studio.session.paint.last_result.info["path"]
    assert parse_parameters(read_png_text(path)["parameters"]).prompt == UNICODE

    # Chat: both questions are answered and kept exactly as asked.
    for question in (LONG, UNICODE):
        assert isinstance(studio.ask(question), str) and studio.last_error() is None
        assert studio.session.chat.messages[-2].text == question
    assert UNICODE in studio.widget("chat.transcript").toPlainText()

    # Label: unicode labels rank; an empty list asks for labels instead of failing.
    ranked = studio.label(["🐱 cat", "月", "naïve café"])
    assert studio.last_error() is None and sorted(lab for lab, _ in ranked) == sorted(["🐱 cat", "月", "naïve café"])
    assert studio.label([]) == []
    assert studio.last_error() == "Type at least one label (one per line), or pick a preset."
    assert studio.label(["   ", ""]) == [] and "at least one label" in studio.last_error()

    # Tape: the clip renders with a unicode prompt.
    assert len(studio.render_clip("月の猫 🐱 rolling", frames=2)) == 2 and studio.last_error() is None
    assert studio.widget("tape.prompt").text() == "月の猫 🐱 rolling"
    assert studio.take_internal_errors() == []


# -- damaged models ----------------------------------------------------------------------------------
def _clip_card(model_id: str, folder: Path) -> str:
    return (f'[[model]]\nid = "{model_id}"\nname = "{model_id}"\ntask = "clip"\nlibrary = "transformers"\n'
            f'source = "local:{folder.as_posix()}"\ntrained = false\n\n')


@pytest.fixture
def damaged_home(full_home, reliability_models, tmp_path):
    """full_home plus three damaged copies of the tiny CLIP: weights missing, weights garbled, and
    weights only as a pickle checkpoint (pytorch_model.bin)."""
    import torch
    from safetensors.torch import load_file

    good = Path(reliability_models["clip"])
    folders = {}
    for name in ("missing", "garbled", "pickled"):
        folders[name] = tmp_path / "models" / name
        shutil.copytree(good, folders[name])
    (folders["missing"] / "model.safetensors").unlink()
    (folders["garbled"] / "model.safetensors").write_bytes(struct.pack("<Q", 64) + b"{not json" + bytes(4000))
    weights = folders["pickled"] / "model.safetensors"
    torch.save(load_file(str(weights)), folders["pickled"] / "pytorch_model.bin")
    weights.unlink()
    with (full_home / "models.toml").open("a", encoding="utf-8") as f:
        for name, folder in folders.items():
            f.write("\n" + _clip_card(f"clip-{name}", folder))
    return full_home


def test_damaged_model_folders_and_pickles_are_refused_with_a_reason(studio_factory, damaged_home, shapes_png):
    studio = studio_factory(damaged_home)
    assert studio.open_image(shapes_png) is not None
    studio.switch_to("label")
    expected = {"clip-missing": ("clip-missing", "no weights file"),
                "clip-garbled": ("clip-garbled", "model.safetensors", "corrupted"),
                "clip-pickled": ("clip-pickled", "pickle weights (pytorch_model.bin)")}
    for model_id, words in expected.items():
        choose(studio, "label.model", model_id)
        studio.wait_idle(60)
        assert studio.label(["red circle", "blue square"]) == []
        err = studio.last_error()
        assert err is not None and all(w in err for w in words), (model_id, err)
        assert "Traceback" not in err
    assert "allow pickle files for this model" in err  # the way to consent is named
    assert studio.session.app.error_detail  # the technical detail is kept for the details dialog
    # The studio keeps working: the sound model labels the same image.
    choose(studio, "label.model", CLIP_ID)
    assert len(studio.label(["red circle", "blue square"])) == 2 and studio.last_error() is None
    assert studio.take_internal_errors() == []


# -- plugins -----------------------------------------------------------------------------------------
def test_a_plugin_that_raises_on_import_is_switched_off_and_named(studio_factory, studio_home, write_image, qtbot):
    folder = studio_home / "plugins" / "explodes"
    folder.mkdir(parents=True)
    (folder / "plugin.toml").write_text('id = "explodes"\nname = "Explodes"\nversion = "0.1"\napi = "1"\n'
                                        'register = "hook:register"\n', encoding="utf-8")
    (folder / "hook.py").write_text(textwrap.dedent("""\
        raise RuntimeError("this plugin breaks as soon as it is imported")

        def register(registry):
            pass
        """), encoding="utf-8")
    studio = studio_factory(studio_home)
    qtbot.wait(20)
    banner = studio.widget("error.message")
    assert banner.isVisible() and "“Explodes”" in banner.text() and "switched off" in banner.text(), banner.text()
    assert "this plugin breaks as soon as it is imported" in studio.session.app.error_detail
    assert studio.session.plugins.get("explodes").state == "failed"
    assert studio.open_image(write_image((20, 10))) is not None and studio.last_error() is None
    assert studio.take_internal_errors() == []
