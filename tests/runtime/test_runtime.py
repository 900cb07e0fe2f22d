"""The runtime: one GPU thread in submission order, results through `post`, latest-wins keys,
fast cancellation of queued and running jobs, failing engines, shutdown."""
from __future__ import annotations

import threading
import time

import pytest

from studio.core.errors import BadInputError, StudioError
from studio.runtime import JobState
from studio.runtime.scheduler import EngineRegistry

from runtime_fakes import Boom, CpuEcho, Echo, Spin


def test_gpu_jobs_run_in_order_on_one_thread_and_results_arrive_on_the_main_thread(
        runtime, loop, engines):
    got, threads = [], set()

    def on_result(value):
        got.append(value)
        threads.add(threading.current_thread())

    jobs = [runtime.submit(Echo(i, 0.002), on_result=on_result) for i in range(8)]
    loop.until(lambda: all(j.state.finished for j in jobs))
    assert got == list(range(8))
    assert [r.value for r, _ in engines.calls] == list(range(8))
    assert {name for _, name in engines.calls} == {"studio-gpu-0"}
    assert threads == {loop.thread}
    assert all(j.state is JobState.DONE and j.result == j.request.value for j in jobs)
    assert runtime.active() == [] and runtime.jobs == {}  # finished jobs are forgotten


def test_nothing_reaches_callbacks_except_through_post(runtime, loop, engines):
    got = []
    job = runtime.submit(Echo("x"), on_result=got.append)
    deadline = time.monotonic() + 5
    while not engines.calls and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # the worker has finished by now, but nothing was drained
    assert got == [] and job.state is JobState.QUEUED
    loop.until(lambda: job.state.finished)
    assert got == ["x"]


def test_listeners_see_each_state_on_the_main_thread(runtime, loop):
    seen = []
    runtime.subscribe(lambda j: seen.append((j.state, threading.current_thread() is loop.thread)))
    job = runtime.submit(Echo(1))
    loop.until(lambda: job.state.finished)
    states = [s for s, _ in seen]
    assert states[0] is JobState.QUEUED and states[-1] is JobState.DONE
    assert JobState.RUNNING in states
    assert all(main for _, main in seen)


def test_progress_is_posted_and_throttled(loop, engines):
    from studio.runtime import Runtime

    def chatty(req, ctx, models):
        for i in range(2000):
            ctx.progress(i / 2000, "working")
        ctx.progress(1.0, "done")
        return "ok"

    reg = EngineRegistry()
    reg.register(Echo, chatty)
    rt = Runtime(reg, None, loop.post, progress_interval=0.1)
    try:
        progress = []
        job = rt.submit(Echo(0), on_progress=lambda f, t: progress.append((f, t)))
        loop.until(lambda: job.state.finished)
        assert job.state is JobState.DONE
        assert progress[-1] == (1.0, "done")
        assert 2 <= len(progress) <= 5, progress
    finally:
        assert rt.shutdown(5)


def test_latest_wins_cancels_a_queued_job_of_the_same_key(runtime, loop, engines):
    hold = runtime.submit(Spin())
    hold.request.started.wait(5)
    results, cancelled = [], []
    a = runtime.submit(Echo("a"), key="k", on_result=results.append,
                       on_cancelled=lambda: cancelled.append("a"))
    b = runtime.submit(Echo("b"), key="k", on_result=results.append)
    other = runtime.submit(Echo("other"), key="other-key", on_result=results.append)
    # The queued older job is finished at once, on the main thread, without draining.
    assert a.state is JobState.CANCELLED and cancelled == ["a"]
    assert b.state is JobState.QUEUED and other.state is JobState.QUEUED
    hold.request.release.set()
    loop.until(lambda: b.state.finished and other.state.finished)
    assert results == ["b", "other"]
    assert "a" not in [r.value for r, _ in engines.calls if isinstance(r, Echo)]


def test_latest_wins_cancels_a_running_job_of_the_same_key(runtime, loop):
    a = runtime.submit(Spin(), key="k")
    loop.until(lambda: a.state is JobState.RUNNING)
    b = runtime.submit(Echo("b"), key="k")
    took = loop.until(lambda: b.state.finished)
    assert a.state is JobState.CANCELLED and b.state is JobState.DONE and b.result == "b"
    assert took < 1.0


def test_cancelling_a_queued_job_is_immediate_and_it_never_runs(runtime, loop, engines):
    hold = runtime.submit(Spin())
    hold.request.started.wait(5)
    calls = []
    queued = runtime.submit(Echo("never"), on_result=calls.append, on_error=calls.append,
                            on_cancelled=lambda: calls.append("cancelled"))
    behind = runtime.submit(Echo("behind"))
    runtime.cancel(queued)
    assert queued.state is JobState.CANCELLED and calls == ["cancelled"]
    runtime.cancel(queued)  # twice is harmless
    hold.request.release.set()
    loop.until(lambda: behind.state.finished)
    loop.drain()
    assert calls == ["cancelled"]
    assert "never" not in [getattr(r, "value", None) for r, _ in engines.calls]


def test_cancelling_a_running_job_is_fast(runtime, loop):
    calls = []
    job = runtime.submit(Spin(), on_result=calls.append, on_error=calls.append,
                         on_cancelled=lambda: calls.append("cancelled"))
    loop.until(lambda: job.state is JobState.RUNNING)
    t0 = time.monotonic()
    runtime.cancel(job.id)  # by id, as the UI does
    loop.until(lambda: job.state.finished)
    assert time.monotonic() - t0 < 0.5
    assert job.state is JobState.CANCELLED and calls == ["cancelled"]
    nxt = runtime.submit(Echo("next"))
    loop.until(lambda: nxt.state.finished)
    assert nxt.result == "next"


def test_an_engine_that_ignores_cancel_still_reports_cancelled_not_its_result(loop):
    from studio.runtime import Runtime

    gate = threading.Event()

    def stubborn(req, ctx, models):
        gate.wait(5)
        return "late result"

    reg = EngineRegistry()
    reg.register(Echo, stubborn)
    rt = Runtime(reg, None, loop.post)
    try:
        got = []
        job = rt.submit(Echo(0), on_result=got.append)
        loop.until(lambda: job.state is JobState.RUNNING)
        rt.cancel(job)
        gate.set()
        loop.until(lambda: job.state.finished)
        assert job.state is JobState.CANCELLED and got == []
    finally:
        gate.set()
        assert rt.shutdown(5)


@pytest.mark.parametrize("exc, message", [
    (ZeroDivisionError("division by zero"), "Unexpected error (ZeroDivisionError)"),
    (BadInputError("That file is empty."), "That file is empty."),
    (MemoryError(), "Unexpected error (MemoryError)"),
])
def test_a_failing_engine_fails_its_job_and_the_lane_keeps_serving(runtime, loop, engines,
                                                                  exc, message, caplog):
    errors, results = [], []
    bad = runtime.submit(Boom(exc), on_error=errors.append, on_result=results.append)
    good = runtime.submit(Echo("after"), on_result=results.append)
    loop.until(lambda: bad.state.finished and good.state.finished)
    assert bad.state is JobState.FAILED and results == ["after"]
    (err,) = errors
    assert isinstance(err, StudioError) and err is bad.error
    assert err.user_message.startswith(message)
    assert "Traceback" in err.detail
    assert {name for _, name in engines.calls} == {"studio-gpu-0"}  # the same thread lives on
    assert message in caplog.text  # the detail went to the log


def test_a_failing_callback_does_not_break_the_runtime(runtime, loop):
    def bad_callback(_):
        raise RuntimeError("callback bug")

    first = runtime.submit(Echo(1), on_result=bad_callback)
    second = runtime.submit(Echo(2))
    loop.until(lambda: first.state.finished and second.state.finished)
    assert first.state is JobState.DONE and second.result == 2


def test_cpu_jobs_run_on_the_cpu_pool_in_parallel(runtime, loop, engines):
    jobs = [runtime.submit(CpuEcho(i, 0.2)) for i in range(2)]
    took = loop.until(lambda: all(j.state.finished for j in jobs))
    names = {name for _, name in engines.calls}
    assert names == {"studio-cpu-0", "studio-cpu-1"}
    assert took < 0.39  # two 0.2 s jobs side by side


def test_unknown_requests_and_lanes_are_refused(runtime):
    with pytest.raises(LookupError):
        runtime.submit(object())
    with pytest.raises(ValueError):
        EngineRegistry().register(Echo, lambda *a: None, "tpu")


def test_shutdown_cancels_everything_and_joins_the_threads(loop, engines):
    from studio.runtime import Runtime

    reg = EngineRegistry()
    reg.register(Spin, engines.spin)
    reg.register(Echo, engines.echo)
    rt = Runtime(reg, None, loop.post)
    running = rt.submit(Spin())
    running.request.started.wait(5)
    queued = [rt.submit(Echo(i)) for i in range(3)]
    t0 = time.monotonic()
    assert rt.shutdown(5.0)
    assert time.monotonic() - t0 < 1.0
    assert not any(t.is_alive() for t in rt.threads())
    loop.drain()
    assert running.state is JobState.CANCELLED
    assert all(j.state is JobState.CANCELLED for j in queued)
    assert [r for r, _ in engines.calls if isinstance(r, Echo)] == []
    with pytest.raises(RuntimeError):
        rt.submit(Echo(9))
    assert rt.shutdown()  # twice is fine
