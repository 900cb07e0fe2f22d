"""Models > Manager, used as a new user would: see the catalog, load and unload, add a folder,
try a download offline, give consent; nothing blocks and nothing crashes."""
from __future__ import annotations

import pytest

from studio.catalog.cards import read_cards
from tests.helpers import tiny_models


def open_manager(studio):
    studio.trigger("action.models_manager")
    dlg = studio.widget("models.dialog")
    studio._wait(dlg.isVisible, 5, "the model manager opening")
    st = studio.session.models
    studio._wait(lambda: st.snapshot is not None and len(st.disk) == len(studio.session.catalog), 60,
                 "the model manager reading disk and memory")
    return dlg


def cell(studio, model_id: str, column: str) -> str:
    from studio.ui.dialogs.models_dialog import COLUMNS

    dlg = studio.widget("models.dialog")
    return studio.widget("models.table").item(dlg._rows.index(model_id), COLUMNS.index(column)).text()


def test_panel_lists_the_catalog_and_loads_and_unloads(studio):
    dlg = open_manager(studio)
    table = studio.widget("models.table")
    assert table.rowCount() == len(studio.session.catalog)
    assert cell(studio, "resnet18-untrained", "Status") == "builtin"
    assert cell(studio, "sd15", "Status") == "not downloaded"
    assert cell(studio, "starter-cnn", "Source") == "bundled:starter/cnn"
    assert "budget" in studio.widget("models.ram_bar").format()
    dlg.select("resnet18-untrained")
    assert not studio.widget("models.download").isEnabled()
    studio.click("models.load")
    studio._wait(lambda: "resnet18-untrained" in studio.session.models.loaded, 60, "loading")
    studio._wait(lambda: "MB on cpu" in cell(studio, "resnet18-untrained", "Memory"), 10, "memory shown")
    assert cell(studio, "resnet18-untrained", "Status").startswith("loaded")
    studio.click("models.unload")
    studio._wait(lambda: not studio.session.models.loaded, 10, "unloading")
    studio.widget("models.filter").setText("ControlNet 1.1")
    assert table.rowCount() == 5
    studio.click("models.close")
    studio.wait_idle()
    assert studio.last_error() is None


def test_download_while_offline_explains_instead_of_failing(studio):
    dlg = open_manager(studio)
    dlg.select("resnet18")
    studio.click("models.download")
    studio._wait(lambda: studio.session.models.error is not None, 10, "the download answering")
    assert "HF_HUB_OFFLINE" in studio.widget("models.status").text()
    studio.wait_idle()
    assert studio.widget("models.download").isEnabled(), "the user may try again"


def test_add_a_folder_then_load_and_remove_it(studio, tmp_path):
    folder = tiny_models.save_tiny_timm(tmp_path / "my-cnn")
    dlg = open_manager(studio)
    studio.click("models.add")
    add = studio.widget("add_model.dialog")
    studio._wait(add.isVisible, 5, "the add dialog opening")
    studio.widget("add_model.path").setText(str(folder))
    studio.widget("add_model.path").editingFinished.emit()
    assert studio.widget("add_model.library").currentText() == "timm"
    assert studio.widget("add_model.task").currentText() == "cnn"
    assert studio.widget("add_model.id").text() == "my-cnn"
    studio.click("add_model.ok")
    studio._wait(lambda: "my-cnn" in studio.session.catalog, 5, "the card being added")
    user_file = studio.session.paths.home / "models.toml"
    assert [c.id for c in read_cards(user_file)] == ["my-cnn"]
    assert dlg.selected_id() == "my-cnn"
    studio._wait(lambda: studio.session.models.disk.get("my-cnn") is not None, 10, "disk status")
    studio.click("models.load")
    studio._wait(lambda: "my-cnn" in studio.session.models.loaded, 60, "loading the new model")
    studio.click("models.remove")
    studio.click("models.remove_confirm.yes")
    studio._wait(lambda: "my-cnn" not in studio.session.catalog, 10, "removing the card")
    assert read_cards(user_file) == [] and folder.exists()
    studio.wait_idle()
    assert studio.last_error() is None


@pytest.mark.parametrize("answer", ["yes", "no"])
def test_allowing_pickle_asks_first(studio, answer):
    dlg = open_manager(studio)
    dlg.select("annotator-openpose")
    assert not studio.widget("models.allow_pickle").isChecked()
    studio.click("models.allow_pickle")
    studio.click(f"models.consent_warning.{answer}")
    allowed = studio.session.settings.get("models.allow_pickle")
    assert allowed == (["annotator-openpose"] if answer == "yes" else [])
    assert studio.widget("models.allow_pickle").isChecked() == (answer == "yes")
    studio.wait_idle()
