"""Probes of the inspect workspace: what a model sees and where it looks.

adapters   one view of torchvision / timm / transformers / open_clip models (kind, preprocessing,
           patch grid, prefix tokens, blocks, class names, forward to logits)
attention  attention capture from hooked q/k (correct under fused SDPA attention)
vit_probe  the once-per-(image, model) ViT run: attention, tokens, pos-embed similarity, top-5
cam        Grad-CAM / Grad-CAM++ for CNNs and ViTs
occlusion  occlusion sensitivity
features   layer tree, channel statistics, effective receptive field
views      numpy-only helpers the UI calls to redraw from a cached result (no torch import)

Importing this package imports neither torch nor any model library.
"""


def register(registry) -> None:
    """Register the probe engines on the GPU lane (called from `studio.engines.register_engines`)."""
    from studio.core.inspect_requests import (ChannelStatsRequest, GradCamRequest, LayerTreeRequest,
                                              OcclusionRequest, ReceptiveFieldRequest, VitProbeRequest)
    from studio.engines.probes import cam, features, occlusion, vit_probe
    from studio.runtime.scheduler import GPU

    registry.register(VitProbeRequest, vit_probe.run, GPU)
    registry.register(GradCamRequest, cam.run, GPU)
    registry.register(OcclusionRequest, occlusion.run, GPU)
    registry.register(LayerTreeRequest, features.run_layer_tree, GPU)
    registry.register(ChannelStatsRequest, features.run_channel_stats, GPU)
    registry.register(ReceptiveFieldRequest, features.run_receptive_field, GPU)
