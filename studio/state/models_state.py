"""What the UI knows about models, and the Qt-free controller that changes it through runtime jobs.

`ModelsState` holds what the Models panel and the status bar show: device, memory and budgets,
loaded models with their sizes, what is on disk, downloads in flight, last verification.
`ModelsController` turns user actions into frozen requests for the runtime and folds the results
back into the state on the main thread. One controller per session (`ModelsController.of`), so a
download keeps going, and its progress keeps showing, after the panel is closed and reopened.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from studio.state.observable import Observable

log = logging.getLogger(__name__)


class ModelsState(Observable):
    _fields = ("device", "memory_mb", "loaded", "snapshot", "disk", "downloads", "queued", "busy",
               "verify", "message", "error")

    def __init__(self) -> None:
        self.device: str = "not started"
        self.memory_mb: float = 0.0
        self.loaded: tuple[str, ...] = ()
        self.snapshot: Any = None  # catalog.requests.ModelsSnapshot
        self.disk: dict[str, Any] = {}  # model id -> catalog.store.DiskStatus
        self.downloads: dict[str, tuple[float, str]] = {}  # running download: id -> (fraction, text)
        self.queued: tuple[str, ...] = ()  # downloads waiting for the running one
        self.busy: dict[str, str] = {}  # model id -> what is happening ("Loading…", "Verifying…")
        self.verify: dict[str, Any] = {}  # model id -> integrity.VerifyReport
        self.message: str = ""
        self.error: tuple[str, str] | None = None  # (message, detail)

    def loaded_info(self, model_id: str):
        snap = self.snapshot
        return next((i for i in snap.loaded if i.model_id == model_id), None) if snap else None


def _with(d: dict, key: str, value: Any) -> dict:
    out = dict(d)
    out[key] = value
    return out


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


class ModelsController:
    """Model actions of one session. Call on the main thread only."""

    def __init__(self, session) -> None:
        self.session = session
        self.state: ModelsState = session.models
        self.runtime = session.runtime
        self._download_job = None
        self._watchers = 0
        self.runtime.subscribe(self._on_job)

    @classmethod
    def of(cls, session) -> "ModelsController":
        ctl = getattr(session.models, "_controller", None)
        if ctl is None:
            ctl = cls(session)
            session.models._controller = ctl
        return ctl

    # -- helpers ---------------------------------------------------------------------------
    @property
    def settings(self):
        return self.session.settings

    def policy(self):
        from studio.catalog.requests import ModelPolicy

        return ModelPolicy.from_settings(self.settings)

    def _assets(self) -> str:
        from studio.core.paths import assets_dir

        return str(getattr(self.runtime.models, "assets", None) or assets_dir())

    def _user_catalog(self):
        return self.session.paths.home / "models.toml"

    def _submit(self, request, key: str, title: str, on_result=None, model_id: str = "", busy: str = ""):
        if model_id and busy:
            self.state.busy = _with(self.state.busy, model_id, busy)

        def done(result):
            self._idle(model_id)
            if on_result:
                on_result(result)

        def failed(err):
            self._idle(model_id)
            self._error(err)

        return self.runtime.submit(request, key=key, title=title, on_result=done, on_error=failed,
                                   on_cancelled=lambda: self._idle(model_id))

    def _idle(self, model_id: str) -> None:
        if model_id and model_id in self.state.busy:
            self.state.busy = _without(self.state.busy, model_id)

    def _error(self, err) -> None:
        self.state.error = None
        self.state.error = (getattr(err, "user_message", str(err)), getattr(err, "detail", ""))

    def _say(self, text: str) -> None:
        self.state.message = text

    # -- status ----------------------------------------------------------------------------
    def refresh(self) -> None:
        self.refresh_snapshot()
        self.refresh_disk()

    def refresh_snapshot(self) -> None:
        from studio.catalog.requests import ModelsSnapshotRequest

        self.runtime.submit(ModelsSnapshotRequest(), key="models.snapshot", title="Model memory",
                            on_result=self._apply_snapshot, on_error=self._error)

    def refresh_disk(self) -> None:
        from studio.catalog.requests import DiskStatusRequest

        cards = tuple(self.session.catalog.cards())
        req = DiskStatusRequest(cards, self._assets(), self.policy().allow_pickle)
        self.runtime.submit(req, key="models.disk", title="Model files",
                            on_result=self._apply_disk, on_error=self._error)

    def _apply_snapshot(self, snap) -> None:
        self.state.update(snapshot=snap, device=snap.device, memory_mb=snap.process_mb,
                          loaded=tuple(i.model_id for i in snap.loaded))

    def _apply_disk(self, statuses) -> None:
        disk = dict(self.state.disk)
        disk.update({s.model_id: s for s in statuses})
        self.state.disk = disk

    def watch(self, on: bool) -> None:
        """While watched (the panel is open), memory is re-read after every GPU job."""
        self._watchers = max(0, self._watchers + (1 if on else -1))

    def _on_job(self, job) -> None:
        from studio.catalog.requests import ModelsSnapshotRequest

        if (self._watchers and job.state.finished and job.lane == "gpu"
                and not isinstance(job.request, ModelsSnapshotRequest)):
            self.refresh_snapshot()

    # -- load / unload ---------------------------------------------------------------------
    def load(self, model_id: str) -> None:
        from studio.core.requests import LoadModelRequest

        name = self.session.catalog.get(model_id).name

        def done(result):
            self._say(f"{name} loaded in {result.seconds:.1f} s.")
            self.refresh_snapshot()

        self._submit(LoadModelRequest(model_id), f"models.load.{model_id}", f"Loading {name}", done,
                     model_id, "Loading…")

    def unload(self, model_id: str = "") -> None:
        from studio.catalog.requests import UnloadModelRequest

        self._submit(UnloadModelRequest(model_id), f"models.unload.{model_id}", "Unloading",
                     self._apply_snapshot, model_id, "Unloading…")

    # -- downloads: one at a time, the rest queue -------------------------------------------
    def download(self, model_id: str) -> None:
        if model_id in self.state.downloads or model_id in self.state.queued:
            return
        if self._download_job is not None:
            self.state.queued = self.state.queued + (model_id,)
            self._say(f"{model_id} will download after the current one.")
            return
        self._start_download(model_id)

    def _start_download(self, model_id: str) -> None:
        from studio.catalog.requests import DownloadModelRequest
        from studio.catalog.store import offline_env

        card = self.session.catalog.get(model_id)
        req = DownloadModelRequest(card, card.id in self.policy().allow_pickle, offline_env())
        self.state.downloads = _with(self.state.downloads, model_id, (0.0, "Starting…"))

        def progress(fraction: float, text: str) -> None:
            if model_id in self.state.downloads:
                self.state.downloads = _with(self.state.downloads, model_id, (fraction, text))

        def finished(result=None, err=None, cancelled=False):
            self._download_job = None
            self.state.downloads = _without(self.state.downloads, model_id)
            if err is not None:
                self._error(err)
            elif cancelled:
                self._say(f"Download of {card.name} cancelled: what arrived is kept and resumes next time.")
            else:
                self._say(f"{card.name} downloaded ({result.bytes_total / 2**20:,.0f} MB).")
            self.refresh_disk()
            if self.state.queued:
                nxt, self.state.queued = self.state.queued[0], self.state.queued[1:]
                self._start_download(nxt)

        self._download_job = self.runtime.submit(
            req, key=f"models.download.{model_id}", title=f"Downloading {card.name}",
            on_result=lambda r: finished(result=r), on_error=lambda e: finished(err=e),
            on_progress=progress, on_cancelled=lambda: finished(cancelled=True))

    def cancel_download(self, model_id: str) -> None:
        if model_id in self.state.queued:
            self.state.queued = tuple(q for q in self.state.queued if q != model_id)
        elif model_id in self.state.downloads and self._download_job is not None:
            self.runtime.cancel(self._download_job)

    # -- verify / remove -------------------------------------------------------------------
    def verify(self, model_id: str) -> None:
        from studio.catalog.requests import VerifyModelRequest

        card = self.session.catalog.get(model_id)
        req = VerifyModelRequest(card, self._assets(), card.id in self.policy().allow_pickle)

        def done(report):
            self.state.verify = _with(self.state.verify, model_id, report)
            self._say(f"{card.name}: {report.message}")

        self._submit(req, f"models.verify.{model_id}", f"Verifying {card.name}", done, model_id, "Verifying…")

    def remove(self, model_id: str) -> None:
        from studio.catalog.requests import RemoveModelRequest

        card = self.session.catalog.get(model_id)
        req = RemoveModelRequest(card, True, str(self._user_catalog()) if card.origin == "user" else "")

        def done(result):
            self._apply_snapshot(result.snapshot)
            if result.card_removed:
                self.session.catalog.remove(model_id)
                self.state.disk = _without(self.state.disk, model_id)
            parts = []
            if result.freed_bytes:
                parts.append(f"freed {result.freed_bytes / 2**20:,.0f} MB")
            if result.card_removed:
                parts.append("removed its card")
            self._say(f"{card.name}: " + (", ".join(parts) or "nothing to remove") + ".")
            self.refresh_disk()

        self._submit(req, f"models.remove.{model_id}", f"Removing {card.name}", done, model_id, "Removing…")

    # -- settings and consents ---------------------------------------------------------------
    def set_setting(self, key: str, value: Any) -> None:
        self.settings.set(key, value)
        self._save_and_configure()

    def set_consent(self, key: str, model_id: str, allowed: bool) -> None:
        """key: "models.allow_pickle" or "models.trust_remote_code"."""
        ids = [i for i in self.settings.get(key) if i != model_id]
        self.settings.set(key, sorted(ids + [model_id]) if allowed else ids)
        self._save_and_configure()
        self.refresh_disk()

    def _save_and_configure(self) -> None:
        from studio.catalog.requests import ConfigureModelsRequest

        try:
            self.settings.save()
        except OSError as exc:
            log.error("could not save settings: %s", exc)
        self.runtime.submit(ConfigureModelsRequest(self.policy()), key="models.configure",
                            title="Model settings", on_result=self._apply_snapshot, on_error=self._error)

    # -- user cards ------------------------------------------------------------------------
    def add_card(self, card) -> None:
        """Write the card into STUDIO_HOME/models.toml (atomically) and show it at once."""
        from studio.catalog.cards import save_user_card

        card = replace(card, origin="user")
        save_user_card(self._user_catalog(), card)
        self.session.catalog.add(card)
        self._say(f"Added {card.name}.")
        self.refresh_disk()
