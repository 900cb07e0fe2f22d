"""The plugin manager: which plugins load, what they contribute, and isolation when one fails.

Built once by the composition root from the discovered manifests and the `plugins.disabled`
setting. It hands out contributions wrapped so that plugin code is imported on first use and any
exception it raises (at import, in a register hook, in a preprocessor, an engine, a panel or a
command) switches that plugin off for the rest of the session with a message naming it, instead of
reaching the studio. Failures can happen on worker threads: records change under a lock and the
listeners (the UI) are called through `post`, on the main thread.
"""
from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from studio.catalog.cards import ModelCard
from studio.core.errors import Cancelled, StudioError
from studio.plugins import loader
from studio.plugins.discovery import Found, discover
from studio.plugins.manifest import (CommandSpec, EngineSpec, Manifest, PanelSpec, PluginError,
                                     PreprocessorSpec, Target)

log = logging.getLogger(__name__)

LOADED, DISABLED, FAILED = "loaded", "disabled", "failed"


@dataclass
class PluginRecord:
    """One plugin as the studio sees it (the Plugins dialog draws these)."""

    id: str
    origin: str
    location: str
    manifest: Manifest | None = None
    state: str = LOADED
    error: str = ""
    detail: str = ""
    warnings: list[str] = field(default_factory=list)
    package: str = ""
    folder: Path | None = None
    imported: bool = False  # some of its code has been imported (it was used)
    models: list[ModelCard] = field(default_factory=list)
    preprocessors: list[PreprocessorSpec] = field(default_factory=list)
    engines: list[EngineSpec] = field(default_factory=list)
    panels: list[PanelSpec] = field(default_factory=list)
    commands: list[CommandSpec] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else self.id

    @property
    def version(self) -> str:
        return self.manifest.version if self.manifest else ""

    @property
    def description(self) -> str:
        return self.manifest.description if self.manifest else ""

    @property
    def active(self) -> bool:
        return self.state == LOADED

    def status_text(self) -> str:
        if self.state == DISABLED:
            return "Disabled"
        if self.state == FAILED:
            return "Failed (switched off)"
        return "Enabled, in use" if self.imported else "Enabled"


class PluginManager:
    def __init__(self, found: Iterable[Found], disabled: Iterable[str] = (),
                 post: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._post = post or (lambda fn: fn())
        self._lock = threading.RLock()
        self._listeners: list[Callable[[PluginRecord], None]] = []
        self._records: dict[str, PluginRecord] = {}
        self._cache: dict[tuple[str, str], Any] = {}
        self._undo: list[Callable[[], None]] = []
        self._hosts: dict[str, Any] = {}
        self._closed = False
        self._live = True  # failures are announced to listeners (not while loading: see startup_report)
        off = set(disabled)
        for f in found:
            self._add(f, off)

    @classmethod
    def load(cls, roots: Iterable[tuple[str, Path]], disabled: Iterable[str] = (),
             post: Callable | None = None, use_entry_points: bool = True) -> "PluginManager":
        """Discover the plugins under `roots` and in the entry points, and run their register hooks."""
        manager = cls(discover(roots, use_entry_points), disabled, post)
        manager._live = False  # a hook failing now is in startup_report, which the window shows
        manager.run_register_hooks()
        manager._live = True
        return manager

    def _add(self, f: Found, disabled: set[str]) -> None:
        key = f.key
        if key in self._records:
            first = self._records[key]
            rec = PluginRecord(f"{key}@{f.location}", f.origin, f.location, f.manifest, FAILED)
            rec.error = (f"The plugin in {f.location} has the id “{key}”, which the plugin in "
                         f"{first.location} already uses: give one of them another id in its plugin.toml.")
            rec.detail = rec.error
            self._records[rec.id] = rec
            return
        rec = PluginRecord(key, f.origin, f.location, f.manifest, package=f.package, folder=f.folder)
        self._records[key] = rec
        if key in disabled:
            rec.state = DISABLED
            return
        if f.error or f.manifest is None:
            rec.state, rec.error, rec.detail = FAILED, f.error, f.detail
            return
        m = f.manifest
        rec.warnings += list(m.warnings)
        if f.origin != "entry point" and f.folder is not None:
            rec.package = loader.folder_package(m.id, f.folder)  # installed packages import as they are
        rec.models += m.models
        rec.preprocessors += m.preprocessors
        rec.engines += m.engines
        rec.panels += m.panels
        rec.commands += m.commands

    # -- reading -------------------------------------------------------------------------------
    def records(self) -> list[PluginRecord]:
        with self._lock:
            return list(self._records.values())

    def get(self, plugin_id: str) -> PluginRecord:
        return self._records[plugin_id]

    def __contains__(self, plugin_id: str) -> bool:
        return plugin_id in self._records

    def active(self) -> list[PluginRecord]:
        return [r for r in self.records() if r.active]

    def model_cards(self) -> list[ModelCard]:
        """The cards of the enabled plugins; a card id given twice keeps the first (with a warning)."""
        seen: dict[str, str] = {}
        out = []
        for rec in self.active():
            for card in rec.models:
                if card.id in seen:
                    rec.warnings.append(f"model card “{card.id}” skipped: plugin “{seen[card.id]}” adds one "
                                        "with that id")
                    continue
                seen[card.id] = rec.id
                out.append(card)
        return out

    def panels(self) -> list[tuple[PluginRecord, PanelSpec]]:
        return [(r, p) for r in self.active() for p in r.panels]

    def commands(self) -> list[tuple[PluginRecord, CommandSpec]]:
        return [(r, c) for r in self.active() for c in r.commands]

    def preprocessors(self) -> list[tuple[str, str, Callable]]:
        """(studio id "<plugin>.<id>", label, isolated function) of every enabled plugin preprocessor."""
        return [(f"{r.id}.{p.id}", p.label, self._preprocessor(r.id, p)) for r in self.active()
                for p in r.preprocessors]

    # -- listeners -----------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[PluginRecord], None]) -> Callable[[], None]:
        """`fn(record)` runs on the main thread whenever a plugin fails while the studio runs."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def startup_report(self) -> tuple[str, str] | None:
        """(message, detail) about the plugins that could not load at start, or None."""
        bad = [r for r in self.records() if r.state == FAILED]
        if not bad:
            return None
        names = ", ".join(f"“{r.name}”" for r in bad)
        if len(bad) == 1:
            msg = f"{bad[0].error} The plugin is switched off; Plugins > Manage Plugins… lists it."
        else:
            msg = (f"{len(bad)} plugins could not be loaded and are switched off: {names}. "
                   "Plugins > Manage Plugins… says why.")
        detail = "\n\n".join(f"{r.id} ({r.location}):\n{r.error}"
                             + (f"\n{r.detail}" if r.detail and r.detail != r.error else "") for r in bad)
        return msg, detail

    # -- isolation -----------------------------------------------------------------------------
    def fail(self, plugin_id: str, what: str, exc: BaseException) -> PluginError:
        """Switch `plugin_id` off after `exc` raised `what` ("in its command “Copy”"); returns the
        error to raise or show. Safe from any thread; listeners run on the main thread."""
        detail = "".join(traceback.format_exception(exc))
        with self._lock:
            rec = self._records[plugin_id]
            first = rec.state != FAILED
            if first:
                rec.state = FAILED
                rec.error = (f"The plugin “{rec.name}” failed {what} and is switched off until the next "
                             f"start: {type(exc).__name__}: {exc}")
                rec.detail = detail
            err = PluginError(rec.error, rec.detail)
        log.error("plugin %s failed %s\n%s", plugin_id, what, detail)
        if first and self._live:
            self._post(lambda: self._notify(rec))
        return err

    def _notify(self, rec: PluginRecord) -> None:
        host = self._hosts.get(rec.id)
        if host is not None:
            host.close()  # its image listeners and pending results stop reaching the plugin
        for fn in list(self._listeners):
            try:
                fn(rec)
            except Exception:
                log.exception("plugin failure listener failed")

    def _check_on(self, plugin_id: str) -> PluginRecord:
        rec = self._records[plugin_id]
        if rec.state == FAILED:
            raise PluginError(f"The plugin “{rec.name}” is switched off after an error; restart the studio "
                              "once it is fixed.", rec.detail)
        if rec.state == DISABLED:
            raise PluginError(f"The plugin “{rec.name}” is disabled (Plugins > Manage Plugins…).")
        return rec

    def resolve(self, plugin_id: str, target: Target, what: str) -> Any:
        """The object behind `target`, importing the plugin's module on first use. An import error
        switches the plugin off (PluginError names it)."""
        rec = self._check_on(plugin_id)
        if not isinstance(target, str):
            return target
        key = (plugin_id, target)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            obj = loader.resolve(target, rec.package)
        except Exception as exc:
            noun = what[3:] if what.startswith("in ") else what
            raise self.fail(plugin_id, f"to load “{target}” for {noun}", exc) from exc
        with self._lock:
            self._cache[key] = obj
            rec.imported = True
        return obj

    def call(self, plugin_id: str, what: str, target: Target, *args: Any, **kwargs: Any) -> Any:
        """Resolve `target` and call it. A StudioError it raises (BadInputError, ...) is the plugin
        speaking to the user and passes through; Cancelled too; anything else switches it off."""
        fn = self.resolve(plugin_id, target, what)
        try:
            return fn(*args, **kwargs)
        except (Cancelled, StudioError):
            raise
        except Exception as exc:
            raise self.fail(plugin_id, what, exc) from exc

    def guard(self, plugin_id: str, what: str, fn: Callable) -> Callable:
        """`fn` wrapped like `call` (for callbacks a plugin hands the studio)."""
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self._check_on(plugin_id)
            try:
                return fn(*args, **kwargs)
            except (Cancelled, StudioError):
                raise
            except Exception as exc:
                raise self.fail(plugin_id, what, exc) from exc
        return guarded

    def _preprocessor(self, plugin_id: str, spec: PreprocessorSpec) -> Callable:
        from studio.plugins.images import control_image

        what = f"in its preprocessor “{spec.label}”"

        def run(rgb):
            out = self.call(plugin_id, what, spec.run, rgb.copy())
            try:
                return control_image(out, rgb.shape[:2])
            except ValueError as exc:
                raise self.fail(plugin_id, what, exc) from exc
        run.__qualname__ = f"plugin preprocessor {plugin_id}.{spec.id}"
        return run

    def engine(self, plugin_id: str, spec: EngineSpec) -> Callable:
        def run(request, ctx, models):
            return self.call(plugin_id, f"in its engine for {type(request).__name__}", spec.run,
                             request, ctx, models)
        return run

    # -- installing -------------------------------------------------------------------------------
    def run_register_hooks(self) -> None:
        """Call each enabled plugin's `register` hook (if it has one) with a Registrar. What a hook
        adds counts only if it returns normally; if it raises, the plugin is switched off whole."""
        from studio.plugins.registrar import Registrar

        for rec in self.active():
            if rec.manifest is None or not rec.manifest.register:
                continue
            reg = Registrar(rec.id)
            try:
                self.call(rec.id, "in its register hook", rec.manifest.register, reg)
            except StudioError as exc:
                if rec.state != FAILED:  # the hook raised a StudioError itself: that is a failure here
                    self.fail(rec.id, "in its register hook", exc)
                continue
            try:
                reg.commit(rec)
            except PluginError as exc:
                self.fail(rec.id, "in its register hook", exc)

    def install_preprocessors(self, register: Callable[[str, str, Callable], Callable[[], None]]) -> None:
        """Hand every plugin preprocessor to the paint/tape registry (`register(id, label, fn)`
        returns an undo, run by `close`)."""
        for pre_id, label, fn in self.preprocessors():
            try:
                self._undo.append(register(pre_id, label, fn))
            except Exception as exc:
                self.fail(pre_id.split(".")[0], f"to register its preprocessor “{label}”", exc)

    def engine_registry(self, gpu_wrap: Callable | None = None):
        from studio.plugins.engines import PluginEngineRegistry

        return PluginEngineRegistry(self, gpu_wrap)

    def host(self, plugin_id: str, session: Any, **hooks: Any):
        """The Host the panels and commands of `plugin_id` receive (one per plugin)."""
        from studio.plugins.host import Host

        with self._lock:
            if plugin_id not in self._hosts:
                self._hosts[plugin_id] = Host(plugin_id, self, session, **hooks)
            return self._hosts[plugin_id]

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run `fn` when the plugins close (the studio shuts down)."""
        self._undo.append(fn)

    def close(self) -> None:
        """Undo what was installed (preprocessors, hooks): the registries outlive a test's session."""
        if self._closed:
            return
        self._closed = True
        for undo in reversed(self._undo):
            try:
                undo()
            except Exception:
                log.exception("undoing a plugin installation failed")
        self._undo.clear()
        self._listeners.clear()
        for host in self._hosts.values():
            host.close()
