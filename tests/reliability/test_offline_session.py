"""A whole studio session with every socket blocked: open an image, label it, generate, ask, render a
clip and take a screenshot, all through the documented driver, which acts through the widgets (what
it typed is in the widgets afterwards). Nothing may touch the network: only an explicit download may."""
from __future__ import annotations

import socket

from PIL import Image

from tests.helpers.offline import NetworkBlocked, block_network
from tests.reliability.conftest import use_tiny_models


def block_dns(monkeypatch, attempts: list) -> None:
    def getaddrinfo(host, *args, **kwargs):
        attempts.append(("dns", host))
        raise NetworkBlocked(f"network blocked by the test: resolve {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", getaddrinfo)


def test_a_full_session_makes_no_network_call(studio_factory, full_home, shapes_png, tmp_path, monkeypatch):
    attempts = block_network(monkeypatch)
    block_dns(monkeypatch, attempts)
    studio = studio_factory(full_home)
    window = studio.window
    from PySide6.QtWidgets import QMainWindow

    assert isinstance(window, QMainWindow) and window.objectName() == "main_window"
    use_tiny_models(studio)

    assert studio.open_image(shapes_png) is not None and studio.last_error() is None
    assert studio.canvas.image().width == 96  # shown on the canvas widget

    ranked = studio.label(["red circle", "blue square", "a dog"])
    assert studio.last_error() is None, studio.last_error()
    assert sorted(lab for lab, _ in ranked) == ["a dog", "blue square", "red circle"]
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)  # best first
    assert studio.widget("label.labels").toPlainText() == "red circle\nblue square\na dog"  # typed there
    assert [lab for lab, _ in studio.widget("label.results").rows()] == [lab for lab, _ in ranked]

    image = studio.generate("a red cube on a table", seed=7)
    assert studio.last_error() is None, studio.last_error()
    assert isinstance(image, Image.Image) and image.size == (32, 32)
    assert studio.widget("paint.prompt").toPlainText() == "a red cube on a table"
    assert studio.widget("paint.seed").value() == 7

    answer = studio.ask("what is in the picture?")
    assert studio.last_error() is None, studio.last_error()
    assert isinstance(answer, str)
    assert "what is in the picture?" in studio.widget("chat.transcript").toPlainText()

    frames = studio.render_clip("a ball rolling", frames=4)
    assert studio.last_error() is None, studio.last_error()
    assert len(frames) == 4 and all(isinstance(f, Image.Image) for f in frames)
    assert studio.widget("tape.prompt").text() == "a ball rolling" and studio.widget("tape.frames").value() == 4

    studio.wait_idle()
    assert not studio.session.runtime.active()
    shot = studio.screenshot(tmp_path / "shots" / "session.png")
    with Image.open(shot) as png:
        assert png.size == (window.width(), window.height())
    assert attempts == [], f"the studio tried to reach the network: {attempts}"
