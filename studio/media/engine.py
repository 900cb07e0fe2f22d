"""CPU-lane engines for media: reading images off the main thread."""
from __future__ import annotations

from studio.core.requests import OpenImageRequest
from studio.media.imageio import load_image


def run_open_image(request: OpenImageRequest, ctx, models):
    ctx.check()
    return load_image(request.path)
