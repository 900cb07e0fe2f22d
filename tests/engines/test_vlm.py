"""The chat engine through the real model manager and runtime (Qt-free): tiny random LLaVA,
Idefics3 (SmolVLM's architecture) and Qwen2.5-VL built from configs load and stream through the
one code path;
Stop ends a 200-token answer within a token; the prompt, sampling and bad input."""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from studio.catalog.cards import Catalog, ModelCard
from studio.core.chat_requests import ChatRequest, ChatTurn
from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.core.paths import assets_dir
from studio.engines import vlm
from studio.engines.manager import ModelManager
from studio.runtime import EngineRegistry, JobState, Runtime
from tests.helpers.tiny_vlm import tiny_vlm, vlm_zoo

STARTER_VLM = assets_dir() / "starter" / "vlm"


class MainLoop:
    """The test thread plays the main thread: posted callables run inside pump()."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()

    def post(self, fn) -> None:
        self.queue.put(fn)

    def pump_until(self, cond, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                return False
            try:
                self.queue.get(timeout=0.01)()
            except queue.Empty:
                pass
        return True


@pytest.fixture(scope="module")
def tiny_vlms(tmp_path_factory) -> dict[str, Path]:
    root = vlm_zoo(tmp_path_factory)
    return {name: tiny_vlm(root, name) for name in ("llava-chat", "idefics3", "qwen2.5-vl")}


def vlm_card(model_id: str, folder: Path) -> ModelCard:
    return ModelCard(model_id, model_id, "vlm", "transformers", f"local:{folder}")


@pytest.fixture
def chat_runtime(tiny_vlms):
    loop = MainLoop()
    reg = EngineRegistry()
    vlm.register(reg)
    cat = Catalog([vlm_card("llava", tiny_vlms["llava-chat"]), vlm_card("idefics3", tiny_vlms["idefics3"]),
                   vlm_card("qwen", tiny_vlms["qwen2.5-vl"]),
                   ModelCard("cnn", "A CNN", "cnn", "torchvision", "builtin:resnet18")])
    rt = Runtime(reg, ModelManager(cat), loop.post)
    rt.loop = loop
    yield rt
    assert rt.shutdown(10.0)


def photo(w: int = 60, h: int = 40) -> StudioImage:
    return StudioImage(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


def ask(rt, request, timeout: float = 60.0):
    out = {"previews": []}
    job = rt.submit(request, on_preview=out["previews"].append, on_result=lambda r: out.setdefault("result", r),
                    on_error=lambda e: out.setdefault("error", e))
    assert rt.loop.pump_until(lambda: job.state.finished, timeout), "the answer did not finish"
    rt.loop.pump_until(lambda: rt.loop.queue.empty(), 1.0)
    return job, out


@pytest.mark.parametrize("model_id, processor, model", [
    ("llava", "LlavaProcessor", "LlavaForConditionalGeneration"),
    ("idefics3", "Idefics3Processor", "Idefics3ForConditionalGeneration"),
    ("qwen", "Qwen2_5_VLProcessor", "Qwen2_5_VLForConditionalGeneration"),
])
def test_tiny_vlms_load_and_stream_through_the_one_path(chat_runtime, model_id, processor, model):
    turns = (ChatTurn("user", "what is in this picture?", photo()), ChatTurn("assistant", "a red circle"),
             ChatTurn("user", "and in this region?", photo(20, 30)))
    req = ChatRequest(model_id, turns, "Answer briefly.", max_new_tokens=24, temperature=1.0, seed=3)
    job, out = ask(chat_runtime, req)
    assert job.state is JobState.DONE, out.get("error") and out["error"].detail
    res = out["result"]
    entry = chat_runtime.models.get(model_id)
    assert type(entry.processor).__name__ == processor and type(entry.model).__name__ == model
    assert res.tokens == 24 and res.finish == "length" and res.prompt_tokens > 10
    assert res.text and isinstance(res.text, str)
    assert out["previews"], "no streamed text reached the main thread"
    texts = [p.text for p in out["previews"]]
    assert all(isinstance(t, str) for t in texts) and texts == sorted(texts, key=len)
    assert res.text.startswith(texts[-1].strip()[:5])
    assert 0 < res.first_token_s <= res.seconds and len(res.input_sizes) == 2
    if model_id == "qwen":  # Qwen answers boxes in pixels of its resized input: the engine says which
        assert all(s is not None and s[0] % 28 == 0 and s[1] % 28 == 0 for s in res.input_sizes)
    else:
        assert res.input_sizes == (None, None)


def test_the_same_seed_gives_the_same_answer_and_greedy_ignores_it(chat_runtime):
    turns = (ChatTurn("user", "describe", photo()),)
    a = ask(chat_runtime, ChatRequest("llava", turns, max_new_tokens=12, temperature=1.0, seed=7))[1]["result"]
    b = ask(chat_runtime, ChatRequest("llava", turns, max_new_tokens=12, temperature=1.0, seed=7))[1]["result"]
    c = ask(chat_runtime, ChatRequest("llava", turns, max_new_tokens=12, temperature=1.0, seed=8))[1]["result"]
    g1 = ask(chat_runtime, ChatRequest("llava", turns, max_new_tokens=12, seed=1))[1]["result"]
    g2 = ask(chat_runtime, ChatRequest("llava", turns, max_new_tokens=12, seed=2))[1]["result"]
    assert a.text == b.text and a.text != c.text
    assert g1.text == g2.text


def test_stop_mid_stream_ends_the_job_within_a_token(chat_runtime):
    rt = chat_runtime
    ask(rt, ChatRequest("idefics3", (ChatTurn("user", "warm up", photo()),), max_new_tokens=2))  # load first
    previews, stopped_at = [], {}
    req = ChatRequest("idefics3", (ChatTurn("user", "what is in this picture?", photo()),), max_new_tokens=200,
                      temperature=1.0, seed=0)
    job = rt.submit(req, on_preview=previews.append)

    def first_tokens_then_stop() -> bool:
        if previews and not stopped_at:
            stopped_at["t"], stopped_at["tokens"] = time.monotonic(), previews[-1].tokens
            rt.cancel(job)
        return job.state.finished

    assert rt.loop.pump_until(first_tokens_then_stop, 60.0)
    assert job.state is JobState.CANCELLED and stopped_at
    assert time.monotonic() - stopped_at["t"] < 2.0
    assert stopped_at["tokens"] < 200 and previews[-1].text


def test_generation_stops_at_most_one_token_after_the_cancel(chat_runtime):
    """The engine itself, on this thread: every token reports progress; the first streamed text
    cancels; no more than one further token is generated."""
    from studio.core.cancel import CancelToken
    from studio.core.context import TaskContext
    from studio.core.errors import Cancelled

    token, counts, at_cancel = CancelToken(), [], []

    def on_preview(chunk) -> None:
        if not at_cancel:
            at_cancel.append(counts[-1] if counts else 0)
            token.cancel()

    def on_progress(fraction: float, text: str) -> None:
        if text.startswith("Answering"):
            counts.append(int(text.split()[1]))

    ctx = TaskContext(token, on_progress=on_progress, on_preview=on_preview, min_interval=0.0)
    req = ChatRequest("idefics3", (ChatTurn("user", "what is in this picture?", photo()),), max_new_tokens=200,
                      temperature=1.0)
    with pytest.raises(Cancelled):
        vlm.run(req, ctx, chat_runtime.models)
    assert at_cancel and counts[-1] - at_cancel[0] <= 1 and counts[-1] < 200


def test_the_prompt_keeps_turns_roles_and_only_the_last_images():
    img = photo()
    turns = tuple(t for i in range(3) for t in (ChatTurn("user", f"q{i}", img), ChatTurn("assistant", f"a{i}")))
    turns += (ChatTurn("user", "last", None),)
    messages, images = vlm.build_messages(ChatRequest("m", turns, "Be brief.", max_images=2))
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert messages[0]["content"] == [{"type": "text", "text": "Be brief."}]
    assert len(images) == 2 and images[0].size == (60, 40)
    assert messages[1]["content"] == [{"type": "text", "text": f"{vlm.EARLIER_IMAGE_NOTE} q0"}]
    assert messages[3]["content"][0] == {"type": "image"}
    assert messages[-1]["content"] == [{"type": "text", "text": "last"}]
    # A tiny crop is enlarged: some processors refuse images under 28 px.
    _, small = vlm.build_messages(ChatRequest("m", (ChatTurn("user", "x", photo(5, 3)),)))
    assert min(small[0].size) == vlm.MIN_IMAGE_SIDE


@pytest.mark.parametrize("changes, message", [
    (dict(model_id=""), "Choose a vision-language model"),
    (dict(turns=()), "Type a question"),
    (dict(turns=(ChatTurn("user", "  "),)), "Type a question"),
    (dict(max_new_tokens=0), "Max tokens"),
    (dict(temperature=-1.0), "Temperature"),
    (dict(top_p=0.0), "Top-p"),
])
def test_bad_requests_get_a_clear_message(changes, message):
    base = dict(model_id="m", turns=(ChatTurn("user", "hi"),))
    with pytest.raises(BadInputError, match=message):
        ChatRequest(**{**base, **changes}).validate()


def test_a_model_that_cannot_chat_is_refused_clearly(chat_runtime, tiny_vlms, tmp_path):
    job, out = ask(chat_runtime, ChatRequest("cnn", (ChatTurn("user", "hi"),)))
    assert job.state is JobState.FAILED and "not a vision-language model" in out["error"].user_message
    # A folder without processor files: the manager loads the weights, the engine explains.
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny_vlms["llava-chat"], bare,
                    ignore=shutil.ignore_patterns("tokenizer*", "processor*", "preprocessor*", "chat_template*",
                                                  "special_tokens*"))
    chat_runtime.models.catalog.add(vlm_card("bare", bare))
    job, out = ask(chat_runtime, ChatRequest("bare", (ChatTurn("user", "hi"),)))
    assert job.state is JobState.FAILED
    assert "no processor" in out["error"].user_message


@pytest.mark.skipif(not (STARTER_VLM / "config.json").exists(),
                    reason="needs the trained starter VLM in assets/starter/vlm (trained by a colleague later)")
def test_the_starter_vlm_names_the_colour_of_the_circle():
    loop = MainLoop()
    reg = EngineRegistry()
    vlm.register(reg)
    # The folder leaves out its vision tower: the card supplies the starter CLIP's, as assets/models.toml does.
    cat = Catalog([ModelCard("starter-vlm", "starter-vlm", "vlm", "transformers", f"local:{STARTER_VLM}",
                             options={"vision_tower": str(STARTER_VLM.parent / "clip")})])
    rt = Runtime(reg, ModelManager(cat), loop.post)
    rt.loop = loop
    try:
        px = np.full((64, 64, 3), 255, np.uint8)
        yy, xx = np.mgrid[:64, :64]
        px[(yy - 32) ** 2 + (xx - 32) ** 2 < 18 ** 2] = (220, 30, 30)
        req = ChatRequest("starter-vlm", (ChatTurn("user", "what colour is the circle?", StudioImage(px)),),
                          max_new_tokens=16)
        job, out = ask(rt, req)
        assert job.state is JobState.DONE and "red" in out["result"].text.lower()
    finally:
        rt.shutdown(10.0)


def test_qwen_input_size_maps_its_boxes_back_onto_the_image(chat_runtime):
    """200x100 px becomes a 140x56 px model input (multiples of 28, at most 112x112 px of area):
    a box Qwen2.5-VL writes in those pixels lands on the original image scaled by 200/140, 100/56."""
    from studio.engines.vlm_grounding import parse, to_pixels

    img = StudioImage(np.zeros((100, 200, 3), np.uint8))
    job, out = ask(chat_runtime, ChatRequest("qwen", (ChatTurn("user", "where is it?", img),), max_new_tokens=2))
    assert out["result"].input_sizes == ((140, 56),)
    (g,) = parse('{"bbox_2d": [14, 28, 70, 56], "label": "thing"}')
    assert to_pixels(g, (200, 100), out["result"].input_sizes[0]) == pytest.approx((20, 50, 100, 100))


def test_the_streamer_decodes_only_when_a_preview_goes_out():
    """Per token the streamer only keeps the id; it decodes when the context would send a preview
    (throttled), holds back a half-arrived character, and skips the prompt generate puts first."""
    import torch

    from studio.core.context import TaskContext

    class Tok:
        calls = 0

        def decode(self, ids, skip_special_tokens=True):
            Tok.calls += 1
            return "".join(chr(96 + i) for i in ids) + ("\ufffd" if len(ids) == 3 else "")

    clock = [0.0]
    sent = []
    ctx = TaskContext(on_preview=sent.append, min_interval=0.1, clock=lambda: clock[0])
    streamer = vlm._preview_streamer(Tok(), ctx, time.perf_counter())
    streamer.put(torch.tensor([[5, 6, 7]]))  # the prompt
    for tok, t in zip([1, 2, 3, 4, 5, 6], [0.0, 0.05, 0.11, 0.15, 0.22, 0.25]):
        clock[0] = t
        streamer.put(torch.tensor([tok]))
    clock[0] = 0.4
    streamer.end()
    # due at the first token, at 0.11 s (3 tokens: "abc" and a half character), 0.22 s, and the end
    assert Tok.calls == 4
    assert [(p.text, p.tokens) for p in sent] == [("a", 1), ("abc", 3), ("abcde", 5), ("abcdef", 6)]
