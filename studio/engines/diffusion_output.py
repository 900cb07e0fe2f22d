"""What a generation leaves behind and shows on the way: the fast latent preview, the result PNG
with its A1111 `parameters` and JSON recipe (written the moment an image exists), the gallery row,
and the file hashes the recipe names (hashed once, cached in the gallery database).

Runs on the GPU lane; torch is imported inside functions only.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from studio.catalog import store
from studio.core.paint_requests import PaintRequest, request_to_record, result_image
from studio.core.image import StudioImage

log = logging.getLogger(__name__)

# Latent -> RGB linear maps (the community-standard approximations used by A1111 and ComfyUI
# for their live previews); the output lands roughly in [-1, 1].
SD15_FACTORS = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721),
                (-0.2120, -0.2616, -0.7177))
SD15_BIAS = (0.0, 0.0, 0.0)
SDXL_FACTORS = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
                (-0.3165, -0.2492, -0.2188))
SDXL_BIAS = (0.1084, -0.0175, -0.0011)


def latent_preview(latents, family: str = "sd", upscale: int = 8) -> np.ndarray:
    """An HxWx3 uint8 approximation of what the latents will decode to, without the VAE."""
    import torch

    x = latents[0].detach().to("cpu", torch.float32)
    if x.shape[0] == 4:
        f, b = (SDXL_FACTORS, SDXL_BIAS) if family == "sdxl" else (SD15_FACTORS, SD15_BIAS)
        rgb = torch.einsum("chw,cr->hwr", x, torch.tensor(f)) + torch.tensor(b)
        rgb = (rgb + 1.0) * 0.5
    else:  # an unusual latent space: show its first three channels, normalised
        rgb = x[:3].permute(1, 2, 0)
        rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min() + 1e-6)
    arr = (rgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()
    if upscale > 1:
        arr = np.repeat(np.repeat(arr, upscale, axis=0), upscale, axis=1)
    return np.ascontiguousarray(arr)


# -- hashes ------------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike, gallery=None) -> str:
    """sha256 of a file; an HF cache blob is named by it already, other files are hashed once and
    cached (by size and mtime) in the gallery database."""
    real = os.path.realpath(path)
    name = os.path.basename(real)
    if re.fullmatch(r"[0-9a-f]{64}", name):
        return name
    if gallery is not None:
        try:
            cached = gallery.cached_hash(real)
            if cached:
                return cached
        except Exception as exc:  # a hash cache problem must not stop a generation
            log.warning("hash cache: %s", exc)
    h = hashlib.sha256()
    with open(real, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if gallery is not None:
        try:
            gallery.store_hash(real, digest)
        except Exception as exc:
            log.warning("hash cache: %s", exc)
    return digest


def model_hashes(card, assets: Path, gallery=None) -> dict[str, str]:
    """sha256 of each weights file of a model, by its path inside the model folder."""
    if card.source_kind == "builtin":
        return {}
    try:
        path = store.resolve(card, assets)
    except Exception:
        return {}
    if path.is_file():
        return {path.name: sha256_file(path, gallery)}
    out = {}
    for f in sorted(path.rglob("*.safetensors")):
        out[f.relative_to(path).as_posix()] = sha256_file(f, gallery)
    return out


def short_hash(hashes: dict[str, str]) -> str:
    """A1111's "Model hash": the first 10 hex digits of the checkpoint's sha256 (here: the UNet's)."""
    for key in sorted(hashes):
        if key.startswith("unet/") or len(hashes) == 1:
            return hashes[key][:10]
    return next(iter(hashes.values()), "")[:10] if hashes else ""


# -- results -----------------------------------------------------------------------------------
class ResultWriter:
    """Writes each result of one request as soon as it exists: PNG (atomic) then gallery row."""

    def __init__(self, req: PaintRequest, models, base, controlnets: list) -> None:
        from studio.media.gallery import Gallery
        from studio.media.metadata import store_inputs

        self.req = req
        self.base = base
        self.library = Path(req.output_dir) if req.output_dir else None
        self.gallery = Gallery(req.gallery, self.library) if req.gallery and self.library else None
        self.model_name = base.card.name
        self.hashes: dict[str, str] = {}
        self.model_info: dict[str, Any] = {"id": base.card.id, "name": base.card.name,
                                           "source": base.card.source, "revision": base.card.revision}
        self.controlnets = [{"id": c.card.id, "name": c.card.name, "source": c.card.source}
                            for c in controlnets]
        self.loras = [{"path": lo.path, "weight": lo.weight} for lo in req.loras]
        self.control_names = {c.card.id: c.card.name for c in controlnets}
        self.inputs: dict[str, Any] = {}
        if self.library is not None:
            assets = getattr(models, "assets", Path("."))
            self.hashes = model_hashes(base.card, assets, self.gallery)
            self.model_info["hashes"] = self.hashes
            for info, entry in zip(self.controlnets, controlnets):
                info["hashes"] = model_hashes(entry.card, assets, self.gallery)
            for info in self.loras:
                if Path(info["path"]).is_file():
                    info["sha256"] = sha256_file(info["path"], self.gallery)
            _, images = request_to_record(req)
            self.inputs = store_inputs(images, self.library)

    def write(self, pixels: np.ndarray, seed: int, index: int) -> StudioImage:
        from studio.media.imageio import save_png
        from studio.media.metadata import build_recipe, parameters_for, recipe_json

        params = parameters_for(self.req, seed, self.model_name, short_hash(self.hashes), self.control_names,
                                version=_versions().get("studio", "studio"))
        if self.library is None:
            return result_image(pixels, "", seed, params, "")
        recipe = recipe_json(build_recipe(self.req, seed, index, self.model_info, self.controlnets, self.loras,
                                          self.inputs, _versions()))
        now = _dt.datetime.now()
        folder = self.library / now.strftime("%Y-%m-%d")
        uid = (self.req.uid or "job")[:8]
        path = folder / f"{now.strftime('%H%M%S')}-{uid}-{index + 1:02d}-{seed}.png"
        image = result_image(pixels, str(path), seed, params, recipe)
        save_png(image, path, {"parameters": params, "studio": recipe})
        if self.gallery is not None:
            try:
                self.gallery.add(path, params, recipe, model_id=self.base.card.id, mode=self.req.mode)
            except Exception as exc:  # the PNG is safe on disk; reindex adds it at the next start
                log.error("could not index %s in the gallery: %s", path, exc)
        return image


_VERSIONS: dict[str, str] = {}


def _versions() -> dict[str, str]:
    if not _VERSIONS:
        import diffusers
        import torch

        _VERSIONS.update({"studio": "studio", "diffusers": diffusers.__version__, "torch": torch.__version__})
    return dict(_VERSIONS)
