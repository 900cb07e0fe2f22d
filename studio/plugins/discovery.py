"""Where plugins come from: folders with a plugin.toml under the plugin roots (the repository's
plugins/ and STUDIO_HOME/plugins), and installed packages through the `studio.plugins` entry-point group.

Discovery reads manifests only. An entry point names either a module whose package holds a
plugin.toml (found on disk without importing anything) or a callable returning the manifest dict
(which, unavoidably, imports that callable's module at start). Problems become a `Found` with an
error, never an exception: one bad plugin must not hide the others.
"""
from __future__ import annotations

import importlib
import logging
import traceback
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any, Iterable

from studio.plugins.manifest import Manifest, PluginError, parse, read_toml

log = logging.getLogger(__name__)

GROUP = "studio.plugins"
MANIFEST = "plugin.toml"


@dataclass
class Found:
    """One plugin as discovered: its manifest, or the error that stopped it being read."""

    key: str  # the plugin id, or (when the manifest is unreadable) the folder / entry-point name
    origin: str  # "repo", "home" or "entry point"
    location: str  # folder, or "entry point <name> = <value>"
    package: str = ""  # entry points: the package its "module:attr" references are relative to
    folder: Path | None = None
    manifest: Manifest | None = None
    error: str = ""
    detail: str = ""


def discover(roots: Iterable[tuple[str, Path]], use_entry_points: bool = True) -> list[Found]:
    """Every plugin under `roots` ((origin, folder) pairs, in order) and in the entry-point group."""
    found: list[Found] = []
    for origin, root in roots:
        found += scan_folder(Path(root), origin)
    if use_entry_points:
        for ep in entry_points():
            found.append(from_entry_point(ep))
    return found


def scan_folder(root: Path, origin: str) -> list[Found]:
    """Sub-folders of `root` holding a plugin.toml, sorted by name (the load order)."""
    if not root.is_dir():
        return []
    out = []
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())
    except OSError as exc:
        log.error("cannot list plugin folder %s: %s", root, exc)
        return []
    for folder in folders:
        out.append(from_folder(folder, origin))
    return out


def from_folder(folder: Path, origin: str) -> Found:
    f = Found(folder.name, origin, str(folder), folder=folder)
    try:
        text = (folder / MANIFEST).read_text(encoding="utf-8")
        f.manifest = parse(read_toml(text, f"The plugin in {folder}"), f"The plugin in {folder}")
    except (OSError, UnicodeDecodeError) as exc:
        f.error, f.detail = f"The plugin in {folder}: plugin.toml cannot be read ({exc}).", repr(exc)
    except PluginError as exc:
        f.error, f.detail = exc.user_message, exc.detail or exc.user_message
    if f.manifest is not None:
        f.key = f.manifest.id
    return f


def entry_points() -> list[Any]:
    """The installed `studio.plugins` entry points (a seam tests replace)."""
    from importlib.metadata import entry_points as eps

    try:
        return list(eps(group=GROUP))
    except Exception:  # a broken distribution's metadata must not stop the studio
        log.exception("cannot list the %s entry points", GROUP)
        return []


def from_entry_point(ep: Any) -> Found:
    where = f"entry point {ep.name} = {ep.value}"
    f = Found(ep.name, "entry point", where)
    module, _, attr = ep.value.partition(":")
    module, attr = module.strip(), attr.strip()
    try:
        if attr:
            # A manifest built in code: calling it is the one place discovery runs plugin code.
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            data = obj() if callable(obj) else obj
            f.package = _package_of(module, is_package=hasattr(importlib.import_module(module), "__path__"))
        else:
            folder, is_package = locate_module(module)
            f.folder = folder
            f.package = _package_of(module, is_package)
            path = folder / MANIFEST
            if not path.is_file():
                raise PluginError(f"The plugin of {where}: its package has no plugin.toml ({path}).")
            data = read_toml(path.read_text(encoding="utf-8"), f"The plugin of {where}")
        f.manifest = parse(data, f"The plugin of {where}")
        f.key = f.manifest.id
    except PluginError as exc:
        f.error, f.detail = exc.user_message, exc.detail or exc.user_message
    except Exception as exc:  # import errors, a raising manifest callable: reported, never raised
        f.error = f"The plugin of {where} could not be read: {type(exc).__name__}: {exc}"
        f.detail = "".join(traceback.format_exception(exc))
    return f


def locate_module(name: str) -> tuple[Path, bool]:
    """(folder holding the module, whether it is a package) found without importing anything:
    `importlib.util.find_spec("a.b")` would import `a`."""
    path = None
    spec = None
    parts = name.split(".")
    for i in range(len(parts)):
        spec = PathFinder.find_spec(".".join(parts[: i + 1]), path)
        if spec is None:
            raise PluginError(f"The module “{name}” of a studio.plugins entry point is not installed.")
        path = list(spec.submodule_search_locations or [])
        if i < len(parts) - 1 and not path:
            raise PluginError(f"“{'.'.join(parts[: i + 1])}” is not a package (entry point {name}).")
    assert spec is not None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]), True
    if not spec.origin:
        raise PluginError(f"The module “{name}” has no file on disk.")
    return Path(spec.origin).parent, False


def _package_of(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def plugin_roots(home: Path) -> list[tuple[str, Path]]:
    """The plugin folders, in load order: the repository's plugins/ (the examples), then the user's."""
    from studio.core.paths import repo_root

    return [("repo", repo_root() / "plugins"), ("home", Path(home) / "plugins")]


def load_plugins(home: Path, disabled, post=None):
    """The PluginManager of a studio on `home`: never raises (a bug here must not stop the studio;
    it is logged and the studio starts without plugins)."""
    from studio.plugins.manager import PluginManager

    try:
        return PluginManager.load(plugin_roots(home), disabled, post)
    except Exception:
        log.exception("loading plugins failed; starting without plugins")
        return PluginManager([], (), post)
