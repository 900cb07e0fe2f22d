"""Where a card's files are on disk, whether they are complete, how big they are, and removing them.

Hub downloads live in the standard Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub, else
~/.cache/huggingface/hub) so other tools share them. Its layout is read here in plain Python
(`models--org--name/{refs,snapshots,blobs}`), without importing huggingface_hub, so the panel can
show what is installed without the heavy libraries and without any network call.
"""
from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from studio.catalog.cards import ModelCard
from studio.core.errors import ModelError

log = logging.getLogger(__name__)

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_REVISION = "main"

# Disk states of a card, as the panel shows them.
BUILTIN, INSTALLED, PARTIAL, NOT_DOWNLOADED, MISSING = (
    "builtin", "installed", "partial", "not downloaded", "missing")


@dataclass(frozen=True)
class DiskStatus:
    model_id: str
    state: str
    path: str = ""
    size_bytes: int = 0
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.state in (BUILTIN, INSTALLED)


def offline_env() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub sees it (it reads the variable once, at import)."""
    consts = sys.modules.get("huggingface_hub.constants")
    if consts is not None and getattr(consts, "HF_HUB_OFFLINE", False):
        return True
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def hub_cache() -> Path:
    """The Hugging Face hub cache folder, resolved from the environment as huggingface_hub does."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def repo_dir(repo_id: str, cache: Path | None = None) -> Path:
    return (cache or hub_cache()) / ("models--" + repo_id.replace("/", "--"))


def revision_of(card: ModelCard) -> str:
    return card.revision or DEFAULT_REVISION


def snapshot_dir(repo_id: str, revision: str = DEFAULT_REVISION, cache: Path | None = None) -> Path | None:
    """The snapshot folder of a downloaded revision, or None when that revision was never fetched."""
    root = repo_dir(repo_id, cache)
    commit = revision if COMMIT_RE.match(revision) else None
    if commit is None:
        try:
            commit = (root / "refs" / revision).read_text(encoding="utf-8").strip()
        except OSError:
            return None
    snap = root / "snapshots" / commit
    return snap if snap.is_dir() else None


def tree_listing(repo_id: str, commit: str, cache: Path | None = None) -> dict[str, dict] | None:
    """The repo's file list with sizes and LFS sha256 that huggingface_hub caches next to a snapshot
    (trees/<commit>.json, written by snapshot_download); None when absent or unreadable."""
    path = repo_dir(repo_id, cache) / "trees" / f"{commit}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        return {str(k): dict(v) for k, v in files.items()} if isinstance(files, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def patterns(card: ModelCard, allow_pickle: bool = False) -> tuple[list[str] | None, list[str]]:
    """(allow, ignore) patterns of the files a card needs: its own lists, and no pickle weights
    unless the user allowed them (a repo often carries both formats)."""
    allow = card.options.get("allow_patterns")
    ignore = list(card.options.get("ignore_patterns", []))
    if not allow_pickle and not card.needs_pickle:
        ignore += ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.pkl", "*.msgpack", "*.h5", "*.onnx",
                   "*.onnx_data", "*.tflite", "*.ot"]
    return (list(allow) if allow else None), ignore


def wanted(name: str, allow: list[str] | None, ignore: list[str]) -> bool:
    if allow is not None and not any(fnmatch.fnmatch(name, p) for p in allow):
        return False
    return not any(fnmatch.fnmatch(name, p) for p in ignore)


def expected_files(card: ModelCard, snapshot: Path, allow_pickle: bool = False) -> dict[str, dict] | None:
    """Files the card's snapshot should hold (from the cached tree listing), or None if unknown."""
    tree = tree_listing(card.source_ref, snapshot.name, Path(snapshot).parents[2])
    if tree is None:
        return None
    allow, ignore = patterns(card, allow_pickle)
    return {name: info for name, info in tree.items() if wanted(name, allow, ignore)}


def local_path(card: ModelCard, assets: Path) -> Path | None:
    """Where the card's files are (folder or single file), or None for builtin and hub-not-fetched."""
    kind, ref = card.source_kind, card.source_ref
    if kind == "bundled":
        return assets / ref
    if kind in ("local", "file"):
        return Path(ref).expanduser()
    if kind == "hub":
        return snapshot_dir(ref, revision_of(card))
    return None


def status(card: ModelCard, assets: Path, allow_pickle: bool = False) -> DiskStatus:
    """What the panel shows in its Status and On disk columns. Reads the disk, never the network."""
    kind = card.source_kind
    if kind == "builtin":
        return DiskStatus(card.id, BUILTIN, detail="built in: made from the library's architecture")
    path = local_path(card, assets)
    if kind == "hub":
        if path is None:
            return DiskStatus(card.id, NOT_DOWNLOADED, detail=f"{card.source_ref} is not downloaded yet")
        missing = missing_files(card, path, allow_pickle)
        size = disk_size(path)
        if missing:
            return DiskStatus(card.id, PARTIAL, str(path), size,
                              f"partly downloaded: {len(missing)} file(s) missing, e.g. {missing[0]}")
        return DiskStatus(card.id, INSTALLED, str(path), size, f"in the Hugging Face cache: {path}")
    assert path is not None
    if not path.exists():
        if kind == "bundled":
            return DiskStatus(card.id, MISSING, str(path),
                              detail=f"not installed: the bundled folder assets/{card.source_ref} is missing")
        return DiskStatus(card.id, MISSING, str(path), detail=f"{path} does not exist any more")
    if path.is_dir() and not any(path.iterdir()):
        return DiskStatus(card.id, MISSING, str(path), detail=f"{path} is empty")
    return DiskStatus(card.id, INSTALLED, str(path), disk_size(path), str(path))


def missing_files(card: ModelCard, snapshot: Path, allow_pickle: bool = False) -> list[str]:
    expected = expected_files(card, snapshot, allow_pickle)
    if expected is None:
        # No listing (downloaded by another tool, or an older huggingface_hub): trust what is there.
        return [] if any(snapshot.iterdir()) else ["(everything)"]
    return sorted(name for name in expected if not (snapshot / name).exists())


def resolve(card: ModelCard, assets: Path, allow_pickle: bool = False) -> Path:
    """The local folder or file to load from; ModelError with the next step when it is not there."""
    st = status(card, assets, allow_pickle)
    if st.ready:
        return Path(st.path)
    if st.state == NOT_DOWNLOADED:
        raise ModelError(f"{card.name} is not downloaded: open Models > Manager and press Download.")
    if st.state == PARTIAL:
        raise ModelError(f"{card.name} is only partly downloaded ({st.detail}): open Models > Manager "
                         "and press Download to finish it.")
    if card.source_kind == "bundled":
        raise ModelError(f"{card.name} is not installed: the bundled folder assets/{card.source_ref} "
                         "is missing (build it with `python -m studio.starter train`).")
    raise ModelError(f"{card.name} cannot be found: {st.detail}. Fix or remove its card in "
                     "Models > Manager.")


def disk_size(path: Path) -> int:
    """Bytes on disk; hub blobs shared by several snapshot links are counted once."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    seen: set[str] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            real = os.path.realpath(os.path.join(root, name))
            if real in seen:
                continue
            seen.add(real)
            try:
                total += os.stat(real).st_size
            except OSError:
                pass
    return total


def remove_download(card: ModelCard) -> int:
    """Delete a hub card's files from the HF cache; returns the bytes freed.

    A card that downloads only some files of a repo (allow_patterns, e.g. one annotator out of
    lllyasviel/Annotators) removes only those files and their blobs; otherwise the whole repo folder goes.
    """
    if not card.is_hub:
        return 0
    root = repo_dir(card.source_ref)
    if not root.exists():
        return 0
    if not card.options.get("allow_patterns"):
        size = disk_size(root)
        shutil.rmtree(root)
        return size
    allow = list(card.options["allow_patterns"])
    freed = 0
    snaps = root / "snapshots"
    for snap in (snaps.iterdir() if snaps.is_dir() else []):
        for file in [p for p in snap.rglob("*") if p.is_file() or p.is_symlink()]:
            if not wanted(file.relative_to(snap).as_posix(), allow, []):
                continue
            blob = Path(os.path.realpath(file))
            if blob != file and blob.exists() and root in blob.parents:
                freed += blob.stat().st_size
                blob.unlink()
            elif not file.is_symlink() and file.exists():
                freed += file.stat().st_size
            file.unlink(missing_ok=True)
    _prune_empty(snaps)
    if not snaps.exists() or not any(snaps.iterdir()):
        shutil.rmtree(root, ignore_errors=True)
    return freed


def _prune_empty(folder: Path) -> None:
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            sub.rmdir()
        except OSError:
            pass
