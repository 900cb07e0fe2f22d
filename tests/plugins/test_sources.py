"""Where plugins come from and what start-up imports: entry points (a package holding plugin.toml,
or a callable returning the manifest), the default roots, and a fresh interpreter showing that
neither `import studio` nor building a session imports plugin code. Qt-free."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest

from studio.plugins import discovery

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path standing in for site-packages; `eps` are the entry points seen."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    eps: list[EntryPoint] = []
    monkeypatch.setattr(discovery, "entry_points", lambda: list(eps))
    yield folder, eps
    for name in [m for m in sys.modules if m.startswith(("acme_sketch", "acme_dyn", "acme_bad"))]:
        del sys.modules[name]


def test_an_installed_package_with_plugin_toml_loads_lazily(site, make_manager):
    folder, eps = site
    pkg = folder / "acme_sketch"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('the package must not be imported at start')\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "plugin.toml").write_text(
        'id = "acme"\nname = "Acme"\nversion = "2"\napi = "1"\n'
        '[[preprocessor]]\nid = "neg"\nlabel = "Negative"\nrun = "ops:neg"\n')
    (pkg / "sub" / "ops.py").write_text("def neg(image):\n    return 255 - image\n")
    eps.append(EntryPoint("acme", "acme_sketch.sub", discovery.GROUP))
    mgr = make_manager(entry_points=True)
    rec = mgr.get("acme")
    assert rec.state == "loaded" and rec.origin == "entry point" and rec.package == "acme_sketch.sub"
    assert "acme_sketch" not in sys.modules  # found on disk, nothing imported
    [(pre_id, _, fn)] = mgr.preprocessors()
    assert pre_id == "acme.neg"
    (pkg / "__init__.py").write_text("")  # now it may be imported, as any package on first use
    assert fn(np.zeros((2, 2, 3), np.uint8)).min() == 255
    assert "acme_sketch.sub.ops" in sys.modules


def test_an_entry_point_callable_returns_the_manifest(site, make_manager):
    folder, eps = site
    (folder / "acme_dyn.py").write_text(textwrap.dedent("""
        def manifest():
            return {"id": "dyn", "name": "Dynamic", "version": "1", "api": "1",
                    "model": [{"id": "dyn-net", "task": "cnn", "library": "timm", "source": "hub:a/dyn"}]}
    """))
    (folder / "acme_bad.py").write_text("def manifest():\n    raise ValueError('no manifest today')\n")
    eps += [EntryPoint("dyn", "acme_dyn:manifest", discovery.GROUP),
            EntryPoint("bad", "acme_bad:manifest", discovery.GROUP),
            EntryPoint("gone", "acme_not_installed", discovery.GROUP)]
    mgr = make_manager(entry_points=True)
    assert {r.id: r.state for r in mgr.records()} == {"dyn": "loaded", "bad": "failed", "gone": "failed"}
    assert [c.id for c in mgr.model_cards()] == ["dyn-net"]
    assert "ValueError: no manifest today" in mgr.get("bad").error
    assert "“acme_not_installed” of a studio.plugins entry point is not installed" in mgr.get("gone").error


def test_default_roots_are_the_repository_examples_then_the_users_folder(tmp_path):
    assert discovery.plugin_roots(tmp_path) == [("repo", ROOT / "plugins"), ("home", tmp_path / "plugins")]


_FRESH = """
import json, sys
report = {}
import studio, studio.plugins.api
report["after_import"] = sorted(m for m in sys.modules if m.startswith("studio_plugins"))
from studio.app import build_session
s = build_session(__import__("pathlib").Path(sys.argv[1]), post=lambda fn: fn())
report["plugins"] = {r.id: r.state for r in s.plugins.records()}
report["after_session"] = sorted(m for m in sys.modules if m.startswith("studio_plugins"))
report["qt"] = "PySide6" in sys.modules
report["torch"] = "torch" in sys.modules
s.runtime.shutdown(10)
print(json.dumps(report))
"""


def test_import_studio_and_building_a_session_import_no_plugin_code(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", _FRESH, str(tmp_path / "home")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["after_import"] == []
    assert report["plugins"] == {"extra_models": "loaded", "palette_panel": "loaded", "sketch_edges": "loaded"}
    assert report["after_session"] == []  # manifests read, no plugin module imported
    assert not report["qt"] and not report["torch"]
