"""Values of the chat workspace: messages and their image attachments, the frozen request a VLM
answer needs, the streamed partial answer, the result, and the chat store's CPU-lane requests.

Qt-free and torch-free. Everything here crosses threads: images are immutable StudioImages,
everything else plain Python, never tensors.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from studio.core.errors import BadInputError
from studio.core.image import StudioImage

ROLES = ("user", "assistant")
MAX_TOKENS_LIMIT = 8192
DEFAULT_SYSTEM_PROMPT = ""


def new_id() -> str:
    return uuid.uuid4().hex


def image_id(image: StudioImage) -> str:
    """Content hash of the pixels (and shape): the same picture is stored once."""
    px = np.ascontiguousarray(image.pixels)
    h = hashlib.sha256(f"{px.shape}".encode())
    h.update(px.data)
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class ChatImage:
    """An image attached to a user turn: the whole image, or a crop of `region` of image `base_id`.

    `image` is None while a reopened conversation's pixels are still being read (or were lost).
    """

    image_id: str
    size: tuple[int, int]  # (width, height)
    image: Optional[StudioImage] = None
    base_id: str = ""  # the whole image a crop was cut from ("" when this is the whole image)
    region: Optional[tuple[int, int, int, int]] = None  # the crop (x0, y0, x1, y1) in base pixels
    source: str = ""

    @classmethod
    def whole(cls, image: StudioImage) -> "ChatImage":
        return cls(image_id(image), image.size, image, source=image.source)

    @classmethod
    def crop(cls, image: StudioImage, box, base: str | None = None) -> "ChatImage":
        """The pixels of `box` (x0, y0, x1, y1, image pixels; clipped to the image)."""
        x0, y0, x1, y1 = clip_box(box, image.size)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise BadInputError("The region is too small: drag a larger box over the image.")
        part = StudioImage(np.ascontiguousarray(image.pixels[y0:y1, x0:x1]), image.source,
                           {"region": (x0, y0, x1, y1)})
        return cls(image_id(part), part.size, part, base or image_id(image), (x0, y0, x1, y1), image.source)

    @property
    def is_crop(self) -> bool:
        return self.region is not None

    def describe(self) -> str:
        w, h = self.size
        if self.region is not None:
            x0, y0, x1, y1 = self.region
            return f"region {x0},{y0}–{x1},{y1} ({w}×{h})"
        return f"image {w}×{h}"


def clip_box(box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) inside an image of `size`, corners in order."""
    w, h = size
    x0, x1 = sorted((float(box[0]), float(box[2])))
    y0, y1 = sorted((float(box[1]), float(box[3])))
    return (int(max(0, min(w, round(x0)))), int(max(0, min(h, round(y0)))),
            int(max(0, min(w, round(x1)))), int(max(0, min(h, round(y1)))))


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation. An assistant message may be `stopped` (the user pressed Stop:
    its text is what had streamed in) and carries the model input size of the image its boxes
    refer to (`input_size`), so grounded coordinates can be mapped back onto that image."""

    id: str
    role: str
    text: str
    attachment: Optional[ChatImage] = None
    stopped: bool = False
    model_id: str = ""
    tokens: int = 0
    seconds: float = 0.0
    input_size: Optional[tuple[int, int]] = None
    created: float = field(default_factory=time.time)
    streaming: bool = False  # still being generated (never stored as such)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown chat role {self.role!r}")

    def with_text(self, text: str, **changes) -> "ChatMessage":
        return replace(self, text=text, **changes)


# -- generation --------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ChatTurn:
    role: str  # "user" or "assistant"
    text: str
    image: Optional[StudioImage] = None  # user turns only


@dataclass(frozen=True, eq=False)
class ChatRequest:
    """Everything one answer needs: the model, the conversation so far (ending with the user's
    turn), the system prompt and the sampling settings. temperature 0 means greedy decoding."""

    model_id: str
    turns: tuple[ChatTurn, ...]
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 0.9
    seed: int = 0
    max_images: int = 4  # older images become a text note: each costs hundreds of tokens

    def validate(self) -> None:
        if not self.model_id:
            raise BadInputError("Choose a vision-language model first.")
        if not self.turns or self.turns[-1].role != "user":
            raise BadInputError("Type a question first.")
        if not (self.turns[-1].text.strip() or self.turns[-1].image is not None):
            raise BadInputError("Type a question first.")
        if not 1 <= int(self.max_new_tokens) <= MAX_TOKENS_LIMIT:
            raise BadInputError(f"Max tokens must be between 1 and {MAX_TOKENS_LIMIT}.")
        if not 0.0 <= float(self.temperature) <= 5.0:
            raise BadInputError("Temperature must be between 0 and 5.")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise BadInputError("Top-p must be above 0 and at most 1.")
        if any(t.role not in ROLES for t in self.turns):
            raise BadInputError("A chat turn has an unknown role.")

    @property
    def sampling(self) -> bool:
        return float(self.temperature) > 0.0


@dataclass(frozen=True)
class ChatStream:
    """The partial answer, sent as a preview (throttled) while tokens stream in."""

    text: str
    tokens: int
    seconds: float


@dataclass(frozen=True)
class ChatResult:
    model_id: str
    text: str
    tokens: int
    prompt_tokens: int
    seconds: float  # whole job, including the prompt
    first_token_s: float  # time to the first generated token
    finish: str  # "eos" (the model ended) or "length" (max tokens reached)
    input_sizes: tuple[Optional[tuple[int, int]], ...] = ()  # model input (w, h) per image, if known

    @property
    def tokens_per_s(self) -> float:
        gen = self.seconds - self.first_token_s
        return (self.tokens - 1) / gen if self.tokens > 1 and gen > 0 else 0.0


# -- the chat store on the CPU lane -------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SaveChatImageRequest:
    """Encode `image` as PNG and store it under `image_id` in the chat store at `db`."""

    db: str
    image_id: str
    image: StudioImage


@dataclass(frozen=True)
class LoadConversationRequest:
    """Read conversation `conversation_id` with its images decoded."""

    db: str
    conversation_id: str


@dataclass(frozen=True, eq=False)
class Conversation:
    id: str
    title: str
    created: float
    updated: float
    model_id: str
    system_prompt: str
    messages: tuple[ChatMessage, ...] = ()
