"""The example plugins through the studio's own paths (build_session, the runtime, the catalog):
sketch_edges as a paint preprocessor, extra_models' cards, the palette engine and command, and an
engine for a new request type that fails at run time. Qt-free."""
from __future__ import annotations

import numpy as np

from studio.core.image import StudioImage
from studio.core.paint_requests import PREPROCESSORS, PreprocessRequest

SQUARE = np.full((96, 128, 3), 235, np.uint8)
SQUARE[24:72, 32:96] = (40, 60, 200)  # a dark blue rectangle on light grey


def _edge_ring(h, w, box, width=2):
    y0, y1, x0, x1 = box
    ring = np.zeros((h, w), bool)
    ring[y0 - width:y1 + width, x0 - width:x1 + width] = True
    ring[y0 + width:y1 - width, x0 + width:x1 - width] = False
    return ring


def test_sketch_edges_draws_the_outline_as_a_paint_preprocessor(session_on, run_job):
    session, pump = session_on()
    assert PREPROCESSORS["sketch_edges.sketch"].label == "Sketch (difference of Gaussians)"
    ring = _edge_ring(96, 128, (24, 72, 32, 96), width=6)
    for pre in ("sketch_edges.sketch", "sketch_edges.sobel"):
        kind, res = run_job(session, pump, PreprocessRequest(StudioImage(SQUARE), pre))
        assert kind == "result", getattr(res, "user_message", res)
        out = res.image.pixels
        assert out.shape == (96, 128, 3) and out.dtype == np.uint8
        assert np.array_equal(out[..., 0], out[..., 2])  # grey lines
        g = out[..., 0]
        # A bright line within 4 px of each side, all along it (corners aside)...
        assert all(g[y, 28:37].max() > 128 and g[y, 91:100].max() > 128 for y in range(30, 67)), pre
        assert all(g[20:29, x].max() > 128 and g[67:76, x].max() > 128 for x in range(38, 91)), pre
        # ...and black away from the outline: flat regions draw nothing.
        assert g[~ring].max() < 10, pre
    session.plugins.close()
    assert "sketch_edges.sketch" not in PREPROCESSORS  # the shared registry is left as it was


def test_sketch_edges_resizes_with_the_request(session_on, run_job):
    session, pump = session_on()
    kind, res = run_job(session, pump, PreprocessRequest(StudioImage(SQUARE), "sketch_edges.sketch",
                                                         width=64, height=48))
    assert kind == "result" and res.image.size == (64, 48)


def test_extra_models_cards_join_the_catalog(session_on):
    session, _ = session_on()
    cards = {c.id: c for c in session.catalog.cards() if c.origin == "plugin"}
    assert set(cards) == {"controlnet-sd15-lineart", "sd-turbo", "deit-small"}
    assert cards["controlnet-sd15-lineart"].task == "controlnet" and cards["sd-turbo"].is_hub
    assert session.catalog.get("deit-small").library == "timm"
    assert len(session.catalog.cards("controlnet")) > 1  # the bundled ones are still there


def test_a_disabled_plugin_adds_nothing(session_on, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text('{"plugins.disabled": ["extra_models", "sketch_edges"]}')
    session, _ = session_on(home)
    assert {r.id: r.state for r in session.plugins.records()}["extra_models"] == "disabled"
    assert "sd-turbo" not in session.catalog and "sketch_edges.sketch" not in PREPROCESSORS


def _two_colours():
    px = np.zeros((50, 80, 3), np.uint8)
    px[:, :] = (200, 30, 40)
    px[:, 56:] = (20, 90, 230)  # 30 % blue, 70 % red
    return px


def test_the_palette_engine_finds_the_two_colours(session_on, run_job):
    from studio_plugins.palette_panel.palette import PaletteRequest  # the plugin's package, as loaded

    session, pump = session_on()
    kind, res = run_job(session, pump, PaletteRequest(StudioImage(_two_colours()), 6))
    assert kind == "result", getattr(res, "user_message", res)
    assert [c for c, _ in res.colours] == [(200, 30, 40), (20, 90, 230)]
    assert np.allclose([s for _, s in res.colours], [0.7, 0.3], atol=0.01)
    assert session.runtime.engines.lookup(PaletteRequest(StudioImage(_two_colours())))[1] == "cpu"


ENGINE = """
from studio.plugins import api

@api.request
class ShoutRequest:
    text: str

def run(request, ctx, models):
    if request.text == "boom":
        raise RuntimeError("the engine broke")
    if not request.text:
        raise api.BadInputError("Say something.")
    return request.text.upper()
"""


def test_an_engine_for_a_new_request_type_and_its_failure(session_on, run_job, write_plugin, tmp_path):
    write_plugin("shout", '[[engine]]\nrequest = "work:ShoutRequest"\nrun = "work:run"\nlane = "cpu"\n',
                 {"work.py": ENGINE}, root=tmp_path / "home" / "plugins")
    session, pump = session_on()
    from studio_plugins.shout.work import ShoutRequest

    assert run_job(session, pump, ShoutRequest("hi")) == ("result", "HI")
    kind, err = run_job(session, pump, ShoutRequest(""))
    assert kind == "error" and err.user_message == "Say something."
    assert session.plugins.get("shout").state == "loaded"
    kind, err = run_job(session, pump, ShoutRequest("boom"))
    assert kind == "error"
    assert err.user_message.startswith("The plugin “Shout” failed in its engine for ShoutRequest and is "
                                       "switched off until the next start: RuntimeError: the engine broke")
    pump.until(lambda: session.app.error is not None)
    assert session.app.error == err.user_message and "Traceback" in session.app.error_detail
    kind, err = run_job(session, pump, ShoutRequest("again"))
    assert kind == "error" and "switched off after an error" in err.user_message
