"""The label workspace through its widgets, on the real window: type labels and get a ranking, re-score
without a model call, label a folder (table, errors, export), embedding arithmetic, word-to-region overlay
and "Send to paint". A tiny random CLIP (a transformers folder, loaded by the real model manager) keeps
it quick; with the starter CLIP present, a red circle must rank "red circle" first."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from studio.engines import clip_tiny
from studio.starter.world import LABELS, SPLITS, make_scene

LABELS3 = ["red circle", "blue square", "green star"]


def _card_toml(model_id: str, folder, trained: bool) -> str:
    return (f'[[model]]\nid = "{model_id}"\nname = "{model_id}"\ntask = "clip"\nlibrary = "transformers"\n'
            f'source = "local:{folder}"\ntrained = {"true" if trained else "false"}\n\n')


@pytest.fixture
def studio_home(tmp_path):
    home = tmp_path / "studio-home"
    home.mkdir()
    toml = _card_toml("tiny-clip", clip_tiny.cached_hf_clip_folder(), False)
    (home / "models.toml").write_text(toml, encoding="utf-8")
    return home


def red_circle_scene(start: int = SPLITS["test"]):
    for seed in range(start, start + 20000):
        sc = make_scene(seed, n_objects=1)
        if sc.labels == ["red circle"]:
            return sc
    raise AssertionError("no red circle")


@pytest.fixture
def label_ws(studio, tmp_path):
    """The studio on the label workspace with the tiny CLIP chosen and a Shapes-world image open."""
    studio.switch_to("label")
    combo = studio.widget("label.model")
    combo.setCurrentIndex(combo.findData("tiny-clip"))
    path = tmp_path / "red.png"
    Image.fromarray(red_circle_scene().image).save(path)
    assert studio.open_image(path) is not None
    return studio


def type_labels(studio, labels) -> None:
    box = studio.widget("label.labels")
    box.clear()
    box.setFocus()
    for i, line in enumerate(labels):
        if i:
            studio.qtbot.keyClick(box, Qt.Key.Key_Return)
        studio.qtbot.keyClicks(box, line)


def test_typing_labels_ranks_them_and_scoring_reranks_without_a_model_call(label_ws, qtbot):
    st = label_ws.session.label
    ranked = label_ws.label(LABELS3)  # the driver types, clicks label.run and reads the chart
    assert label_ws.last_error() is None
    assert sorted(lab for lab, _ in ranked) == sorted(LABELS3)
    assert sum(v for _, v in ranked) == pytest.approx(1.0, abs=1e-4)  # softmax
    assert [lab for lab, _ in label_ws.widget("label.results").rows()] == [lab for lab, _ in ranked]
    assert "ms" in label_ws.widget("label.status").text()

    jobs = []
    label_ws.session.runtime.subscribe(jobs.append)
    scoring = label_ws.widget("label.scoring")
    scoring.setCurrentIndex(scoring.findData("cosine"))
    assert np.allclose(sorted(v for _, v in st.ranked), sorted(st.result.cosine))
    label_ws.widget("label.threshold").setValue(100)  # nothing reaches 1.0: "none of these"
    assert st.verdict == "none of these"
    label_ws.widget("label.threshold").setValue(0)
    label_ws.widget("label.temperature").setValue(90)
    assert jobs == []  # re-scored in the state, no model run

    # Typing one more label re-ranks by itself after a short pause.
    box = label_ws.widget("label.labels")
    box.moveCursor(box.textCursor().MoveOperation.End)
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.keyClicks(box, "yellow person")
    qtbot.waitUntil(lambda: len(st.ranked) == 4 and not st.busy, timeout=20000)
    label_ws.wait_idle(20)


def test_presets_templates_and_bad_input(label_ws, tmp_path):
    st = label_ws.session.label
    preset = label_ws.widget("label.preset")
    preset.setCurrentIndex(preset.findData("shapes"))
    preset.activated.emit(preset.currentIndex())  # what choosing it in the drop-down does
    assert st.labels() == tuple(LABELS)
    templates = label_ws.widget("label.templates")
    templates.setCurrentIndex(templates.findData("7"))
    label_ws.click("label.run")
    label_ws.wait_idle(30)
    assert len(st.ranked) == 40 and st.result.templates == tuple(st.template_list())
    assert len(st.result.templates) == 7

    panel = label_ws.window.panels["label"]
    (tmp_path / "bin.txt").write_bytes(b"\x00\x00junk")
    panel.load_labels(tmp_path / "bin.txt")
    assert "not a text file" in label_ws.session.app.error
    (tmp_path / "mine.txt").write_text("cat\ndog\n")
    panel.load_labels(tmp_path / "mine.txt")
    assert st.labels() == ("cat", "dog")
    type_labels(label_ws, [])
    label_ws.click("label.run")
    assert "at least one label" in label_ws.last_error()
    label_ws.wait_idle()


def test_folder_table_errors_and_export(label_ws, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(make_scene(SPLITS["test"] + i).image).save(folder / f"s{i}.png")
    (folder / "zz_broken.png").write_bytes(b"nope")
    type_labels(label_ws, LABELS3)
    label_ws.widget("label.tabs").setCurrentIndex(1)
    label_ws.qtbot.keyClicks(label_ws.widget("label.folder"), str(folder))
    label_ws.click("label.run_folder")
    label_ws.wait_idle(30)
    assert label_ws.last_error() is None
    table = label_ws.widget("label.table")
    assert table.rowCount() == 3 and table.item(0, 1).text() in LABELS3
    errors = label_ws.widget("label.errors")
    assert errors.isVisible() and errors.count() == 1 and "zz_broken.png" in errors.item(0).text()
    assert label_ws.widget("label.progress").value() == 1000
    table.sortItems(2, Qt.SortOrder.DescendingOrder)
    scores = [float(table.item(r, 2).text()) for r in range(3)]
    assert scores == sorted(scores, reverse=True)

    panel = label_ws.window.panels["label"]
    out = panel.batch.export(tmp_path / "labels.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and sum(1 for r in rows if r["error"]) == 1
    assert panel.batch.export(tmp_path / "labels.json").exists()
    # Its images join the pool that "nearest loaded images" searches.
    assert {"s0.png", "s1.png", "s2.png"} <= set(label_ws.session.label.pool)


def test_arithmetic_from_canvas_images(label_ws, tmp_path):
    st = label_ws.session.label
    label_ws.widget("label.tabs").setCurrentIndex(2)
    label_ws.click("label.set_a")
    blue = tmp_path / "blue.png"
    Image.fromarray(make_scene(SPLITS["test"] + 7).image).save(blue)
    label_ws.open_image(blue)
    label_ws.click("label.set_b")
    assert st.slot_a is not None and st.slot_b is not None
    label_ws.qtbot.keyClicks(label_ws.widget("label.probes"), "red, blue")
    label_ws.click("label.run_arithmetic")
    label_ws.wait_idle(60)
    assert label_ws.last_error() is None
    assert label_ws.widget("label.words").rowCount() == 20
    assert [w for w, _ in st.arithmetic.probes] == ["red", "blue"]
    assert {"A: red.png", "B: blue.png"} <= {n for n, _ in st.arithmetic.neighbours}


def test_word_to_region_overlay_mask_and_send_to_paint(label_ws):
    s = label_ws.session
    label_ws.widget("label.tabs").setCurrentIndex(3)
    label_ws.qtbot.keyClicks(label_ws.widget("label.region_word"), "red circle")
    label_ws.click("label.run_region")
    label_ws.wait_idle(30)
    assert label_ws.last_error() is None and s.label.region is not None
    assert label_ws.canvas.has_overlay()
    label_ws.widget("label.mask_threshold").setValue(100)
    share_hi = float((s.label.mask() > 0).mean())
    label_ws.widget("label.mask_threshold").setValue(30)
    assert float((s.label.mask() > 0).mean()) > share_hi
    method = label_ws.widget("label.region_method")
    method.setCurrentIndex(method.findData("tokens"))  # re-runs the same word with the other method
    label_ws.wait_idle(30)
    assert s.label.region.method == "tokens" and label_ws.canvas.has_overlay()
    label_ws.widget("label.show_overlay").setChecked(False)
    assert not label_ws.canvas.has_overlay()
    label_ws.widget("label.show_overlay").setChecked(True)
    label_ws.click("label.send_to_paint")
    assert s.app.workspace == "paint"
    assert s.app.mask.shape == (64, 64) and s.app.mask.dtype == np.uint8 and s.app.mask.any()
    # Paint takes the word's mask as its inpainting mask and shows it (its own red overlay).
    assert s.paint.mask is not None and np.array_equal(s.paint.mask > 0, s.app.mask > 0)
    assert label_ws.canvas.has_overlay()


def test_label_without_an_image_says_so(studio):
    assert studio.label(["cat", "dog"]) == []
    assert "Open an image first" in studio.last_error()


def test_region_needs_an_image(studio):
    studio.switch_to("label")
    studio.widget("label.tabs").setCurrentIndex(3)
    studio.qtbot.keyClicks(studio.widget("label.region_word"), "cat")
    studio.click("label.run_region")
    assert "Open an image first" in studio.last_error()


def test_starter_clip_ranks_a_red_circle_first(studio_factory, tmp_path):
    if not clip_tiny.has_starter_clip():
        pytest.skip("assets/starter/clip is missing: train it with `python -m studio.starter train`")
    home = tmp_path / "home-starter"
    home.mkdir()
    from studio.core.paths import assets_dir

    if "starter-clip" not in (assets_dir() / "models.toml").read_text(encoding="utf-8"):
        (home / "models.toml").write_text(_card_toml("starter-clip", clip_tiny.starter_clip_folder(), True))
    studio = studio_factory(home)
    studio.switch_to("label")
    combo = studio.widget("label.model")
    combo.setCurrentIndex(combo.findData("starter-clip"))
    path = tmp_path / "red.png"
    Image.fromarray(red_circle_scene().image).save(path)
    studio.open_image(path)
    ranked = studio.label(LABELS)
    assert studio.last_error() is None and ranked[0][0] == "red circle"
