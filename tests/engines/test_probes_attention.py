"""Attention capture equals each library's own eager attention while the model under test runs
fused attention (SDPA), and fails loudly instead of returning an empty or stale map."""
from __future__ import annotations

import copy

import pytest

from studio.core.errors import ModelError
from studio.engines.probes.adapters import adapter_for
from studio.engines.probes.attention import AttentionCapture


def _captured(probe_models, model_id, x):
    import torch

    ad = adapter_for(probe_models.get(model_id))
    with AttentionCapture(ad.blocks) as cap, torch.inference_mode():
        ad.forward(x)
        return ad, cap.maps()


def _close(ours, theirs):
    assert len(ours) == len(theirs) and len(ours) > 0
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert float((a - b.float()).abs().max()) < 1e-5


@pytest.mark.parametrize("reg_tokens,qk_norm", [(0, False), (2, True)])
def test_timm_capture_matches_eager(probe_models, probe_kit, reg_tokens, qk_norm):
    import torch

    model = probe_kit.timm_vit(reg_tokens=reg_tokens, qk_norm=qk_norm)
    assert all(b.attn.fused_attn for b in model.blocks)
    probe_models.add("vit", model, "timm")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ad, ours = _captured(probe_models, "vit", x)
    assert ad.num_prefix_tokens == 1 + reg_tokens and ad.grid == (4, 4)
    assert ours[0].shape == (1, 2, 17 + reg_tokens, 17 + reg_tokens)

    ref = copy.deepcopy(model)
    eager = []
    for b in ref.blocks:
        b.attn.fused_attn = False
        # In eval mode attn_drop is the identity applied to softmax(q k^T * scale): its input is the map.
        b.attn.attn_drop.register_forward_hook(lambda _m, inp, _o: eager.append(inp[0].detach()))
    with torch.inference_mode():
        ref(x)
    _close(ours, eager)


def test_transformers_vit_capture_matches_output_attentions(probe_models, probe_kit):
    import torch

    model = probe_kit.hf_vit("sdpa")
    assert model.config._attn_implementation == "sdpa"
    probe_models.add("hfvit", model, "transformers")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    _ad, ours = _captured(probe_models, "hfvit", x)
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("eager")
    with torch.inference_mode():
        eager = ref(pixel_values=x, output_attentions=True).attentions
    _close(ours, eager)


def test_transformers_clip_tower_capture_matches_output_attentions(probe_models, probe_kit):
    import torch

    model = probe_kit.hf_clip("sdpa")
    probe_models.add("clip", model, "transformers", task="clip")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    ad, ours = _captured(probe_models, "clip", x)
    assert ad.grid == (8, 8) and ad.patch_size == (8, 8) and not ad.has_head
    assert ad.blocks[0][0] == "vision_model.encoder.layers.0"
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("eager")
    with torch.inference_mode():
        eager = ref.vision_model(pixel_values=x, output_attentions=True).attentions
    _close(ours, eager)


def test_open_clip_capture_matches_multihead_attention_weights(probe_models, probe_kit):
    import torch

    model = probe_kit.open_clip_vit()
    probe_models.add("oc", model, "open_clip", task="clip")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    _ad, ours = _captured(probe_models, "oc", x)
    inputs = []
    handles = [b.attn.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach()))
               for b in model.transformer.resblocks]
    with torch.inference_mode():
        model(x)
        for h in handles:
            h.remove()
        eager = [b.attn(q, q, q, need_weights=True, average_attn_weights=False)[1]
                 for b, q in zip(model.transformer.resblocks, inputs)]
    _close(ours, eager)


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_capture_in_both_layouts(batch_first):
    import torch
    from open_clip.transformer import Transformer

    torch.manual_seed(5)
    tr = Transformer(width=32, layers=2, heads=4, batch_first=batch_first).eval()
    blocks = tuple((f"resblocks.{i}", b) for i, b in enumerate(tr.resblocks))
    x = torch.randn(1, 9, 32)  # the Transformer turns it sequence-first inside when batch_first=False
    inputs = []
    for _n, b in blocks:
        b.attn.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach()))
    with AttentionCapture(blocks) as cap, torch.inference_mode():
        tr(x)
        ours = cap.maps(tokens=9)
    with torch.inference_mode():
        eager = [b.attn(q, q, q, need_weights=True, average_attn_weights=False)[1] for (_n, b), q in zip(blocks, inputs)]
    _close(ours, eager)


def test_capture_that_did_not_fire_raises_instead_of_stale(probe_models, probe_kit):
    import torch

    probe_models.add("vit", probe_kit.timm_vit(), "timm")
    ad = adapter_for(probe_models.get("vit"))
    with AttentionCapture(ad.blocks) as cap:
        with torch.inference_mode():
            ad.forward(torch.zeros(1, 3, 32, 32))
        cap.maps()
        cap.reset()  # a new image: the old q/k must not be reused
        with pytest.raises(ModelError):
            cap.maps()


def test_unsupported_attention_is_a_model_error(probe_models):
    import timm

    # Swin-style windowed attention with a relative-position bias: recomputing softmax(q k^T)
    # without it would draw a wrong map, so the capture refuses.
    m = timm.create_model("beit_base_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                          depth=1, num_heads=2, num_classes=3)
    probe_models.add("beit", m, "timm")
    ad = adapter_for(probe_models.get("beit"))
    with pytest.raises(ModelError):
        AttentionCapture(ad.blocks)
