"""CLIP engines through the real model manager: zero-shot ranking, text cache, word-to-region maps,
embedding arithmetic, folder batches and accuracy, on tiny random CLIPs of both libraries and a SigLIP (the code
path) and on the starter CLIP (the meaning), which is skipped only while assets/starter/clip is missing."""
from __future__ import annotations

import csv
import gc

import numpy as np
import pytest
from PIL import Image

from studio.catalog.cards import Catalog
from studio.core.cancel import CancelToken
from studio.core.context import TaskContext
from studio.core.errors import BadInputError, Cancelled
from studio.core.image import StudioImage
from studio.core.label_requests import (AccuracyRequest, ArithmeticRequest, LabelBatchRequest, LabelRequest,
                                        RegionRequest, rank, region_mask, scores, template_set)
from studio.engines import clip, clip_tiny
from studio.engines.clip_batch import run_accuracy, run_batch
from studio.engines.clip_vocab import run_arithmetic
from studio.engines.manager import ModelManager
from studio.starter.world import LABELS, SPLITS, make_scene

WORDS = ("red", "blue", "green", "circle", "square", "cat", "dog", "car", "tree", "house")


@pytest.fixture(scope="module")
def manager():
    cards = [clip_tiny.card("tiny-hf", clip_tiny.cached_hf_clip_folder()),
             clip_tiny.card("tiny-oc", library="open_clip", arch=clip_tiny.register_open_clip_tiny()),
             clip_tiny.card("tiny-sig", library="open_clip", arch=clip_tiny.register_open_clip_tiny(-10.0)),
             clip_tiny.card("tiny-siglip", clip_tiny.cached_hf_clip_folder(shape="siglip"))]
    return ModelManager(Catalog(cards), "cpu")


def scene_with(labels: list[str], start: int = SPLITS["test"]):
    """The first test-split scene whose objects are exactly `labels` (deterministic)."""
    for seed in range(start, start + 20000):
        sc = make_scene(seed, n_objects=len(labels))
        if sorted(sc.labels) == sorted(labels):
            return sc
    raise AssertionError(f"no scene with {labels}")


@pytest.fixture(scope="module")
def photo():
    return StudioImage(scene_with(["red circle"]).image, "red.png")


# -- the code path, on both libraries -------------------------------------------------------------
@pytest.mark.parametrize("model_id", ["tiny-hf", "tiny-oc", "tiny-sig", "tiny-siglip"])
def test_zero_shot_ranks_every_label_and_caches_the_text(manager, photo, model_id):
    labels = ("red circle", "blue square", "cat")
    req = LabelRequest(photo, model_id, labels, template_set("7"))
    first = clip.run_label(req, TaskContext(), manager)
    again = clip.run_label(req, TaskContext(), manager)
    assert first.cosine.shape == (3,) and first.cosine.dtype == np.float32
    assert np.all(np.abs(first.cosine) <= 1.0 + 1e-5) and first.image_embedding.shape[0] >= 16
    assert not first.text_cached and again.text_cached
    np.testing.assert_allclose(first.cosine, again.cosine, atol=1e-5)
    p = scores(first.cosine, "auto", first.logit_scale, first.logit_bias)
    sigmoid = model_id in ("tiny-sig", "tiny-siglip")  # open_clip with a bias; transformers SigLIP
    assert (first.logit_bias is not None) == sigmoid
    if not sigmoid:
        assert p.sum() == pytest.approx(1.0, abs=1e-5)  # softmax
    assert sorted(lab for lab, _ in rank(labels, p)) == sorted(labels)


def test_text_cache_is_dropped_when_the_manager_unloads_the_model(photo):
    m = ModelManager(Catalog([clip_tiny.card("tiny-x", clip_tiny.cached_hf_clip_folder())]), "cpu")
    clip.run_label(LabelRequest(photo, "tiny-x", ("a", "b")), TaskContext(), m)
    assert any(k[0] == "tiny-x" for k in clip.text_cache_keys())
    m.unload("tiny-x")
    gc.collect()
    assert not any(k[0] == "tiny-x" for k in clip.text_cache_keys())


@pytest.mark.parametrize("method", ["value", "tokens"])
@pytest.mark.parametrize("model_id", ["tiny-hf", "tiny-oc", "tiny-siglip"])
def test_region_map_covers_the_whole_image(manager, model_id, method):
    wide = StudioImage(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8))
    res = clip.run_region(RegionRequest(wide, model_id, "  red   circle ", method=method), TaskContext(), manager)
    assert res.label == "red circle" and res.heatmap.shape == (4, 4) and res.image_size == (50, 30)
    assert res.method == method
    assert np.isfinite(res.heatmap).all() and -1.0 <= res.global_cosine <= 1.0
    mask = region_mask(res, 0.5)
    assert mask.shape == (30, 50) and mask.any()


@pytest.mark.parametrize("model_id", ["tiny-hf", "tiny-oc"])
def test_arithmetic_nearest_words_probes_and_images(manager, model_id):
    a = StudioImage(scene_with(["red circle"]).image)
    b = StudioImage(scene_with(["blue circle"]).image)
    pool = (("other.png", np.ones(32, np.float32) / np.sqrt(32)),)
    for centre in (False, True):
        res = run_arithmetic(ArithmeticRequest(model_id, a, b, names=("A", "B", "C"), centre=centre, top_k=5,
                                               probes=("red", "zebra"), pool=pool, words=WORDS),
                             TaskContext(), manager)
        vals = [v for _, v in res.words]
        assert len(res.words) == 5 and vals == sorted(vals, reverse=True)
        assert [w for w, _ in res.probes] == ["red", "zebra"]  # "zebra" is not in the vocabulary
        assert {n for n, _ in res.neighbours} == {"A", "B", "other.png"}
        assert res.expression == "A - B" and res.centred == centre
    with pytest.raises(BadInputError, match="same embedding"):
        run_arithmetic(ArithmeticRequest(model_id, a, a, words=WORDS), TaskContext(), manager)


def test_bad_inputs_give_clear_messages(manager, photo):
    with pytest.raises(BadInputError, match="at least one label"):
        clip.run_label(LabelRequest(photo, "tiny-hf", ()), TaskContext(), manager)
    with pytest.raises(BadInputError, match="exactly one"):
        clip.run_label(LabelRequest(photo, "tiny-hf", ("cat",), ("no slot",)), TaskContext(), manager)
    with pytest.raises(BadInputError, match="Type a word"):
        clip.run_region(RegionRequest(photo, "tiny-hf", "  "), TaskContext(), manager)
    with pytest.raises(BadInputError, match="Unknown word-to-region method"):
        clip.run_region(RegionRequest(photo, "tiny-hf", "cat", method="magic"), TaskContext(), manager)
    with pytest.raises(BadInputError, match="set A and B"):
        run_arithmetic(ArithmeticRequest("tiny-hf", photo, None), TaskContext(), manager)
    with pytest.raises(BadInputError, match="catalog"):
        clip.run_label(LabelRequest(photo, "no-such-model", ("cat",)), TaskContext(), manager)


def test_a_model_without_towers_is_not_clip():
    import torch

    from studio.engines.clip_backend import backend_of

    with pytest.raises(BadInputError, match="not a CLIP model"):
        backend_of(torch.nn.Linear(2, 2))


def _folder(tmp_path, n: int = 5):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(n):
        Image.fromarray(make_scene(SPLITS["test"] + i).image).save(folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_batch_writes_one_csv_row_per_image_and_reports_bad_files(manager, tmp_path):
    folder = _folder(tmp_path)
    out = tmp_path / "out" / "labels.csv"
    labels = ("red circle", "blue square")
    res = run_batch(LabelBatchRequest(str(folder), "tiny-hf", labels, batch_size=2, csv_path=str(out)),
                    TaskContext(), manager)
    assert [it.name for it in res.items] == [f"img{i}.png" for i in range(5)]
    assert res.cosine.shape == (5, 2) and res.embeddings.shape[0] == 5 and res.skipped == 1
    assert sorted(p.rsplit("/", 1)[1] for p, _ in res.errors) == ["broken.png", "empty.jpg"]
    assert all(msg for _, msg in res.errors) and res.items[0].thumbnail.shape[2] == 3
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 7 and [r["error"] != "" for r in rows].count(True) == 2
    good = [r for r in rows if not r["error"]]
    assert len(good) == 5 and all(r["top_label"] in labels for r in good)
    assert list(rows[0].keys())[-2:] == list(labels)


def test_folder_batch_cancels_between_chunks(manager, tmp_path):
    folder = _folder(tmp_path)
    token = CancelToken()
    seen = []

    def progress(f, text):
        seen.append(f)
        if f > 0.1:
            token.cancel()

    with pytest.raises(Cancelled):
        run_batch(LabelBatchRequest(str(folder), "tiny-hf", ("a", "b"), batch_size=1),
                  TaskContext(token, on_progress=progress, min_interval=0.0), manager)
    assert max(seen) < 1.0


def test_folder_batch_on_a_missing_or_empty_folder(manager, tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        run_batch(LabelBatchRequest(str(tmp_path / "nope"), "tiny-hf", ("a",)), TaskContext(), manager)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="holds no images"):
        run_batch(LabelBatchRequest(str(tmp_path / "empty"), "tiny-hf", ("a",)), TaskContext(), manager)


def _class_folders(tmp_path, per_class: int = 3):
    root = tmp_path / "classes"
    for label in ("red circle", "blue square"):
        sub = root / label.replace(" ", "_")
        sub.mkdir(parents=True)
        sc = scene_with([label])
        for i in range(per_class):
            Image.fromarray(np.roll(sc.image, i, axis=1)).save(sub / f"{i}.png")
    (root / "blue_square" / "bad.png").write_bytes(b"junk")
    return root


def test_accuracy_on_class_folders_and_the_command_line(manager, tmp_path, monkeypatch, capsys):
    root = _class_folders(tmp_path)
    res = run_accuracy(AccuracyRequest(str(root), "tiny-hf"), TaskContext(), manager)
    assert res.classes == ("blue square", "red circle") and res.total == 6
    assert res.confusion.shape == (2, 2) and res.confusion.sum() == 6 and len(res.errors) == 1
    assert 0.0 <= res.accuracy <= 1.0
    monkeypatch.setattr(clip, "_cli_models", lambda home, device: manager)
    assert clip.main(["--model", "tiny-hf", "accuracy", str(root)]) == 0
    assert "zero-shot accuracy" in capsys.readouterr().out
    assert clip.main(["--model", "tiny-hf", "accuracy", str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().out
    with pytest.raises(BadInputError, match="two class folders"):
        run_accuracy(AccuracyRequest(str(root / "red_circle"), "tiny-hf"), TaskContext(), manager)


# -- the meaning, with the trained starter CLIP ---------------------------------------------------
@pytest.fixture(scope="module")
def starter():
    if not clip_tiny.has_starter_clip():
        pytest.skip("assets/starter/clip is missing: train it with `python -m studio.starter train` "
                    "(the same engine tests above run on tiny random CLIPs)")
    from studio.catalog.cards import load_catalog
    from studio.core.paths import assets_dir

    catalog = load_catalog([assets_dir() / "models.toml"])
    if "starter-clip" not in catalog:
        catalog.add(clip_tiny.card("starter-clip", clip_tiny.starter_clip_folder(), trained=True))
    return ModelManager(catalog, "cpu")


def test_starter_ranks_a_red_circle_first(starter):
    img = StudioImage(scene_with(["red circle"]).image)
    res = clip.run_label(LabelRequest(img, "starter-clip", tuple(LABELS)), TaskContext(), starter)
    assert rank(res.labels, res.cosine)[0][0] == "red circle"


def test_starter_red_minus_blue_is_nearer_red_than_blue(starter):
    a = StudioImage(scene_with(["red circle"]).image)
    b = StudioImage(scene_with(["blue circle"]).image)
    res = run_arithmetic(ArithmeticRequest("starter-clip", a, b, probes=("red", "blue")), TaskContext(), starter)
    probes = dict(res.probes)
    assert probes["red"] > probes["blue"]


def test_value_path_and_token_maps_differ_only_in_the_last_block(manager, photo):
    """The value path hooks the last block only for the map: embeddings outside it are unchanged."""
    before = clip.run_label(LabelRequest(photo, "tiny-hf", ("a", "b")), TaskContext(), manager).cosine
    v = clip.run_region(RegionRequest(photo, "tiny-hf", "red", method="value"), TaskContext(), manager)
    t = clip.run_region(RegionRequest(photo, "tiny-hf", "red", method="tokens"), TaskContext(), manager)
    after = clip.run_label(LabelRequest(photo, "tiny-hf", ("a", "b")), TaskContext(), manager).cosine
    np.testing.assert_allclose(before, after, atol=1e-6)
    assert v.global_cosine == pytest.approx(t.global_cosine, abs=1e-6)
    assert not np.allclose(v.heatmap, t.heatmap)


def test_starter_region_mask_overlaps_the_object(starter):
    """Over 20 two-object scenes: the mask of a label covers most of its object, and the map is hotter
    on that object than on the other one in most of them (the pilot CLIP: 87 % and 0.81 on 300)."""
    hotter, overlap, n = 0, 0.0, 0
    for seed in range(SPLITS["test"], SPLITS["test"] + 10):
        sc = make_scene(seed, n_objects=2)
        img = StudioImage(sc.image)
        for i, label in enumerate(sc.labels):
            res = clip.run_region(RegionRequest(img, "starter-clip", label), TaskContext(), starter)
            obj, other = sc.instance_mask == i + 1, sc.instance_mask == 2 - i
            heat = np.asarray(Image.fromarray(res.heatmap).resize(img.size, Image.BILINEAR))
            hotter += heat[obj].mean() > heat[other].mean()
            overlap += ((region_mask(res, 0.5) > 0) & obj).sum() / obj.sum()
            n += 1
    assert hotter / n >= 0.7 and overlap / n >= 0.5, (hotter / n, overlap / n)


@pytest.mark.parametrize("model_id", ["tiny-hf", "tiny-oc"])
def test_pixels_of_an_image_already_at_the_input_size_are_its_normalised_values(manager, model_id):
    """An image at the model's input size goes straight to the tensor (no PIL round trip): its values
    are the image's own, normalised; an alpha channel is dropped; other sizes still resize."""
    import torch

    entry = manager.get(model_id)
    adapter = clip.adapter_for(model_id, entry)
    h, w = adapter.preprocess.size
    rng = np.random.default_rng(3)
    exact = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgba = np.dstack([exact, np.full((h, w), 255, np.uint8)])
    fast = adapter.pixels([exact, rgba])
    mean = torch.tensor(adapter.preprocess.mean).view(3, 1, 1)
    std = torch.tensor(adapter.preprocess.std).view(3, 1, 1)
    want = (torch.from_numpy(exact).permute(2, 0, 1).float() / 255.0 - mean) / std
    assert fast.shape == (2, 3, h, w)
    assert torch.allclose(fast[0], want, atol=1e-6) and torch.equal(fast[0], fast[1])
    bigger = np.repeat(np.repeat(exact, 2, axis=0), 2, axis=1)
    assert adapter.pixels([bigger]).shape == (1, 3, h, w)


def test_folder_batch_decodes_ahead_only_with_a_spare_core_or_a_gpu(monkeypatch):
    import torch

    from studio.engines import clip_batch

    monkeypatch.setattr(clip_batch.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not clip_batch.decode_ahead(torch.device("cpu"))  # the helper would take a core from torch
    assert clip_batch.decode_ahead(torch.device("cuda", 0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert clip_batch.decode_ahead(torch.device("cpu"))


@pytest.mark.parametrize("ahead", [False, True])
def test_folder_batch_gives_the_same_rows_decoded_in_turn_or_ahead(manager, tmp_path, monkeypatch, ahead):
    from studio.engines import clip_batch

    folder = _folder(tmp_path)
    monkeypatch.setattr(clip_batch, "decode_ahead", lambda _device: ahead)
    res = run_batch(LabelBatchRequest(str(folder), "tiny-hf", ("red", "blue"), batch_size=2), TaskContext(), manager)
    monkeypatch.setattr(clip_batch, "decode_ahead", lambda _device: not ahead)
    other = run_batch(LabelBatchRequest(str(folder), "tiny-hf", ("red", "blue"), batch_size=2), TaskContext(), manager)
    assert [i.name for i in res.items] == [i.name for i in other.items] and len(res.items) >= 3
    assert np.allclose(res.cosine, other.cosine, atol=1e-5) and res.errors == other.errors
