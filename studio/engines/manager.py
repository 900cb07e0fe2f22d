"""The model manager: the one path through which every model is loaded, cached and released.

It lives on the GPU lane (a single thread), so it needs no locks. Cards come from the catalog;
each library has one loader function.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from studio.catalog.cards import Catalog, ModelCard
from studio.core.context import TaskContext
from studio.core.errors import ModelError

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    card: ModelCard
    model: Any
    device: str
    seconds: float


class ModelManager:
    def __init__(self, catalog: Catalog, device_preference: str = "auto") -> None:
        self.catalog = catalog
        self.device_preference = device_preference
        self._device: str | None = None
        self._loaded: "OrderedDict[str, LoadedModel]" = OrderedDict()

    @property
    def device(self) -> str:
        if self._device is None:
            from studio.engines.device import pick_device

            self._device = pick_device(self.device_preference)
        return self._device

    def is_loaded(self, model_id: str) -> bool:
        return model_id in self._loaded

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def get(self, model_id: str, ctx: TaskContext | None = None) -> LoadedModel:
        """The loaded model for `model_id`, loading it first if needed (call on the GPU lane only)."""
        if model_id in self._loaded:
            self._loaded.move_to_end(model_id)
            return self._loaded[model_id]
        card = self.catalog.get(model_id)
        if ctx:
            ctx.progress(0.0, f"Loading {card.name}…")
        t0 = time.perf_counter()
        try:
            model = _LOADERS[card.library](card, self.device)
        except ModelError:
            raise
        except KeyError:
            raise ModelError(f"The studio cannot load {card.library} models yet ({card.name}).") from None
        except Exception as exc:
            raise ModelError(f"{card.name} could not be loaded: {exc}") from exc
        entry = LoadedModel(card, model, self.device, time.perf_counter() - t0)
        self._loaded[model_id] = entry
        log.info("loaded %s on %s in %.2fs", model_id, entry.device, entry.seconds)
        return entry

    def unload(self, model_id: str) -> None:
        self._loaded.pop(model_id, None)

    def unload_all(self) -> None:
        self._loaded.clear()


def _load_torchvision(card: ModelCard, device: str):
    import torch
    import torchvision

    kind, ref = card.source_kind, card.source_ref
    if kind != "builtin":
        raise ModelError(f"{card.name}: torchvision weights from {kind!r} sources are not supported yet.")
    # Seeded so the "untrained" model shows the same maps every run, on every machine.
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(card.options.get("seed", 0)))
        model = torchvision.models.get_model(ref, weights=None)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.eval().to(device)


_LOADERS = {"torchvision": _load_torchvision}


def run_load(request, ctx: TaskContext, models: ModelManager):
    """Engine: load a model ahead of use (Models menu, warm-up)."""
    from studio.core.requests import LoadModelResult

    entry = models.get(request.model_id, ctx)
    return LoadModelResult(request.model_id, entry.seconds)


def run_device_info(request, ctx: TaskContext, models: ModelManager):
    """Engine: report the device (importing torch here, on the GPU lane, never on the main thread)."""
    from studio.core.requests import DeviceInfo
    from studio.engines.device import describe, memory_in_use_mb

    device = models.device
    return DeviceInfo(device, describe(device), memory_in_use_mb(device))
