"""Model cards: what a model is, where it comes from and how it loads. Parsed from TOML, frozen.

Cards come from three places, later ones replacing earlier ones with the same id: the bundled
catalog (assets/models.toml), the user's catalog (STUDIO_HOME/models.toml, written by the add-model
dialog through `save_user_card`) and plugins (`load_catalog(..., extra_cards=...)`).
"""
from __future__ import annotations

import logging
import re
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from studio.core.atomic import atomic_write_text
from studio.core.errors import BadInputError

log = logging.getLogger(__name__)

TASKS = ("cnn", "vit", "clip", "vlm", "diffusion", "controlnet", "inpaint", "motion", "video",
         "preprocessor")
LIBRARIES = ("torchvision", "timm", "open_clip", "transformers", "diffusers", "controlnet_aux")
SOURCE_KINDS = ("bundled", "hub", "local", "file", "builtin")
DTYPES = ("auto", "float32", "float16", "bfloat16")
ORIGINS = ("catalog", "user", "plugin")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Extensions of pickle checkpoints: loading them can run arbitrary code.
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle")


@dataclass(frozen=True)
class ModelCard:
    id: str
    name: str
    task: str
    library: str
    # "bundled:<folder under assets>", "hub:<repo id>", "local:<folder>", "file:<checkpoint>",
    # or "builtin:<architecture>" (a library architecture built from its config with seeded random weights).
    source: str
    revision: str = ""
    dtype: str = "auto"
    memory_mb: int = 0
    license: str = ""
    description: str = ""
    trained: bool = True
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    origin: str = "catalog"

    @property
    def source_kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def source_ref(self) -> str:
        return self.source.split(":", 1)[1] if ":" in self.source else ""

    @property
    def is_hub(self) -> bool:
        return self.source_kind == "hub"

    @property
    def removable(self) -> bool:
        """Whether Remove has something to remove: a download, or a card the user added."""
        return self.is_hub or self.origin == "user"

    @property
    def needs_pickle(self) -> bool:
        """The card itself says its weights only exist as pickle files (e.g. the annotators)."""
        return bool(self.options.get("pickle")) or self.source_ref.lower().endswith(PICKLE_SUFFIXES)

    @property
    def wants_remote_code(self) -> bool:
        return bool(self.options.get("trust_remote_code"))


def card_from_dict(data: dict[str, Any], origin: str = "catalog") -> ModelCard:
    try:
        card = ModelCard(
            id=str(data["id"]), name=str(data.get("name", data["id"])), task=str(data["task"]),
            library=str(data["library"]), source=str(data["source"]),
            revision=str(data.get("revision", "")), dtype=str(data.get("dtype", "auto")),
            memory_mb=int(data.get("memory_mb", 0)), license=str(data.get("license", "")),
            description=str(data.get("description", "")), trained=bool(data.get("trained", True)),
            options=dict(data.get("options", {})), origin=origin,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"A model card is incomplete or malformed: {exc}", repr(data)) from exc
    validate(card)
    return card


def validate(card: ModelCard) -> None:
    """Raise BadInputError with one readable sentence when a card cannot work."""
    where = f"Model card {card.id!r}"
    if not _ID_RE.match(card.id):
        raise BadInputError(f"{where}: ids use letters, digits, '.', '_' and '-' only (at most 80).")
    if card.task not in TASKS:
        raise BadInputError(f"{where} has unknown task {card.task!r}.")
    if card.library not in LIBRARIES:
        raise BadInputError(f"{where} has unknown library {card.library!r}.")
    if card.source_kind not in SOURCE_KINDS or not card.source_ref:
        raise BadInputError(f"{where} has source {card.source!r}; use one of "
                            + ", ".join(f"{k}:..." for k in SOURCE_KINDS) + ".")
    if card.is_hub and not _REPO_RE.match(card.source_ref):
        raise BadInputError(f"{where}: {card.source_ref!r} is not a hub repo id like 'org/name'.")
    if card.dtype not in DTYPES:
        raise BadInputError(f"{where} has dtype {card.dtype!r}; use one of {', '.join(DTYPES)}.")
    if card.origin not in ORIGINS:
        raise BadInputError(f"{where} has unknown origin {card.origin!r}.")


def card_to_dict(card: ModelCard) -> dict[str, Any]:
    """The TOML table of a card, without defaults, in a stable key order."""
    out: dict[str, Any] = {"id": card.id, "name": card.name, "task": card.task,
                           "library": card.library, "source": card.source}
    defaults = ModelCard("x", "x", "cnn", "timm", "builtin:x")
    for key in ("revision", "dtype", "memory_mb", "license", "description", "trained"):
        value = getattr(card, key)
        if value != getattr(defaults, key):
            out[key] = value
    if card.options:
        out["options"] = dict(card.options)
    return out


class Catalog:
    """Cards by id. Shared by the main thread (adds user cards) and the GPU lane (reads a card per
    load): each operation is a single dict operation on frozen values, so no lock is needed."""

    def __init__(self, cards: Iterable[ModelCard] | None = None) -> None:
        self._cards: dict[str, ModelCard] = {}
        for c in cards or []:
            self.add(c)

    @classmethod
    def from_toml(cls, *paths: Path) -> "Catalog":
        """Compatibility entry point: the first file is the bundled catalog, the others the user's."""
        return load_catalog(paths)

    def add(self, card: ModelCard) -> None:
        self._cards[card.id] = card

    def remove(self, model_id: str) -> None:
        self._cards.pop(model_id, None)

    def get(self, model_id: str) -> ModelCard:
        try:
            return self._cards[model_id]
        except KeyError:
            raise BadInputError(f"No model called “{model_id}” is in the catalog.") from None

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._cards

    def __len__(self) -> int:
        return len(self._cards)

    def cards(self, task: str | None = None) -> list[ModelCard]:
        return [c for c in list(self._cards.values()) if task is None or c.task == task]


def read_cards(path: Path, origin: str = "catalog") -> list[ModelCard]:
    """Cards of one TOML file; a broken card is logged and skipped, a broken file gives none."""
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        log.error("cannot read model catalog %s: %s", path, exc)
        return []
    cards = []
    for entry in data.get("model", []):
        try:
            cards.append(card_from_dict(entry, origin))
        except BadInputError as exc:
            log.error("%s: %s", path, exc.user_message)
    return cards


def load_catalog(paths: Iterable[Path], extra_cards: Iterable[ModelCard] = ()) -> Catalog:
    """The catalog: the first path is the bundled file, later paths are user files, then plugin cards."""
    cat = Catalog()
    for i, path in enumerate(paths):
        for card in read_cards(Path(path), "catalog" if i == 0 else "user"):
            cat.add(card)
    for card in extra_cards:
        cat.add(card if card.origin != "catalog" else replace(card, origin="plugin"))
    return cat


# -- the user's catalog file ----------------------------------------------------------------
_user_file_lock = threading.Lock()


def save_user_card(path: Path, card: ModelCard) -> None:
    """Add or replace `card` in the user's models.toml, keeping the other entries as they were."""
    validate(card)
    with _user_file_lock:
        entries = [e for e in _raw_entries(path) if e.get("id") != card.id]
        entries.append(card_to_dict(card))
        atomic_write_text(path, dumps_cards(entries))


def remove_user_card(path: Path, model_id: str) -> bool:
    with _user_file_lock:
        entries = _raw_entries(path)
        kept = [e for e in entries if e.get("id") != model_id]
        if len(kept) == len(entries):
            return False
        atomic_write_text(path, dumps_cards(kept))
        return True


def _raw_entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        return list(tomllib.loads(path.read_text(encoding="utf-8")).get("model", []))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # Never overwrite a file we could not read: the user may have hand-edited it.
        raise BadInputError(f"Your model list {path} cannot be read ({exc}); fix or move it first.",
                            str(exc)) from exc


HEADER = ("# Your own model cards, written by Models > Manager > Add. Same fields as assets/models.toml;\n"
          "# edit by hand if you like (the studio reads this file at start).\n")


def dumps_cards(entries: list[dict[str, Any]]) -> str:
    parts = [HEADER]
    for entry in entries:
        parts.append("\n[[model]]\n")
        for key, value in entry.items():
            parts.append(f"{_key(key)} = {_toml_value(value)}\n")
    return "".join(parts)


def _key(key: str) -> str:
    return key if re.match(r"^[A-Za-z0-9_-]+$", key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                   .replace("\t", "\\t").replace("\r", "\\r"))
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise BadInputError(f"Cannot write {value!r} into a model card.")
