"""Qt-free observable state: emits on change only, per instance; workspace and patch arithmetic."""
from __future__ import annotations

import numpy as np
import pytest

from studio.state.app_state import WORKSPACES, AppState
from studio.state.inspect_state import PATCH_SIZES, InspectState
from studio.state.models_state import ModelsState
from studio.state.observable import Observable


class Thing(Observable):
    _fields = ("a", "b")

    def __init__(self) -> None:
        self.a = 1
        self.b = None
        self.plain = 0


def record(obj):
    seen = []
    obj.changed.connect(lambda name, value: seen.append((name, value)))
    return seen


def test_emits_on_change_only():
    t = Thing()
    seen = record(t)
    t.a = 1
    t.a = 2
    t.a = 2
    t.b = "x"
    t.plain = 5  # not a field
    assert seen == [("a", 2), ("b", "x")]


def test_update_sets_several_fields_in_order():
    t = Thing()
    seen = record(t)
    t.update(a=3, b=4)
    t.update(a=3)
    assert seen == [("a", 3), ("b", 4)]


def test_arrays_and_other_ambiguous_values_count_as_changed():
    t = Thing()
    seen = record(t)
    arr = np.zeros(3)
    t.b = arr
    t.b = arr  # the same object: no change
    t.b = np.zeros(3)  # equal values but ambiguous truth: treated as a change
    assert len(seen) == 2


def test_signals_are_per_instance():
    one, two = AppState(), AppState()
    seen = record(one)
    two.message = "hello"
    assert seen == []
    one.message = "hi"
    assert seen == [("message", "hi")]


def test_workspaces_and_errors():
    app = AppState()
    seen = record(app)
    for ws in WORKSPACES:
        app.set_workspace(ws)
    with pytest.raises(ValueError, match="garden"):
        app.set_workspace("garden")
    assert app.workspace == "tape"
    app.report_error("Bad file.", "trace")
    app.report_error("Bad file.", "trace")  # the same message again is shown again
    assert [v for n, v in seen if n == "error"] == ["Bad file.", None, "Bad file."]
    assert app.error_detail == "trace"
    app.clear_error()
    assert app.error is None and app.error_detail == ""


def test_error_detail_is_set_before_listeners_hear_the_error():
    app = AppState()
    details = []
    app.changed.connect(lambda n, v: details.append(app.error_detail) if n == "error" and v else None)
    app.report_error("Oops.", "the detail")
    assert details == ["the detail"]


def test_patch_size_must_be_a_known_size():
    st = InspectState()
    for p in PATCH_SIZES:
        st.set_patch_size(p)
        assert st.patch_size == p
    with pytest.raises(ValueError):
        st.set_patch_size(10)


@pytest.mark.parametrize("p, x, y, w, h, expected", [
    (16, 0, 0, 64, 48, (0, 0, 0)),
    (16, 17, 0, 64, 48, (0, 1, 1)),
    (16, 63, 47, 64, 48, (2, 3, 11)),
    (8, 20, 5, 64, 48, (0, 2, 2)),
    (14, 15, 15, 30, 30, (1, 1, 4)),      # 30 px -> 3 patches per row (last one partial)
    (32, 99, 40, 100, 50, (1, 3, 7)),     # 100 px -> 4 columns
    (16, 64, 0, 64, 48, None),
    (16, -1, 0, 64, 48, None),
    (16, 0, 48, 64, 48, None),
])
def test_patch_at(p, x, y, w, h, expected):
    st = InspectState()
    st.set_patch_size(p)
    assert st.patch_at(x, y, w, h) == expected


def test_models_state_defaults():
    m = ModelsState()
    seen = record(m)
    m.update(device="cpu", memory_mb=12.5)
    assert seen == [("device", "cpu"), ("memory_mb", 12.5)]
