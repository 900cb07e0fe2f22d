"""The model manager: the one path through which every model is loaded, cached and released.

It lives on the GPU lane (a single thread), so it needs no locks. Cards come from the catalog,
files from the local store (hub cards only from the HF cache: never a download here), each library
has one loader (studio.engines.loaders). Memory: two budgets (VRAM on a GPU, RAM) with LRU eviction;
a model used by the running job is pinned; a pipeline that does not fit is offloaded to the CPU;
a job's working memory is estimated before it runs (`preflight`); out-of-memory becomes a ModelError.

Pinning needs no call from engines: every model a job gets through `get(model_id, ctx)` stays
pinned for as long as that job's TaskContext is alive (the manager holds only a weak reference).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time
import traceback
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from studio.catalog import integrity, store
from studio.catalog.cards import Catalog, ModelCard, remove_user_card
from studio.catalog.requests import (LoadedInfo, ModelPolicy, ModelsSnapshot, RemoveModelRequest,
                                     RemoveModelResult)
from studio.core.context import TaskContext
from studio.core.errors import Cancelled, ModelError, StudioError
from studio.core.paths import assets_dir
from studio.engines import memory
from studio.engines.memory import MB
from studio.runtime.scheduler import GPU

log = logging.getLogger(__name__)

VRAM, RAM = "vram", "ram"


@dataclass
class LoadedModel:
    card: ModelCard
    model: Any
    device: str
    seconds: float = 0.0
    dtype: str = ""
    placement: str = "device"  # "device", or "offload": weights in RAM, one component at a time on the GPU
    extras: dict[str, Any] = field(default_factory=dict)  # processor, tokenizer, preprocess, ...
    key: str = ""
    requires: tuple[str, ...] = ()  # entries a from_pipe view is built on
    parts: dict[int, tuple[Any, int]] = field(default_factory=dict, repr=False)

    @property
    def memory_mb(self) -> float:
        return memory.used_mb(self.parts.values())

    @property
    def processor(self):
        return self.extras.get("processor")

    @property
    def tokenizer(self):
        return self.extras.get("tokenizer")

    @property
    def preprocess(self):
        return self.extras.get("preprocess")


@dataclass(frozen=True)
class Preflight:
    model_id: str
    placement: str
    weights_mb: float
    activations_mb: float
    budget_mb: float

    @property
    def need_mb(self) -> float:
        return self.weights_mb + self.activations_mb


class ModelManager:
    def __init__(self, catalog: Catalog, device_preference: str = "auto", *,
                 policy: ModelPolicy | None = None, assets: Path | None = None) -> None:
        self.catalog = catalog
        self.policy = policy or ModelPolicy(device=device_preference)
        self.assets = Path(assets) if assets is not None else assets_dir()
        self._device: str | None = None
        self._vram_total: float | None = None
        self._loaded: "OrderedDict[str, LoadedModel]" = OrderedDict()
        self._pins: Counter[str] = Counter()
        self._job: weakref.ref | None = None
        self._job_pins: set[str] = set()
        self._shared: dict[str, weakref.ref] = {}

    # -- device and budgets ----------------------------------------------------------------
    @property
    def device_preference(self) -> str:
        return self.policy.device

    @property
    def device(self) -> str:
        if self._device is None:
            from studio.engines.device import pick_device

            self._device = pick_device(self.policy.device)
        return self._device

    def budget_mb(self, pool: str) -> float:
        if pool == VRAM:
            if self._vram_total is None:
                self._vram_total = memory.total_vram_mb(self.device)
            return memory.budget_mb(self.policy.vram_budget_mb, self._vram_total, memory.AUTO_VRAM_SHARE)
        return memory.budget_mb(self.policy.ram_budget_mb, memory.total_ram_mb(), memory.AUTO_RAM_SHARE)

    def used_mb(self, pool: str, exclude: tuple[str, ...] = ()) -> float:
        """Weights held in `pool`; a component shared by two models counts once."""
        parts: dict[int, tuple[Any, int]] = {}
        for key, e in self._loaded.items():
            if key not in exclude and self._pool(e) == pool:
                parts.update(e.parts)
        return memory.used_mb(parts.values())

    def _pool(self, entry: LoadedModel) -> str:
        return RAM if entry.device == "cpu" or entry.placement == "offload" else VRAM

    def configure(self, policy: ModelPolicy) -> None:
        """Apply the user's new choices: a new device unloads everything, smaller budgets evict."""
        old, self.policy = self.policy, policy
        if policy.device != old.device:
            self.unload_all()
            self._device = self._vram_total = None
        else:
            for pool in (VRAM, RAM):
                self._make_room(pool, 0.0)

    # -- loading ---------------------------------------------------------------------------
    def is_loaded(self, model_id: str) -> bool:
        return model_id in self._loaded

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def get(self, model_id: str, ctx: TaskContext | None = None) -> LoadedModel:
        """The loaded model for `model_id`, loading it first if needed (call on the GPU lane only).
        With a `ctx`, the model stays pinned while that job runs."""
        self._enter_job(ctx)
        entry = self._loaded.get(model_id)
        if entry is None:
            entry = self._load(self.catalog.get(model_id), ctx)
            self._loaded[model_id] = entry
        self._loaded.move_to_end(model_id)
        if ctx is not None:
            self._job_pins.add(model_id)
        return entry

    def _load(self, card: ModelCard, ctx: TaskContext | None) -> LoadedModel:
        from studio.engines import loaders

        progress = ctx.progress if ctx is not None else (lambda f, t="": None)
        progress(0.0, f"Loading {card.name}…")
        if card.library not in loaders.LOADERS:
            raise ModelError(f"The studio cannot load {card.library} models yet ({card.name}).")
        allow_pickle = card.id in self.policy.allow_pickle
        path = None if card.source_kind == "builtin" else store.resolve(card, self.assets, allow_pickle)
        files = integrity.scan(card, path) if path is not None else None
        if files is not None and files.problems:
            problems = files.problems
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise ModelError(f"{card.name} cannot be loaded: {problems[0]}{more} Download it again "
                             "or repair the folder, then press Verify.", "\n".join(problems))
        spec = loaders.LoadSpec(card, path, self.device, None, allow_pickle,
                                card.id in self.policy.trust_remote_code, progress=progress)
        loaders.check_safety(spec, *((files.safetensors, files.pickles) if files else ()))
        spec.dtype = loaders.choose_dtype(card, self.device)
        need = memory.estimate_weights_mb(card, files, memory.itemsize(spec.dtype))
        placement = self._place(card, need)
        spec.offload = placement == "offload"
        if spec.offload:
            spec.max_memory = {0: f"{int(self._room(VRAM))}MiB", "cpu": f"{int(self._room(RAM))}MiB"}
        keys = {name: f"{k}|{spec.dtype}|{placement}"
                for name, k in loaders.component_keys(card, path, files.safetensors if files else []).items()}
        spec.shared = {name: obj for name, k in keys.items() if (obj := self._shared_get(k)) is not None}
        if ctx is not None:
            ctx.check()
        t0 = time.perf_counter()
        try:
            with self.oom_guard(f"loading {card.name}"):
                loaded = loaders.LOADERS[card.library](spec)
        except (StudioError, Cancelled):
            raise
        except Exception as exc:
            raise ModelError(f"{card.name} could not be loaded: {_short(exc)}",
                             "".join(traceback.format_exception(exc))) from exc
        entry = LoadedModel(card, loaded.model, self.device, time.perf_counter() - t0,
                            loaders.dtype_name(spec.dtype), placement, loaded.extras, card.id)
        entry.parts = memory.parts_of(loaded.model)
        del loaded
        # The estimate may have been low (or absent): check again now that the real size is known.
        pool = self._pool(entry)
        held = set().union(*(e.parts for e in self._loaded.values() if self._pool(e) == pool))
        new_mb = memory.used_mb(v for pid, v in entry.parts.items() if pid not in held)
        if not self._can_fit(pool, new_mb):
            error = self._too_big(card, entry.memory_mb, pool)
            del entry
            memory.free_caches(self.device)
            raise error
        self._make_room(pool, new_mb)
        comps = getattr(entry.model, "components", None)
        for name, k in keys.items():
            obj = comps.get(name) if isinstance(comps, dict) else None
            if obj is not None:
                self._shared[k] = weakref.ref(obj)
        if spec.shared:
            log.info("%s reuses %s already in memory", card.id, ", ".join(sorted(spec.shared)))
        log.info("loaded %s on %s (%s, %s) in %.2fs, %.0f MB", card.id, entry.device, entry.dtype,
                 placement, entry.seconds, entry.memory_mb)
        return entry

    def _shared_get(self, key: str):
        ref = self._shared.get(key)
        obj = ref() if ref is not None else None
        if obj is None:
            self._shared.pop(key, None)
        return obj

    def _place(self, card: ModelCard, need_mb: float) -> str:
        """Where a model of `need_mb` goes: on the device (evicting idle models), offloaded, or refused."""
        pool = RAM if self.device == "cpu" else VRAM
        if self._can_fit(pool, need_mb):
            self._make_room(pool, need_mb)
            return "device"
        if pool == VRAM and card.library in ("diffusers", "transformers") and \
                card.task not in ("controlnet", "motion") and self._can_fit(RAM, need_mb):
            self._make_room(RAM, need_mb)
            log.info("%s does not fit in the VRAM budget: offloading to the CPU", card.id)
            return "offload"
        raise self._too_big(card, need_mb, pool)

    def _too_big(self, card: ModelCard, need_mb: float, pool: str) -> ModelError:
        where = "GPU memory" if pool == VRAM else "memory"
        return ModelError(
            f"{card.name} needs about {_size(need_mb)} of {where}, but the budget is "
            f"{_size(self.budget_mb(pool))} and models in use hold {_size(self._pinned_mb(pool))}. "
            "Unload models or raise the budget in Models > Manager.")

    def _room(self, pool: str) -> float:
        return max(0.0, self.budget_mb(pool) - self.used_mb(pool))

    # -- pins and eviction -----------------------------------------------------------------
    def _enter_job(self, ctx: TaskContext | None) -> None:
        """A new job on the lane: the previous job's pins end, even if its context is still referenced."""
        if ctx is None:
            return
        if self._job is None or self._job() is not ctx:
            self._job = weakref.ref(ctx)
            self._job_pins = set()

    def _pinned(self) -> set[str]:
        pinned = {k for k, n in self._pins.items() if n > 0}
        if self._job is not None and self._job() is not None:
            pinned |= self._job_pins
        for key in list(pinned):
            entry = self._loaded.get(key)
            if entry is not None:
                pinned.update(entry.requires)
        return pinned

    def is_pinned(self, model_id: str) -> bool:
        return model_id in self._pinned()

    @contextlib.contextmanager
    def pinned(self, *model_ids: str) -> Iterator[None]:
        """Keep models from being evicted inside the block (beyond the automatic per-job pins)."""
        self._pins.update(model_ids)
        try:
            yield
        finally:
            self._pins.subtract(model_ids)
            self._pins += Counter()  # drop zero counts

    def _pinned_mb(self, pool: str, exclude: tuple[str, ...] = ()) -> float:
        pinned = self._pinned() - set(exclude)
        return self.used_mb(pool, exclude=tuple(k for k in self._loaded if k not in pinned))

    def _can_fit(self, pool: str, need_mb: float) -> bool:
        return self._pinned_mb(pool) + need_mb <= self.budget_mb(pool)

    def _make_room(self, pool: str, need_mb: float, keep: tuple[str, ...] = ()) -> None:
        """Evict least recently used, unpinned models of `pool` until `need_mb` more fits."""
        budget = self.budget_mb(pool)
        if self.used_mb(pool) + need_mb <= budget:
            return
        pinned = self._pinned() | set(keep)
        evicted = []
        for key in list(self._loaded):
            if self.used_mb(pool) + need_mb <= budget:
                break
            entry = self._loaded.get(key)
            if entry is None or key in pinned or self._pool(entry) != pool:
                continue
            evicted += self._drop(key)
        if evicted:
            log.info("evicted %s to stay within the %s budget (%.0f MB)", ", ".join(evicted), pool, budget)
            memory.free_caches(self.device)

    def _drop(self, key: str) -> list[str]:
        """Forget an entry and the views built on it; returns the keys dropped."""
        dropped = [key] if self._loaded.pop(key, None) is not None else []
        for other in [k for k, e in self._loaded.items() if key in e.requires]:
            dropped += self._drop(other)
        return dropped

    def unload(self, model_id: str) -> None:
        if self._drop(model_id):
            self._job_pins.discard(model_id)
            memory.free_caches(self.device)

    def unload_all(self) -> None:
        self._loaded.clear()
        self._job_pins.clear()
        self._shared.clear()
        memory.free_caches(self._device or "cpu")

    # -- pipelines built on pipelines ------------------------------------------------------
    def pipeline(self, base_id: str, ctx: TaskContext | None = None, *, pipeline: str | None = None,
                 **components: str) -> LoadedModel:
        """A diffusers pipeline of class `pipeline` made with `from_pipe` from the loaded `base_id`,
        plus managed models as extra components, e.g. `pipeline(sd, ctx,
        pipeline="StableDiffusionControlNetPipeline", controlnet="controlnet-sd15-depth")`.
        Every component is shared with the base: nothing is loaded twice."""
        key = "|".join([base_id, pipeline or ""] + [f"{k}={v}" for k, v in sorted(components.items())])
        self._enter_job(ctx)
        if key not in self._loaded:
            import diffusers

            base = self.get(base_id, ctx)
            extra = {name: self.get(mid, ctx).model for name, mid in components.items()}
            cls = getattr(diffusers, pipeline) if pipeline else type(base.model)
            try:
                view = cls.from_pipe(base.model, **extra)
            except Exception as exc:
                raise ModelError(f"{base.card.name} cannot be used as a {pipeline or 'pipeline'}: "
                                 f"{_short(exc)}", "".join(traceback.format_exception(exc))) from exc
            if hasattr(view, "set_progress_bar_config"):
                view.set_progress_bar_config(disable=True)
            if base.placement == "offload":
                view.enable_model_cpu_offload(device=self.device)
            self._loaded[key] = LoadedModel(base.card, view, base.device, 0.0, base.dtype, base.placement,
                                            base.extras, key, (base_id, *components.values()))
        self._loaded.move_to_end(key)
        if ctx is not None:
            self._job_pins.add(key)
        return self._loaded[key]

    # -- jobs: preflight and out-of-memory -------------------------------------------------
    def preflight(self, model_id: str, ctx: TaskContext | None = None, *, width: int = 512,
                  height: int = 512, frames: int = 1, batch: int = 1) -> Preflight:
        """Check, before a job runs, that the model plus the job's working memory fit the budget:
        evict idle models, switch a pipeline to CPU offload, or refuse with a clear ModelError."""
        entry = self.get(model_id, ctx)
        keep = (model_id, *entry.requires)
        act = memory.activation_mb(entry.card, width, height, frames, batch,
                                   2 if entry.dtype in ("float16", "bfloat16") else 4)
        weights = self._weights_mb(entry)
        largest = max((b for _, b in entry.parts.values()), default=0) / MB
        pool = self._pool(entry)
        if entry.placement == "offload":
            if self._pinned_mb(VRAM, keep) + largest + act <= self.budget_mb(VRAM):
                self._make_room(VRAM, largest + act, keep)
                return Preflight(model_id, "offload", weights, act, self.budget_mb(VRAM))
        elif self._pinned_mb(pool, keep) + weights + act <= self.budget_mb(pool):
            self._make_room(pool, act, keep)
            return Preflight(model_id, entry.placement, weights, act, self.budget_mb(pool))
        elif (pool == VRAM and not entry.requires and hasattr(entry.model, "enable_model_cpu_offload")
              and self._pinned_mb(VRAM, keep) + largest + act <= self.budget_mb(VRAM)
              and self._pinned_mb(RAM, keep) + weights <= self.budget_mb(RAM)):
            log.info("%s: offloading to fit %.0f MB of working memory", model_id, act)
            entry.model.enable_model_cpu_offload(device=self.device)
            entry.placement = "offload"
            self._make_room(RAM, 0.0, keep)
            self._make_room(VRAM, largest + act, keep)
            return Preflight(model_id, "offload", weights, act, self.budget_mb(VRAM))
        size = f"{width}x{height}" + (f", {frames} frames" if frames > 1 else "") + \
               (f", batch {batch}" if batch > 1 else "")
        budget = self.budget_mb(VRAM if entry.placement == "offload" else pool)
        raise ModelError(
            f"{entry.card.name} at {size} needs about {_size(weights + act)} ({_size(weights)} weights + "
            f"{_size(act)} working memory), more than the {_size(budget)} budget. Try a smaller size, "
            "fewer frames or a smaller batch, unload other models, or raise the budget in Models > Manager.")

    def prepare(self, model_id: str, ctx: TaskContext | None = None, **job) -> LoadedModel:
        """`get` + `preflight`: the model, placed so that the job described by `job` fits."""
        self.preflight(model_id, ctx, **job)
        return self._loaded[model_id]

    def _weights_mb(self, entry: LoadedModel) -> float:
        parts = dict(entry.parts)
        for req in entry.requires:
            if req in self._loaded:
                parts.update(self._loaded[req].parts)
        return memory.used_mb(parts.values())

    @contextlib.contextmanager
    def oom_guard(self, what: str = "running the job") -> Iterator[None]:
        """Turn an out-of-memory error into a ModelError with advice, after freeing what can be freed."""
        try:
            yield
        except Exception as exc:
            if not memory.is_oom(exc):
                raise
            detail = f"{type(exc).__name__}: {exc}"
            exc.__traceback__ = None  # its frames hold the tensors that filled the memory
            self._recover_from_oom()
            raise ModelError(
                f"Out of memory while {what}. The studio freed its caches and keeps running: try a "
                "smaller size, fewer frames or a smaller batch, unload other models, or lower the "
                "memory budget in Models > Manager so large pipelines are offloaded.", detail) from None

    def _recover_from_oom(self) -> None:
        pinned = self._pinned()
        idle = [k for k in self._loaded if k not in pinned]
        for key in idle:
            self._drop(key)
        log.warning("out of memory: unloaded idle models %s and freed caches", idle)
        memory.free_caches(self._device or "cpu")

    # -- what the panel shows --------------------------------------------------------------
    def snapshot(self) -> ModelsSnapshot:
        from studio.engines.device import describe, memory_in_use_mb

        device = self.device
        note = ""
        if self.policy.device not in ("auto", device):
            note = f"{self.policy.device.upper()} is not available here: using {device.upper()}."
        pinned = self._pinned()
        owners: dict[int, list[str]] = {}
        for key, e in self._loaded.items():
            for pid in e.parts:
                owners.setdefault(pid, []).append(key)
        infos = []
        for key, e in self._loaded.items():
            shared = sorted({o for pid in e.parts for o in owners[pid] if o != key})
            infos.append(LoadedInfo(key, e.card.name if key == e.card.id else f"{e.card.name} (view)",
                                    e.device, e.placement, e.memory_mb, e.dtype, e.seconds,
                                    key in pinned, tuple(shared)))
        gpu = device != "cpu"
        return ModelsSnapshot(
            device=device, label=describe(device), note=note, loaded=tuple(infos),
            vram_used_mb=self.used_mb(VRAM) if gpu else 0.0,
            vram_budget_mb=self.budget_mb(VRAM) if gpu else 0.0,
            vram_total_mb=(self._vram_total or 0.0) if gpu else 0.0,
            ram_used_mb=self.used_mb(RAM), ram_budget_mb=self.budget_mb(RAM),
            ram_total_mb=memory.total_ram_mb(), process_mb=memory_in_use_mb(device))


def _size(mb: float) -> str:
    return f"{mb / 1024:,.1f} GB" if mb >= 1024 else f"{mb:,.0f} MB"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) < 300 else first[:297] + "…"


# -- engines (GPU lane) ------------------------------------------------------------------------
def run_load(request, ctx: TaskContext, models: ModelManager):
    """Engine: load a model ahead of use (Models menu, warm-up)."""
    from studio.core.requests import LoadModelResult

    entry = models.get(request.model_id, ctx)
    ctx.progress(1.0, f"{entry.card.name} is ready")
    return LoadModelResult(request.model_id, entry.seconds)


def run_unload(request, ctx: TaskContext, models: ModelManager) -> ModelsSnapshot:
    models._enter_job(ctx)
    if request.model_id:
        models.unload(request.model_id)
    else:
        models.unload_all()
    return models.snapshot()


def run_snapshot(request, ctx: TaskContext, models: ModelManager) -> ModelsSnapshot:
    models._enter_job(ctx)
    return models.snapshot()


def run_configure(request, ctx: TaskContext, models: ModelManager) -> ModelsSnapshot:
    models._enter_job(ctx)
    models.configure(request.policy)
    return models.snapshot()


def run_remove(request: RemoveModelRequest, ctx: TaskContext, models: ModelManager) -> RemoveModelResult:
    """Unload the model first (on this lane, so no job is using it), then delete its files/card."""
    card = request.card
    models._enter_job(ctx)
    models.unload(card.id)
    freed = 0
    if request.delete_download and card.is_hub:
        try:
            freed = store.remove_download(card)
        except OSError as exc:
            raise ModelError(f"Could not delete the files of {card.name}: {exc}", str(exc)) from exc
    removed = False
    if request.user_catalog and card.origin == "user":
        removed = remove_user_card(Path(request.user_catalog), card.id)
        models.catalog.remove(card.id)
    return RemoveModelResult(card.id, freed, removed, models.snapshot())


def run_device_info(request, ctx: TaskContext, models: ModelManager):
    """Engine: report the device (importing torch here, on the GPU lane, never on the main thread)."""
    from studio.core.requests import DeviceInfo
    from studio.engines.device import describe, memory_in_use_mb

    device = models.device
    return DeviceInfo(device, describe(device), memory_in_use_mb(device))


def oom_safe(engine):
    """Wrap a GPU engine so that running out of memory anywhere in it frees the caches and fails
    the job with advice (ModelError) instead of an unexpected error."""
    @functools.wraps(engine)
    def run(request, ctx: TaskContext, models):
        guard = getattr(models, "oom_guard", None)
        if guard is None:
            return engine(request, ctx, models)
        with guard("running this job"):
            return engine(request, ctx, models)

    return run


class OOMSafeRegistry:
    """An EngineRegistry view that registers every GPU-lane engine wrapped in `oom_safe`."""

    def __init__(self, registry) -> None:
        self._registry = registry

    def register(self, request_type: type, engine, lane: str = GPU) -> None:
        self._registry.register(request_type, oom_safe(engine) if lane == GPU else engine, lane)

    def __getattr__(self, name: str):
        return getattr(self._registry, name)


def register(registry) -> None:
    """Model management engines: the manager's own on the GPU lane; disk, verify and downloads on
    the CPU lane (no torch; a download must not hold the GPU lane)."""
    from studio.catalog import engine as catalog_engine
    from studio.catalog import requests as rq
    from studio.engines import downloads
    from studio.runtime.scheduler import CPU

    registry.register(rq.ModelsSnapshotRequest, run_snapshot, GPU)
    registry.register(rq.ConfigureModelsRequest, run_configure, GPU)
    registry.register(rq.UnloadModelRequest, run_unload, GPU)
    registry.register(rq.RemoveModelRequest, run_remove, GPU)
    registry.register(rq.DiskStatusRequest, catalog_engine.run_disk_status, CPU)
    registry.register(rq.VerifyModelRequest, catalog_engine.run_verify, CPU)
    registry.register(rq.DownloadModelRequest, downloads.run_download, CPU)
    registry.register(rq.HubInfoRequest, downloads.run_hub_info, CPU)
