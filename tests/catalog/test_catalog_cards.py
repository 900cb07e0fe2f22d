"""Model cards: the bundled catalog, validation, user cards written atomically, plugin cards."""
from __future__ import annotations

import sys

import pytest

from studio.catalog.cards import (Catalog, ModelCard, card_from_dict, card_to_dict, load_catalog,
                                  read_cards, remove_user_card, save_user_card)
from studio.core.errors import BadInputError
from studio.core.paths import assets_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REQUIRED = {
    "resnet18-untrained", "resnet18", "resnet50", "vgg16", "vit-base-patch16-224",
    "openclip-vit-b-32-laion2b", "openclip-vit-l-14-openai", "siglip-base", "smolvlm-256m",
    "smolvlm-500m", "llava-1.5-7b", "qwen2.5-vl-3b", "sd15", "sdxl-base", "controlnet-sd15-depth",
    "controlnet-sd15-openpose", "controlnet-sd15-canny", "controlnet-sd15-scribble",
    "controlnet-sd15-inpaint", "animatediff-motion-v1-5-3", "svd-xt", "cogvideox-2b", "ltx-video",
    "annotator-canny", "annotator-openpose", "annotator-depth-midas", "starter-cnn", "starter-clip",
}


def test_bundled_catalog_has_every_card_and_all_are_valid():
    path = assets_dir() / "models.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))["model"]
    cards = read_cards(path)
    assert len(cards) == len(raw), "a bundled card failed validation (see the log)"
    ids = {c.id for c in cards}
    assert REQUIRED <= ids
    for c in cards:
        if c.is_hub:
            assert c.revision, f"{c.id} must pin a revision"
            assert c.license, f"{c.id} needs a license note"
    starter = {c.id: c for c in cards}
    assert starter["starter-cnn"].source == "bundled:starter/cnn" and starter["starter-cnn"].library == "timm"
    assert starter["starter-clip"].source == "bundled:starter/clip"
    assert starter["starter-clip"].library == "transformers" and starter["starter-clip"].task == "clip"


@pytest.mark.parametrize("change, words", [
    ({"task": "painting"}, "unknown task"),
    ({"library": "keras"}, "unknown library"),
    ({"source": "ftp:x"}, "has source"),
    ({"source": "hub:not a repo"}, "not a hub repo id"),
    ({"id": "bad id!"}, "ids use letters"),
    ({"dtype": "int4"}, "dtype"),
])
def test_bad_cards_are_refused_with_a_sentence(change, words):
    data = {"id": "m", "name": "M", "task": "cnn", "library": "timm", "source": "local:/x", **change}
    with pytest.raises(BadInputError) as err:
        card_from_dict(data)
    assert words in err.value.user_message


def test_user_cards_round_trip_and_keep_other_entries(tmp_path):
    user = tmp_path / "models.toml"
    a = ModelCard("mine", "My “SD” \\ model", "diffusion", "diffusers", "local:/data/sd",
                  options={"variant": "fp16", "skip": ["safety_checker"], "nested": {"a": 1}})
    b = ModelCard("hubby", "Hub", "vlm", "transformers", "hub:org/name", revision="main", dtype="bfloat16")
    save_user_card(user, a)
    save_user_card(user, b)
    save_user_card(user, a)  # replacing keeps one entry
    cards = {c.id: c for c in read_cards(user, "user")}
    assert set(cards) == {"mine", "hubby"}
    assert cards["mine"].name == a.name and cards["mine"].options == a.options
    assert cards["mine"].origin == "user" and cards["hubby"].dtype == "bfloat16"
    assert not list(tmp_path.glob(".models.toml.*")), "atomic writes leave no temp files"
    assert remove_user_card(user, "mine") and not remove_user_card(user, "mine")
    assert [c.id for c in read_cards(user)] == ["hubby"]


def test_unreadable_user_file_is_never_overwritten(tmp_path):
    user = tmp_path / "models.toml"
    user.write_text("[[model]\nthis is not toml")
    with pytest.raises(BadInputError):
        save_user_card(user, ModelCard("x", "x", "cnn", "timm", "local:/x"))
    assert user.read_text().startswith("[[model]\n")


def test_load_catalog_layers_user_and_plugin_cards(tmp_path):
    bundled = tmp_path / "bundled.toml"
    bundled.write_text('[[model]]\nid = "a"\ntask = "cnn"\nlibrary = "timm"\nsource = "builtin:resnet10t"\n')
    user = tmp_path / "user.toml"
    save_user_card(user, ModelCard("b", "B", "clip", "open_clip", "local:/b"))
    plugin = ModelCard("c", "C", "vlm", "transformers", "hub:org/c", revision="main")
    cat = load_catalog([bundled, user, tmp_path / "missing.toml"], extra_cards=[plugin])
    assert [c.id for c in cat.cards()] == ["a", "b", "c"]
    assert [cat.get(i).origin for i in "abc"] == ["catalog", "user", "plugin"]
    assert cat.get("b").removable and not cat.get("a").removable
    cat.add(ModelCard("d", "D", "cnn", "timm", "builtin:x"))
    assert "d" in cat and len(cat.cards("cnn")) == 2
    with pytest.raises(BadInputError):
        cat.get("nope")
    assert isinstance(Catalog.from_toml(bundled), Catalog)


def test_card_to_dict_omits_defaults():
    c = ModelCard("x", "X", "cnn", "timm", "builtin:resnet10t", memory_mb=5)
    assert card_to_dict(c) == {"id": "x", "name": "X", "task": "cnn", "library": "timm",
                               "source": "builtin:resnet10t", "memory_mb": 5}
