"""Engines: the only package that touches torch and the model libraries, always inside functions.

`register_engines` is called by the composition root; importing this package stays cheap.
"""
from __future__ import annotations


def register_engines(registry) -> None:
    from studio.core.requests import (DeviceInfoRequest, FeatureMapRequest, LoadModelRequest,
                                      OpenImageRequest)
    from studio.engines import featuremaps, manager
    from studio.media.engine import run_open_image
    from studio.runtime.scheduler import CPU, GPU

    registry = manager.OOMSafeRegistry(registry)  # out of GPU memory in any job: a ModelError with advice
    registry.register(FeatureMapRequest, featuremaps.run, GPU)
    registry.register(LoadModelRequest, manager.run_load, GPU)
    registry.register(DeviceInfoRequest, manager.run_device_info, GPU)
    registry.register(OpenImageRequest, run_open_image, CPU)
    manager.register(registry)  # model management: status, budgets, downloads, verify, remove
    from studio.engines.clip import register as register_label

    register_label(registry)  # the label workspace's CLIP engines
    from studio.engines.probes import register as register_probes

    register_probes(registry)  # the inspect workspace's probes (ViT attention, Grad-CAM, occlusion, ...)
    from studio.engines import vlm
    from studio.media import chats

    vlm.register(registry)  # the chat workspace's VLM answers (GPU lane)
    chats.register(registry)  # the chat store's image writes and conversation reads (CPU lane)
    from studio.engines import diffusion

    diffusion.register(registry)  # the paint workspace: generation, preprocessors, gallery thumbnails
    from studio.engines import video

    video.register(registry)  # the frame tape: clips, range re-render, flow, consistency, import/export
