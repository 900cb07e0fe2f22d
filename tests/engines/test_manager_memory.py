"""Memory: budgets with LRU eviction, pins held by running jobs, refusals, preflight and OOM."""
from __future__ import annotations

import gc

import pytest

from studio.catalog.cards import Catalog
from studio.catalog.requests import ConfigureModelsRequest, ModelPolicy, UnloadModelRequest
from studio.core.context import TaskContext
from studio.core.errors import ModelError
from studio.engines import loaders
from studio.engines.manager import RAM, ModelManager, oom_safe, run_configure, run_unload
from tests.helpers.tiny_models import card

# torchvision squeezenet1_1 with 10 classes: 2.8 MB of float32 weights, built in milliseconds.
SQUEEZE_MB = 2.78


def cnn(model_id: str, **options):
    return card(model_id, "torchvision", "cnn", source="builtin:squeezenet1_1", num_classes=10, **options)


def manager(budget_mb: int, *ids: str, cards=()) -> ModelManager:
    cat = Catalog([cnn(i) for i in ids] + list(cards))
    return ModelManager(cat, policy=ModelPolicy(device="cpu", ram_budget_mb=budget_mb))


def loaded(m: ModelManager) -> list[str]:
    return [e.key for e in m.loaded()]


def test_lru_eviction_keeps_the_budget():
    m = manager(7, "a", "b", "c")
    m.get("a")
    m.get("b")
    assert loaded(m) == ["a", "b"]
    m.get("c")
    assert loaded(m) == ["b", "c"], "the least recently used model goes first"
    m.get("b")
    m.get("a")
    assert loaded(m) == ["b", "a"]
    assert m.used_mb(RAM) <= 7
    assert m.get("b").memory_mb == pytest.approx(SQUEEZE_MB, rel=0.01)


def test_models_of_a_running_job_are_pinned_until_it_ends():
    m = manager(7, "a", "b", "c")
    job = TaskContext()
    m.get("a", job)
    m.get("b", job)
    assert m.is_pinned("a") and m.is_pinned("b")
    with pytest.raises(ModelError) as err:
        m.get("c", job)
    msg = err.value.user_message
    assert "needs about 3 MB of memory, but the budget is 7 MB" in msg and "Unload models" in msg
    assert loaded(m) == ["a", "b"]
    del job, err  # the job ends (its error's traceback also held the context)
    gc.collect()
    assert not m.is_pinned("a")
    m.get("c", TaskContext())
    assert loaded(m) == ["b", "c"]


def test_a_new_job_releases_the_pins_of_the_previous_one():
    m = manager(7, "a", "b", "c")
    first = TaskContext()
    m.get("a", first)
    m.get("b", first)
    second = TaskContext()  # `first` is still referenced, but the lane runs one job at a time
    m.get("c", second)
    assert loaded(m) == ["b", "c"] and m.is_pinned("c") and not m.is_pinned("b")


def test_explicit_pins_and_unload():
    m = manager(7, "a", "b", "c")
    with m.pinned("a"):
        m.get("a")
        m.get("b")
        m.get("c")
        assert loaded(m) == ["a", "c"]
    snap = run_unload(UnloadModelRequest("a"), TaskContext(), m)
    assert [i.model_id for i in snap.loaded] == ["c"]
    assert run_unload(UnloadModelRequest(""), TaskContext(), m).loaded == ()
    assert m.used_mb(RAM) == 0


def test_a_model_larger_than_the_budget_is_refused():
    m = manager(2, "a")
    with pytest.raises(ModelError, match="needs about 3 MB of memory, but the budget is 2 MB"):
        m.get("a")
    assert not m.loaded()


def test_smaller_budget_evicts_and_device_change_unloads():
    m = manager(100, "a", "b", "c")
    for i in "abc":
        m.get(i)
    snap = run_configure(ConfigureModelsRequest(ModelPolicy(device="cpu", ram_budget_mb=6)), TaskContext(), m)
    assert [i.model_id for i in snap.loaded] == ["b", "c"] and snap.ram_budget_mb == 6
    run_configure(ConfigureModelsRequest(ModelPolicy(device="auto", ram_budget_mb=6)), TaskContext(), m)
    assert not m.loaded()


def test_preflight_refuses_a_job_that_cannot_fit():
    hungry = cnn("hungry", activation_mb_per_mpix=2500)
    m = manager(12, "a", cards=[hungry])
    m.get("a")
    ctx = TaskContext()
    plan = m.preflight("hungry", ctx, width=16, height=16)
    assert plan.placement == "device" and plan.need_mb == pytest.approx(plan.weights_mb + plan.activations_mb)
    with pytest.raises(ModelError) as err:
        m.preflight("hungry", ctx, width=512, height=512, frames=4)
    msg = err.value.user_message
    assert "at 512x512, 4 frames needs about" in msg and "Try a smaller size, fewer frames" in msg
    # a job that fits after evicting the idle model does so
    m.preflight("hungry", ctx, width=40, height=40)
    assert loaded(m) == ["hungry"]
    assert m.prepare("hungry", ctx, width=16, height=16).key == "hungry"


def test_too_big_pipeline_is_offloaded_on_a_gpu():
    m = ModelManager(Catalog(), policy=ModelPolicy(device="cpu", vram_budget_mb=1000, ram_budget_mb=8000))
    m._device, m._vram_total = "cuda", 1000.0  # decide as on a 1 GB GPU, without one
    big = card("big", "diffusers", "diffusion", source="hub:o/big")
    assert m._place(big, 500) == "device"
    assert m._place(big, 4000) == "offload"
    with pytest.raises(ModelError, match="of GPU memory"):
        m._place(card("cn", "diffusers", "controlnet", source="hub:o/cn"), 4000)
    with pytest.raises(ModelError):
        m._place(big, 9000)


def test_out_of_memory_while_loading_is_caught(monkeypatch):
    import torch

    def boom(spec):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    m = manager(100, "a", cards=[card("big", "diffusers", "diffusion", source="builtin:x")])
    m.get("a")
    monkeypatch.setitem(loaders.LOADERS, "diffusers", boom)
    with pytest.raises(ModelError) as err:
        m.get("big")
    assert err.value.user_message.startswith("Out of memory while loading big.")
    assert "Tried to allocate" in err.value.detail
    assert not m.is_loaded("big") and not m.is_loaded("a"), "idle models are dropped to recover"
    assert m.get("a").model is not None, "the manager keeps working"


def test_out_of_memory_during_a_job_keeps_its_models():
    import torch

    m = manager(100, "a", "b")
    job = TaskContext()
    m.get("a")
    m.get("b", job)
    with pytest.raises(ModelError, match="Out of memory while generating"):
        with m.oom_guard("generating"):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
    assert loaded(m) == ["b"]

    def engine(request, ctx, models):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(ModelError, match="Out of memory while running this job"):
        oom_safe(engine)(None, job, m)
    with pytest.raises(ValueError):
        with m.oom_guard():
            raise ValueError("not an OOM")
    assert loaded(m) == ["b"]


def test_snapshot_describes_memory():
    m = manager(50, "a")
    job = TaskContext()
    m.get("a", job)
    snap = m.snapshot()
    assert snap.device == "cpu" and snap.label == "CPU" and snap.ram_budget_mb == 50
    (info,) = snap.loaded
    assert info.pinned and info.memory_mb == pytest.approx(SQUEEZE_MB, rel=0.01) and info.dtype == "float32"
    assert snap.ram_used_mb == pytest.approx(info.memory_mb) and snap.process_mb > 0
