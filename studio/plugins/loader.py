"""Importing a plugin's code on first use: "module:attr" references resolved against its package.

A plugin folder becomes the package `studio_plugins.<id>` (its modules import each other with
relative imports: `from . import palette`), found by a small meta-path finder only when something
imports from it; an installed plugin's references are relative to the package its entry point
names. Nothing is imported until `resolve` is called, which the manager does the first time a
contribution is needed.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

from studio.plugins.manifest import ref_parts

NAMESPACE = "studio_plugins"
_lock = threading.RLock()
_folders: dict[str, Path] = {}  # "studio_plugins.<id>" -> its folder


class _PluginFinder(importlib.abc.MetaPathFinder):
    """Finds `studio_plugins` and `studio_plugins.<id>` (a registered plugin folder) on import, so a
    plugin's package exists only once something imports from it; submodules are then found by
    Python's own path finder in the package's folder."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == NAMESPACE:
            spec = importlib.machinery.ModuleSpec(NAMESPACE, None, is_package=True)
            spec.submodule_search_locations = []
            return spec
        folder = _folders.get(fullname)
        if folder is None:
            return None
        init = folder / "__init__.py"
        if init.is_file():
            return importlib.util.spec_from_file_location(fullname, init,
                                                          submodule_search_locations=[str(folder)])
        spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        return spec


_finder = _PluginFinder()


def folder_package(plugin_id: str, folder: Path) -> str:
    """Make `studio_plugins.<plugin_id>` the package of `folder`; returns its name. Nothing is
    imported here. A package of that name already imported from another folder (a test's earlier
    plugin, an old copy) is forgotten so the new folder's code is the one imported next."""
    name = f"{NAMESPACE}.{plugin_id}"
    folder = Path(folder).resolve()
    with _lock:
        if _finder not in sys.meta_path:
            sys.meta_path.append(_finder)
        if _folders.get(name) != folder:
            forget(name)
            _folders[name] = folder
        return name


def forget(package: str) -> None:
    """Drop `package` and its submodules from sys.modules (the next import reads the files again)."""
    with _lock:
        for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[mod]
        importlib.invalidate_caches()


def resolve(ref: str, package: str) -> Any:
    """Import `ref` ("module:attr.path") relative to `package` ("" = absolute) and return the attribute."""
    module_name, attr = ref_parts(ref)
    module = importlib.import_module(f"{package}.{module_name}" if package else module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"
