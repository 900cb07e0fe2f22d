"""TaskContext (throttled progress and previews, cancellation) and CancelToken."""
from __future__ import annotations

import threading

import pytest

from studio.core.cancel import CancelToken
from studio.core.context import TaskContext
from studio.core.errors import Cancelled


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(min_interval=0.1):
    clock, progress, previews = FakeClock(), [], []
    ctx = TaskContext(on_progress=lambda f, t: progress.append((f, t)),
                      on_preview=previews.append, min_interval=min_interval, clock=clock)
    return ctx, clock, progress, previews


def test_progress_is_throttled_to_the_interval_but_first_and_final_pass():
    ctx, clock, progress, _ = make()
    ctx.progress(0.0, "start")
    for i in range(1, 100):  # a tight loop within the same instant
        ctx.progress(i / 100, "step")
    assert progress == [(0.0, "start")]
    clock.t += 0.05
    ctx.progress(0.5)
    assert len(progress) == 1
    clock.t += 0.06
    ctx.progress(0.6, "later")
    assert progress[-1] == (0.6, "later")
    ctx.progress(1.0, "done")  # final, even inside the interval
    assert progress[-1] == (1.0, "done")
    assert len(progress) == 3


def test_progress_rate_over_simulated_time_is_about_ten_hertz():
    ctx, clock, progress, _ = make(0.1)
    for i in range(1000):  # 1000 calls over 2 simulated seconds
        clock.t += 0.002
        ctx.progress(i / 1000)
    assert 18 <= len(progress) <= 21


def test_progress_values_are_clamped():
    ctx, clock, progress, _ = make()
    ctx.progress(-3)
    clock.t += 1
    ctx.progress(7.5)
    assert [f for f, _ in progress] == [0.0, 1.0]


def test_previews_are_throttled_too():
    ctx, clock, _, previews = make()
    ctx.preview("a")
    ctx.preview("b")
    clock.t += 0.1
    ctx.preview("c")
    assert previews == ["a", "c"]


def test_no_sinks_is_fine():
    ctx = TaskContext()
    ctx.progress(0.5, "x")
    ctx.preview(object())
    ctx.check()


def test_check_raises_cancelled_after_cancel():
    token = CancelToken()
    ctx = TaskContext(token)
    ctx.check()
    assert not ctx.cancelled()
    token.cancel()
    assert ctx.cancelled()
    with pytest.raises(Cancelled):
        ctx.check()


def test_cancel_token_is_idempotent_and_works_across_threads():
    token = CancelToken()
    assert not token.cancelled
    seen = threading.Event()

    def worker():
        while not token.cancelled:
            pass
        seen.set()

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    token.cancel()
    token.cancel()
    assert seen.wait(2)
    t.join(2)
    with pytest.raises(Cancelled):
        token.raise_if_cancelled()


def test_cancelled_is_not_a_studio_error():
    from studio.core.errors import StudioError

    assert not issubclass(Cancelled, StudioError)
