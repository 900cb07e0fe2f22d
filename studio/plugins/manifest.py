"""The plugin manifest (`plugin.toml`): parsing and validation into frozen values, no plugin code.

A manifest names the plugin and lists what it contributes: model cards (`[[model]]`, the fields of
assets/models.toml), preprocessors, engines, panels and menu commands. Code is named by
"module:attr" strings relative to the plugin's own package and imported only when first used, so
reading a manifest never runs plugin code. Everything a plugin author can get wrong here ends in a
:class:`PluginError` whose message says what to change.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from studio.catalog.cards import ModelCard, card_from_dict
from studio.core.errors import BadInputError, StudioError

API_VERSIONS = ("1",)  # plugin API versions this studio can load
LANES = ("gpu", "cpu")
AREAS = ("right", "left", "bottom")
_PLUGIN_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PART_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
TOP_KEYS = {"id", "name", "version", "api", "description", "author", "homepage", "register",
            "model", "preprocessor", "engine", "panel", "command"}


class PluginError(StudioError):
    """A plugin that cannot be loaded or that failed: the message names the plugin and the fix."""


# Code is either a lazy "module:attr" reference or, for contributions made by a `register` hook,
# the object itself.
Target = Union[str, Callable[..., Any], type]


@dataclass(frozen=True)
class PreprocessorSpec:
    id: str  # local to the plugin; the studio lists it as "<plugin>.<id>"
    label: str
    run: Target  # run(image: HxWx3 uint8) -> control image


@dataclass(frozen=True)
class EngineSpec:
    request: Target  # the request class ("module:Class" or the class)
    run: Target  # run(request, ctx, models) -> result
    lane: str = "gpu"


@dataclass(frozen=True)
class PanelSpec:
    id: str
    title: str
    widget: Target  # widget(host) -> QWidget
    area: str = "right"


@dataclass(frozen=True)
class CommandSpec:
    id: str
    title: str
    run: Target  # run(host) -> None
    shortcut: str = ""


@dataclass(frozen=True)
class Manifest:
    id: str
    name: str
    version: str
    api: str
    description: str = ""
    author: str = ""
    homepage: str = ""
    register: str = ""
    models: tuple[ModelCard, ...] = ()
    preprocessors: tuple[PreprocessorSpec, ...] = ()
    engines: tuple[EngineSpec, ...] = ()
    panels: tuple[PanelSpec, ...] = ()
    commands: tuple[CommandSpec, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def summary(self) -> str:
        """What the plugin adds, in a few words (for the Plugins dialog)."""
        parts = []
        for n, word in ((len(self.models), "model card"), (len(self.preprocessors), "preprocessor"),
                        (len(self.engines), "engine"), (len(self.panels), "panel"),
                        (len(self.commands), "command")):
            if n:
                parts.append(f"{n} {word}{'s' if n > 1 else ''}")
        if self.register:
            parts.append("a register hook")
        return ", ".join(parts) or "nothing"


def read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PluginError(f"{where}: plugin.toml is not valid TOML ({exc}).", str(exc)) from exc
    return data


def parse(data: Any, where: str) -> Manifest:
    """A validated Manifest from the TOML table (or an entry point's dict); PluginError otherwise.

    `where` names the plugin for messages (its folder or entry point)."""
    if not isinstance(data, dict):
        raise PluginError(f"{where}: the manifest must be a table of keys, not {type(data).__name__}.")
    missing = [k for k in ("id", "name", "version", "api") if k not in data]
    if missing:
        raise PluginError(f"{where}: plugin.toml lacks {_join(missing)}; every plugin needs id, name, "
                          "version and api (see docs/plugins.md).")
    pid = _text(data, "id", where)
    if not _PLUGIN_ID.match(pid):
        raise PluginError(f"{where}: the id “{pid}” must be lower-case letters, digits and '_', "
                          "starting with a letter (at most 40).")
    where = f"Plugin “{pid}”"
    api = str(data["api"]).strip()
    if api not in API_VERSIONS:
        raise PluginError(f"{where} is written for plugin API version {api}; this studio supports "
                          f"version {_join(API_VERSIONS, 'or')}. Use a release of the plugin made for "
                          f"api = \"{API_VERSIONS[-1]}\", or update the studio.")
    warnings = [f"unknown key “{k}” ignored" for k in sorted(set(data) - TOP_KEYS)]
    register = str(data.get("register", "")).strip()
    if register:
        _check_ref(register, "register", where)
    models = []
    for i, entry in enumerate(_tables(data, "model", where), 1):
        try:
            models.append(card_from_dict(entry, origin="plugin"))
        except BadInputError as exc:
            raise PluginError(f"{where}: model card {i} — {exc.user_message}", exc.detail) from exc
    pres = tuple(PreprocessorSpec(_part_id(e, where, "preprocessor"), _text(e, "label", where),
                                  _ref(e, "run", where)) for e in _tables(data, "preprocessor", where))
    engines = tuple(_engine(e, where) for e in _tables(data, "engine", where))
    panels = tuple(PanelSpec(_part_id(e, where, "panel"), _text(e, "title", where), _ref(e, "widget", where),
                             _choice(e, "area", AREAS, where)) for e in _tables(data, "panel", where))
    commands = tuple(CommandSpec(_part_id(e, where, "command"), _text(e, "title", where), _ref(e, "run", where),
                                 str(e.get("shortcut", "")).strip()) for e in _tables(data, "command", where))
    manifest = Manifest(pid, _text(data, "name", where), _text(data, "version", where), api,
                        str(data.get("description", "")), str(data.get("author", "")),
                        str(data.get("homepage", "")), register, tuple(models), pres, engines, panels,
                        commands, tuple(warnings))
    check_unique(manifest)
    return manifest


def check_unique(m: Manifest) -> None:
    """Ids must be unique per kind; panels and commands share one namespace (their menu entries)."""
    where = f"Plugin “{m.id}”"
    for kind, ids in (("preprocessor", [p.id for p in m.preprocessors]),
                      ("model card", [c.id for c in m.models]),
                      ("panel or command", [p.id for p in m.panels] + [c.id for c in m.commands])):
        seen = set()
        for i in ids:
            if i in seen:
                raise PluginError(f"{where} has two {kind}s with the id “{i}”.")
            seen.add(i)


def ref_parts(ref: str) -> tuple[str, str]:
    module, _, attr = ref.partition(":")
    return module, attr


# -- field helpers ---------------------------------------------------------------------------------
def _tables(data: dict, key: str, where: str) -> list[dict]:
    value = data.get(key, [])
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PluginError(f"{where}: “{key}” must be a list of tables ([[{key}]] in plugin.toml).")
    return value


def _text(entry: dict, key: str, where: str) -> str:
    if key not in entry:
        raise PluginError(f"{where}: a table lacks the key “{key}”.")
    value = entry[key]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip():
        raise PluginError(f"{where}: “{key}” must be a non-empty string.")
    return str(value).strip()


def _part_id(entry: dict, where: str, kind: str) -> str:
    pid = _text(entry, "id", where)
    if not PART_ID.match(pid):
        raise PluginError(f"{where}: the {kind} id “{pid}” must be lower-case letters, digits and '_'.")
    return pid


def _ref(entry: dict, key: str, where: str) -> str:
    return _check_ref(_text(entry, key, where), key, where)


def _check_ref(ref: str, key: str, where: str) -> str:
    if not _REF.match(ref):
        raise PluginError(f"{where}: “{key} = \"{ref}\"” must name code as \"module:attribute\" "
                          "(the module relative to the plugin's folder, e.g. \"edges:sketch\").")
    return ref


def _choice(entry: dict, key: str, choices: tuple[str, ...], where: str) -> str:
    value = str(entry.get(key, choices[0])).strip()
    if value not in choices:
        raise PluginError(f"{where}: {key} “{value}” must be one of {_join(choices, 'or')}.")
    return value


def _engine(entry: dict, where: str) -> EngineSpec:
    return EngineSpec(_ref(entry, "request", where), _ref(entry, "run", where),
                      _choice(entry, "lane", LANES, where))


def _join(items, word: str = "and") -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} " + items[-1]
