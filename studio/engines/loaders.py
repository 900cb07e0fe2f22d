"""One loader per library: turn a card and a local path into a model on a device. GPU lane only.

Loaders never download: hub cards arrive here as a local snapshot folder (the manager resolved it),
and every library call gets `local_files_only=True`. The dtype policy and the library keyword that
carries it (`dtype` vs the older `torch_dtype`) live in `choose_dtype` / `dtype_kwargs` only.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from studio.catalog import store
from studio.catalog.cards import ModelCard
from studio.catalog.integrity import weight_files
from studio.core.errors import ModelError

log = logging.getLogger(__name__)

# Small vision models stay in float32 everywhere: they are cheap, and the probes that read their
# activations feed float32 inputs. Generative models use half precision on a GPU.
FULL_PRECISION_TASKS = ("cnn", "vit", "clip", "preprocessor")
DETECTORS = {"midas": "MidasDetector", "openpose": "OpenposeDetector", "hed": "HEDdetector",
             "pidi": "PidiNetDetector", "lineart": "LineartDetector", "mlsd": "MLSDdetector",
             "normalbae": "NormalBaeDetector", "canny": "CannyDetector"}
TRANSFORMERS_AUTO = {"clip": "AutoModel", "vit": "AutoModelForImageClassification",
                     "cnn": "AutoModelForImageClassification", "vlm": "AutoModelForImageTextToText"}


@dataclass
class LoadSpec:
    card: ModelCard
    path: Path | None
    device: str
    dtype: Any
    allow_pickle: bool = False
    trust_remote_code: bool = False
    offload: bool = False
    shared: dict[str, Any] = field(default_factory=dict)  # diffusers components to reuse, by name
    max_memory: dict[Any, str] = field(default_factory=dict)
    progress: Callable[[float, str], None] = lambda f, t: None


@dataclass
class Loaded:
    model: Any
    extras: dict[str, Any] = field(default_factory=dict)


def choose_dtype(card: ModelCard, device: str):
    """The dtype policy: float32 on CPU and for small vision models; the card's dtype, else the
    device default (float16 on CUDA/MPS), for generative models on a GPU."""
    import torch

    from studio.engines.device import default_dtype

    if device == "cpu" or (card.dtype == "auto" and card.task in FULL_PRECISION_TASKS):
        return torch.float32
    if card.dtype != "auto":
        return getattr(torch, card.dtype)
    return default_dtype(device)


def dtype_kwargs(library: str, dtype) -> dict[str, Any]:
    """The keyword that carries the dtype: diffusers and transformers renamed `torch_dtype` to `dtype`."""
    if library == "diffusers":
        from diffusers.utils import deprecation_utils

        new = hasattr(deprecation_utils, "_resolve_dtype")
    else:
        import transformers

        new = _version(transformers.__version__) >= (4, 56)
    return {"dtype" if new else "torch_dtype": dtype}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


# -- safety ---------------------------------------------------------------------------------
def check_safety(spec: LoadSpec, safe: list[Path] = (), pickles: list[Path] = ()) -> None:
    """Refuse pickle-only weights and remote code unless the user consented for this model.
    `safe` / `pickles`: the weight files found (integrity.scan)."""
    card = spec.card
    if card.wants_remote_code and not spec.trust_remote_code:
        raise ModelError(f"{card.name} needs to run Python code that comes with the model "
                         "(trust_remote_code). Allow it for this model in Models > Manager only if "
                         "you trust its authors.")
    if spec.allow_pickle or spec.path is None:
        return
    if card.needs_pickle or (pickles and not safe):
        names = ", ".join(p.name for p in pickles[:3]) or Path(card.source_ref).name
        raise ModelError(f"{card.name} has only pickle weights ({names}). Pickle files can run code "
                         "when loaded, so the studio refuses them unless you allow pickle files for "
                         "this model in Models > Manager (do so only if you trust where it came from).")


@contextlib.contextmanager
def _seeded(seed: int):
    import torch

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(seed))
        yield
    finally:
        torch.random.set_rng_state(state)


def _state_dict(path: Path, weights_file: str | None, allow_pickle: bool) -> dict:
    if path.is_dir():
        safe, pickles = weight_files(path)
        chosen = path / weights_file if weights_file else (safe or pickles or [None])[0]
        if chosen is None or not Path(chosen).exists():
            raise ModelError(f"No weights file in {path}" + (f" called {weights_file}." if weights_file else "."))
        path = Path(chosen)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if not allow_pickle:
        raise ModelError(f"{path.name} is a pickle file; allow pickle files for this model to load it.")
    import torch

    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    return obj.get("state_dict", obj) if isinstance(obj, dict) else obj


# -- loaders ---------------------------------------------------------------------------------
def load_torchvision(spec: LoadSpec) -> Loaded:
    import torchvision

    card = spec.card
    arch = card.options.get("arch") or (card.source_ref if card.source_kind == "builtin" else "")
    if not arch:
        raise ModelError(f"{card.name}: set options.arch (e.g. \"resnet50\") to say which torchvision "
                         "architecture the weights belong to.")
    kwargs = {"num_classes": int(card.options["num_classes"])} if "num_classes" in card.options else {}
    # Seeded so an untrained model shows the same maps every run, on every machine.
    with _seeded(card.options.get("seed", 0)):
        model = torchvision.models.get_model(arch, weights=None, **kwargs)
    if card.source_kind != "builtin":
        spec.progress(0.3, "Reading weights…")
        state = _state_dict(spec.path, card.options.get("weights_file"), spec.allow_pickle)
        state = adapt_state_dict(state, model, card.options.get("rename", {}))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ModelError(f"{card.name}: the weights do not fit torchvision's {arch} "
                             f"({len(missing)} missing, e.g. {missing[:1]}; {len(unexpected)} unexpected, "
                             f"e.g. {unexpected[:1]}).")
    return Loaded(model.eval().to(spec.device, spec.dtype))


def adapt_state_dict(state: dict, model, rename: dict[str, str]) -> dict:
    """Rename key prefixes (e.g. timm's `head.fc.` to torchvision's `fc.`) and flatten 1x1/7x7
    convolution-shaped classifier weights into the Linear layers torchvision uses."""
    out = {}
    for key, value in state.items():
        for old, new in rename.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    target = model.state_dict()
    for key, value in out.items():
        want = target.get(key)
        if want is not None and tuple(want.shape) != tuple(value.shape) and want.numel() == value.numel():
            out[key] = value.reshape(want.shape)
    return out


def load_timm(spec: LoadSpec) -> Loaded:
    import timm

    card, path = spec.card, spec.path
    kwargs = {k: card.options[k] for k in ("num_classes",) if k in card.options}
    if card.source_kind == "builtin":
        with _seeded(card.options.get("seed", 0)):
            model = timm.create_model(card.source_ref, pretrained=False, **kwargs)
    elif path.is_dir():
        model = timm.create_model(f"local-dir:{path}", pretrained=True, **kwargs)
    else:
        arch = card.options.get("arch")
        if not arch:
            raise ModelError(f"{card.name}: a single timm weights file needs options.arch (the timm model name).")
        model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    data_config = timm.data.resolve_data_config({}, model=model)
    return Loaded(model.eval().to(spec.device, spec.dtype), {"data_config": data_config})


def load_open_clip(spec: LoadSpec) -> Loaded:
    import open_clip

    card, path = spec.card, spec.path
    precision = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[dtype_name(spec.dtype)]
    kwargs = {"force_quick_gelu": True} if card.options.get("quick_gelu") else {}
    if card.source_kind == "builtin" or (path is not None and path.is_file()):
        name = card.options.get("arch") or card.source_ref
        pretrained = str(path) if card.source_kind != "builtin" else None
    else:
        name, pretrained = f"local-dir:{path}", None
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=pretrained, device=spec.device, precision=precision,
        weights_only=True, **kwargs)
    tokenizer = open_clip.get_tokenizer(name)
    return Loaded(model.eval(), {"preprocess": preprocess, "tokenizer": tokenizer})


def load_transformers(spec: LoadSpec) -> Loaded:
    import transformers

    card, path = spec.card, spec.path
    auto = getattr(transformers, card.options.get("auto_class", TRANSFORMERS_AUTO.get(card.task, "AutoModel")))
    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": spec.trust_remote_code,
                              **dtype_kwargs("transformers", spec.dtype)}
    if not spec.allow_pickle:
        kwargs["use_safetensors"] = True
    if card.options.get("attn_implementation"):
        kwargs["attn_implementation"] = card.options["attn_implementation"]
    if spec.offload:
        kwargs.update(device_map="auto", max_memory=spec.max_memory)
    if card.task == "vlm":
        kwargs["output_loading_info"] = True
    with _quiet_transformers(bool(card.options.get("vision_tower"))):  # the tower it omits is "MISSING"
        model = auto.from_pretrained(str(path), **kwargs)
    if card.task == "vlm":
        model, info = model
        missing = sorted(info.get("missing_keys", ()))
        if card.options.get("vision_tower"):
            _inject_vision_tower(card, path, model, missing)
        elif any("vision_tower." in k for k in missing):
            raise ModelError(f"{card.name}: the weights in {path} leave out the vision tower. Set "
                             "options.vision_tower to the CLIP folder that holds it (the starter VLM uses "
                             "\"starter/clip\").", f"missing: {missing[:3]}")
    model = model.eval()
    if not spec.offload:
        model = model.to(spec.device)
    spec.progress(0.8, "Reading the processor…")
    return Loaded(model, {"processor": _processor(card, path, spec.trust_remote_code)})


def _processor(card: ModelCard, path: Path, trust: bool):
    import transformers

    names = ("AutoImageProcessor",) if card.task in ("vit", "cnn") else ("AutoProcessor", "AutoTokenizer")
    for name in names:
        try:
            return getattr(transformers, name).from_pretrained(str(path), local_files_only=True,
                                                               trust_remote_code=trust)
        except Exception as exc:  # a folder may ship weights only; engines then say what is missing
            log.info("%s: no %s in %s (%s)", card.id, name, path, exc)
    return None


def load_diffusers(spec: LoadSpec) -> Loaded:
    import diffusers

    card, path = spec.card, spec.path
    kwargs: dict[str, Any] = {"local_files_only": True, **dtype_kwargs("diffusers", spec.dtype)}
    if not spec.allow_pickle:
        kwargs["use_safetensors"] = True
    variant = card.options.get("variant")
    if variant and path.is_dir() and any(f".{variant}." in p.name for p in path.rglob("*")):
        kwargs["variant"] = variant
    cls_name = card.options.get("pipeline")
    if path.is_file():
        cls = getattr(diffusers, cls_name or "StableDiffusionPipeline")
        kwargs.pop("use_safetensors", None)
        kwargs.pop("variant", None)
        config = card.options.get("config")
        if config:
            local = store.snapshot_dir(config) if "/" in config and not os.path.isabs(config) else Path(config)
            if local is None or not Path(local).exists():
                raise ModelError(f"{card.name} needs the configuration of {config}: download that model "
                                 "first (Models > Manager), or point options.config at a diffusers folder.")
            kwargs["config"] = str(local)
        pipe = cls.from_single_file(str(path), **kwargs)
    elif card.task == "controlnet" or cls_name == "ControlNetModel":
        pipe = diffusers.ControlNetModel.from_pretrained(str(path), **kwargs)
    elif card.task == "motion" or cls_name == "MotionAdapter":
        pipe = diffusers.MotionAdapter.from_pretrained(str(path), **kwargs)
    else:
        cls = getattr(diffusers, cls_name) if cls_name else diffusers.DiffusionPipeline
        for name in card.options.get("skip", []):
            kwargs[name] = None
        if "safety_checker" in card.options.get("skip", []):
            kwargs["requires_safety_checker"] = False
        kwargs.update(spec.shared)
        if card.options.get("text_encoder") and "text_encoder" not in kwargs:
            kwargs["text_encoder"] = _shared_text_encoder(card, path, spec.dtype)
        for name, tokenizer in _cached_tokenizers(path, kwargs).items():
            kwargs[name] = tokenizer
        pipe = cls.from_pretrained(str(path), **kwargs)
    spec.progress(0.85, "Moving to the device…")
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    if spec.offload and hasattr(pipe, "enable_model_cpu_offload"):
        pipe.enable_model_cpu_offload(device=spec.device)
    elif spec.device != "cpu":  # from_pretrained already loads onto the CPU
        pipe = pipe.to(spec.device)
    if hasattr(pipe, "eval"):
        pipe.eval()
    return Loaded(pipe)


_TOKENIZERS: dict[tuple, Any] = {}  # (class, folder, file stamps) -> tokenizer, newest last
_TOKENIZER_CACHE_SIZE = 8


def _cached_tokenizers(path: Path, kwargs: dict) -> dict[str, Any]:
    """The transformers tokenizers a pipeline folder names, kept across unload and reload.

    Building a CLIP tokenizer from vocab.json + merges.txt holds the GIL for ~50 ms (measured by the
    responsiveness bench's stall watchdog): the window would stutter on every warm pipeline load.
    Tokenizers are small, never moved to a device and not modified by the studio; the key includes
    every file's size and mtime, so an edited folder loads afresh."""
    index = path / "model_index.json"
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for name, entry in entries.items():
        if name in kwargs or not isinstance(entry, list) or len(entry) != 2 or entry[0] != "transformers" \
                or not str(entry[1]).endswith(("Tokenizer", "TokenizerFast")) or not (path / name).is_dir():
            continue
        folder = path / name
        stats = [(f.name, f.stat()) for f in folder.iterdir() if f.is_file()]
        stamps = tuple(sorted((n, st.st_size, st.st_mtime_ns) for n, st in stats))
        key = (entry[1], str(folder.resolve()), stamps)
        tokenizer = _TOKENIZERS.pop(key, None)
        if tokenizer is None:
            import transformers

            tokenizer = getattr(transformers, entry[1]).from_pretrained(str(folder), local_files_only=True)
        _TOKENIZERS[key] = tokenizer
        while len(_TOKENIZERS) > _TOKENIZER_CACHE_SIZE:
            _TOKENIZERS.pop(next(iter(_TOKENIZERS)))
        out[name] = tokenizer
    return out


def _shared_folder(card: ModelCard, path: Path, option: str, what: str) -> Path:
    """The folder options[option] names: absolute, or relative to the assets root for a bundled
    card ("starter/clip"), else to the model folder's parent."""
    ref = str(card.options[option])
    if os.path.isabs(ref):
        folder = Path(ref)
    elif card.source_kind == "bundled":
        folder = path.parents[len(Path(card.source_ref).parts) - 1] / ref
    else:
        folder = path.parent / ref
    if not (folder / "config.json").exists():
        raise ModelError(f"{card.name} needs its {what} from {ref}, which is not installed.")
    return folder


def _shared_text_encoder(card: ModelCard, path: Path, dtype):
    """A pipeline folder whose model_index.json names a text_encoder it does not ship (the starter
    pipelines share the starter CLIP's text tower): options.text_encoder is a folder under the same
    assets root ("starter/clip") or an absolute path, loaded as a transformers CLIPTextModel."""
    import transformers

    folder = _shared_folder(card, path, "text_encoder", "text encoder")
    with _quiet_transformers():  # a CLIPModel folder also holds the vision tower: "unexpected" keys
        return transformers.CLIPTextModel.from_pretrained(str(folder), local_files_only=True,
                                                          **dtype_kwargs("transformers", dtype)).eval()


@contextlib.contextmanager
def _quiet_transformers(quiet: bool = True):
    """transformers' load report at error level only, for loads whose missing or extra keys are expected."""
    import transformers

    level = transformers.logging.get_verbosity()
    if quiet:
        transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)


def _inject_vision_tower(card: ModelCard, path: Path, model, missing) -> None:
    """A VLM folder whose weights omit its CLIP vision tower (the starter VLM shares the starter
    CLIP's): options.vision_tower names the CLIP folder, loaded as a CLIPVisionModel and copied into
    the model's tower. Every weight the folder lacked must be the tower's, and the tower must fit."""
    import torch
    import transformers

    inner = getattr(model, "model", model)
    tower = getattr(inner, "vision_tower", None)
    if tower is None:
        raise ModelError(f"{card.name}: options.vision_tower is set but the model has no vision tower.")
    others = [k for k in missing if "vision_tower." not in k]
    if others:
        raise ModelError(f"{card.name}: the weights in {path} are incomplete "
                         f"({len(others)} missing, e.g. {others[0]}).")
    folder = _shared_folder(card, path, "vision_tower", "vision tower")
    with _quiet_transformers():  # a CLIPModel folder also holds the text tower: "unexpected" keys
        source = transformers.CLIPVisionModel.from_pretrained(str(folder), local_files_only=True,
                                                               **dtype_kwargs("transformers", torch.float32))
    dtype = next(tower.parameters()).dtype
    try:
        tower.load_state_dict({k: v.to(dtype) for k, v in source.state_dict().items()}, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{card.name}: the vision tower in {folder} does not fit this model.", str(exc)) from exc


class Annotator:
    """A controlnet_aux detector with the networks it holds, so the manager can weigh it."""

    def __init__(self, name: str, detector: Any) -> None:
        self.name = name
        self.detector = detector
        self.components = _modules_in(detector)

    def __call__(self, *args, **kwargs):
        return self.detector(*args, **kwargs)


def _modules_in(obj: Any, depth: int = 2) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in getattr(obj, "__dict__", {}).items():
        if hasattr(value, "parameters") and hasattr(value, "to"):
            found[key] = value
        elif depth > 1:
            found.update({f"{key}.{k}": v for k, v in _modules_in(value, depth - 1).items()})
    return found


def load_controlnet_aux(spec: LoadSpec) -> Loaded:
    import controlnet_aux

    card = spec.card
    name = card.options.get("detector") or card.source_ref
    if name not in DETECTORS:
        raise ModelError(f"{card.name}: unknown annotator {name!r}; known: {', '.join(DETECTORS)}.")
    cls = getattr(controlnet_aux, DETECTORS[name])
    detector = cls() if card.source_kind == "builtin" else cls.from_pretrained(str(spec.path))
    annot = Annotator(name, detector)
    for module in annot.components.values():
        module.to(spec.device).eval()
    return Loaded(annot)


LOADERS: dict[str, Callable[[LoadSpec], Loaded]] = {
    "torchvision": load_torchvision, "timm": load_timm, "open_clip": load_open_clip,
    "transformers": load_transformers, "diffusers": load_diffusers, "controlnet_aux": load_controlnet_aux,
}


def component_keys(card: ModelCard, path: Path | None, safetensors: list[Path]) -> dict[str, str]:
    """Identity of each component of a diffusers pipeline folder, so the same weights loaded by two
    pipelines are one object: the blob's sha256 in the HF cache (its file name), else the real path."""
    if card.library != "diffusers" or path is None or not path.is_dir():
        return {}
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    keys = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        safe = [f for f in safetensors if f.parent == path / name]
        if not safe:
            continue
        parts = []
        for f in sorted(safe):
            real = os.path.realpath(f)
            blob = os.path.basename(real)
            parts.append(blob if re.fullmatch(r"[0-9a-f]{64}", blob) else real)
        keys[name] = f"{spec[1]}|{'|'.join(parts)}"
    return keys
