"""Integrity of model files, in plain Python: safetensors headers, folder completeness, checksums.

Three levels, cheapest first: `folder_problems` (the files a library needs are there, configs parse,
safetensors headers are whole) runs before every load; `verify` (Models > Manager > Verify) also
hashes every file and compares it with what the hub published: the cache names each LFS blob by its
sha256 and each small file by its git blob id, and the tree listing saved with a download gives sizes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from studio.catalog.cards import PICKLE_SUFFIXES, ModelCard

SAFETENSORS_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                           "I8": 1, "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1,
                           "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1}
_MAX_HEADER = 100 * 2**20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
WEIGHT_SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES


class DamagedFile(Exception):
    """A file whose content cannot be what it claims; the message is one readable sentence."""


def read_safetensors_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a .safetensors file, checked against the file's size (no tensor is read)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise DamagedFile(f"{path.name} is empty or truncated ({size} bytes).")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > _MAX_HEADER or 8 + n > size:
                raise DamagedFile(f"{path.name} is not a valid safetensors file (header of {n} bytes "
                                  f"in a {size}-byte file): it is truncated or corrupted.")
            header = json.loads(fh.read(n).decode("utf-8"))
    except OSError as exc:
        raise DamagedFile(f"{path.name} cannot be read: {exc.strerror or exc}.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedFile(f"{path.name} has a corrupted safetensors header.") from exc
    if not isinstance(header, dict):
        raise DamagedFile(f"{path.name} has a corrupted safetensors header.")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = info["data_offsets"]
            end = max(end, int(stop))
        except (KeyError, TypeError, ValueError) as exc:
            raise DamagedFile(f"{path.name} has a corrupted entry for tensor {name!r}.") from exc
    if 8 + n + end > size:
        raise DamagedFile(f"{path.name} is truncated: its tensors need {8 + n + end:,} bytes but the "
                          f"file has {size:,}.")
    return header


def tensor_bytes(header: dict[str, Any], itemsize: int | None = None) -> int:
    """Bytes the tensors of a header take in memory; floats counted at `itemsize` when given."""
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        numel = 1
        for d in info.get("shape", []):
            numel *= int(d)
        dtype = info.get("dtype", "F32")
        size = SAFETENSORS_DTYPE_BYTES.get(dtype, 4)
        if itemsize is not None and dtype in ("F64", "F32", "F16", "BF16"):
            size = itemsize
        total += numel * size
    return total


def weight_files(path: Path) -> tuple[list[Path], list[Path]]:
    """(safetensors, pickle) weight files under a folder, or the file itself."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    safe = [p for p in files if p.suffix == ".safetensors"]
    pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    return safe, pickles


def _json_problem(path: Path) -> str | None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return f"{path.name} is not valid JSON (damaged or incomplete)."
    return None


def _has_weights(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in WEIGHT_SUFFIXES for p in folder.iterdir())


@dataclass
class FolderScan:
    """One pass over a model's files: what the loader, the safety check and the memory estimate need."""

    path: Path
    safetensors: list[Path]
    pickles: list[Path]
    headers: dict[Path, dict]
    problems: list[str]


CONFIG_NAMES = ("config.json", "model_index.json", "open_clip_config.json")


def scan(card: ModelCard, path: Path, all_json: bool = False) -> FolderScan:
    """Missing or damaged files that would make the load fail (each as one sentence), with the
    weight files and their safetensors headers. Cheap: reads configs and headers only; `all_json`
    also parses every other JSON file (tokenizers can be megabytes: Verify does it, loading does not)."""
    path = Path(path)
    if not path.exists():
        return FolderScan(path, [], [], {}, [f"{path} does not exist."])
    problems: list[str] = []
    if path.is_dir():
        files = sorted(Path(root) / n for root, _d, names in os.walk(path) for n in names)
        for cfg in (f for f in files if f.suffix == ".json" and (all_json or f.name in CONFIG_NAMES)):
            if cfg.stat().st_size < 8 * 2**20 and (p := _json_problem(cfg)):
                problems.append(f"{cfg.relative_to(path)}: {p}")
        problems += _layout_problems(card, path)
    else:
        files = [path]
    safe = [f for f in files if f.suffix == ".safetensors"]
    pickles = [f for f in files if f.suffix.lower() in PICKLE_SUFFIXES]
    headers = {}
    for f in safe:
        try:
            headers[f] = read_safetensors_header(f)
        except DamagedFile as exc:
            problems.append(str(exc))
    return FolderScan(path, safe, pickles, headers, problems)


def folder_problems(card: ModelCard, path: Path) -> list[str]:
    return scan(card, path, all_json=True).problems


def _layout_problems(card: ModelCard, path: Path) -> list[str]:
    lib = card.library
    if lib == "diffusers":
        index = path / "model_index.json"
        if not index.exists():
            if (path / "config.json").exists():
                return [] if _has_weights(path) else ["the folder has config.json but no weights file."]
            return ["model_index.json (or config.json) is missing: this is not a diffusers folder."]
        try:
            components = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # reported by the JSON check
        skip = set(card.options.get("skip", []))
        if card.options.get("text_encoder"):  # supplied from another folder (the starter pipelines' CLIP)
            skip.add("text_encoder")
        out = []
        for name, spec in components.items():
            if name.startswith("_") or name in skip or not isinstance(spec, list) or spec[0] is None:
                continue
            sub = path / name
            if not sub.is_dir():
                out.append(f"the {name}/ folder is missing.")
            elif (sub / "config.json").exists() and not _has_weights(sub):
                out.append(f"{name}/ has a config but no weights file.")
        return out
    if lib == "transformers":
        if not (path / "config.json").exists():
            return ["config.json is missing: this is not a transformers model folder."]
        return [] if _has_weights(path) else ["the folder has config.json but no weights file."]
    if lib == "timm":
        if not (path / "config.json").exists():
            return ["config.json is missing: this is not a timm model folder."]
        return [] if _has_weights(path) else ["the folder has config.json but no weights file."]
    if lib == "open_clip":
        if not (path / "open_clip_config.json").exists():
            return ["open_clip_config.json is missing: this is not an open_clip model folder."]
        return [] if _has_weights(path) else ["the folder has open_clip_config.json but no weights file."]
    return []


# -- full verification (hashes) --------------------------------------------------------------
@dataclass(frozen=True)
class VerifyReport:
    model_id: str
    ok: bool
    files: int
    bytes_checked: int
    problems: tuple[str, ...] = ()
    hashed: int = 0  # files whose content was compared with a published checksum

    @property
    def message(self) -> str:
        if self.ok:
            how = f", {self.hashed} checked against the hub's checksums" if self.hashed else ""
            return f"All {self.files} files are intact ({self.bytes_checked / 2**20:,.0f} MB{how})."
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"{len(self.problems)} problem(s): {self.problems[0]}{more}"


def git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1()
    h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(card: ModelCard, path: Path, expected: dict[str, dict] | None = None,
           progress: Callable[[float, str], None] | None = None,
           check: Callable[[], None] | None = None) -> VerifyReport:
    """Check every file: structure, safetensors headers, and hashes where the cache or the
    tree listing says what they must be. `check()` raises to cancel between chunks."""
    path = Path(path)
    problems = folder_problems(card, path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if expected:
        present = {f.relative_to(path).as_posix() for f in files} if path.is_dir() else set()
        problems += [f"{name} is missing." for name in sorted(expected) if name not in present]
    total = sum(f.stat().st_size for f in files) or 1
    done = hashed = 0
    for f in files:
        rel = f.relative_to(path).as_posix() if path.is_dir() else f.name
        size = f.stat().st_size
        info = (expected or {}).get(rel)
        want_size = (info or {}).get("lfs_size") or (info or {}).get("size")
        if want_size is not None and int(want_size) != size:
            problems.append(f"{rel} has {size:,} bytes, the hub says {int(want_size):,}.")
        blob = Path(os.path.realpath(f)).name
        want_sha256 = (info or {}).get("lfs_sha256") or (blob if _SHA256_RE.match(blob) else None)
        if want_sha256:
            digest = _sha256(f, lambda n: progress and progress((done + n) / total, f"Checking {rel}"), check)
            hashed += 1
            if digest != want_sha256:
                problems.append(f"{rel} is corrupted (its sha256 does not match the published one).")
        elif _SHA1_RE.match(blob) and size < 64 * 2**20:
            hashed += 1
            if git_blob_sha1(f) != blob:
                problems.append(f"{rel} is corrupted (its content does not match the hub's).")
        done += size
        if progress:
            progress(done / total, f"Checked {rel}")
        if check:
            check()
    return VerifyReport(card.id, not problems, len(files), done, tuple(problems), hashed)


def _sha256(path: Path, on_bytes: Callable[[int], Any], check: Callable[[], None] | None) -> str:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 * 2**20), b""):
            h.update(chunk)
            n += len(chunk)
            on_bytes(n)
            if check:
                check()
    return h.hexdigest()
