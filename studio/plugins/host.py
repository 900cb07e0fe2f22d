"""The Host: what a plugin's panels and commands may use of the running studio (main thread only).

One Host per plugin, so every callback a plugin hands over is guarded in that plugin's name: if a
callback raises, the plugin is switched off with a message and its other callbacks stop, while the
studio carries on. A StudioError (BadInputError, ...) raised by plugin code is the plugin talking
to the user: it is shown in the error banner and the plugin stays on.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from studio.core.errors import StudioError, as_studio_error
from studio.core.image import StudioImage

log = logging.getLogger(__name__)


class Host:
    def __init__(self, plugin_id: str, plugins, session, copy_text: Callable[[str], None] | None = None) -> None:
        self.plugin_id = plugin_id
        self._plugins = plugins
        self._session = session
        self._copy_text = copy_text
        self._subscriptions: list[Callable] = []
        self._closed = False

    # -- reading the studio -------------------------------------------------------------------
    @property
    def image(self) -> StudioImage | None:
        """The image on the canvas (None when there is none)."""
        return self._session.app.image

    @property
    def workspace(self) -> str:
        """The workspace shown: inspect, label, chat, paint or tape."""
        return self._session.app.workspace

    def cards(self, task: str | None = None) -> list:
        """The model catalog's cards (of one task, e.g. "diffusion")."""
        return self._session.catalog.cards(task)

    # -- acting ---------------------------------------------------------------------------------
    def set_image(self, image: StudioImage) -> None:
        """Put `image` on the canvas (it becomes the current image of every workspace)."""
        if not isinstance(image, StudioImage):
            raise TypeError("set_image takes a StudioImage")
        self._session.app.clear_error()
        self._session.app.image = image

    def message(self, text: str) -> None:
        """Show `text` in the status bar."""
        self._session.app.message = str(text)

    def error(self, message: str, detail: str = "") -> None:
        """Show `message` in the error banner (`detail` behind its Details… button)."""
        self._session.app.report_error(str(message), str(detail))

    def copy_text(self, text: str) -> None:
        """Put `text` on the clipboard."""
        if self._copy_text is None:
            raise StudioError("The clipboard is not available here.")
        self._copy_text(str(text))

    def on_image(self, fn: Callable[[StudioImage | None], None]) -> Callable[[], None]:
        """Call `fn(image)` whenever the current image changes; returns a function that stops it."""
        guarded = self._guard(fn, "in its image listener")

        def listener(name: str, value: Any) -> None:
            if name == "image" and not self._closed:
                guarded(value)

        self._session.app.changed.connect(listener)

        def stop() -> None:
            try:
                self._session.app.changed.disconnect(listener)
            except (ValueError, RuntimeError):
                pass
            if stop in self._subscriptions:
                self._subscriptions.remove(stop)

        self._subscriptions.append(stop)
        return stop

    def submit(self, request: Any, *, on_result: Callable | None = None, on_error: Callable | None = None,
               on_progress: Callable | None = None, key: str | None = None, title: str = ""):
        """Run `request` on its engine's lane (see the [[engine]] table). `on_result(result)`,
        `on_error(error)` (default: the error banner) and `on_progress(fraction, text)` run on the
        main thread. With a `key`, a newer request cancels the older one. Returns the job, or None
        when the request could not be queued (the banner says why)."""
        try:
            return self._session.runtime.submit(
                request, key=f"plugin.{self.plugin_id}.{key}" if key else None,
                title=title or type(request).__name__,
                on_result=self._guard(on_result, "handling a result") if on_result else None,
                on_error=self._guard(on_error, "handling an error") if on_error else self._show,
                on_progress=self._guard(on_progress, "showing progress") if on_progress else None)
        except Exception as exc:
            self._show(as_studio_error(exc))
            return None

    # -- plumbing ---------------------------------------------------------------------------------
    def _show(self, err) -> None:
        if getattr(err, "user_message", None) == self._plugins.get(self.plugin_id).error:
            return  # the plugin's failure, which the manager's listeners already report
        self.error(getattr(err, "user_message", str(err)), getattr(err, "detail", ""))

    def _guard(self, fn: Callable, what: str) -> Callable:
        guarded = self._plugins.guard(self.plugin_id, what, fn)

        def run(*args: Any) -> None:
            if self._closed:
                return
            try:
                guarded(*args)
            except StudioError as exc:  # shown, never raised into the studio's own code
                if self._plugins.get(self.plugin_id).state != "loaded":
                    self.close()  # switched off: the manager's listeners report it
                else:
                    self._show(exc)
        return run

    def close(self) -> None:
        """Stop every listener this host started (the plugin was switched off or the window closes)."""
        self._closed = True
        for stop in list(self._subscriptions):
            stop()
