"""Frozen requests: everything a job needs, nothing else. One per engine entry point.

Requests hold values only (images, ids, numbers), never widgets or models, so a request can be queued,
journaled and replayed, and an engine can run it on any thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.core.image import StudioImage


@dataclass(frozen=True)
class FeatureMapRequest:
    """Run a CNN on `image` and return the activations of `layer` (empty: the model's default layer)."""

    image: StudioImage
    model_id: str
    layer: str = ""
    max_channels: int = 64


@dataclass(frozen=True)
class FeatureMapResult:
    model_id: str
    model_name: str
    layer: str
    layers: tuple[str, ...]
    maps: Any  # float32 array (channels, h, w), raw activations
    input_size: tuple[int, int]  # (width, height) fed to the model
    channels_total: int
    trained: bool
    seconds: float


@dataclass(frozen=True)
class LoadModelRequest:
    model_id: str


@dataclass(frozen=True)
class LoadModelResult:
    model_id: str
    seconds: float


@dataclass(frozen=True)
class OpenImageRequest:
    """Read an image file on the CPU pool (decoding can be slow; bad files raise BadInputError)."""

    path: str


@dataclass(frozen=True)
class DeviceInfoRequest:
    """Ask the GPU lane which device it uses; also warms up the heavy imports after the window shows."""


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    label: str
    memory_mb: float
