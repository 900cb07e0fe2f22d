"""plugin.toml parsing: a good manifest, and every way one can be wrong (each with a message that
names the plugin and says what to change). Qt-free, no plugin code runs."""
from __future__ import annotations

import pytest

from studio.plugins.manifest import API_VERSIONS, PluginError, parse, read_toml

GOOD = """
id = "demo"
name = "Demo"
version = "1.2"
api = "1"
description = "A demo."
mystery = 3

[[model]]
id = "demo-net"
task = "cnn"
library = "timm"
source = "hub:org/demo-net"

[[preprocessor]]
id = "edges"
label = "Demo edges"
run = "edges:run"

[[engine]]
request = "work:DemoRequest"
run = "work:run"
lane = "cpu"

[[panel]]
id = "demo_panel"
title = "Demo"
widget = "panel:DemoPanel"
area = "left"

[[command]]
id = "hello"
title = "Say Hello"
run = "commands:hello"
shortcut = "Ctrl+Alt+H"
"""


def parsed(text: str):
    return parse(read_toml(text, "test"), "test")


def test_a_good_manifest_lists_every_contribution():
    m = parsed(GOOD)
    assert (m.id, m.name, m.version, m.api) == ("demo", "Demo", "1.2", "1")
    assert [c.id for c in m.models] == ["demo-net"] and m.models[0].origin == "plugin"
    assert m.preprocessors[0].run == "edges:run" and m.engines[0].lane == "cpu"
    assert m.panels[0].area == "left" and m.commands[0].shortcut == "Ctrl+Alt+H"
    assert m.warnings == ("unknown key “mystery” ignored",)
    assert m.summary() == "1 model card, 1 preprocessor, 1 engine, 1 panel, 1 command"


def test_defaults_lane_gpu_area_right():
    m = parsed('id = "x"\nname = "X"\nversion = "1"\napi = 1\n'
               '[[engine]]\nrequest = "a:B"\nrun = "a:run"\n[[panel]]\nid = "p"\ntitle = "P"\nwidget = "a:W"\n')
    assert m.api == "1" and m.engines[0].lane == "gpu" and m.panels[0].area == "right"


def test_bad_toml_says_where():
    with pytest.raises(PluginError, match=r"not valid TOML \(.*line 2"):
        read_toml('id = "x"\nname = \n', "The plugin in /p/x")


@pytest.mark.parametrize("drop", ["id", "name", "version", "api"])
def test_missing_required_fields(drop):
    lines = [line for line in GOOD.splitlines() if not line.startswith(f"{drop} =")]
    with pytest.raises(PluginError, match=f"lacks {drop}; every plugin needs id, name, version and api"):
        parsed("\n".join(lines[:6]))


def test_wrong_api_version_is_refused_clearly():
    with pytest.raises(PluginError) as info:
        parsed(GOOD.replace('api = "1"', 'api = "2"'))
    msg = info.value.user_message
    assert "Plugin “demo” is written for plugin API version 2" in msg
    assert f"supports version {API_VERSIONS[0]}" in msg


@pytest.mark.parametrize("old, new, words", [
    ('id = "demo"', 'id = "Demo Plugin"', "must be lower-case"),
    ('run = "edges:run"', 'run = "edges.run"', "must name code as \"module:attribute\""),
    ('area = "left"', 'area = "top"', "area “top” must be one of right, left or bottom"),
    ('lane = "cpu"', 'lane = "tpu"', "lane “tpu” must be one of gpu or cpu"),
    ('label = "Demo edges"', 'label = ""', "“label” must be a non-empty string"),
    ('id = "hello"', 'id = "demo_panel"', "two panel or commands with the id “demo_panel”"),
    ('source = "hub:org/demo-net"', 'source = "ftp:demo"', "model card 1 — Model card 'demo-net' has source"),
    ('widget = "panel:DemoPanel"', '', "a table lacks the key “widget”"),
])
def test_malformed_contributions(old, new, words):
    assert old in GOOD
    with pytest.raises(PluginError) as info:
        parsed(GOOD.replace(old, new, 1))
    assert words in info.value.user_message


def test_a_manifest_must_be_a_table():
    with pytest.raises(PluginError, match="must be a table"):
        parse(["id"], "entry point x")
    with pytest.raises(PluginError, match=r"must be a list of tables \(\[\[command\]\]"):
        parsed(GOOD.split("[[model]]")[0] + 'command = "hello"\n')
