"""The Qt-free ModelsController: user actions become runtime jobs; results land in ModelsState."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from studio.catalog.cards import Catalog, read_cards
from studio.catalog.requests import DownloadModelRequest, DownloadResult, ModelPolicy
from studio.core.errors import Cancelled
from studio.core.paths import StudioPaths
from studio.core.requests import LoadModelRequest
from studio.core.settings import Settings
from studio.engines import manager as manager_mod
from studio.engines.manager import ModelManager
from studio.runtime import EngineRegistry, Runtime
from studio.runtime.scheduler import CPU, GPU
from studio.state.models_state import ModelsController, ModelsState
from tests.helpers.tiny_models import card
from tests.runtime.runtime_fakes import MainLoop


class FakeDownloads:
    """Stands in for the hub: each download waits for its release (or a cancel), reporting progress."""

    def __init__(self) -> None:
        self.release: dict[str, threading.Event] = {}
        self.started: list[str] = []

    def run(self, request: DownloadModelRequest, ctx, models):
        model_id = request.card.id
        gate = self.release.setdefault(model_id, threading.Event())
        self.started.append(model_id)
        ctx.progress(0.5, f"Downloading {model_id}")
        while not gate.wait(0.01):
            if ctx.cancelled():
                raise Cancelled()
        return DownloadResult(model_id, "/nowhere", 2**20, 0.1)


@pytest.fixture
def env(tmp_path):
    loop = MainLoop()
    catalog = Catalog([card("a", "torchvision", "cnn", source="builtin:squeezenet1_1", num_classes=10),
                       card("h1", "timm", "cnn", source="hub:org/h1"),
                       card("h2", "timm", "cnn", source="hub:org/h2")])
    mgr = ModelManager(catalog, policy=ModelPolicy(device="cpu"), assets=tmp_path / "assets")
    fake = FakeDownloads()
    reg = EngineRegistry()
    manager_mod.register(reg)
    reg.register(LoadModelRequest, manager_mod.run_load, GPU)
    reg.register(DownloadModelRequest, fake.run, CPU)
    rt = Runtime(reg, mgr, loop.post, progress_interval=0.0)
    session = SimpleNamespace(models=ModelsState(), runtime=rt, catalog=catalog, paths=StudioPaths(tmp_path),
                              settings=Settings(tmp_path / "settings.json"))
    yield SimpleNamespace(session=session, loop=loop, ctl=ModelsController.of(session), mgr=mgr, fake=fake)
    for gate in fake.release.values():
        gate.set()
    rt.shutdown()


def test_refresh_load_and_unload(env):
    ctl, st, loop = env.ctl, env.session.models, env.loop
    assert ModelsController.of(env.session) is ctl
    ctl.refresh()
    loop.until(lambda: st.snapshot is not None and len(st.disk) == 3)
    assert st.device == "cpu" and st.disk["a"].state == "builtin" and st.disk["h1"].state == "not downloaded"
    ctl.load("a")
    assert st.busy == {"a": "Loading…"}
    loop.until(lambda: "a" in st.loaded)
    assert not st.busy and "loaded in" in st.message
    assert st.loaded_info("a").memory_mb > 1
    ctl.unload("a")
    loop.until(lambda: not st.loaded)


def test_errors_reach_the_state(env):
    ctl, st = env.ctl, env.session.models
    ctl.load("h1")
    env.loop.until(lambda: st.error is not None)
    assert st.error[0] == "h1 is not downloaded: open Models > Manager and press Download."
    assert not st.busy


def test_downloads_run_one_at_a_time_and_cancel(env):
    ctl, st, loop, fake = env.ctl, env.session.models, env.loop, env.fake
    ctl.download("h1")
    ctl.download("h2")
    ctl.download("h2")  # pressing twice does not queue twice
    assert st.queued == ("h2",)
    loop.until(lambda: st.downloads.get("h1", (0, ""))[0] == 0.5)
    assert fake.started == ["h1"]
    ctl.cancel_download("h1")
    loop.until(lambda: "h2" in st.downloads)
    assert "cancelled" in st.message and st.queued == ()
    fake.release.setdefault("h2", threading.Event()).set()
    loop.until(lambda: not st.downloads and "downloaded" in st.message)
    assert fake.started == ["h1", "h2"]


def test_consent_is_saved_and_reaches_the_manager(env):
    ctl, loop = env.ctl, env.loop
    ctl.set_consent("models.allow_pickle", "h1", True)
    loop.until(lambda: "h1" in env.mgr.policy.allow_pickle)
    assert Settings.load(env.session.paths.settings_file).get("models.allow_pickle") == ["h1"]
    ctl.set_setting("models.ram_budget_mb", 64)
    loop.until(lambda: env.mgr.policy.ram_budget_mb == 64)
    ctl.set_consent("models.allow_pickle", "h1", False)
    loop.until(lambda: not env.mgr.policy.allow_pickle)


def test_added_cards_are_written_and_removed(env, tmp_path):
    ctl, st, loop = env.ctl, env.session.models, env.loop
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    ctl.add_card(card("mine", "torchvision", "cnn", folder, arch="resnet18"))
    user_file = tmp_path / "models.toml"
    assert [c.id for c in read_cards(user_file)] == ["mine"]
    assert env.session.catalog.get("mine").origin == "user"
    loop.until(lambda: "mine" in st.disk)
    assert st.disk["mine"].state == "installed"
    ctl.remove("mine")
    loop.until(lambda: "mine" not in env.session.catalog)
    assert read_cards(user_file) == [] and folder.exists(), "the user's own files are never deleted"
