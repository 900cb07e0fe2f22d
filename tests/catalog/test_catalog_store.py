"""The on-disk store: HF cache layout read without huggingface_hub, states, integrity, detection."""
from __future__ import annotations

import json
import struct

import pytest

from studio.catalog import store
from studio.catalog.cards import ModelCard
from studio.catalog.detect import detect_file, detect_folder, detect_hub_id
from studio.catalog.engine import run_disk_status, run_verify
from studio.catalog.integrity import DamagedFile, folder_problems, read_safetensors_header, verify
from studio.catalog.requests import DiskStatusRequest, VerifyModelRequest
from studio.core.context import TaskContext
from studio.core.errors import ModelError
from tests.helpers.tiny_models import hub_snapshot

REPO = "org/tiny"


def safetensors_bytes(n_floats: int = 4) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * (4 * n_floats)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    return root


@pytest.fixture
def folder(tmp_path):
    f = tmp_path / "src"
    f.mkdir()
    (f / "config.json").write_text('{"architectures": ["CLIPModel"]}')
    (f / "model.safetensors").write_bytes(safetensors_bytes())
    (f / "pytorch_model.bin").write_bytes(b"pickle!")
    return f


def hub_card(**options) -> ModelCard:
    return ModelCard("tiny", "Tiny", "clip", "transformers", f"hub:{REPO}", revision="main", options=options)


def test_hub_cache_location_follows_the_environment(monkeypatch, tmp_path):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert store.hub_cache() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert store.hub_cache() == tmp_path / "c"
    assert store.repo_dir("a/b").name == "models--a--b"


def test_hub_states_not_downloaded_partial_installed(cache, folder, tmp_path):
    card = hub_card()
    st = store.status(card, tmp_path)
    assert st.state == store.NOT_DOWNLOADED and not st.ready
    with pytest.raises(ModelError, match="not downloaded: open Models > Manager and press Download"):
        store.resolve(card, tmp_path)
    snap = hub_snapshot(cache, REPO, folder)
    st = store.status(card, tmp_path)
    assert st.state == store.INSTALLED and st.path == str(snap) and st.size_bytes > 0
    (snap / "model.safetensors").unlink()
    st = store.status(card, tmp_path)
    assert st.state == store.PARTIAL and "model.safetensors" in st.detail
    with pytest.raises(ModelError, match="partly downloaded"):
        store.resolve(card, tmp_path)


def test_pickle_files_are_not_expected_unless_allowed(cache, folder, tmp_path):
    snap = hub_snapshot(cache, REPO, folder)
    (snap / "pytorch_model.bin").unlink()
    assert store.status(hub_card(), tmp_path).state == store.INSTALLED
    assert store.status(hub_card(), tmp_path, allow_pickle=True).state == store.PARTIAL


def test_bundled_and_local_sources(tmp_path, folder):
    bundled = ModelCard("s", "Starter", "cnn", "timm", "bundled:starter/cnn")
    st = store.status(bundled, tmp_path)
    assert st.state == store.MISSING and "assets/starter/cnn" in st.detail
    with pytest.raises(ModelError, match="not installed"):
        store.resolve(bundled, tmp_path)
    (tmp_path / "starter" / "cnn").mkdir(parents=True)
    (tmp_path / "starter" / "cnn" / "config.json").write_text("{}")
    assert store.resolve(bundled, tmp_path) == tmp_path / "starter" / "cnn"
    local = ModelCard("l", "Local", "clip", "transformers", f"local:{folder}")
    assert store.status(local, tmp_path).ready
    gone = ModelCard("g", "Gone", "clip", "transformers", f"local:{tmp_path / 'nope'}")
    with pytest.raises(ModelError, match="cannot be found"):
        store.resolve(gone, tmp_path)
    assert store.status(ModelCard("b", "B", "cnn", "torchvision", "builtin:resnet18"), tmp_path).ready


def test_remove_download_whole_repo_or_only_the_cards_files(cache, folder):
    hub_snapshot(cache, REPO, folder)
    part = hub_card(allow_patterns=["config.json"])
    freed = store.remove_download(part)
    assert freed == len('{"architectures": ["CLIPModel"]}')
    snap = store.snapshot_dir(REPO)
    assert snap is not None and not (snap / "config.json").exists() and (snap / "model.safetensors").exists()
    assert store.remove_download(hub_card()) > 0
    assert not store.repo_dir(REPO).exists()


def test_safetensors_headers_catch_truncation_and_garbage(tmp_path):
    good = tmp_path / "good.safetensors"
    good.write_bytes(safetensors_bytes(8))
    assert read_safetensors_header(good)["w"]["shape"] == [8]
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(safetensors_bytes(8)[:-5])
    with pytest.raises(DamagedFile, match="truncated"):
        read_safetensors_header(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(DamagedFile, match="corrupted"):
        read_safetensors_header(junk)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(DamagedFile, match="empty or truncated"):
        read_safetensors_header(empty)


def test_folder_problems_name_what_is_missing(tmp_path):
    sd = tmp_path / "sd"
    (sd / "vae").mkdir(parents=True)
    (sd / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [None, None]}))
    (sd / "vae" / "config.json").write_text("{}")
    card = ModelCard("sd", "SD", "diffusion", "diffusers", f"local:{sd}")
    problems = folder_problems(card, sd)
    assert "the unet/ folder is missing." in problems
    assert "vae/ has a config but no weights file." in problems
    (sd / "model_index.json").write_text("{broken")
    assert any("not valid JSON" in p for p in folder_problems(card, sd))


def test_verify_hashes_against_blob_names_and_listing(cache, folder, tmp_path):
    snap = hub_snapshot(cache, REPO, folder)
    card = hub_card()
    ctx = TaskContext()
    report = run_verify(VerifyModelRequest(card, str(tmp_path)), ctx, None)
    assert report.ok and report.hashed == report.files == 3 and "intact" in report.message
    blob = (snap / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, one flipped bit
    blob.write_bytes(bytes(data))
    report = run_verify(VerifyModelRequest(card, str(tmp_path)), ctx, None)
    assert not report.ok and "model.safetensors is corrupted" in report.message
    local = ModelCard("l", "L", "clip", "transformers", f"local:{folder}")
    assert verify(local, folder).ok


def test_disk_status_engine_reports_every_card(cache, folder, tmp_path):
    cards = (hub_card(), ModelCard("b", "B", "cnn", "torchvision", "builtin:resnet18"))
    out = run_disk_status(DiskStatusRequest(cards, str(tmp_path)), TaskContext(), None)
    assert [s.state for s in out] == [store.NOT_DOWNLOADED, store.BUILTIN]


def test_detection_from_configs_and_names(tmp_path, folder):
    g = detect_folder(folder)
    assert (g.library, g.task) == ("transformers", "clip")
    sd = tmp_path / "sd"
    sd.mkdir()
    (sd / "model_index.json").write_text('{"_class_name": "StableDiffusionInpaintPipeline"}')
    assert (detect_folder(sd).library, detect_folder(sd).task) == ("diffusers", "inpaint")
    oc = tmp_path / "oc"
    oc.mkdir()
    (oc / "open_clip_config.json").write_text("{}")
    assert detect_folder(oc).library == "open_clip"
    timm_dir = tmp_path / "timm"
    timm_dir.mkdir()
    (timm_dir / "config.json").write_text('{"architecture": "vit_small_patch16_224", "num_classes": 3}')
    assert (detect_folder(timm_dir).library, detect_folder(timm_dir).task) == ("timm", "vit")
    ckpt = tmp_path / "dreamy.safetensors"
    header = json.dumps({"model.diffusion_model.input_blocks.0.0.weight":
                         {"dtype": "F16", "shape": [320, 9, 3, 3], "data_offsets": [0, 0]}}).encode()
    ckpt.write_bytes(struct.pack("<Q", len(header)) + header)
    g = detect_file(ckpt)
    assert (g.library, g.task, g.options["pipeline"]) == ("diffusers", "inpaint", "StableDiffusionInpaintPipeline")
    assert detect_file(tmp_path / "x.ckpt").options == {"pickle": True}
    assert detect_hub_id("lllyasviel/control_v11p_sd15_canny").task == "controlnet"
    assert detect_hub_id("HuggingFaceTB/SmolVLM-256M-Instruct").task == "vlm"
    assert detect_hub_id("timm/vit_base_patch16_224.augreg_in21k").task == "vit"
