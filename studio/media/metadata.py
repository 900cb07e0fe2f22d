"""Generation metadata: the A1111 `parameters` text every tool reads, and the studio's JSON recipe.

`parameters` is the prompt, an optional `Negative prompt: ...` line, then one line of `Key: value`
pairs; a value holding a comma, colon or newline is JSON-quoted (as A1111 does), so prompts of any
shape survive the round trip. The recipe (PNG text chunk `studio`) holds what regenerating exactly
needs: the request's every parameter, model ids with file hashes, and the input images (mask, control
images, init image) by content hash, small ones inline and all of them in `library/inputs/`.
No Qt, no torch.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import io
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import BadInputError
from studio.core.paths import inside
from studio.core.paint_requests import (PaintRequest, canonical_scheduler, output_size, request_from_record,
                                        request_to_record)

RECIPE_FORMAT, RECIPE_VERSION = "studio.paint", 1
INLINE_MAX_BYTES = 256 * 1024  # inputs whose PNG is smaller travel inside the recipe too
# A1111's own pattern for one `Key: value` pair of the settings line.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def quote(value: Any) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text and not text.startswith('"'):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text
    return text


def _num(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:g}"


# -- writing ---------------------------------------------------------------------------------
def format_parameters(prompt: str, negative: str, settings: list[tuple[str, Any]]) -> str:
    """The A1111 text: prompt, `Negative prompt:` line (when there is one), the settings line."""
    lines = [prompt.strip()]
    if negative.strip():
        lines.append(f"Negative prompt: {negative.strip()}")
    lines.append(", ".join(f"{k}: {quote(v)}" for k, v in settings if v is not None and v != ""))
    return "\n".join(lines)


def parameters_for(req: PaintRequest, seed: int, model_name: str, model_hash: str = "",
                   control_names: dict[str, str] | None = None, version: str = "studio") -> str:
    """The `parameters` text of one result of `req` made with `seed`."""
    w, h = output_size(req)
    s: list[tuple[str, Any]] = [("Steps", req.steps), ("Sampler", req.scheduler),
                                ("CFG scale", _num(req.cfg_scale)), ("Seed", seed), ("Size", f"{w}x{h}"),
                                ("Model hash", model_hash[:10] if model_hash else ""), ("Model", model_name)]
    if req.mode in ("img2img", "inpaint"):
        s.append(("Denoising strength", _num(req.strength)))
    if req.mode in ("inpaint", "outpaint"):
        s.append(("Mask blur", req.mask_blur))
    if req.mode == "inpaint" and req.only_masked:
        s += [("Inpaint area", "Only masked"), ("Masked area padding", req.masked_padding)]
    if req.mode == "outpaint":
        left, top, right, bottom = req.outpaint
        s.append(("Outpaint", f"left {left}, top {top}, right {right}, bottom {bottom}"))
    names = control_names or {}
    for i, u in enumerate(req.controls):
        s.append((f"ControlNet {i}", f"Module: {u.preprocessor}, Model: {names.get(u.model_id, u.model_id)}, "
                                    f"Weight: {_num(u.weight)}, Guidance Start: {_num(u.start)}, "
                                    f"Guidance End: {_num(u.end)}"))
    if req.loras:
        s.append(("Lora weights", ", ".join(f"{Path(lo.path).stem}: {_num(lo.weight)}" for lo in req.loras)))
    s += [("Studio mode", req.mode), ("Version", version)]
    return format_parameters(req.prompt, req.negative_prompt, s)


# -- reading ---------------------------------------------------------------------------------
@dataclass
class Parameters:
    prompt: str = ""
    negative_prompt: str = ""
    settings: dict[str, str] = field(default_factory=dict)


def parse_parameters(text: str) -> Parameters:
    """Parse A1111 `parameters` (also Forge/SD.Next/InvokeAI-in-A1111-style). Never raises on odd text:
    whatever is not a settings line is prompt."""
    out = Parameters()
    if not isinstance(text, str) or not text.strip():
        return out
    *lines, last = text.strip().replace("\r\n", "\n").split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("Negative prompt:"):
            in_negative = True
            stripped = stripped[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(stripped)
    out.prompt = "\n".join(prompt).strip()
    out.negative_prompt = "\n".join(negative).strip()
    for key, value in _PARAM.findall(last):
        out.settings[key.strip()] = unquote(value.strip())
    return out


def settings_from_parameters(p: Parameters) -> dict[str, Any]:
    """Paint settings a parsed `parameters` text provides, with the paint state's names. Values that
    cannot be read are left out (and listed under `unread`)."""
    s = p.settings
    out: dict[str, Any] = {"prompt": p.prompt, "negative_prompt": p.negative_prompt}
    unread: list[str] = []

    def take(key: str, name: str, conv) -> None:
        if key in s:
            try:
                out[name] = conv(s[key])
            except (TypeError, ValueError):
                unread.append(f"{key}: {s[key]}")

    take("Steps", "steps", int)
    take("CFG scale", "cfg_scale", float)
    take("Seed", "seed", int)
    take("Denoising strength", "strength", float)
    take("Mask blur", "mask_blur", int)
    take("Masked area padding", "masked_padding", int)
    if "Size" in s:
        m = _SIZE.match(s["Size"].strip())
        if m:
            out["width"], out["height"] = int(m.group(1)), int(m.group(2))
        else:
            unread.append(f"Size: {s['Size']}")
    if "Sampler" in s:
        name = s["Sampler"]
        if s.get("Schedule type", "").lower() == "karras" and "karras" not in name.lower():
            name += " Karras"
        sched = canonical_scheduler(name)
        if sched:
            out["scheduler"] = sched
        else:
            unread.append(f"Sampler: {s['Sampler']}")
    if s.get("Inpaint area") == "Only masked":
        out["only_masked"] = True
    if s.get("Studio mode"):
        out["mode"] = s["Studio mode"]
    for key, name in (("Model", "model_name"), ("Model hash", "model_hash")):
        if s.get(key):
            out[name] = s[key]
    if unread:
        out["unread"] = unread
    return out


# -- recipe ----------------------------------------------------------------------------------
def array_sha256(arr: np.ndarray) -> str:
    a = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{a.dtype}{a.shape}".encode("ascii"))
    h.update(a.tobytes())
    return h.hexdigest()


def encode_png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        if img.mode not in ("L", "RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        return np.asarray(img).copy()


def store_inputs(images: dict[str, np.ndarray], library: Path | None) -> dict[str, dict[str, Any]]:
    """Write each input once to `library/inputs/<sha256>.png` (atomically) and describe it for the recipe."""
    from studio.core.atomic import atomic_write_bytes

    out = {}
    for name, arr in images.items():
        sha = array_sha256(arr)
        entry: dict[str, Any] = {"sha256": sha, "shape": list(np.shape(arr)), "file": f"inputs/{sha}.png"}
        data = None
        if library is not None:
            path = Path(library) / entry["file"]
            if not path.exists():
                data = encode_png(arr)
                atomic_write_bytes(path, data)
        if data is None:
            data = encode_png(arr)
        if len(data) <= INLINE_MAX_BYTES:
            entry["png"] = base64.b64encode(data).decode("ascii")
        out[name] = entry
    return out


def load_inputs(recipe: dict[str, Any], library: Path | None) -> dict[str, np.ndarray]:
    """The recipe's input images: inline copies first, else the library's files (hash-checked)."""
    images = {}
    for name, entry in (recipe.get("inputs") or {}).items():
        arr = None
        if entry.get("png"):
            try:
                arr = decode_png(base64.b64decode(entry["png"]))
            except (ValueError, OSError):
                arr = None
        if arr is None and library is not None and entry.get("file"):
            path = inside(library, str(entry["file"]))  # a recipe never reads outside the library
            if path.is_file():
                arr = decode_png(path.read_bytes())
        if arr is None:
            raise BadInputError(f"The recipe's {name} image is missing (it was {entry.get('file', 'inline')}); "
                                "the settings can be used, the exact inputs cannot.")
        if entry.get("sha256") and array_sha256(arr) != entry["sha256"]:
            raise BadInputError(f"The recipe's {name} image does not match its hash: it was changed.")
        images[name] = arr
    return images


def build_recipe(req: PaintRequest, seed: int, index: int, model: dict[str, Any],
                 controlnets: list[dict[str, Any]], loras: list[dict[str, Any]],
                 inputs: dict[str, dict[str, Any]], versions: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything needed to regenerate result `index` (made with `seed`) of `req` exactly."""
    rec, _ = request_to_record(req)
    for private in ("output_dir", "gallery", "low_memory"):
        rec.pop(private, None)
    return {"format": RECIPE_FORMAT, "version": RECIPE_VERSION,
            "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "seed": int(seed), "index": int(index), "request": rec, "model": model,
            "controlnets": controlnets, "loras": loras, "inputs": inputs, "versions": versions or {}}


def recipe_json(recipe: dict[str, Any]) -> str:
    return json.dumps(recipe, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def parse_recipe(text: str) -> dict[str, Any]:
    try:
        recipe = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise BadInputError("The image's studio recipe is damaged.", str(exc)) from exc
    if not isinstance(recipe, dict) or recipe.get("format") != RECIPE_FORMAT:
        raise BadInputError("The image's `studio` text is not a paint recipe.")
    if int(recipe.get("version", 0)) > RECIPE_VERSION:
        raise BadInputError("The recipe comes from a newer studio: update to regenerate it exactly.")
    return recipe


def request_from_recipe(recipe: dict[str, Any], library: Path | None) -> PaintRequest:
    """The request that regenerates this one image: its own seed, a batch of one."""
    req = request_from_record(recipe.get("request") or {}, load_inputs(recipe, library))
    return replace(req, seed=int(recipe.get("seed", req.seed)), batch_count=1)


def read_png_text(path: str | Path) -> dict[str, str]:
    """The `parameters` and `studio` text chunks of an image file (empty when it has none)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            info = dict(getattr(img, "text", {}) or {})
            info.update({k: v for k, v in img.info.items() if isinstance(v, str)})
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise BadInputError(f"“{Path(path).name}” cannot be read: {exc}", str(exc)) from exc
    return {k: info[k] for k in ("parameters", "studio") if k in info}
