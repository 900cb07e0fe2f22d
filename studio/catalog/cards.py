"""Model cards: what a model is, where it comes from and how it loads. Parsed from TOML, frozen."""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from studio.core.errors import BadInputError

log = logging.getLogger(__name__)

TASKS = ("cnn", "vit", "clip", "vlm", "diffusion", "controlnet", "inpaint", "motion", "video",
         "preprocessor")
LIBRARIES = ("torchvision", "timm", "open_clip", "transformers", "diffusers", "controlnet_aux")


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
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def source_kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def source_ref(self) -> str:
        return self.source.split(":", 1)[1] if ":" in self.source else ""


def card_from_dict(data: dict[str, Any]) -> ModelCard:
    try:
        card = ModelCard(
            id=str(data["id"]), name=str(data.get("name", data["id"])), task=str(data["task"]),
            library=str(data["library"]), source=str(data["source"]),
            revision=str(data.get("revision", "")), dtype=str(data.get("dtype", "auto")),
            memory_mb=int(data.get("memory_mb", 0)), license=str(data.get("license", "")),
            description=str(data.get("description", "")), trained=bool(data.get("trained", True)),
            options=dict(data.get("options", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"A model card is incomplete or malformed: {exc}", repr(data)) from exc
    if card.task not in TASKS:
        raise BadInputError(f"Model card {card.id!r} has unknown task {card.task!r}.")
    if card.library not in LIBRARIES:
        raise BadInputError(f"Model card {card.id!r} has unknown library {card.library!r}.")
    return card


class Catalog:
    def __init__(self, cards: list[ModelCard] | None = None) -> None:
        self._cards: dict[str, ModelCard] = {}
        for c in cards or []:
            self.add(c)

    @classmethod
    def from_toml(cls, *paths: Path) -> "Catalog":
        cat = cls()
        for path in paths:
            if not path.exists():
                continue
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                log.error("cannot read model catalog %s: %s", path, exc)
                continue
            for entry in data.get("model", []):
                try:
                    cat.add(card_from_dict(entry))
                except BadInputError as exc:
                    log.error("%s: %s", path, exc.user_message)
        return cat

    def add(self, card: ModelCard) -> None:
        self._cards[card.id] = card

    def get(self, model_id: str) -> ModelCard:
        try:
            return self._cards[model_id]
        except KeyError:
            raise BadInputError(f"No model called “{model_id}” is in the catalog.") from None

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._cards

    def cards(self, task: str | None = None) -> list[ModelCard]:
        return [c for c in self._cards.values() if task is None or c.task == task]
