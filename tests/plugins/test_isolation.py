"""The plugin manager: discovery, enable/disable, lazy imports, and every way a plugin can fail
(each switches only that plugin off, with a message naming it). Qt-free."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from studio.core.errors import BadInputError, StudioError
from studio.plugins.manifest import PluginError

EDGES = """
import numpy as np

def run(image):
    return 255 - image
"""


def names(mgr):
    return {r.id: r.state for r in mgr.records()}


def test_only_enabled_plugins_load_and_their_code_waits_until_used(write_plugin, make_manager, tmp_path):
    write_plugin("lazy", '[[preprocessor]]\nid = "inv"\nlabel = "Invert"\nrun = "edges:run"\n'
                 '[[model]]\nid = "lazy-net"\ntask = "cnn"\nlibrary = "timm"\nsource = "hub:a/b"\n',
                 {"edges.py": EDGES})
    write_plugin("off", 'register = "hook:register"\n[[model]]\nid = "off-net"\ntask = "cnn"\n'
                 'library = "timm"\nsource = "hub:a/c"\n',
                 {"hook.py": f"open({str(tmp_path / 'ran')!r}, 'w').close()\ndef register(r):\n    pass\n"})
    mgr = make_manager(disabled=["off"])
    assert names(mgr) == {"lazy": "loaded", "off": "disabled"}
    assert [c.id for c in mgr.model_cards()] == ["lazy-net"]
    assert not (tmp_path / "ran").exists()  # a disabled plugin's code never runs
    assert "studio_plugins.lazy.edges" not in sys.modules and not mgr.get("lazy").imported
    [(pre_id, label, fn)] = mgr.preprocessors()
    assert (pre_id, label) == ("lazy.inv", "Invert")
    assert "studio_plugins.lazy.edges" not in sys.modules  # listed, still not imported
    out = fn(np.zeros((4, 5, 3), np.uint8))
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8 and out.max() == 255
    assert "studio_plugins.lazy.edges" in sys.modules and mgr.get("lazy").imported
    assert mgr.get("lazy").status_text() == "Enabled, in use"


def test_bad_toml_missing_fields_and_wrong_api_are_switched_off_and_reported(write_plugin, make_manager):
    write_plugin("good", "")
    write_plugin("broken", toml='id = "broken"\nname = "Broken\n')
    write_plugin("nameless", toml='id = "nameless"\napi = "1"\n')
    write_plugin("future", toml='id = "future"\nname = "F"\nversion = "9"\napi = "7"\n')
    mgr = make_manager()
    assert names(mgr) == {"broken": "failed", "future": "failed", "good": "loaded", "nameless": "failed"}
    assert "not valid TOML" in mgr.get("broken").error
    assert "lacks name and version" in mgr.get("nameless").error
    assert "API version 7" in mgr.get("future").error
    message, detail = mgr.startup_report()
    assert message.startswith("3 plugins could not be loaded and are switched off")
    assert "Plugins > Manage Plugins…" in message and "broken" in detail and "future" in detail


def test_a_single_failure_reads_as_one_sentence(write_plugin, make_manager):
    write_plugin("future", toml='id = "future"\nname = "F"\nversion = "9"\napi = "2"\n')
    message, _ = make_manager().startup_report()
    assert message.startswith("Plugin “future” is written for plugin API version 2")
    assert message.endswith("The plugin is switched off; Plugins > Manage Plugins… lists it.")


def test_duplicate_plugin_ids_keep_the_first(write_plugin, make_manager, tmp_path):
    write_plugin("twin", "", folder="a_twin")
    write_plugin("twin", "", folder="b_twin")
    mgr = make_manager()
    states = {r.location.split("/")[-1]: (r.state, r.error) for r in mgr.records()}
    assert states["a_twin"] == ("loaded", "")
    assert states["b_twin"][0] == "failed"
    assert "has the id “twin”, which the plugin in" in states["b_twin"][1]
    assert "give one of them another id" in states["b_twin"][1]


def test_import_error_switches_the_plugin_off_with_a_named_message(write_plugin, make_manager):
    write_plugin("noimp", '[[preprocessor]]\nid = "x"\nlabel = "X"\nrun = "edges:run"\n',
                 {"edges.py": "import module_that_is_not_installed\n"})
    seen = []
    mgr = make_manager(post=lambda fn: fn())
    mgr.subscribe(seen.append)
    [(_, _, fn)] = mgr.preprocessors()
    with pytest.raises(PluginError) as info:
        fn(np.zeros((2, 2, 3), np.uint8))
    msg = info.value.user_message
    assert msg.startswith("The plugin “Noimp” failed to load “edges:run” for its preprocessor “X”")
    assert "switched off until the next start" in msg and "ModuleNotFoundError" in msg
    assert "Traceback" in info.value.detail
    assert [r.id for r in seen] == ["noimp"] and mgr.get("noimp").state == "failed"
    with pytest.raises(PluginError, match="switched off after an error"):
        fn(np.zeros((2, 2, 3), np.uint8))
    assert len(seen) == 1  # reported once


def test_run_time_errors_bad_input_and_bad_output(write_plugin, make_manager):
    write_plugin("flaky", '[[preprocessor]]\nid = "boom"\nlabel = "Boom"\nrun = "edges:boom"\n'
                 '[[preprocessor]]\nid = "picky"\nlabel = "Picky"\nrun = "edges:picky"\n',
                 {"edges.py": "from studio.plugins import api\n"
                              "def boom(image):\n    return 1 / 0\n"
                              "def picky(image):\n    raise api.BadInputError('Too small for me.')\n"})
    write_plugin("sloppy", '[[preprocessor]]\nid = "s"\nlabel = "S"\nrun = "edges:s"\n',
                 {"edges.py": "def s(image):\n    return 'lines'\n"})
    mgr = make_manager()
    fns = {pid: fn for pid, _, fn in mgr.preprocessors()}
    img = np.zeros((3, 3, 3), np.uint8)
    with pytest.raises(BadInputError, match="Too small for me"):
        fns["flaky.picky"](img)  # the plugin talking to the user: it stays on
    assert mgr.get("flaky").state == "loaded"
    with pytest.raises(PluginError, match="failed in its preprocessor “Boom”.*ZeroDivisionError"):
        fns["flaky.boom"](img)
    with pytest.raises(PluginError, match="switched off"):
        fns["flaky.picky"](img)  # the whole plugin is off now
    with pytest.raises(PluginError, match="must return a numpy array"):
        fns["sloppy.s"](img)
    assert mgr.get("sloppy").state == "failed"


HOOK = """
import numpy as np
from studio.plugins import api

def register(studio):
    studio.model(id="hooked-net", task="vit", library="timm", source="hub:org/hooked")

    @studio.preprocessor("flip", "Flip")
    def flip(image):
        return image[:, ::-1]

    @studio.command("hi", "Hi", shortcut="Ctrl+Alt+J")
    def hi(host):
        host.message("hi")

def broken(studio):
    studio.preprocessor("never", "Never", lambda image: image)
    raise RuntimeError("register went wrong")
"""


def test_register_hooks_add_contributions_or_switch_the_plugin_off(write_plugin, make_manager):
    write_plugin("hooked", 'register = "hook:register"\n', {"hook.py": HOOK})
    write_plugin("badhook", 'register = "hook:broken"\n[[model]]\nid = "bad-net"\ntask = "cnn"\n'
                 'library = "timm"\nsource = "hub:a/d"\n', {"hook.py": HOOK})
    write_plugin("badcard", 'register = "hook:register"\n', {"hook.py": HOOK.replace('"vit"', '"sound"')})
    mgr = make_manager()
    assert names(mgr) == {"badcard": "failed", "badhook": "failed", "hooked": "loaded"}
    assert "failed in its register hook and is switched off" in mgr.get("badhook").error
    assert "RuntimeError: register went wrong" in mgr.get("badhook").error
    assert "unknown task 'sound'" in mgr.get("badcard").error
    assert [c.id for c in mgr.model_cards()] == ["hooked-net"]  # nothing of the failed ones
    assert [p for p, _, _ in mgr.preprocessors()] == ["hooked.flip"]
    [(rec, cmd)] = mgr.commands()
    assert (rec.id, cmd.title, cmd.shortcut) == ("hooked", "Hi", "Ctrl+Alt+J")
    img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert np.array_equal(mgr.preprocessors()[0][2](img), img[:, ::-1])


def test_a_card_id_given_by_two_plugins_keeps_the_first(write_plugin, make_manager):
    card = '[[model]]\nid = "same"\ntask = "cnn"\nlibrary = "timm"\nsource = "hub:a/b"\n'
    write_plugin("first", card)
    write_plugin("second", card)
    mgr = make_manager()
    assert [c.id for c in mgr.model_cards()] == ["same"]
    assert "plugin “first” adds one with that id" in mgr.get("second").warnings[0]


def test_failures_on_a_worker_thread_reach_listeners_through_post(write_plugin, make_manager):
    import threading

    write_plugin("worker", '[[preprocessor]]\nid = "w"\nlabel = "W"\nrun = "edges:w"\n',
                 {"edges.py": "def w(image):\n    raise KeyError('k')\n"})
    posted, seen = [], []
    mgr = make_manager(post=posted.append)
    mgr.subscribe(seen.append)
    fn = mgr.preprocessors()[0][2]
    errors = []

    def work():
        try:
            fn(np.zeros((2, 2, 3), np.uint8))
        except StudioError as exc:
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors and not seen  # nothing ran on the worker
    for cb in posted:
        cb()
    assert [r.id for r in seen] == ["worker"]
