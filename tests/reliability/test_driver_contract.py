"""The driver's documented contract (issue 11): each of the ten members testers rely on exists, is in
docs/testing.md's driver table, and works through the widgets a user touches, not by calling engines.
The five-line docs example runs in a fresh pytest in tests/test_testing_plugin.py; a whole session
through these methods is tests/reliability/test_offline_session.py."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from studio.testing import StudioDriver

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text(encoding="utf-8")
MEMBERS = ("open_image", "switch_to", "label", "generate", "ask", "render_clip", "wait_idle", "last_error",
           "screenshot", "window")
# What each action touches: the widgets (objectNames) it types into or clicks.
THROUGH = {"switch_to": ["mode."], "label": ["label.labels", "label.run"],
           "generate": ["paint.prompt", "paint.generate"], "ask": ["chat.input", "chat.send"],
           "render_clip": ["tape.prompt", "tape.frames", "tape.generate"]}


def driver_table() -> dict[str, str]:
    section = DOCS.split("## The driver", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)[(`].*$", section, re.M)}


@pytest.mark.parametrize("name", MEMBERS)
def test_each_member_exists_and_is_documented(name):
    table = driver_table()
    assert name in table, f"docs/testing.md's driver table has no row for {name}"
    if name == "window":
        assert "QMainWindow" in table[name] and "window" in inspect.getsource(StudioDriver.__init__)
        return
    method = getattr(StudioDriver, name)
    assert callable(method) and method.__doc__, name
    for param in inspect.signature(method).parameters:
        if param not in ("self", "params", "via") and not param.startswith("_"):
            assert param in table[name], f"{name}({param}) is not in its docs row"


@pytest.mark.parametrize("name", sorted(THROUGH))
def test_actions_go_through_widgets_not_engines(name):
    source = inspect.getsource(getattr(StudioDriver, name))
    for forbidden in ("runtime.submit", "studio.engines", "engines.", ".run("):
        assert forbidden not in source, f"{name} calls {forbidden!r} instead of using the widgets"
    assert "mouseClick" in source or "self.click(" in source or "_switch(" in source, name
    for object_name in THROUGH[name]:
        assert object_name in source, f"{name} does not touch {object_name}"
        if not object_name.endswith("."):
            assert f"`{object_name}`" in DOCS, f"{object_name} is not in docs/testing.md"


def test_open_image_uses_the_window_open_path_and_waits_on_the_canvas():
    source = inspect.getsource(StudioDriver.open_image)
    assert "self.window.open_path(" in source and "_wait_for_image" in source


def test_the_docs_example_is_five_lines_of_documented_calls():
    example = re.findall(r"```python\n(.*?)```", DOCS, re.S)[0]
    body = [ln.strip() for ln in example.split("def test_", 1)[1].splitlines()[1:] if ln.strip()]
    assert len(body) <= 5
    called = set(re.findall(r"studio\.(\w+)\(", "\n".join(body)))
    assert called and called <= set(driver_table()), called
