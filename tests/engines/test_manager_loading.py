"""Every library loads through the manager like a real model: tiny seeded folders behind cards,
hub cards from an offline HF cache, clear errors for damaged folders, pickles and remote code."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from studio.catalog.cards import Catalog
from studio.catalog.requests import ModelPolicy
from studio.core.context import TaskContext
from studio.core.errors import ModelError
from studio.engines.manager import ModelManager
from tests.helpers import tiny_models
from tests.helpers.offline import block_network
from tests.helpers.tiny_models import card


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_models.zoo(tmp_path_factory)


def manager(*cards, assets=None, **policy) -> ModelManager:
    return ModelManager(Catalog(cards), policy=ModelPolicy(device="cpu", **policy), assets=assets)


def test_sd_pipeline_and_controlnet_view_share_every_component(tiny):
    from PIL import Image

    m = manager(card("sd", "diffusers", "diffusion", tiny.path("sd")),
                card("cn", "diffusers", "controlnet", tiny.path("controlnet")))
    ctx = TaskContext()
    sd = m.get("sd", ctx)
    assert type(sd.model).__name__ == "StableDiffusionPipeline"
    assert (sd.device, sd.dtype, sd.placement) == ("cpu", "float32", "device")
    view = m.pipeline("sd", ctx, pipeline="StableDiffusionControlNetPipeline", controlnet="cn")
    cn = m.get("cn", ctx)
    assert view.model.unet is sd.model.unet and view.model.text_encoder is sd.model.text_encoder
    assert view.model.controlnet is cn.model
    assert m.used_mb("ram") == pytest.approx(sd.memory_mb + cn.memory_mb)
    out = view.model(prompt="a cat", image=Image.new("RGB", (32, 32)), num_inference_steps=1, height=32,
                     width=32, guidance_scale=1.0, output_type="np")
    assert out.images.shape == (1, 32, 32, 3) and np.isfinite(out.images).all()
    m.unload("sd")
    assert not m.is_loaded(view.key) and m.is_loaded("cn")


def test_two_cards_on_the_same_weights_load_them_once(tiny):
    m = manager(card("sd", "diffusers", "diffusion", tiny.path("sd")),
                card("sd-again", "diffusers", "diffusion", tiny.path("sd")))
    a, b = m.get("sd"), m.get("sd-again")
    assert a.model is not b.model
    assert b.model.text_encoder is a.model.text_encoder and b.model.vae is a.model.vae
    assert m.used_mb("ram") == pytest.approx(a.memory_mb)
    assert "sd" in next(i for i in m.snapshot().loaded if i.model_id == "sd-again").shared_with


def test_a_reloaded_pipeline_reuses_its_tokenizer_until_the_folder_changes(tiny, tmp_path):
    # Building a CLIP tokenizer holds the GIL for ~50 ms: warm reloads must not pay it again.
    folder = tmp_path / "sd"
    shutil.copytree(tiny.path("sd"), folder)
    m = manager(card("sd", "diffusers", "diffusion", folder))
    first = m.get("sd").model.tokenizer
    m.unload("sd")
    assert not m.is_loaded("sd")
    again = m.get("sd").model.tokenizer
    assert again is first and again("a red circle").input_ids == first("a red circle").input_ids
    m.unload("sd")
    config = folder / "tokenizer" / "tokenizer_config.json"
    config.write_text(config.read_text(encoding="utf-8") + " ", encoding="utf-8")  # an edited folder
    assert m.get("sd").model.tokenizer is not first


def test_transformers_clip_with_processor_and_llava(tiny):
    import torch
    from PIL import Image

    m = manager(card("clip", "transformers", "clip", tiny.path("clip")),
                card("llava", "transformers", "vlm", tiny.path("llava")))
    clip = m.get("clip")
    assert type(clip.model).__name__ == "CLIPModel" and clip.processor is not None
    inputs = clip.processor(text=["a cat", "a dog"], images=Image.new("RGB", (40, 30)), return_tensors="pt",
                            padding=True)
    with torch.inference_mode():
        logits = clip.model(**inputs).logits_per_image
    assert logits.shape == (1, 2)
    llava = m.get("llava")
    assert type(llava.model).__name__ == "LlavaForConditionalGeneration"
    assert llava.model.dtype == torch.float32 and not llava.model.training


def test_open_clip_custom_config_torchvision_file_and_timm_folder(tiny):
    import torch
    from PIL import Image
    from safetensors.torch import load_file

    tv_dir = tiny.path("torchvision")
    m = manager(card("oc", "open_clip", "clip", tiny.path("open_clip")),
                card("tv", "torchvision", "cnn", tv_dir / "model.safetensors", arch="squeezenet1_1",
                     num_classes=10),
                card("timm", "timm", "cnn", tiny.path("timm")))
    oc = m.get("oc")
    with torch.inference_mode():
        img = oc.model.encode_image(oc.preprocess(Image.new("RGB", (50, 40))).unsqueeze(0))
        txt = oc.model.encode_text(oc.tokenizer(["a red square"]))
    assert img.shape == txt.shape == (1, 16)
    tv = m.get("tv")
    saved = load_file(str(tv_dir / "model.safetensors"))
    assert torch.equal(tv.model.state_dict()["features.0.weight"], saved["features.0.weight"])
    assert tv.model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    timm_entry = m.get("timm")
    assert timm_entry.model(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
    assert timm_entry.extras["data_config"]["input_size"][0] == 3


def test_hub_card_loads_from_the_hf_cache_without_network(tiny, tmp_path, monkeypatch):
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    tiny_models.hub_snapshot(cache, "org/tiny-clip", tiny.path("clip"))
    attempts = block_network(monkeypatch)
    m = manager(card("hubclip", "transformers", "clip", source="hub:org/tiny-clip"),
                card("absent", "transformers", "clip", source="hub:org/never-downloaded"))
    entry = m.get("hubclip", TaskContext())
    assert type(entry.model).__name__ == "CLIPModel" and entry.processor is not None
    with pytest.raises(ModelError) as err:
        m.get("absent")
    assert err.value.user_message == ("absent is not downloaded: open Models > Manager and press Download.")
    assert attempts == [], "loading must never touch the network"


def test_bundled_starter_folder_loads_once_it_exists(tiny, tmp_path):
    assets = tmp_path / "assets"
    starter = card("starter-cnn", "timm", "cnn", source="bundled:starter/cnn")
    m = manager(starter, assets=assets)
    with pytest.raises(ModelError, match="is not installed: the bundled folder assets/starter/cnn is missing"):
        m.get("starter-cnn")
    shutil.copytree(tiny.path("timm"), assets / "starter" / "cnn")
    assert type(m.get("starter-cnn").model).__name__ == "ResNet"


def test_damaged_weights_and_missing_folders_give_readable_errors(tiny, tmp_path):
    clip = tiny.copy("clip", tmp_path / "clip")
    weights = clip / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    sd = tiny.copy("sd", tmp_path / "sd")
    shutil.rmtree(sd / "unet")
    m = manager(card("clip", "transformers", "clip", clip), card("sd", "diffusers", "diffusion", sd))
    with pytest.raises(ModelError) as err:
        m.get("clip")
    assert "model.safetensors is truncated" in err.value.user_message
    assert err.value.user_message.startswith("clip cannot be loaded:")
    with pytest.raises(ModelError, match="the unet/ folder is missing"):
        m.get("sd")
    assert not m.loaded()


def test_library_errors_become_model_errors(tiny, tmp_path):
    broken = tiny.copy("timm", tmp_path / "timm")
    (broken / "config.json").write_text('{"architecture": "no_such_timm_model", "num_classes": 5}')
    m = manager(card("t", "timm", "cnn", broken))
    with pytest.raises(ModelError) as err:
        m.get("t")
    assert err.value.user_message.startswith("t could not be loaded:") and err.value.detail


def test_pickle_weights_need_consent(tmp_path):
    import torch
    import torchvision

    folder = tmp_path / "pickled"
    folder.mkdir()
    torch.save(torchvision.models.get_model("squeezenet1_1", weights=None, num_classes=3).state_dict(),
               folder / "model.pth")
    c = card("pk", "torchvision", "cnn", folder, arch="squeezenet1_1", num_classes=3)
    with pytest.raises(ModelError) as err:
        manager(c).get("pk")
    assert "only pickle weights (model.pth)" in err.value.user_message
    assert "allow pickle files for this model in Models > Manager" in err.value.user_message
    entry = manager(c, allow_pickle=frozenset({"pk"})).get("pk")
    assert type(entry.model).__name__ == "SqueezeNet"
    # A card that says it ships pickles only (the controlnet_aux annotators) is refused up front.
    from studio.engines.loaders import LoadSpec, check_safety

    annot = card("annot", "controlnet_aux", "preprocessor", source="hub:lllyasviel/Annotators", pickle=True)
    with pytest.raises(ModelError, match="only pickle weights"):
        check_safety(LoadSpec(annot, tmp_path, "cpu", None))
    check_safety(LoadSpec(annot, tmp_path, "cpu", None, allow_pickle=True))


def test_remote_code_needs_consent(tiny):
    c = card("rc", "transformers", "clip", tiny.path("clip"), trust_remote_code=True)
    with pytest.raises(ModelError, match="trust_remote_code"):
        manager(c).get("rc")
    assert manager(c, trust_remote_code=frozenset({"rc"})).get("rc").model is not None


def test_dtype_policy_and_keyword_adapter():
    import torch

    from studio.engines.loaders import choose_dtype, dtype_kwargs

    vlm = card("v", "transformers", "vlm", source="hub:o/v")
    cnn = card("c", "torchvision", "cnn", source="builtin:resnet18")
    assert choose_dtype(vlm, "cpu") is torch.float32
    assert choose_dtype(vlm, "cuda") is torch.float16
    assert choose_dtype(cnn, "cuda") is torch.float32
    from dataclasses import replace

    assert choose_dtype(replace(vlm, dtype="bfloat16"), "cuda") is torch.bfloat16
    assert dtype_kwargs("diffusers", torch.float16) == {"dtype": torch.float16}
    assert dtype_kwargs("transformers", torch.float16) == {"dtype": torch.float16}


def test_canny_annotator_is_builtin():
    m = manager(card("canny", "controlnet_aux", "preprocessor", source="builtin:canny"))
    entry = m.get("canny")
    out = entry.model(np.zeros((64, 64, 3), np.uint8), detect_resolution=64, image_resolution=64,
                      output_type="np")
    assert out.shape[:2] == (64, 64)
