"""The public plugin API: the only part of the studio a plugin may import, and the only promise.

    from studio.plugins import api

Everything here keeps working for plugins that declare `api = "1"` in their plugin.toml; nothing
else in the studio is promised to plugins (modules, classes and functions outside this module may
change in any release). docs/plugins.md walks through writing a plugin.

What a plugin gets:

- values: `StudioImage` (an immutable HxWx3/4 uint8 image), `ModelCard`;
- requests and engines: `request` (decorator making a frozen request/result class), `TaskContext`
  (progress, previews, `check()` for cancellation), `Cancelled`, `GPU` / `CPU` lane names;
  an engine is `run(request, ctx, models) -> result`, and of `models` only
  `models.get(model_id, ctx)` (an object with `.model`, `.device`, `.card`) is promised;
- errors: `BadInputError` (bad input, shown to the user, the plugin stays on), `StudioError`;
- panels and commands receive a `Host` (the current image, status messages, the error banner,
  the clipboard, running requests);
- `Registrar`: what an optional `register` hook receives (contributions made in Python);
- `control_image`: how the studio turns a preprocessor's return value into a control image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from studio.catalog.cards import ModelCard
from studio.core.context import TaskContext
from studio.core.errors import BadInputError, Cancelled, StudioError
from studio.core.image import StudioImage
from studio.plugins.host import Host
from studio.plugins.images import control_image
from studio.plugins.registrar import Registrar

API_VERSION = "1"
GPU = "gpu"  # the single worker that owns torch: models, anything heavy
CPU = "cpu"  # the small pool for numpy, image I/O, hashing

T = TypeVar("T")

__all__ = ["API_VERSION", "BadInputError", "CPU", "Cancelled", "GPU", "Host", "ModelCard", "Registrar",
           "StudioError", "StudioImage", "TaskContext", "card", "control_image", "request", "result"]


def request(cls: type[T]) -> type[T]:
    """Make `cls` a frozen request: values only (images, ids, numbers), never widgets or models,
    so it can be queued and run on any thread. Compared by identity (arrays have no plain ==)."""
    return dataclass(frozen=True, eq=False)(cls)


result = request  # results are frozen values too


def card(**fields: Any) -> ModelCard:
    """A ModelCard from the fields of assets/models.toml (checked; BadInputError if malformed)."""
    from studio.catalog.cards import card_from_dict

    return card_from_dict(fields, origin="plugin")

