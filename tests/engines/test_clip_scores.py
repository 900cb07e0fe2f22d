"""Label workspace values without torch: label parsing, presets, templates, score maths, export."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from studio.core.errors import BadInputError
from studio.core.label_requests import (NONE_LABEL, PRESETS, BatchItem, LabelBatchResult, RegionResult,
                                        batch_csv, batch_json, check_templates, load_labels_file,
                                        parse_labels, preset_labels, prompts, rank, region_mask, scores,
                                        template_set, verdict, write_batch)
from studio.engines.clip_vocab import load_words


def test_parse_labels_drops_blanks_comments_and_duplicates():
    assert parse_labels("red circle\n\n  blue   square \n# note\nred circle\n") == ("red circle", "blue square")


def test_presets_and_templates_ship_with_the_studio():
    sizes = {k: len(preset_labels(k)) for k in PRESETS}
    # ImageNet-1k names "crane" and "maillot" twice; a label list keeps each name once.
    assert sizes["imagenet"] == 998 and sizes["coco"] == 80 and sizes["shapes"] == 40
    assert "red circle" in preset_labels("shapes") and "purple person" in preset_labels("shapes")
    assert [len(template_set(k)) for k in ("single", "7", "80")] == [1, 7, 80]
    assert prompts(("cat",), ("a photo of a {}.",)) == ("a photo of a cat.",)


def test_vocabulary_is_several_thousand_plain_words():
    words = load_words()
    assert 4000 <= len(words) <= 6000
    assert all(w.isalpha() and w.islower() and len(w) >= 3 for w in words)
    assert {"red", "blue", "circle", "triangle", "person"} <= set(words)
    assert "the" not in words and "ing" not in words


def test_bad_label_files_and_templates_give_clear_messages(tmp_path):
    with pytest.raises(BadInputError, match="cannot be read"):
        load_labels_file(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02")
    with pytest.raises(BadInputError, match="not a text file"):
        load_labels_file(tmp_path / "bin.txt")
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(BadInputError, match="holds no labels"):
        load_labels_file(tmp_path / "empty.txt")
    (tmp_path / "l.csv").write_text("cat,1\ndog,2\n")
    assert load_labels_file(tmp_path / "l.csv") == ("cat", "dog")
    with pytest.raises(BadInputError, match="exactly one"):
        check_templates(("a photo",))


def test_scores_softmax_temperature_cosine_sigmoid_and_none_of_these():
    cos = np.array([0.30, 0.25, 0.10], np.float32)
    p = scores(cos, "softmax", 100.0)
    assert p.sum() == pytest.approx(1.0, abs=1e-5) and p.argmax() == 0
    flat = scores(cos, "softmax", 100.0, temperature=10.0)
    assert flat.max() < p.max()
    assert np.allclose(scores(cos, "cosine", 100.0), cos)
    sig = scores(cos, "sigmoid", 10.0, -2.5)
    assert np.allclose(sig, 1 / (1 + np.exp(-(cos * 10 - 2.5))), atol=1e-6)
    assert np.allclose(scores(cos, "auto", 10.0, -2.5), sig)  # a bias means SigLIP: sigmoid
    ranked = rank(("a", "b", "c"), sig)
    assert ranked[0][0] == "a" and verdict(ranked, 0.9) == NONE_LABEL and verdict(ranked, 0.1) == "a"
    with pytest.raises(BadInputError):
        scores(cos, "nonsense", 1.0)


def _batch():
    items = tuple(BatchItem(f"/x/{n}.png", f"{n}.png", np.zeros((4, 4, 3), np.uint8), (4, 4)) for n in "ab")
    return LabelBatchResult("m", ("cat", "dog"), ("{}",), items, np.array([[0.3, 0.1], [0.1, 0.2]], np.float32),
                            np.zeros((2, 3), np.float32), (("/x/bad.png", "“bad.png” is empty (0 bytes)."),),
                            0, 100.0, None, 0.1)


def test_batch_export_has_one_row_per_file_and_lists_errors(tmp_path):
    rows = list(csv.DictReader(io.StringIO(batch_csv(_batch()))))
    assert [r["file"] for r in rows] == ["/x/a.png", "/x/b.png", "/x/bad.png"]
    assert rows[0]["top_label"] == "cat" and rows[1]["top_label"] == "dog" and rows[2]["error"]
    doc = json.loads(batch_json(_batch(), "cosine"))
    assert doc["scoring"] == "cosine" and doc["images"][0]["scores"]["cat"] == pytest.approx(0.3)
    out = write_batch(_batch(), tmp_path / "t.json")
    assert json.loads(out.read_text())["labels"] == ["cat", "dog"]
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temp file left


def test_region_mask_covers_the_hot_patches_at_image_size():
    heat = np.zeros((4, 4), np.float32)
    heat[0:2, 0:2] = 1.0
    res = RegionResult("m", "red", heat, 0.3, (64, 48), 0.01)
    m = region_mask(res, 0.5)
    assert m.shape == (48, 64) and m.dtype == np.uint8
    assert m[:20, :28].all() and not m[30:, 40:].any()


def test_label_modules_outside_engines_import_no_heavy_library():
    import ast

    import studio.core.label_requests
    import studio.state.label_state

    for mod in (studio.core.label_requests, studio.state.label_state):
        tree = ast.parse(open(mod.__file__, encoding="utf-8").read())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not roots & {"torch", "open_clip", "transformers", "PySide6"}, mod.__name__
