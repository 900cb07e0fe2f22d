"""Architecture guards: who may import Qt and torch, what `import studio` and the shown window
load, module docstrings and sizes. Static checks scan studio/ with `ast`; dynamic ones run a
fresh interpreter so nothing this test process imported earlier can hide a regression."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from tests.helpers.xvfb import skip_if_xcb_cannot_start

ROOT = Path(__file__).resolve().parents[1]
STUDIO = ROOT / "studio"
TESTS = ROOT / "tests"

QT = {"PySide6", "shiboken6"}
HEAVY = {"torch", "torchvision", "diffusers", "transformers", "open_clip", "controlnet_aux",
         "cv2", "timm", "huggingface_hub"}
QT_AT_MODULE_LEVEL = ("studio/ui/",)
QT_IN_FUNCTIONS = ("studio/ui/", "studio/app.py", "studio/testing.py")
HEAVY_ANYWHERE = ("studio/starter/",)
HEAVY_IN_FUNCTIONS = ("studio/engines/", "studio/starter/")
QT_FREE_PACKAGES = ("core", "state", "runtime", "catalog", "media")
QT_FREE_TEST_DIRS = ("core", "runtime", "state", "media")
WARN_LINES, MAX_LINES = 600, 800


# -- the scanner --------------------------------------------------------------------------------
def imports(source: str) -> list[tuple[str, int, bool]]:
    """(top-level package, line, at_module_level) for every absolute import in `source`,
    including importlib.import_module("x") / __import__("x") with a literal name. Imports under
    `if TYPE_CHECKING:` are skipped; class bodies count as module level (they run at import)."""
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit_one(sub, in_function)
                continue
            visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name.split(".")[0], node.lineno, not in_function))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append((node.module.split(".")[0], node.lineno, not in_function))
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            found.append((node.args[0].value.split(".")[0], node.lineno, not in_function))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        visit(node, inner)

    visit(ast.parse(source), False)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _dynamic_import(call: ast.Call) -> bool:
    f = call.func
    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
    return (name in ("import_module", "__import__") and bool(call.args)
            and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str))


def violations(rel: str, source: str) -> list[str]:
    """Import-rule violations of one module; `rel` is its path from the repository root."""
    out = []
    for top, line, module_level in imports(source):
        where = f"{rel}:{line}: {top}"
        if top in QT:
            if module_level and not rel.startswith(QT_AT_MODULE_LEVEL):
                out.append(f"{where} imported at module level outside studio/ui")
            elif not module_level and not rel.startswith(QT_IN_FUNCTIONS):
                out.append(f"{where} imported outside studio/ui, app.py and testing.py")
        elif top in HEAVY:
            if rel.startswith(HEAVY_ANYWHERE):
                continue
            if not rel.startswith(HEAVY_IN_FUNCTIONS):
                out.append(f"{where} imported outside studio/engines and studio/starter")
            elif module_level:
                out.append(f"{where} imported at module level (engines import it inside functions)")
    return out


def studio_modules() -> list[Path]:
    return sorted(p for p in STUDIO.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


# -- the scanner can fail ---------------------------------------------------------------------------
@pytest.mark.parametrize("rel, source, bad", [
    ("studio/core/x.py", "import torch", True),
    ("studio/core/x.py", "def f():\n    import torch.nn as nn", True),
    ("studio/state/x.py", "from PySide6.QtCore import QObject", True),
    ("studio/runtime/x.py", "def f():\n    from PySide6 import QtCore", True),
    ("studio/media/x.py", "import importlib\nimportlib.import_module('cv2')", True),
    ("studio/catalog/x.py", "def f():\n    return __import__('huggingface_hub')", True),
    ("studio/engines/x.py", "import torch", True),
    ("studio/engines/x.py", "try:\n    import diffusers\nexcept ImportError:\n    pass", True),
    ("studio/engines/x.py", "class A:\n    import open_clip", True),
    ("studio/engines/x.py", "def f():\n    import torch\n    import diffusers", False),
    ("studio/engines/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch", False),
    ("studio/starter/x.py", "import torch", False),
    ("studio/ui/x.py", "from PySide6.QtWidgets import QWidget", False),
    ("studio/ui/x.py", "import torch", True),
    ("studio/app.py", "from PySide6.QtWidgets import QApplication", True),
    ("studio/app.py", "def main():\n    from PySide6.QtWidgets import QApplication", False),
    ("studio/testing.py", "def f():\n    from PySide6.QtCore import Qt", False),
    ("studio/core/x.py", "from . import torch\nfrom .cv2 import x\nimport studio.core", False),
])
def test_the_import_scanner_flags_what_it_should(rel, source, bad):
    assert bool(violations(rel, textwrap.dedent(source))) is bad


# -- static rules on studio/ ---------------------------------------------------------------------
def test_qt_and_heavy_libraries_are_imported_only_where_allowed():
    found = []
    for path in studio_modules():
        found += violations(_rel(path), path.read_text(encoding="utf-8"))
    assert not found, "import rules broken:\n" + "\n".join(found)


def test_every_module_starts_with_a_docstring():
    missing = []
    for path in studio_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree)
        if not doc or not doc.strip():
            missing.append(_rel(path))
    assert not missing, "modules without a docstring saying what they own: " + ", ".join(missing)


def test_modules_stay_small_enough_to_read():
    sizes = {_rel(p): len(p.read_text(encoding="utf-8").splitlines()) for p in studio_modules()}
    long = {k: v for k, v in sizes.items() if v > WARN_LINES}
    for rel, n in sorted(long.items()):
        warnings.warn(f"{rel} has {n} lines (aim under {WARN_LINES})", UserWarning, stacklevel=1)
    too_long = {k: v for k, v in long.items() if v > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def test_qt_free_tests_do_not_use_qt():
    bad = []
    for d in QT_FREE_TEST_DIRS:
        for path in sorted((TESTS / d).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for top, line, _ in imports(path.read_text(encoding="utf-8")):
                if top in QT or top == "pytestqt":
                    bad.append(f"{_rel(path)}:{line} imports {top}")
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names = {a.arg for a in node.args.args + node.args.kwonlyargs}
                    for qt_fixture in names & {"qtbot", "qapp", "studio", "studio_factory"}:
                        bad.append(f"{_rel(path)}:{node.lineno} {node.name} uses {qt_fixture}")
    assert not bad, "\n".join(bad)


# -- dynamic rules, in a fresh interpreter --------------------------------------------------------
def _run(code: str, *args: str, timeout: float = 120) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON report as its last line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_IMPORT_ALL = """
import importlib, json, pkgutil, sys
HEAVY = %r
QT = %r

def loaded(names):
    return sorted(n for n in names if n in sys.modules)

def walk(pkg):
    mod = importlib.import_module(pkg)
    yield pkg
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        yield info.name

report = {"heavy": {}, "qt": {}, "modules": 0}
import studio
report["after_import_studio"] = loaded(HEAVY | QT)
for phase, packages in (("qt_free", %r), ("rest", ("ui", "engines"))):
    for pkg in packages:
        for name in walk("studio." + pkg):
            importlib.import_module(name)
            report["modules"] += 1
            for lib in loaded(HEAVY):
                report["heavy"].setdefault(lib, name)
            if phase == "qt_free":
                for lib in loaded(QT):
                    report["qt"].setdefault(lib, name)
for name in ("studio.app", "studio.testing"):
    importlib.import_module(name)
    for lib in loaded(HEAVY):
        report["heavy"].setdefault(lib, name)
print(json.dumps(report))
"""


def test_importing_studio_and_its_modules_loads_neither_torch_nor_qt_where_it_should_not():
    report = _run(_IMPORT_ALL % (HEAVY, QT, tuple(f"{p}" for p in QT_FREE_PACKAGES)))
    assert report["after_import_studio"] == []
    assert report["modules"] > 20
    assert report["heavy"] == {}, f"heavy library imported by (library: first module) {report['heavy']}"
    assert report["qt"] == {}, f"Qt imported by a Qt-free package: {report['qt']}"


_WINDOW = """
import json, os, sys, threading, time
from pathlib import Path

HEAVY = %r
first_import = {}

class Spy:
    # Records the thread that first imports each heavy library.
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in HEAVY and top not in first_import:
            first_import[top] = threading.current_thread().name
        return None

sys.meta_path.insert(0, Spy())

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

app = QApplication([])

def spin(cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        loop = QEventLoop()
        QTimer.singleShot(10, loop.quit)
        loop.exec()  # releases the GIL, unlike QTest.qWait
    return cond()

from studio.app import Studio
studio = Studio(Path(sys.argv[1]))
studio.window.show()
spin(lambda: False, 0.3)
report = {"visible": studio.window.isVisible(),
          "heavy_after_show": sorted(n for n in HEAVY if n in sys.modules)}

import numpy as np
from PIL import Image
img = Path(sys.argv[1]) / "probe.png"
Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(img)
studio.window.open_path(str(img))
report["opened"] = spin(lambda: studio.session.app.image is not None, 20)
report["platform"] = app.platformName()
if sys.argv[2] == "features":
    studio.window.panels["inspect"].run_button.click()
    report["features"] = spin(lambda: studio.session.inspect.feature_maps is not None, 120)
else:
    # opencv may bring Qt plugins and redirect Qt's plugin path: import it the way a worker would.
    done = threading.Event()
    threading.Thread(target=lambda: (__import__("cv2"), done.set()), name="studio-cv2").start()
    spin(done.is_set, 60)
    report["plugin_path_env"] = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH")
    studio.window.zoom_label.setText("repaint")
    report["grab_ok"] = not studio.window.grab().isNull()
report["error"] = studio.session.app.error
report["first_import"] = first_import
report["main_thread"] = threading.main_thread().name
report["clean_shutdown"] = studio.shutdown()
print(json.dumps(report))
"""


def test_the_window_shows_before_torch_and_torch_loads_only_on_the_gpu_lane(tmp_path):
    report = _run(_WINDOW % (HEAVY,), str(tmp_path), "features", timeout=180)
    assert report["visible"]
    assert report["heavy_after_show"] == [], "the shown window imported " + str(report["heavy_after_show"])
    assert report["opened"] and report["features"], report
    assert report["error"] is None
    assert report["first_import"].get("torch") == "studio-gpu-0", report["first_import"]
    assert report["main_thread"] not in report["first_import"].values()
    assert report["clean_shutdown"]


_QT_FREE_TESTS = """
import importlib.util, json, sys
from pathlib import Path
tests = Path(%r)
imported = []
for d in %r:
    folder = tests / d
    sys.path.insert(0, str(folder))
    for path in sorted(folder.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"qtfree_{d}_{path.stem}", path)
        mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        imported.append(path.name)
spec = importlib.util.spec_from_file_location("tests_conftest", tests / "conftest.py")
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps({"imported": imported, "qt": sorted(m for m in ("PySide6", "pytestqt") if m in sys.modules)}))
"""


def test_qt_free_test_modules_import_no_qt():
    report = _run(_QT_FREE_TESTS % (str(TESTS), QT_FREE_TEST_DIRS))
    assert len(report["imported"]) >= 6
    assert report["qt"] == []


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs Xvfb (xvfb-run)")
def test_the_real_window_under_xvfb_survives_importing_opencv(tmp_path):
    """The offscreen platform hides X11 problems (opencv's bundled Qt plugins): run xcb too."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QT_QPA_PLATFORM": "xcb"}
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", sys.executable, "-c",
                           textwrap.dedent(_WINDOW % (HEAVY,)), str(tmp_path), "opencv"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    skip_if_xcb_cannot_start(proc)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["platform"] == "xcb" and report["visible"] and report["opened"]
    assert report["heavy_after_show"] == []
    assert report["plugin_path_env"] is None and report["grab_ok"]
    assert report["first_import"].get("cv2") == "studio-cv2"
    assert report["error"] is None and report["clean_shutdown"]
