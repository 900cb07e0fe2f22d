"""Explicit downloads from the Hugging Face hub into the standard HF cache, and hub look-ups.

Nothing here runs unless the user pressed Download (or Look up in the add-model dialog). Files go
where huggingface_hub puts them (HF_HUB_CACHE / HF_HOME), at the card's pinned revision, through
`snapshot_download`, which resumes interrupted files and records the file list that Verify uses.

These engines run on the CPU lane: they use no torch, and a download that takes minutes must not
hold the GPU lane, where the user's jobs keep running meanwhile. The panel starts one download at a
time, so the other CPU worker stays free for image I/O.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from studio.catalog import integrity, store
from studio.catalog.cards import ModelCard
from studio.catalog.requests import DownloadModelRequest, DownloadResult, HubInfo, HubInfoRequest
from studio.core.context import TaskContext
from studio.core.errors import Cancelled, ModelError

log = logging.getLogger(__name__)

LOGIN_HINT = ("log in with `hf auth login` (older versions: `huggingface-cli login`) or set the "
              "HF_TOKEN environment variable, then press Download again")


def _refuse_offline(force: bool = False) -> None:
    if force or store.offline_env():
        raise ModelError("Downloads are switched off: the HF_HUB_OFFLINE environment variable is set. "
                         "Start the studio without it to download models.")


def progress_class(on_bytes: Callable[[int], None], cancelled: Callable[[], bool]):
    """A tqdm stand-in for huggingface_hub's `tqdm_class`: reports byte counts (the largest of the
    byte bars, since snapshot_download feeds one aggregate bar per kind) and stops the download by
    raising Cancelled from `update` when the job is cancelled. Prints nothing."""
    byte_bars: list[Any] = []

    class _Bar:
        def __init__(self, *args: Any, total=None, initial=0, unit: str = "it", desc: str = "", **_: Any):
            self.total, self.n, self.unit, self.desc = total, 0, unit, desc or ""
            if unit == "B":
                byte_bars.append(self)
            if initial:
                self.update(initial)

        def update(self, n=1):
            if cancelled():
                raise Cancelled()
            self.n += n or 0
            if self.unit == "B":
                on_bytes(max(b.n for b in byte_bars))

        @property
        def format_dict(self) -> dict[str, Any]:
            return {"n": self.n, "total": self.total, "rate": None, "unit": self.unit}

        def __enter__(self):
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

        def __getattr__(self, name: str):
            # Any other tqdm method (close, refresh, set_description, set_postfix_str, ...) does nothing.
            if name.startswith("__"):
                raise AttributeError(name)
            return lambda *a, **k: None

    return _Bar


def _hub_error(card_name: str, repo: str, revision: str, exc: BaseException) -> ModelError:
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return ModelError(f"{card_name} is gated on Hugging Face: accept its conditions on "
                          f"https://huggingface.co/{repo} with your account, then {LOGIN_HINT}.", str(exc))
    if isinstance(exc, errors.RevisionNotFoundError):
        return ModelError(f"{card_name}: revision {revision!r} does not exist in {repo}.", str(exc))
    if isinstance(exc, errors.RepositoryNotFoundError):
        return ModelError(f"{card_name}: {repo} was not found on Hugging Face (if it is private, "
                          f"{LOGIN_HINT}).", str(exc))
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return ModelError("Downloads are switched off: HF_HUB_OFFLINE is set.", str(exc))
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        if status in (401, 403):
            return ModelError(f"Hugging Face refused {repo} (HTTP {status}): {LOGIN_HINT}.", str(exc))
        return ModelError(f"Hugging Face answered HTTP {status} for {repo}; try again later.", str(exc))
    return ModelError(f"Could not reach huggingface.co to download {card_name} ({type(exc).__name__}). "
                      "Check the connection and press Download again: finished files are kept and "
                      "an interrupted file resumes.", str(exc))


def download(card: ModelCard, allow_pickle: bool, ctx: TaskContext) -> DownloadResult:
    if not card.is_hub:
        raise ModelError(f"{card.name} is not a hub model: there is nothing to download.")
    _refuse_offline()
    import huggingface_hub as hf

    repo, revision = card.source_ref, store.revision_of(card)
    allow, ignore = store.patterns(card, allow_pickle)
    t0 = time.monotonic()
    ctx.progress(0.0, f"Asking Hugging Face about {card.name}…")
    try:
        info = hf.HfApi().model_info(repo, revision=revision, files_metadata=True)
    except Exception as exc:
        raise _hub_error(card.name, repo, revision, exc) from exc
    files = [s for s in (info.siblings or []) if store.wanted(s.rfilename, allow, ignore)]
    if not files:
        raise ModelError(f"{card.name}: no file of {repo} matches what the card asks for "
                         f"(allow {allow}, ignore pickles: {not allow_pickle}).")
    if info.gated and not hf.get_token():
        raise ModelError(f"{card.name} is gated on Hugging Face: accept its conditions on "
                         f"https://huggingface.co/{repo} with your account, then {LOGIN_HINT}.")
    total = sum(s.size or 0 for s in files)
    cache = store.hub_cache()
    cache.mkdir(parents=True, exist_ok=True)
    have = store.disk_size(store.repo_dir(repo)) if store.repo_dir(repo).exists() else 0
    free = shutil.disk_usage(cache).free
    if total - have > free:
        raise ModelError(f"Not enough disk space for {card.name}: it needs {(total - have) / 2**30:,.1f} GB, "
                         f"{free / 2**30:,.1f} GB are free in {cache}.")
    mb = total / 2**20

    def on_bytes(n: int) -> None:
        ctx.progress(min(0.99, n / total) if total else 0.5,
                     f"Downloading {card.name}: {n / 2**20:,.0f} of {mb:,.0f} MB")

    try:
        path = hf.snapshot_download(repo, revision=revision, allow_patterns=allow,
                                    ignore_patterns=ignore, max_workers=2,
                                    tqdm_class=progress_class(on_bytes, ctx.cancelled))
    except Cancelled:
        raise
    except Exception as exc:
        if ctx.cancelled():
            raise Cancelled() from exc
        raise _hub_error(card.name, repo, revision, exc) from exc
    problems = integrity.scan(card, Path(path)).problems
    if problems:
        raise ModelError(f"{card.name} was downloaded but is damaged: {problems[0]} Remove it in "
                         "Models > Manager and download it again.", "\n".join(problems))
    ctx.progress(1.0, f"{card.name} downloaded")
    log.info("downloaded %s (%s@%s, %.0f MB) in %.0fs", card.id, repo, revision, mb, time.monotonic() - t0)
    return DownloadResult(card.id, str(path), total, time.monotonic() - t0)


def run_download(request: DownloadModelRequest, ctx: TaskContext, models) -> DownloadResult:
    _refuse_offline(request.offline_env)
    return download(request.card, request.allow_pickle, ctx)


_PIPELINE_TASKS = {"text-to-image": "diffusion", "image-to-image": "diffusion",
                   "text-to-video": "video", "image-to-video": "video", "image-text-to-text": "vlm",
                   "visual-question-answering": "vlm", "zero-shot-image-classification": "clip",
                   "image-classification": "vit", "feature-extraction": "clip"}


def run_hub_info(request: HubInfoRequest, ctx: TaskContext, models) -> HubInfo:
    """Engine: metadata of a repo for the add-model dialog (library, task, gated, size)."""
    _refuse_offline()
    import huggingface_hub as hf

    try:
        info = hf.HfApi().model_info(request.repo_id, revision=request.revision, files_metadata=True)
    except Exception as exc:
        raise _hub_error(request.repo_id, request.repo_id, request.revision, exc) from exc
    names = tuple(s.rfilename for s in info.siblings or [])
    library = info.library_name or ""
    if "open_clip_config.json" in names:
        library = "open_clip"
    task = _PIPELINE_TASKS.get(info.pipeline_tag or "", "")
    if library == "diffusers" and any(n == "config.json" for n in names) and "model_index.json" not in names:
        task = "controlnet" if "controlnet" in request.repo_id.lower() else task
    license_ = ""
    card_data = getattr(info, "card_data", None) or getattr(info, "cardData", None)
    if card_data is not None:
        license_ = str(getattr(card_data, "license", "") or "")
    return HubInfo(request.repo_id, library, task, bool(info.gated), sum(s.size or 0 for s in info.siblings or []),
                   license_, names)
