"""CLIP tokenizer built offline: the real 49408-token CLIP BPE as a transformers folder.

Owns turning open_clip's bundled BPE merges file (`bpe_simple_vocab_16e6.txt.gz`) into
the files the hub's openai/clip-vit-base-patch32 tokenizer ships (vocab.json,
merges.txt, tokenizer_config.json, special_tokens_map.json), so the starter CLIP, and
every later model that reuses its text tower, gets token ids identical to real CLIP
without network access.  Building needs neither torch nor transformers.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
VOCAB_SIZE = 49408
MODEL_MAX_LENGTH = 77
# Same slice open_clip's SimpleTokenizer takes: skip the header line, keep 48894 merges.
N_MERGES = 49152 - 256 - 2


def bpe_path() -> Path:
    """The merges file that ships inside open_clip_torch (found without importing it)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip_torch is not installed: it carries the CLIP BPE file")
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.exists():
        raise FileNotFoundError(path)
    return path


@lru_cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode map, in the order that fixes the first 256 ids."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_vocab(path: Path | None = None) -> tuple[dict[str, int], list[str]]:
    """(vocab, merges) exactly as in the hub's CLIP vocab.json / merges.txt."""
    lines = gzip.open(path or bpe_path()).read().decode("utf-8").split("\n")
    merges = lines[1:N_MERGES + 1]
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"built {len(vocab)} tokens, expected {VOCAB_SIZE}")
    return vocab, merges


def write_tokenizer(folder: str | Path) -> Path:
    """Write the four standard CLIPTokenizer files into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    config = {
        **special,
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "tokenizer_class": "CLIPTokenizer",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def load_tokenizer(folder: str | Path):
    """The folder as a transformers CLIPTokenizer (local files only)."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
