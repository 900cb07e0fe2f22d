"""The object a plugin's optional `register` hook receives: contributions made in Python.

Most plugins need no hook: plugin.toml lists everything and the code loads on first use. A hook
is for what must be computed at start (model cards read from a folder, a preprocessor per preset).
It runs at start, so it imports its module then: keep it light. Each method also works as a
decorator when the function is left out:

    def register(studio):
        @studio.preprocessor("sketch", "Sketch (my plugin)")
        def sketch(image):
            ...
"""
from __future__ import annotations

from typing import Any, Callable

from studio.catalog.cards import ModelCard, card_from_dict
from studio.core.errors import BadInputError
from studio.plugins.manifest import (AREAS, LANES, PART_ID, CommandSpec, EngineSpec, Manifest,
                                     PanelSpec, PluginError, PreprocessorSpec, check_unique)


class Registrar:
    """Collects one plugin's contributions; the manager adds them only if the hook returns normally."""

    def __init__(self, plugin_id: str) -> None:
        self.plugin_id = plugin_id
        self._models: list[ModelCard] = []
        self._pres: list[PreprocessorSpec] = []
        self._engines: list[EngineSpec] = []
        self._panels: list[PanelSpec] = []
        self._commands: list[CommandSpec] = []

    def model(self, card: ModelCard | dict[str, Any] | None = None, **fields: Any) -> ModelCard:
        """Add a model card (a ModelCard, a dict, or the fields of assets/models.toml as keywords)."""
        data = card if card is not None else fields
        try:
            if isinstance(data, ModelCard):
                data = {**data.__dict__, "options": dict(data.options)}
            made = card_from_dict(dict(data), origin="plugin")
        except BadInputError as exc:
            raise PluginError(f"Plugin “{self.plugin_id}”: {exc.user_message}", exc.detail) from exc
        self._models.append(made)
        return made

    def _id(self, id: str, kind: str) -> str:
        if not isinstance(id, str) or not PART_ID.match(id):
            raise PluginError(f"Plugin “{self.plugin_id}”: the {kind} id {id!r} must be lower-case "
                              "letters, digits and '_'.")
        return id

    def preprocessor(self, id: str, label: str, fn: Callable | None = None):
        """Add a preprocessor `fn(image HxWx3 uint8) -> control image` (or decorate it)."""
        self._id(id, "preprocessor")
        def add(f: Callable) -> Callable:
            self._pres.append(PreprocessorSpec(id, label, f))
            return f
        return add(fn) if fn is not None else add

    def engine(self, request_type: type, fn: Callable | None = None, lane: str = "gpu"):
        """Add the engine `fn(request, ctx, models) -> result` for `request_type` (or decorate it)."""
        if lane not in LANES:
            raise PluginError(f"Plugin “{self.plugin_id}”: lane “{lane}” must be gpu or cpu.")

        def add(f: Callable) -> Callable:
            self._engines.append(EngineSpec(request_type, f, lane))
            return f
        return add(fn) if fn is not None else add

    def panel(self, id: str, title: str, factory: Callable | None = None, area: str = "right"):
        """Add a dock panel: `factory(host)` returns the QWidget (or decorate the class/function)."""
        self._id(id, "panel")
        if area not in AREAS:
            raise PluginError(f"Plugin “{self.plugin_id}”: area “{area}” must be right, left or bottom.")

        def add(f: Callable) -> Callable:
            self._panels.append(PanelSpec(id, title, f, area))
            return f
        return add(factory) if factory is not None else add

    def command(self, id: str, title: str, fn: Callable | None = None, shortcut: str = ""):
        """Add a Plugins-menu command `fn(host)` with an optional shortcut (or decorate it)."""
        self._id(id, "command")
        def add(f: Callable) -> Callable:
            self._commands.append(CommandSpec(id, title, f, shortcut))
            return f
        return add(fn) if fn is not None else add

    def commit(self, record) -> None:
        """Add the collected contributions to `record` (a PluginRecord), checking ids stay unique."""
        m = record.manifest
        merged = Manifest(self.plugin_id, m.name, m.version, m.api,
                          models=tuple(record.models) + tuple(self._models),
                          preprocessors=tuple(record.preprocessors) + tuple(self._pres),
                          panels=tuple(record.panels) + tuple(self._panels),
                          commands=tuple(record.commands) + tuple(self._commands))
        check_unique(merged)
        record.models += self._models
        record.preprocessors += self._pres
        record.engines += self._engines
        record.panels += self._panels
        record.commands += self._commands
