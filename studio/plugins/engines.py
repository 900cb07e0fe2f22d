"""An EngineRegistry that also knows the engines plugins declare, without importing them early.

A manifest names a request class as "module:Class". Nothing is imported at start: the first time
a request the registry does not know is submitted, it is matched against the plugins' declarations
(by module and class name, else by resolving the declarations of the plugin whose package the
class comes from, whose code is then in use anyway) and its engine is registered, wrapped so a
failure switches the plugin off.
"""
from __future__ import annotations

from typing import Any, Callable

from studio.plugins import loader
from studio.runtime.scheduler import GPU, EngineRegistry


class PluginEngineRegistry(EngineRegistry):
    def __init__(self, plugins, gpu_wrap: Callable | None = None) -> None:
        super().__init__()
        self._plugins = plugins
        self._wrap = gpu_wrap or (lambda fn: fn)
        # Engines a register hook gave with the class itself are known now.
        for rec in plugins.active():
            for spec in rec.engines:
                if isinstance(spec.request, type):
                    self._add(spec.request, rec.id, spec)

    def _add(self, cls: type, plugin_id: str, spec) -> None:
        engine = self._plugins.engine(plugin_id, spec)
        self.register(cls, self._wrap(engine) if spec.lane == GPU else engine, spec.lane)

    def lookup(self, request: Any):
        try:
            return super().lookup(request)
        except LookupError:
            if self._find(type(request)):
                return super().lookup(request)
            raise

    def _find(self, cls: type) -> bool:
        for klass in cls.__mro__:
            name = loader.qualified_name(klass)
            for rec in self._plugins.active():
                for spec in rec.engines:
                    if not isinstance(spec.request, str):
                        continue
                    module, _, attr = spec.request.partition(":")
                    full = f"{rec.package}.{module}:{attr}" if rec.package else spec.request
                    if full == name:
                        self._add(klass, rec.id, spec)
                        return True
            # Re-exported classes: ask the plugin whose package this class lives in.
            for rec in self._plugins.active():
                if not rec.package or not klass.__module__.startswith(rec.package + "."):
                    continue
                for spec in rec.engines:
                    if isinstance(spec.request, str):
                        try:
                            declared = self._plugins.resolve(rec.id, spec.request, "its engine")
                        except Exception:
                            continue
                        if declared is klass:
                            self._add(klass, rec.id, spec)
                            return True
        return False
