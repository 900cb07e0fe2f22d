"""Stable Diffusion 1.5 component configs, copied from the public model's config files
(stable-diffusion-v1-5/stable-diffusion-v1-5: unet/, vae/, text_encoder/, scheduler/config.json).

The GPU benchmark builds the full-size components from these with random weights: speed does not
depend on the weights, and nothing is fetched from a hub. `tiny()` shrinks them (same block types)
for a CPU dry run of the GPU benchmark's code path.
"""
from __future__ import annotations

import copy

UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

TEXT_ENCODER = {  # transformers CLIPTextConfig (openai/clip-vit-large-patch14's text tower)
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}

SCHEDULER = {  # PNDMScheduler (load with from_config: it ignores the keys meant for other schedulers)
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def tiny() -> tuple[dict, dict, dict]:
    """(unet, vae, text encoder) configs with the same block types, a few channels wide."""
    unet, vae, text = copy.deepcopy(UNET), copy.deepcopy(VAE), copy.deepcopy(TEXT_ENCODER)
    unet.update(block_out_channels=[32, 32, 64, 64], layers_per_block=1, cross_attention_dim=32, norm_num_groups=8)
    vae.update(block_out_channels=[16, 16, 32, 32], layers_per_block=1, norm_num_groups=8)
    text.update(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, projection_dim=32)
    return unet, vae, text
