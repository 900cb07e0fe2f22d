"""The paint journal: what must survive a crash or a kill -9, written before it matters.

Layout under `session.paths.journal`:
  jobs/<uid>.json   one per queued or running paint job, written before the job is submitted and
                    removed when it ends (done, failed, or cancelled by the user);
  workspace.json    the paint workspace: prompt and parameters, and which images are the canvas,
                    the mask, the control images and the depth map;
  blobs/<sha>.png   those images, content-addressed, so a queue of jobs on one image stores it once.
Every file is written atomically (temp + rename), blobs before the JSON that names them, so a kill at
any moment leaves either the old state or the new one. No Qt, no torch.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.atomic import atomic_write_bytes, atomic_write_json
from studio.media.metadata import array_sha256, decode_png, encode_png

log = logging.getLogger(__name__)

# Names read back from the journal's own files become file names: only plain ones are accepted, so an
# edited or planted entry cannot make the studio read, write or delete outside the journal folder.
_UID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def _checked(pattern: re.Pattern, value: Any, what: str) -> str:
    value = str(value)
    if not pattern.match(value):
        raise ValueError(f"unsafe journal {what} {value[:80]!r}")
    return value


@dataclass
class JournalJob:
    uid: str
    title: str
    seq: float
    attempts: int
    record: dict[str, Any]  # the request record (studio.core.paint_requests.request_to_record)
    images: dict[str, np.ndarray]


class Journal:
    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.jobs_dir = self.folder / "jobs"
        self.blobs_dir = self.folder / "blobs"
        self.workspace_file = self.folder / "workspace.json"

    # -- blobs -----------------------------------------------------------------------------
    def put_blob(self, arr: np.ndarray) -> str:
        sha = array_sha256(arr)
        path = self.blobs_dir / f"{sha}.png"
        if not path.exists():
            atomic_write_bytes(path, encode_png(arr))
        return sha

    def get_blob(self, sha: str) -> np.ndarray:
        return decode_png((self.blobs_dir / f"{_checked(_SHA, sha, 'image')}.png").read_bytes())

    def _job_file(self, uid: str) -> Path:
        return self.jobs_dir / f"{_checked(_UID, uid, 'job id')}.json"

    def _put_images(self, images: dict[str, np.ndarray]) -> dict[str, str]:
        return {name: self.put_blob(arr) for name, arr in images.items() if arr is not None}

    def _get_images(self, refs: dict[str, str]) -> dict[str, np.ndarray]:
        out = {}
        for name, sha in (refs or {}).items():
            try:
                out[name] = self.get_blob(sha)
            except (OSError, ValueError) as exc:
                log.warning("journal: image %s (%s) is missing or damaged: %s", name, sha, exc)
        return out

    # -- jobs ------------------------------------------------------------------------------
    def add_job(self, uid: str, record: dict[str, Any], images: dict[str, np.ndarray], title: str = "",
                seq: float | None = None) -> None:
        refs = self._put_images(images)
        atomic_write_json(self._job_file(uid), {
            "uid": uid, "title": title, "seq": time.time() if seq is None else seq, "attempts": 0,
            "created": time.time(), "request": record, "images": refs})

    def _read(self, uid: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._job_file(uid).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def started(self, uid: str) -> None:
        """A job began running: count the attempt, so one that crashes the studio is not rerun forever."""
        data = self._read(uid)
        if data is not None:
            data["attempts"] = int(data.get("attempts", 0)) + 1
            atomic_write_json(self._job_file(uid), data)

    def finish(self, uid: str) -> None:
        try:
            self._job_file(uid).unlink()
        except FileNotFoundError:
            pass
        except ValueError as exc:
            log.error("journal: not removing %s", exc)

    def reorder(self, uids: list[str]) -> None:
        """Record a new queue order (first = next to run)."""
        base = time.time()
        for i, uid in enumerate(uids):
            data = self._read(uid)
            if data is not None and data.get("seq") != base + i * 1e-3:
                data["seq"] = base + i * 1e-3
                atomic_write_json(self._job_file(uid), data)

    def pending(self) -> list[JournalJob]:
        """Jobs that were queued or running when the studio stopped, in queue order. A damaged
        entry is set aside (renamed .bad) and logged instead of stopping the start."""
        jobs = []
        if not self.jobs_dir.is_dir():
            return jobs
        for path in sorted(self.jobs_dir.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if _checked(_UID, data["uid"], "job id") != path.stem:
                    raise ValueError(f"job id {data['uid']!r} is not its file's name")
                jobs.append(JournalJob(str(data["uid"]), str(data.get("title", "")), float(data.get("seq", 0)),
                                       int(data.get("attempts", 0)), dict(data["request"]),
                                       self._get_images(data.get("images", {}))))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("journal entry %s is damaged (%s); set aside", path.name, exc)
                try:
                    path.replace(path.with_suffix(".bad"))
                except OSError:
                    pass
        return sorted(jobs, key=lambda j: j.seq)

    # -- the workspace ---------------------------------------------------------------------
    def save_workspace(self, record: dict[str, Any], images: dict[str, np.ndarray]) -> None:
        atomic_write_json(self.workspace_file, {"saved": time.time(), "state": record,
                                                "images": self._put_images(images)})

    def load_workspace(self) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
        try:
            data = json.loads(self.workspace_file.read_text(encoding="utf-8"))
            return dict(data["state"]), self._get_images(data.get("images", {}))
        except FileNotFoundError:
            return None, {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("paint workspace journal is damaged (%s); starting empty", exc)
            return None, {}

    # -- housekeeping ----------------------------------------------------------------------
    def collect_garbage(self) -> int:
        """Delete blobs no job and not the workspace refers to. Returns how many went."""
        used: set[str] = set()
        files = list(self.jobs_dir.glob("*.json")) if self.jobs_dir.is_dir() else []
        if self.workspace_file.exists():
            files.append(self.workspace_file)
        for path in files:
            try:
                used.update(json.loads(path.read_text(encoding="utf-8")).get("images", {}).values())
            except (OSError, ValueError, AttributeError):
                return 0  # unsure what is used: keep everything
        removed = 0
        if self.blobs_dir.is_dir():
            for blob in self.blobs_dir.glob("*.png"):
                if blob.stem not in used:
                    try:
                        blob.unlink()
                        removed += 1
                    except OSError:
                        pass
        return removed


# -- start-up: the paint workspace as it was ---------------------------------------------------------
STARTER_SOURCE = "bundled:starter/sd"


def default_model(catalog, preferred: str = "") -> str:
    """The paint model: the user's choice, else the bundled starter pipeline, else the first
    image-generation card ("" when the catalog has none)."""
    if preferred and preferred in catalog:
        return preferred
    cards = catalog.cards("diffusion") + catalog.cards("inpaint")
    for card in cards:
        if card.source == STARTER_SOURCE or card.id == "starter-sd":
            return card.id
    return cards[0].id if cards else ""


def restore_paint(session) -> None:
    """Fill the paint state from settings and the journal: parameters, canvas, mask, depth map,
    control images, and (in `session.paint.restored`) the jobs that had not finished."""
    from studio.core.image import StudioImage
    from studio.core.paint_requests import SCHEDULERS

    st, settings = session.paint, session.settings
    if settings.get("paint.scheduler") in SCHEDULERS:
        st.scheduler = settings.get("paint.scheduler")
    st.steps, st.cfg_scale = settings.get("paint.steps"), float(settings.get("paint.cfg_scale"))
    st.width, st.height = settings.get("paint.width"), settings.get("paint.height")
    st.preview_every = max(0, int(settings.get("paint.preview_every")))
    st.model_id = default_model(session.catalog, settings.get("paint.model"))
    journal = Journal(session.paths.journal)
    st.journal = journal
    try:
        record, images = journal.load_workspace()
        if record:
            st.apply_settings(record)
            if st.model_id not in session.catalog:
                st.model_id = default_model(session.catalog)
            canvas = images.get("canvas")
            if canvas is not None and canvas.ndim == 3 and session.app.image is None:
                session.app.image = StudioImage(canvas, "paint journal")
            if images.get("mask") is not None:
                st.mask = images["mask"] if images["mask"].ndim == 2 else images["mask"][..., 0]
            if images.get("depth") is not None:
                st.depth = images["depth"] if images["depth"].ndim == 2 else images["depth"][..., 0]
            for i in range(len(st.units)):
                arr = images.get(f"unit{i + 1}")
                if arr is not None and arr.ndim == 3:
                    st.set_unit(i, file_image=StudioImage(arr, st.units[i].file_name))
        st.restored = journal.pending()
        journal.collect_garbage()
    except Exception:  # the journal must never stop the studio from starting
        log.exception("could not restore the paint journal")
        st.restored = []


@dataclass(frozen=True, eq=False)
class SaveWorkspaceRequest:
    """CPU lane: write the paint workspace (encoding a large canvas must not stall the window)."""

    folder: str
    record: dict
    images: dict


def run_save_workspace(request: SaveWorkspaceRequest, ctx, models) -> None:
    Journal(request.folder).save_workspace(request.record, request.images)
