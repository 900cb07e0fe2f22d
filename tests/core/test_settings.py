"""Settings: one schema, typed access, invalid values fall back, corrupt files never stop the studio."""
from __future__ import annotations

import json

import pytest

from studio.core.settings import SCHEMA, Settings


@pytest.fixture
def path(tmp_path):
    return tmp_path / "settings.json"


def test_missing_file_gives_the_schema_defaults(path):
    st = Settings.load(path)
    assert st.as_dict() == {o.key: o.default for o in SCHEMA}
    assert not path.exists()  # loading never writes


def test_every_default_is_valid_for_its_own_schema():
    for opt in SCHEMA:
        assert Settings._valid(opt, opt.default), opt.key


def test_unknown_key_is_an_error_both_ways(path):
    st = Settings.load(path)
    with pytest.raises(KeyError):
        st.get("inspect.no_such_thing")
    with pytest.raises(KeyError):
        st.set("inspect.no_such_thing", 1)


@pytest.mark.parametrize("key, bad", [
    ("inspect.patch_size", 15),          # not a choice
    ("inspect.patch_size", "16"),        # wrong type
    ("ui.workspace", "garden"),
    ("offline", "yes"),                  # str for bool
    ("ui.recent_max", True),             # bool is not an int here
    ("ui.recent_max", 2.5),
    ("ui.recent_files", "a.png"),        # str for list
    ("inspect.colormap", None),
])
def test_set_rejects_invalid_values(path, key, bad):
    st = Settings.load(path)
    before = st.get(key)
    with pytest.raises(ValueError):
        st.set(key, bad)
    assert st.get(key) == before


def test_invalid_values_in_the_file_fall_back_to_defaults_and_others_survive(path, caplog):
    path.write_text(json.dumps({
        "inspect.patch_size": 15, "ui.workspace": 3, "offline": "no", "ui.recent_max": True,
        "inspect.colormap": "magma", "some.future_key": {"kept": True},
    }))
    st = Settings.load(path)
    assert st.get("inspect.patch_size") == 16
    assert st.get("ui.workspace") == "inspect"
    assert st.get("offline") is True
    assert st.get("ui.recent_max") == 10
    assert st.get("inspect.colormap") == "magma"  # a valid value is not thrown away
    assert "invalid value" in caplog.text


def test_unknown_keys_are_kept_when_saving(path):
    path.write_text(json.dumps({"some.future_key": [1, 2], "inspect.patch_size": 8}))
    st = Settings.load(path)
    st.set("inspect.patch_size", 32)
    st.save()
    data = json.loads(path.read_text())
    assert data == {"some.future_key": [1, 2], "inspect.patch_size": 32}


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00garbage", b'{"a": 1'])
def test_corrupt_file_gives_defaults_and_is_kept_aside(path, content):
    path.write_bytes(content)
    st = Settings.load(path)
    assert st.get("inspect.patch_size") == 16
    kept = path.with_suffix(".corrupt.json")
    assert kept.read_bytes() == content  # the user's file is not destroyed
    st.set("inspect.patch_size", 8)
    st.save()
    assert Settings.load(path).get("inspect.patch_size") == 8


@pytest.mark.parametrize("content", ["[1, 2, 3]", '"text"', "null", "42"])
def test_json_that_is_not_an_object_gives_defaults(path, content):
    path.write_text(content)
    assert Settings.load(path).as_dict() == {o.key: o.default for o in SCHEMA}


def test_round_trip_through_the_file(path):
    st = Settings.load(path)
    st.set("ui.workspace", "paint")
    st.set("ui.recent_files", ["/a.png", "/b.png"])
    st.set("offline", False)
    st.save()
    again = Settings.load(path)
    assert again.get("ui.workspace") == "paint"
    assert again.get("ui.recent_files") == ["/a.png", "/b.png"]
    assert again.get("offline") is False


def test_listeners_hear_changes_only(path):
    st = Settings.load(path)
    heard = []
    st.on_change(lambda k, v: heard.append((k, v)))
    st.set("inspect.patch_size", 8)
    st.set("inspect.patch_size", 8)
    st.set("inspect.patch_size", 32)
    assert heard == [("inspect.patch_size", 8), ("inspect.patch_size", 32)]


def test_settings_without_a_path_do_not_write(tmp_path):
    st = Settings()
    st.set("ui.workspace", "chat")
    st.save()
    assert list(tmp_path.iterdir()) == []
