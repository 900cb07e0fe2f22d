"""Benchmarks run every torch call on the studio's GPU lane thread, as the studio does.

With OpenMP, each thread that runs torch ops gets its own team of worker threads; once two teams
exist on 2 cores, libgomp stops spinning and every op pays a thread wake-up (measured on the starter
CNN: 8.0 ms on the main thread alone, 10.4 ms on a second thread once the main thread had a team,
1.0x in separate processes). In the studio only the lane thread runs torch (tests/ui/
test_torch_on_the_lane.py), so a baseline timed on the main thread next to a studio path on the lane
would compare two different machines. `lane_runtime` gives a runtime with a bench-only request that
runs any function on the lane, timed there.
"""
from __future__ import annotations

import queue
import time


class LaneCall:
    """A bench-only request: run `fn` on the GPU lane thread (see `lane_runtime`)."""

    def __init__(self, fn) -> None:
        self.fn = fn


def _run_call(request: LaneCall, _ctx, _models):
    t0 = time.perf_counter()
    out = request.fn()
    return out, (time.perf_counter() - t0) * 1000.0


def lane_runtime(manager, registry=None):
    """The studio's runtime (every engine the studio registers, unless `registry` is given) plus LaneCall.

    Returns (runtime, call, on_lane, pump): `call(req)` submits a request and waits for its result the
    way the UI does (this thread plays the Qt main thread); `on_lane(fn)` runs `fn` on the GPU lane
    thread and returns (its result, milliseconds measured there); `pump(timeout)` runs one message
    posted to the main thread, if one comes within `timeout` seconds."""
    from studio.runtime import EngineRegistry, Runtime

    posted: queue.Queue = queue.Queue()
    if registry is None:
        from studio.engines import register_engines

        registry = EngineRegistry()
        register_engines(registry)
    registry.register(LaneCall, _run_call)
    runtime = Runtime(registry, manager, posted.put)

    def pump(timeout: float | None = None) -> None:
        try:
            posted.get(timeout=timeout)()
        except queue.Empty:
            pass

    def call(req):
        done: list = []
        runtime.submit(req, on_result=done.append, on_error=done.append)
        while not done:
            pump()
        if hasattr(done[0], "user_message"):
            raise RuntimeError(done[0].user_message)
        return done[0]

    def on_lane(fn):
        return call(LaneCall(fn))

    return runtime, call, on_lane, pump


def interleaved_lane(fns: dict, lane_fns: dict, on_lane, repeats: int) -> dict[str, list[float]]:
    """Each repeat runs every fn in turn (load falls on all alike): `fns` here, timed here; `lane_fns` on
    the lane thread, timed there (no hand-off). Milliseconds."""
    times: dict[str, list[float]] = {k: [] for k in (*fns, *lane_fns)}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1000.0)
        for k, fn in lane_fns.items():
            times[k].append(on_lane(fn)[1])
    return times
