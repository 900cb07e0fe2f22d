"""The inspect workspace's Features tab on the real window: after one run the layer tree (with
output shapes), the most active channels and the histogram arrive; a click on a channel puts it
over the image (through the preprocessing geometry) from the cache; a click on the image traces a
receptive field whose box is drawn on the canvas; a ViT gets a channel grid of its patch tokens."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from test_inspect_common import (choose_model, click_image, count_jobs, open_array, overlay_bytes, panel,
                                 show_tab, wait_for, write_home)


@pytest.fixture
def studio_home(tmp_path):
    return write_home(tmp_path / "studio-home")


@pytest.fixture
def photo():
    rng = np.random.default_rng(1)
    px = rng.integers(60, 120, (48, 64, 3)).astype(np.uint8)
    px[10:30, 20:44] = (240, 220, 40)
    return px


def test_cnn_channels_tree_statistics_and_receptive_field(studio, tmp_path, photo):
    st = studio.session.inspect
    open_array(studio, tmp_path, photo)
    choose_model(studio, "resnet18-untrained")
    result = studio.feature_maps(layer=None)
    assert result is not None and result.layer == "layer1"
    wait_for(studio, lambda: st.tree is not None and st.stats is not None, 30, "follow-ups")
    studio.wait_idle()

    tree = studio.widget("inspect.layer_tree")
    top = [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())]
    assert top[:4] == ["conv1", "bn1", "relu", "maxpool"] and "fc" in top
    layer1 = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                  if tree.topLevelItem(i).text(0) == "layer1")
    assert layer1.text(2) == "64 × 56×56" and layer1.childCount() == 2
    assert studio.widget("inspect.top_channels").count() == 8
    assert st.stats.layer == "layer1" and studio.widget("inspect.histogram")._counts.sum() > 0

    # Without a chosen channel, the export is the whole grid.
    raw = panel(studio).features.export.export("npy", tmp_path / "grid.npy")
    assert np.load(raw).shape == (64, 56, 56)

    jobs = count_jobs(studio)
    grid = studio.widget("inspect.feature_view")
    studio.qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=grid.tile_centre(9).toPoint())
    assert st.channel == 9 and studio.widget("inspect.channel").value() == 9
    assert studio.canvas.has_overlay()
    first = overlay_bytes(studio)
    studio.widget("inspect.channel").setValue(10)
    assert st.channel == 10 and overlay_bytes(studio) != first
    top_list = studio.widget("inspect.top_channels")
    item = top_list.item(0)
    top_list.itemClicked.emit(item)
    assert st.channel == int(st.stats.top_channels[0])
    assert "Channel" in studio.widget("inspect.channel_info").text()
    studio.wait_idle()
    assert jobs == []  # channels came from the cache

    # Receptive field: turn it on, click the image, see the box.
    sections = studio.widget("inspect.feature_sections")
    sections.setCurrentIndex(3)
    studio.widget("inspect.rf_mode").setChecked(True)
    click_image(studio, 32, 24)
    wait_for(studio, lambda: st.rf is not None, 30, "receptive field")
    rf = st.rf
    assert rf.layer == "layer1" and rf.layer_grid == (56, 56)
    x0, y0, x1, y1 = rf.box
    assert 0 < x1 - x0 < 224 and 0 < y1 - y0 < 224
    boxes = panel(studio).marks._boxes
    assert len(boxes) == 1 and boxes[0][2].startswith("receptive field of layer1")
    assert "input pixels" in studio.widget("inspect.rf_info").text()

    # A deeper layer from the tree: a new run, and its larger receptive field.
    layer3 = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                  if tree.topLevelItem(i).text(0) == "layer3")
    tree.itemClicked.emit(layer3, 0)
    wait_for(studio, lambda: not st.busy and st.feature_maps is not None and st.feature_maps.layer == "layer3",
             30, "layer3")
    assert studio.widget("inspect.layer").currentText() == "layer3"
    assert st.rf is None  # the old box belonged to layer1
    studio.wait_idle()
    click_image(studio, 32, 24)
    wait_for(studio, lambda: st.rf is not None and st.rf.layer == "layer3", 30, "layer3 field")
    assert (st.rf.box[2] - st.rf.box[0]) > x1 - x0


def test_vit_channel_grid_comes_from_its_patch_tokens(studio, tmp_path, photo):
    st = studio.session.inspect
    open_array(studio, tmp_path, photo)
    choose_model(studio, "tiny-timm-vit")
    show_tab(studio, "features")
    result = studio.feature_maps()
    assert result is not None, studio.last_error()
    assert result.maps.shape == (32, 4, 4) and result.channels_total == 32
    assert list(st.grid_channels) == list(range(32))  # all channels, in order
    assert result.layer == "blocks.1.norm1"
    info = studio.widget("inspect.feature_info").text()
    assert info.startswith("blocks.1.norm1: 32 channels, 4×4 each, input 32×32")
    wait_for(studio, lambda: st.tree is not None and len(st.layers) > 0, 30, "layer list")
    assert "blocks.0" in st.layers and "patch_embed.proj" in st.layers and "head" not in st.layers
    layers = studio.widget("inspect.layer")
    assert layers.isEnabled() and layers.findText("blocks.0") >= 0
    studio.wait_idle()
    deeper = studio.feature_maps(layer="blocks.0")
    assert deeper.layer == "blocks.0" and deeper.maps.shape == (32, 4, 4)
    grid = studio.widget("inspect.feature_view")
    studio.qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=grid.tile_centre(3).toPoint())
    assert st.channel == 3 and studio.canvas.has_overlay()
    values, geometry = st.channel_map()
    assert values.shape == (4, 4) and geometry.input_size == (32, 32) and geometry.resized_size == (46, 35)
