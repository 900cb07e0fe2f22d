"""Questions and answers about Shapes-world scenes: what the starter VLM learns and is graded on.

Owns the question kinds (colour, shape, count, side, describe, where), their phrasings, the
short canonical answers, the box format the studio's grounding parser reads (`[x0, y0, x1, y1]`
in 0..1 of the image, see `studio.engines.vlm_grounding`), the chat template and a Python
renderer that writes exactly the text the template writes (training builds its sequences with
it; a test checks the two agree).  numpy only: no torch, no transformers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .world import SIZE, Scene, WorldObject, caption_for

KINDS = ("colour", "shape", "count", "side", "describe", "where")
GRADED = ("colour", "shape", "count")  # the kinds behind the `vlm_exact` bar
# How often each kind is drawn for a training turn (renormalised over the kinds a scene allows).
KIND_WEIGHTS = {"colour": 0.24, "shape": 0.26, "count": 0.14, "side": 0.1, "describe": 0.1, "where": 0.16}
NUMBERS = {1: "one", 2: "two", 3: "three"}
MIN_SIDE_GAP = 6.0  # px between centroids before "left"/"right" has a clear answer

BOS, EOS, UNK, PAD, IMAGE = "<s>", "</s>", "<unk>", "<pad>", "<image>"
SPECIALS = [BOS, EOS, UNK, PAD, IMAGE]
USER, ASSISTANT, SYSTEM = "USER:", "ASSISTANT:", "SYSTEM:"

# LLaVA-1.5's layout (USER: / ASSISTANT:), with a system line and an end token after each answer.
# Content may be a string or typed parts ({"type": "image"} / {"type": "text", "text": ...}).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set parts = [{'type': 'text', 'text': message['content']}] %}"
    "{% else %}{% set parts = message['content'] %}{% endif %}"
    "{% if message['role'] == 'system' %}{{ 'SYSTEM: ' }}"
    "{% elif message['role'] == 'user' %}{{ 'USER: ' }}"
    "{% for part in parts %}{% if part['type'] == 'image' %}{{ '<image>\n' }}{% endif %}{% endfor %}"
    "{% else %}{{ 'ASSISTANT: ' }}{% endif %}"
    "{% for part in parts %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

COLOUR_Q = ["what colour is the {shape}?", "what color is the {shape}?", "which colour is the {shape}?",
            "what is the colour of the {shape}?", "what colour is the {shape} in the picture?"]
COLOUR_Q1 = ["what colour is it?", "what colour is the object?", "what color is the shape?"]
SHAPE_Q = ["what shape is the {colour} object?", "what is the {colour} thing?", "which shape is {colour}?",
           "what shape is the {colour} one?", "what is the {colour} object?"]
SHAPE_Q1 = ["what shape is it?", "what shape is this?", "what is the object?"]
COUNT_Q = ["how many objects are there?", "how many shapes are in the picture?", "how many things do you see?",
           "how many objects are in the image?", "count the objects."]
SIDE_Q = ["is the {a} left or right of the {b}?", "is the {a} on the left or the right of the {b}?"]
SIDE_WHICH_Q = ["which object is on the {side}?", "what is on the {side}?", "what is the {side}most object?"]
DESCRIBE_Q = ["describe the image.", "what is in this picture?", "what do you see?", "describe this picture.",
              "what is in the image?"]
WHERE_Q = ["where is the {name}?", "find the {name}.", "where is the {name} in the image?",
           "show me the {name}."]

# Generic system prompts a user might set: the model learns to read past them.
SYSTEM_PROMPTS = ["you are a helpful assistant.", "answer briefly.", "you are a helpful assistant. answer briefly.",
                  "describe what you see accurately.", "be concise."]


@dataclass(frozen=True)
class QA:
    kind: str
    question: str
    answer: str


# ---------------------------------------------------------------- answers from the ground truth

def unique(scene: Scene, attr: str) -> list[WorldObject]:
    """Objects whose colour (or shape) no other object in the scene shares: a question naming it is unambiguous."""
    values = [getattr(o, attr) for o in scene.objects]
    return [o for o in scene.objects if values.count(getattr(o, attr)) == 1]


def left_to_right(scene: Scene) -> list[WorldObject]:
    return sorted(scene.objects, key=lambda o: o.centroid[0])


def describe(scene: Scene) -> str:
    """The scene's caption with its objects in left-to-right order (a reading order the image shows)."""
    return caption_for(left_to_right(scene))


def box_text(o: WorldObject, size: int = SIZE) -> str:
    x0, y0, x1, y1 = (v / size for v in o.bbox)
    return f"[{x0:.2f}, {y0:.2f}, {x1:.2f}, {y1:.2f}]"


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The first unit box in an answer, through the studio's own grounding parser."""
    from studio.engines.vlm_grounding import parse

    for g in parse(text):
        if g.kind == "box" and g.space == "unit":
            return g.box
    return None


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _side_pairs(scene: Scene) -> list[tuple[WorldObject, WorldObject]]:
    objs = scene.objects
    return [(a, b) for a in objs for b in objs
            if a is not b and abs(a.centroid[0] - b.centroid[0]) >= MIN_SIDE_GAP]


def _extreme(scene: Scene, side: str) -> WorldObject | None:
    """The leftmost (rightmost) object when it is clearly so."""
    order = left_to_right(scene)
    if len(order) < 2:
        return None
    a, b = (order[0], order[1]) if side == "left" else (order[-1], order[-2])
    return a if abs(a.centroid[0] - b.centroid[0]) >= MIN_SIDE_GAP else None


def allowed_kinds(scene: Scene) -> list[str]:
    kinds = ["colour", "shape", "count", "describe", "where"]
    if len(scene.objects) == 1:
        return kinds
    if not unique(scene, "shape"):
        kinds.remove("colour")
    if not unique(scene, "colour"):
        kinds.remove("shape")
    if _side_pairs(scene):
        kinds.insert(3, "side")
    return kinds


def make_qa(scene: Scene, kind: str, rng: np.random.Generator) -> QA:
    """One question of `kind` about `scene` (pick a kind from `allowed_kinds`) and its exact answer."""
    def pick(options):
        return options[int(rng.integers(len(options)))]

    objs = scene.objects
    if kind == "colour":
        if len(objs) == 1 and rng.random() < 0.3:
            return QA(kind, pick(COLOUR_Q1), objs[0].colour)
        o = pick(unique(scene, "shape"))
        return QA(kind, pick(COLOUR_Q).format(shape=o.shape), o.colour)
    if kind == "shape":
        if len(objs) == 1 and rng.random() < 0.3:
            return QA(kind, pick(SHAPE_Q1), objs[0].shape)
        o = pick(unique(scene, "colour"))
        return QA(kind, pick(SHAPE_Q).format(colour=o.colour), o.shape)
    if kind == "count":
        return QA(kind, pick(COUNT_Q), NUMBERS[len(objs)])
    if kind == "side":
        sides = [s for s in ("left", "right") if _extreme(scene, s) is not None]
        if sides and rng.random() < 0.4:
            side = pick(sides)
            return QA(kind, pick(SIDE_WHICH_Q).format(side=side), f"the {_extreme(scene, side).label}")
        a, b = pick(_side_pairs(scene))
        answer = "left" if a.centroid[0] < b.centroid[0] else "right"
        return QA(kind, pick(SIDE_Q).format(a=a.label, b=b.label), answer)
    if kind == "describe":
        return QA(kind, pick(DESCRIBE_Q), describe(scene))
    if kind == "where":
        o = pick(objs)
        shapes = unique(scene, "shape")
        name = o.shape if o in shapes and rng.random() < 0.3 else o.label
        return QA(kind, pick(WHERE_Q).format(name=name), f"the {o.label} is at {box_text(o)}")
    raise ValueError(kind)


def sample_kind(scene: Scene, rng: np.random.Generator, kinds: list[str] | None = None) -> str:
    kinds = kinds or allowed_kinds(scene)
    w = np.array([KIND_WEIGHTS[k] for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=w / w.sum()))]


def conversation(scene: Scene, rng: np.random.Generator, turns: int) -> list[QA]:
    """`turns` questions about one scene, no question asked twice."""
    out: list[QA] = []
    for _ in range(turns * 3):
        if len(out) == turns:
            break
        qa = make_qa(scene, sample_kind(scene, rng), rng)
        if all(qa.question != q.question for q in out):
            out.append(qa)
    return out


def normalise(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".").split())


# ---------------------------------------------------------------- chat text

def render(turns: list[tuple[str, str]], image: bool = True, generation_prompt: bool = False,
           system: str = "") -> str:
    """Exactly what CHAT_TEMPLATE writes for [(question, answer), ...] with the image in the first
    user turn (answer None: stop after it). `answer_spans` finds the answer characters."""
    text = BOS + (f"{SYSTEM} {system}\n" if system else "")
    for i, (q, a) in enumerate(turns):
        text += f"{USER} " + (f"{IMAGE}\n" if image and i == 0 else "") + q + "\n"
        if a is not None:
            text += f"{ASSISTANT} {a}{EOS}\n"
    return text + (ASSISTANT if generation_prompt else "")


def messages(turns: list[tuple[str, str | None]], image: bool = True, system: str = "") -> list[dict]:
    """The same conversation as chat-template messages (typed parts)."""
    out = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    for i, (q, a) in enumerate(turns):
        parts = ([{"type": "image"}] if image and i == 0 else []) + [{"type": "text", "text": q}]
        out.append({"role": "user", "content": parts})
        if a is not None:
            out.append({"role": "assistant", "content": [{"type": "text", "text": a}]})
    return out


def answer_spans(text: str) -> list[tuple[int, int]]:
    """Character spans the model learns to write: ' answer</s>' after each 'ASSISTANT:'."""
    spans, start = [], 0
    while True:
        i = text.find(ASSISTANT, start)
        if i < 0:
            return spans
        j = text.find(EOS, i)
        if j < 0:
            return spans
        spans.append((i + len(ASSISTANT), j + len(EOS)))
        start = j


def corpus(n_scenes: int = 400, seed: int = 0) -> list[str]:
    """Text the tokenizer is trained on: every phrasing, answer word and box number."""
    from .world import COLOURS, SHAPES, make_scene

    rng = np.random.default_rng(seed)
    lines = [render([(q, "x")]) for q in COLOUR_Q + COLOUR_Q1 + SHAPE_Q + SHAPE_Q1 + COUNT_Q + DESCRIBE_Q]
    lines += [f"{c} {s} {s}s" for c in COLOURS for s in SHAPES] + list(NUMBERS.values())
    lines += [f"[{a / 100:.2f}, {b / 100:.2f}]" for a in range(101) for b in (0, 50, 100)]
    lines += ["left right leftmost rightmost above below of and the is at a an"] + SYSTEM_PROMPTS
    for k in range(n_scenes):
        scene = make_scene(7_000_000 + k)
        lines.append(render([(qa.question, qa.answer) for qa in conversation(scene, rng, 4)]))
    return lines
