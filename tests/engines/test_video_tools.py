"""The frame tape's tools without a model: optical-flow in-betweening, the consistency check (SSIM, flow
warping error) finding a jump, and TapeState (range replacement keeps every other frame byte for byte,
in/out, playback ticks, keyframes, requests) and the onion skin's pixels. Qt-free."""
from __future__ import annotations

import numpy as np
import pytest

from studio.core.context import TaskContext
from studio.core.errors import BadInputError, ModelError
from studio.core.tape_requests import ConsistencyRequest, InbetweenRequest, PromptKey
from studio.engines import flow
from studio.state.tape_state import TapeState, change_score, onion_overlay


def square_at(x: int, w: int = 64, h: int = 48, colour=(230, 40, 40)) -> np.ndarray:
    f = np.full((h, w, 3), 30, np.uint8)
    f[16:32, x:x + 16] = colour
    return f


def centroid_x(frame: np.ndarray) -> float:
    mask = frame[..., 0].astype(int) - frame[..., 2].astype(int) > 80
    return float(np.nonzero(mask)[1].mean())


def test_inbetweens_move_the_shape_instead_of_cross_fading():
    a, b = square_at(8), square_at(24)
    out = flow.run_inbetween(InbetweenRequest(a, b, 3), TaskContext(), None)
    assert len(out.frames) == 3 and all(f.shape == a.shape for f in out.frames)
    xs = [centroid_x(f) for f in out.frames]
    assert xs == sorted(xs) and 15 < xs[0] < xs[-1] < 33, xs  # 16 -> 32 (centres), strictly between
    with pytest.raises(ModelError, match="not installed"):
        flow.run_inbetween(InbetweenRequest(a, b, 1, "rife"), TaskContext(), None)
    with pytest.raises(BadInputError, match="different sizes"):
        flow.inbetween(a, b[:, :-2], 1)


def test_the_consistency_check_finds_the_jump():
    frames = [square_at(4 + 2 * i) for i in range(6)] + [square_at(40, colour=(40, 200, 40))] + \
             [square_at(40 + i) for i in range(1, 3)]
    res = flow.run_consistency(ConsistencyRequest(tuple(frames)), TaskContext(), None)
    assert res.similarity.shape == (8,) and res.warp_error.shape == (8,)
    assert int(np.argmax(change_score(res.similarity, res.warp_error))) == 5
    same = flow.run_consistency(ConsistencyRequest((frames[0], frames[0])), TaskContext(), None)
    assert same.similarity[0] == pytest.approx(1.0) and same.warp_error[0] == pytest.approx(0.0, abs=1e-6)


def test_replacing_a_range_keeps_every_other_frame_byte_for_byte():
    st = TapeState()
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(10)]
    st.set_clip(frames, fps=12)
    before = [bytes(f.data) for f in st.frames]
    ids = st.frame_ids
    st.replace_range(3, [np.full((8, 8, 3), 200, np.uint8)] * 2, edit={"edit": "test"})
    after = [bytes(f.data) for f in st.frames]
    assert [i for i in range(10) if after[i] != before[i]] == [3, 4]
    assert [i for i in range(10) if st.frame_ids[i] != ids[i]] == [3, 4]
    assert st.recipe["edits"] == [{"edit": "test"}]
    with pytest.raises(BadInputError, match="resize"):
        st.replace_range(0, [np.zeros((4, 4, 3), np.uint8)])
    st.insert_frames(0, [np.full((8, 8, 3), 99, np.uint8)])
    assert st.count == 11 and st.frames[1][0, 0, 0] == 99
    st.delete_range(1, 1)
    assert st.count == 10


def test_range_playback_and_requests():
    st = TapeState()
    st.set_clip([np.zeros((8, 8, 3), np.uint8)] * 6, fps=8)
    st.seek(2)
    st.set_in()
    st.seek(4)
    st.set_out()
    assert st.range() == (2, 4)
    st.seek(0)
    assert st.advance() and st.playhead == 2  # outside the range: play starts at In
    st.advance(), st.advance()
    assert st.playhead == 4 and st.advance() and st.playhead == 2  # loop
    st.loop = False
    st.seek(4)
    assert not st.advance() and st.playhead == 4
    st.prompt, st.model_id, st.num_frames, st.seed = "a", "m", 6, 5
    st.add_key(3, "b", seed=11)
    assert st.prompt_at(2) == "a" and st.prompt_at(3) == "b"
    req = st.build_request()
    assert req.seed == 5 and req.prompt_keys() == (PromptKey(0, "a"), PromptKey(3, "b", 11))
    rr = st.build_rerender()
    assert (rr.start, rr.end, rr.span) == (2, 4, (0, 6))
    st.clear_range()
    with pytest.raises(BadInputError, match="Select the frames"):
        st.build_rerender()


def test_onion_skin_ghosts_what_moved():
    frames = [square_at(8 + 8 * i) for i in range(5)]
    over = onion_overlay(frames, 2, depth=2)
    assert over.shape == (48, 64, 4) and over.dtype == np.uint8
    alpha = over[..., 3]
    assert alpha[24, 60 - 1] == 0 and alpha[5, 5] == 0  # unchanged background stays clear
    assert alpha[24, 17] > 100  # where the previous frame's square was
    past, future = over[24, 10], over[24, 45]  # frame 0/1 side is red-tinted, frame 3/4 side blue-tinted
    assert past[0] > past[2] and future[2] > future[0]
    assert onion_overlay(frames[:1], 0) is None and onion_overlay([frames[0]] * 3, 1) is None
