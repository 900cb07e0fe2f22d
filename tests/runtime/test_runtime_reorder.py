"""Runtime.reorder: queued GPU jobs run in the order the user arranged, running ones stay put."""
from __future__ import annotations

from runtime_fakes import Echo, Spin

from studio.runtime import JobState


def test_reorder_changes_the_run_order_of_queued_jobs(runtime, loop, engines):
    hold = runtime.submit(Spin())
    hold.request.started.wait(5)
    a, b, c = (runtime.submit(Echo(v)) for v in "abc")
    assert runtime.queued() == [a, b, c]
    seen = []
    runtime.subscribe(seen.append)
    assert runtime.reorder(c, 0)
    assert runtime.queued() == [c, a, b] and seen[-1] is c
    assert runtime.reorder(c, 99)  # clamped to the end
    assert runtime.queued() == [a, b, c]
    assert runtime.reorder(a, 1)
    assert runtime.queued() == [b, a, c]
    loop.drain()
    assert not runtime.reorder(hold, 0)  # running: not movable
    hold.request.release.set()
    loop.until(lambda: c.state.finished)
    assert [r.value for r, _ in engines.calls if isinstance(r, Echo)] == ["b", "a", "c"]
    assert not runtime.reorder(a, 0)  # finished
    assert a.state is JobState.DONE and runtime.queued() == []
