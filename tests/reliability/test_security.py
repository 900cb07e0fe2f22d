"""Security: no code runs without consent and no saved file reaches outside its folder.

- trust_remote_code: a model whose card asks for its repository's code is refused until the user
  allows it in Models > Manager (a warning they must confirm); nothing in studio/ passes a literal True.
- path traversal: a recipe (the `studio` text of a PNG anyone can send) or a journal entry (the paint
  project that survives a restart) that names `../..` or an absolute path is refused: the studio
  neither reads nor writes nor deletes outside its library and journal folders.

Elsewhere: no network in a whole session (tests/reliability/test_offline_session.py); only enabled
plugins load (tests/plugins/test_isolation.py::test_only_enabled_plugins_load_and_their_code_waits_until_used,
tests/plugins/test_plugin_ui.py::test_the_plugins_dialog_lists_plugins_and_switches_one_off_at_the_next_start);
pickle checkpoints refused (tests/reliability/test_bad_input_studio.py, tests/engines/test_manager_loading.py).
"""
from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import numpy as np
import pytest

from studio.core.errors import BadInputError
from studio.core.paths import inside
from studio.media.journal import Journal
from studio.media.metadata import encode_png, load_inputs
from tests.reliability.conftest import choose

STUDIO = Path(__file__).resolve().parents[2] / "studio"


# -- trust_remote_code ---------------------------------------------------------------------------------
def test_no_module_passes_a_literal_true_for_trust_remote_code():
    offenders = []
    for path in STUDIO.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # Only a value computed from the user's consent may reach the libraries, never a constant True.
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code" and \
                    isinstance(node.value, ast.Constant) and node.value.value is not False:
                offenders.append(f"{path.relative_to(STUDIO.parent)}:{node.value.lineno}")
    assert offenders == []
    from studio.core.settings import SCHEMA
    from studio.engines.loaders import LoadSpec

    assert {o.key: o.default for o in SCHEMA}["models.trust_remote_code"] == []
    assert LoadSpec.__dataclass_fields__["trust_remote_code"].default is False


@pytest.fixture
def remote_code_home(full_home, reliability_models):
    with (full_home / "models.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[[model]]\nid = "clip-remote"\nname = "Clip with code"\ntask = "clip"\nlibrary = "transformers"\n'
                f'source = "local:{Path(reliability_models["clip"]).as_posix()}"\ntrained = false\n'
                '[model.options]\ntrust_remote_code = true\n')
    return full_home


def test_remote_code_is_refused_until_the_user_confirms_the_warning(studio_factory, remote_code_home, shapes_png):
    from PySide6.QtWidgets import QMessageBox

    studio = studio_factory(remote_code_home)
    assert studio.open_image(shapes_png) is not None
    studio.switch_to("label")
    choose(studio, "label.model", "clip-remote")
    assert studio.label(["red circle", "blue square"]) == []
    err = studio.last_error()
    assert "trust_remote_code" in err and "Models > Manager" in err, err
    assert studio.session.settings.get("models.trust_remote_code") == []

    studio.trigger("action.models_manager")
    dlg = studio.widget("models.dialog")
    studio.qtbot.waitUntil(lambda: dlg.isVisible() and len(studio.session.models.disk) == len(studio.session.catalog),
                           timeout=60000)
    dlg.select("clip-remote")
    studio.click("models.trust_remote_code")
    studio.click("models.consent_warning.no")  # declining the warning keeps it refused
    studio.qtbot.waitUntil(lambda: studio.window.findChild(QMessageBox, "models.consent_warning") is None)
    assert studio.session.settings.get("models.trust_remote_code") == []
    assert not studio.widget("models.trust_remote_code").isChecked()
    studio.click("models.trust_remote_code")
    studio.click("models.consent_warning.yes")
    assert studio.session.settings.get("models.trust_remote_code") == ["clip-remote"]
    dlg.close()
    studio.wait_idle()
    assert len(studio.label(["red circle", "blue square"])) == 2 and studio.last_error() is None


# -- path traversal: recipes ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../secret.png", "../../secret.png", "inputs/../../secret.png",
                                  "/tmp/secret.png", "", "."])
def test_inside_refuses_names_that_leave_the_folder(tmp_path, name):
    with pytest.raises(BadInputError, match="outside its folder"):
        inside(tmp_path / "library", name.replace("/tmp", str(tmp_path)))


def test_inside_refuses_a_symlink_out_and_accepts_plain_names(tmp_path):
    lib = tmp_path / "library"
    (lib / "inputs").mkdir(parents=True)
    (lib / "inputs" / "out").symlink_to(tmp_path)
    with pytest.raises(BadInputError):
        inside(lib, "inputs/out/secret.png")
    assert inside(lib, "inputs/abc.png") == (lib / "inputs" / "abc.png").resolve()


def test_a_recipe_cannot_read_an_image_outside_the_library(tmp_path):
    library = tmp_path / "home" / "library"
    library.mkdir(parents=True)
    secret = np.full((4, 4, 3), 7, np.uint8)
    (tmp_path / "home" / "secret.png").write_bytes(encode_png(secret))
    for file in ("../secret.png", str(tmp_path / "home" / "secret.png")):
        recipe = {"inputs": {"control1": {"file": file}}}
        with pytest.raises(BadInputError, match="outside its folder"):
            load_inputs(recipe, library)
    # A normal recipe still finds its inputs, inline or in the library.
    (library / "inputs").mkdir()
    (library / "inputs" / "ok.png").write_bytes(encode_png(secret))
    assert load_inputs({"inputs": {"init": {"file": "inputs/ok.png"}}}, library)["init"].shape == (4, 4, 3)
    inline = {"inputs": {"init": {"png": base64.b64encode(encode_png(secret)).decode(), "file": "../x.png"}}}
    assert np.array_equal(load_inputs(inline, library)["init"], secret)  # inline copy: no file read at all


# -- path traversal: the journal (the paint project restored at the next start) -----------------------
def test_a_planted_journal_entry_cannot_write_read_or_delete_outside_the_journal(tmp_path):
    home = tmp_path / "home"
    journal = Journal(home / "journal")
    journal.add_job("a" * 32, {"prompt": "a real job"}, {"init": np.zeros((4, 4, 3), np.uint8)}, title="real")
    victim = home / "victim.json"
    victim.write_text('{"uid": "x", "attempts": 0, "request": {}}')
    outside_png = home / "outside.png"
    outside_png.write_bytes(encode_png(np.full((4, 4, 3), 9, np.uint8)))
    (home / "journal" / "jobs" / "evil.json").write_text(json.dumps(
        {"uid": "../../victim", "title": "evil", "seq": 0, "request": {}, "images": {}}))
    (home / "journal" / "jobs" / "sneaky.json").write_text(json.dumps(
        {"uid": "sneaky", "title": "sneaky", "seq": 1, "request": {}, "images": {"init": "../../outside"}}))

    jobs = journal.pending()
    assert sorted(j.uid for j in jobs) == ["a" * 32, "sneaky"]
    assert [j.images for j in jobs if j.uid == "sneaky"] == [{}]  # the blob that points outside is not read
    assert (home / "journal" / "jobs" / "evil.bad").exists()  # set aside, like any damaged entry
    for uid in ("../../victim", str(victim.with_suffix(""))):
        journal.started(uid)
        journal.finish(uid)
        journal.reorder([uid])
    assert victim.read_text() == '{"uid": "x", "attempts": 0, "request": {}}' and outside_png.exists()
    with pytest.raises(ValueError):
        journal.add_job("../../victim", {}, {})
    with pytest.raises(ValueError):
        journal.get_blob("../../outside")
    journal.finish("a" * 32)
    assert [j.uid for j in journal.pending()] == ["sneaky"]
