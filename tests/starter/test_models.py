"""Shipped starter models: standard loading calls, size budget, and small-sample quality bars."""

import numpy as np
import pytest
import torch

from studio.starter.world import LABELS, SPLITS, make_scene

MB = 1e6


def _size(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_size_budget(assets):
    total = _size(assets / "cnn") + _size(assets / "clip")
    assert total <= 12 * MB, total
    assert _size(assets / "cnn") <= 1.5 * MB
    # The whole starter pack (every shipped folder, tokenizers included) stays within 45 MB.
    assert _size(assets) <= 45 * MB, _size(assets)


def test_cnn_loads_with_timm(assets):
    import timm

    model = timm.create_model(f"local-dir:{assets / 'cnn'}", pretrained=True).eval()
    assert model.pretrained_cfg["label_names"] == LABELS
    assert model.pretrained_cfg["input_size"] == (3, 64, 64)
    assert next(model.parameters()).dtype == torch.float32
    assert "layer4" in dict(model.named_modules())  # the Grad-CAM layer
    cfg = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**cfg)
    scene = make_scene(SPLITS["test"] + 17, n_objects=1)
    from PIL import Image

    from studio.starter.train import to_tensor

    x = transform(Image.fromarray(scene.image))
    assert torch.allclose(x, to_tensor(scene.image[None], cfg["mean"], cfg["std"])[0], atol=1e-5)
    with torch.no_grad():
        feats = model.forward_features(x[None])
    assert feats.shape == (1, 128, 8, 8)


def test_clip_loads_with_transformers(assets):
    from transformers import CLIPModel, CLIPProcessor, CLIPTextModel, CLIPVisionModel

    folder = str(assets / "clip")
    model = CLIPModel.from_pretrained(folder, dtype=torch.float32).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    assert model.config.vision_config.image_size == 64 and model.config.vision_config.patch_size == 8
    assert model.config.text_config.vocab_size == 49408
    assert next(model.parameters()).dtype == torch.float32
    scene = make_scene(SPLITS["test"] + 3, n_objects=1)
    prompts = [f"a photo of a {lab}" for lab in LABELS]
    inputs = processor(text=prompts, images=[scene.image], padding=True, return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, 64, 64)
    from studio.starter.models import CLIP_MEAN, CLIP_STD
    from studio.starter.train import to_tensor

    assert torch.allclose(inputs["pixel_values"], to_tensor(scene.image[None], CLIP_MEAN, CLIP_STD), atol=1e-5)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_image.shape == (1, 40)
    # The towers load on their own too (text encoder of the tiny SD, vision tower of the tiny VLM).
    text = CLIPTextModel.from_pretrained(folder, dtype=torch.float32)
    vision = CLIPVisionModel.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        hidden = text(**processor(text=["a red circle"], return_tensors="pt")).last_hidden_state
        patches = vision(pixel_values=inputs["pixel_values"]).last_hidden_state
    assert hidden.shape[-1] == 64 and patches.shape == (1, 65, 128)


def test_quick_eval_bars(quick_eval):
    # Smaller samples than `evaluate` (200 / 150 / 200 scenes): thresholds a little below the bars.
    assert quick_eval["cnn_top1"] >= 0.92
    assert quick_eval["clip_zeroshot_top1"] >= 0.85
    assert quick_eval["clip_multilabel_f1"] >= 0.62
    assert quick_eval["clip_retrieval_r1"] >= 0.52


def test_evaluate_json_shape(quick_eval):
    import json

    from studio.starter.evaluate import BARS, format_table

    ours = [k for k in BARS if k.startswith(("cnn_", "clip_"))]
    assert ours == ["cnn_top1", "clip_zeroshot_top1", "clip_multilabel_f1", "clip_retrieval_r1"]
    for key in ours:
        assert isinstance(quick_eval[key], float), key
    assert json.loads(json.dumps(quick_eval)) == quick_eval
    table = format_table(quick_eval)
    assert all(key in table for key in ours)
    assert "MISSING" not in table
    assert "MISSING" in format_table({**quick_eval, "vlm_exact": None})


def test_cli_help(capsys):
    from studio.starter.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "evaluate" in out


def test_package_import_is_torch_free():
    import subprocess
    import sys

    code = "import sys, studio.starter, studio.starter.world, studio.starter.prompts, studio.starter.tokenizer;" \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
