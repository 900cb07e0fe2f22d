"""Runtime fixtures: a Runtime whose `post` is a queue the test drains (see runtime_fakes)."""
from __future__ import annotations

import pytest
from runtime_fakes import Boom, CpuEcho, Echo, Engines, MainLoop, Spin

from studio.runtime import EngineRegistry, Runtime
from studio.runtime.scheduler import CPU, GPU


@pytest.fixture
def loop():
    return MainLoop()


@pytest.fixture
def engines():
    return Engines()


@pytest.fixture
def runtime(loop, engines):
    reg = EngineRegistry()
    reg.register(Echo, engines.echo, GPU)
    reg.register(Spin, engines.spin, GPU)
    reg.register(Boom, engines.boom, GPU)
    reg.register(CpuEcho, engines.echo, CPU)
    rt = Runtime(reg, models="the-models", post=loop.post, cpu_workers=2)
    yield rt
    rt.cancel_all()
    for job in list(rt.jobs.values()):
        req = job.request
        if isinstance(req, Spin):
            req.release.set()
    assert rt.shutdown(5.0)
    assert not any(t.is_alive() for t in rt.threads())
