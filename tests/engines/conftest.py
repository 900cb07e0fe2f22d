"""Fixtures for the probe engines (named probe_* so they never shadow other engine tests'):
tiny seeded models built from configs (never from a hub), a fake model manager whose `get()`
hands them out like the real one, and test images."""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from studio.catalog.cards import ModelCard  # noqa: E402
from studio.core.image import StudioImage  # noqa: E402


class FakeModels:
    """The model manager's `get(model_id, ctx)` contract, for models the test built itself."""

    def __init__(self) -> None:
        self.entries: dict[str, SimpleNamespace] = {}

    def add(self, model_id: str, model, library: str, task: str = "vit", **options) -> str:
        card = ModelCard(id=model_id, name=model_id, task=task, library=library, source="builtin:test",
                         trained=False, options=dict(options))
        self.entries[model_id] = SimpleNamespace(card=card, model=model.eval(), device="cpu")
        return model_id

    def get(self, model_id: str, ctx=None):
        return self.entries[model_id]


@pytest.fixture
def probe_models() -> FakeModels:
    return FakeModels()


@pytest.fixture
def probe_photo() -> StudioImage:
    """A seeded 48x40 RGB image: not square, so resize and crop both matter."""
    rng = np.random.default_rng(0)
    return StudioImage(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))


def _seed(seed: int = 0):
    import torch

    torch.manual_seed(seed)


def timm_vit(reg_tokens: int = 0, qk_norm: bool = False, num_classes: int = 5):
    """timm ViT, 32x32 input, 8x8 patches (4x4 grid), 2 blocks of 2 heads, fused attention on."""
    import timm

    _seed()
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                          depth=2, num_heads=2, num_classes=num_classes, reg_tokens=reg_tokens,
                          qk_norm=qk_norm).eval()
    for blk in m.blocks:
        blk.attn.fused_attn = True
    return m


def hf_vit(attn: str = "sdpa"):
    from transformers import ViTConfig, ViTForImageClassification

    _seed()
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, num_labels=4,
                    id2label={0: "circle", 1: "square", 2: "triangle", 3: "star"},
                    label2id={"circle": 0, "square": 1, "triangle": 2, "star": 3})
    m = ViTForImageClassification(cfg).eval()
    m.set_attn_implementation(attn)
    return m


def hf_clip(attn: str = "sdpa"):
    """transformers CLIPModel with a 64x64, patch-8 ViT tower (the starter CLIP's geometry)."""
    from transformers import CLIPConfig, CLIPModel

    _seed()
    cfg = CLIPConfig(text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=16, bos_token_id=0,
                                      eos_token_id=1, pad_token_id=1),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, image_size=64, patch_size=8),
                     projection_dim=16)
    m = CLIPModel(cfg).eval()
    m.set_attn_implementation(attn)
    return m


def open_clip_vit():
    from open_clip.transformer import VisionTransformer

    _seed()
    return VisionTransformer(image_size=32, patch_size=8, width=32, layers=2, heads=2, mlp_ratio=2.0,
                             output_dim=16).eval()


def tv_vit():
    """torchvision VisionTransformer (nn.MultiheadAttention blocks), 32x32, patch 8, 3 classes."""
    from torchvision.models.vision_transformer import VisionTransformer

    _seed()
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                             mlp_dim=64, num_classes=3).eval()


def left_red_cnn():
    """Hand-built CNN: channel 0 = red, channel 1 = blue (1x1 conv + ReLU); logit 0 is 10x the mean
    of channel 0 over the left half, logit 1 10x the mean of channel 1 over the right half."""
    import torch
    from torch import nn

    class LeftRed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            conv = nn.Conv2d(3, 2, 1)
            with torch.no_grad():
                conv.weight.zero_()
                conv.bias.zero_()
                conv.weight[0, 0] = 1.0
                conv.weight[1, 2] = 1.0
            self.features = nn.Sequential(conv, nn.ReLU())

        def forward(self, x):
            f = self.features(x)
            half = f.shape[-1] // 2
            left = f[:, 0, :, :half].mean(dim=(1, 2))
            right = f[:, 1, :, half:].mean(dim=(1, 2))
            return torch.stack([left, right], dim=1) * 10.0

    return LeftRed().eval()


LEFT_RED_OPTIONS = dict(input_size=32, crop_pct=1.0, resize_mode="squash", mean=[0.0, 0.0, 0.0],
                        std=[1.0, 1.0, 1.0], class_names=["red on the left", "blue on the right"])


@pytest.fixture
def probe_red_blue() -> StudioImage:
    """32x32 black image: red square rows 8-15 x cols 4-11 (left), blue square rows 16-23 x cols 20-27."""
    px = np.zeros((32, 32, 3), np.uint8)
    px[8:16, 4:12, 0] = 255
    px[16:24, 20:28, 2] = 255
    return StudioImage(px)


@pytest.fixture
def probe_kit():
    return SimpleNamespace(timm_vit=timm_vit, hf_vit=hf_vit, hf_clip=hf_clip, open_clip_vit=open_clip_vit,
                           tv_vit=tv_vit, left_red_cnn=left_red_cnn, LEFT_RED_OPTIONS=LEFT_RED_OPTIONS)
