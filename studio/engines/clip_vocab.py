"""Vocabulary and embedding arithmetic: the word list behind "what does A - B (+ C) mean?".

Owns `assets/vocab/words.txt` (how it is built, how it is read), the label-preset and template files
derived from open_clip's metadata (`build_assets`), and the arithmetic engine: nearest words and
nearest loaded images of a query vector `A - B (+ C)`, with optional modality-gap centring.

Run `python -m studio.engines.clip_vocab build` to rebuild the asset files offline (see docs/label.md).
"""
from __future__ import annotations

import gzip
import re
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from studio.core.context import TaskContext
from studio.core.errors import BadInputError
from studio.core.label_requests import ArithmeticRequest, ArithmeticResult
from studio.core.paths import assets_dir

VOCAB_SIZE = 5000
WORD_TEMPLATE = "a photo of {}."
# Function words carry no picture; as nearest words they would only hide the interesting ones.
STOPWORDS = frozenset("""
the and for our this you with all out are from one that new now your have was more will can just here
but what about not his has how who when some they their them there these those than then her she him
its had been were being into over under after before again also any both each few most other such only
own same too very why where which while would could should shall may might must did does doing done
get got let lets yes yet off per via its ours yours hers mine whom whose upon onto unto away back even
ever still much many well way ill ere don didn doesn isn wasn aren weren hasn haven hadn won wouldn
couldn shouldn cant dont wont thats whats theres heres youre theyre were ive youve weve
""".split())


def words_path() -> Path:
    return assets_dir() / "vocab" / "words.txt"


@lru_cache(maxsize=4)
def load_words(path: str | None = None) -> tuple[str, ...]:
    """The shipped vocabulary (one lowercase word a line, '#' comments ignored)."""
    p = Path(path) if path else words_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"The word list {p.name} cannot be read: {exc.strerror or exc}.") from exc
    words = tuple(w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#"))
    if not words:
        raise BadInputError(f"The word list {p.name} is empty.")
    return words


# ----------------------------------------------------------------------------- building assets

def bpe_whole_words(dictionary: set[str] | None = None, limit: int = VOCAB_SIZE) -> list[str]:
    """Whole-word tokens of the CLIP BPE in merge order (merge order ~ frequency in CLIP's text).

    A merge that ends in `</w>` makes a word-final token; kept are plain lowercase alphabetic ones
    of 3+ letters, with a vowel, not a stop word, and (if given) found in `dictionary`, which drops
    BPE fragments such as "ing" or "ght" that are tokens but not words.
    """
    from studio.starter.tokenizer import N_MERGES, bpe_path

    lines = gzip.open(bpe_path()).read().decode("utf-8").split("\n")[1:N_MERGES + 1]
    out: list[str] = []
    seen: set[str] = set()
    for merge in lines:
        tok = "".join(merge.split())
        if not tok.endswith("</w>"):
            continue
        w = tok[:-4]
        if (re.fullmatch(r"[a-z]{3,}", w) and re.search(r"[aeiouy]", w) and w not in STOPWORDS
                and w not in seen and (dictionary is None or w in dictionary)):
            seen.add(w)
            out.append(w)
            if len(out) >= limit:
                break
    return out


def _dictionary(path: str) -> set[str] | None:
    p = Path(path)
    if not p.exists():
        return None
    return {w.strip() for w in p.read_text(encoding="utf-8", errors="ignore").splitlines()
            if re.fullmatch(r"[a-z]{3,}", w.strip())}


def build_assets(dict_path: str = "/usr/share/dict/words") -> dict[str, int]:
    """Write assets/vocab/words.txt, the ImageNet preset and the template files (needs open_clip)."""
    from open_clip import zero_shot_metadata as meta

    from studio.core.atomic import atomic_write_text

    from studio.starter.world import COLOURS, SHAPES

    dictionary = _dictionary(dict_path)
    words = bpe_whole_words(dictionary)
    # The Shapes world's words, so the starter CLIP's whole world is in reach ("triangle" is rarer than 5000th).
    extra = [w for w in COLOURS + SHAPES if w not in words]
    words += extra
    src = f"filtered by {dict_path}" if dictionary else "no dictionary filter"
    header = (f"# {len(words)} common English words: whole-word tokens of the CLIP BPE vocabulary in merge "
              f"order (~frequency), lowercase a-z, 3+ letters, stop words removed, {src}; "
              f"then the Shapes-world words not yet in ({', '.join(extra) or 'none'}).\n"
              "# Built by `python -m studio.engines.clip_vocab build`; see docs/label.md.\n")
    atomic_write_text(words_path(), header + "\n".join(words) + "\n")
    labels = assets_dir() / "labels"
    atomic_write_text(labels / "imagenet1k.txt", "\n".join(meta.IMAGENET_CLASSNAMES) + "\n")
    for name, fns in (("templates_7.txt", meta.SIMPLE_IMAGENET_TEMPLATES),
                      ("templates_80.txt", meta.OPENAI_IMAGENET_TEMPLATES)):
        atomic_write_text(labels / name, "\n".join(fn("{}") for fn in fns) + "\n")
    return {"words": len(words), "imagenet": len(meta.IMAGENET_CLASSNAMES),
            "templates_7": len(meta.SIMPLE_IMAGENET_TEMPLATES),
            "templates_80": len(meta.OPENAI_IMAGENET_TEMPLATES)}


# ----------------------------------------------------------------------------- arithmetic engine

def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def combine(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None,
            image_mean: np.ndarray | None = None) -> np.ndarray:
    """Unit query vector of A - B (+ C) from unit image embeddings, optionally centred first."""
    vecs = [a, b] + ([c] if c is not None else [])
    if image_mean is not None:
        vecs = [_unit(v - image_mean) for v in vecs]
    q = vecs[0] - vecs[1] + (vecs[2] if len(vecs) > 2 else 0.0)
    if float(np.linalg.norm(q)) < 1e-6:
        raise BadInputError("A and B give the same embedding: their difference means nothing. "
                            "Pick two different images.")
    return _unit(q)


def run_arithmetic(request: ArithmeticRequest, ctx: TaskContext, models) -> ArithmeticResult:
    from studio.engines import clip

    t0 = time.perf_counter()
    if request.a is None or request.b is None:
        raise BadInputError("Embedding arithmetic needs two images: set A and B first.")
    words = request.words or load_words()
    _entry, adapter = clip._entry(request, ctx, models)
    images = [request.a, request.b] + ([request.c] if request.c is not None else [])
    ctx.progress(0.1, "Encoding the images…")
    img = adapter.image_embeddings([im.rgb() for im in images])
    ctx.check()
    ctx.progress(0.3, f"Encoding {len(words)} words…")
    text = clip.text_embeddings(adapter, request.model_id, words, (request.template,), ctx,
                                span=(0.3, 0.9)).cpu().numpy()
    ctx.check()
    names = list(request.names[: len(images)])
    pool_names = [n for n, _ in request.pool if n not in names]
    pool_vecs = [np.asarray(v, np.float32) for n, v in request.pool if n not in names]
    all_img = np.concatenate([img, np.stack(pool_vecs)]) if pool_vecs else img
    all_names = names + pool_names
    image_mean = text_mean = None
    if request.centre:
        image_mean = all_img.mean(0)
        text_mean = text.mean(0)
        text = _unit(text - text_mean)
        all_img = _unit(all_img - image_mean)
    q = combine(img[0], img[1], img[2] if len(img) > 2 else None, image_mean)
    sims = text @ q
    k = max(1, min(int(request.top_k), len(words)))
    order = np.argsort(-sims)[:k]
    top = tuple((words[i], float(sims[i])) for i in order)
    probes: tuple[tuple[str, float], ...] = ()
    if request.probes:  # any words, in the vocabulary or not, encoded and centred like it
        pe = clip.text_embeddings(adapter, request.model_id, tuple(request.probes), (request.template,))
        pe = pe.cpu().numpy()
        if text_mean is not None:
            pe = _unit(pe - text_mean)
        probes = tuple((w, float(v)) for w, v in zip(request.probes, pe @ q))
    img_sims = all_img @ q
    neighbours = tuple(sorted(((all_names[i], float(img_sims[i])) for i in range(len(all_names))),
                              key=lambda t: -t[1]))
    ctx.progress(1.0, "Done")
    return ArithmeticResult(
        model_id=request.model_id, expression=" - ".join(names[:2]) + (f" + {names[2]}" if len(names) > 2 else ""),
        words=top, probes=probes, neighbours=neighbours,
        embeddings=tuple(zip(names, [np.ascontiguousarray(v) for v in img])), centred=request.centre,
        vocabulary_size=len(words), seconds=time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m studio.engines.clip_vocab")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="rebuild assets/vocab/words.txt and the label/template files")
    b.add_argument("--dict", default="/usr/share/dict/words",
                   help="a word list that filters out BPE fragments (Debian: wamerican)")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        counts = build_assets(args.dict)
        print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
