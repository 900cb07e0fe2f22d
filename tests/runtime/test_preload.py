"""Torch's shared libraries are loaded with the GIL released before the first `import torch`."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is Linux only")
def test_preload_loads_libtorch_once_and_torch_then_imports_and_works():
    code = textwrap.dedent("""
        import sys
        from studio.runtime.preload import preload_torch_libraries, torch_lib_dir
        assert torch_lib_dir() is not None and "torch" not in sys.modules
        first = preload_torch_libraries()
        assert "torch" not in sys.modules  # nothing imported, only the libraries mapped
        maps = open("/proc/self/maps").read()
        assert "libtorch.so" in maps and "libtorch_cpu.so" in maps, first
        assert preload_torch_libraries() == []  # once per process
        import torch
        assert float((torch.ones(3) @ torch.ones(3))) == 3.0
        print(first)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "libtorch.so" in out.stdout


def test_preload_does_nothing_once_torch_is_imported():
    code = "import torch, studio.runtime.preload as p; assert p.preload_torch_libraries() == []"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_first_import_guard_pauses_the_collector_once_then_freezes():
    code = textwrap.dedent("""
        import gc
        from studio.runtime.preload import first_import_guard
        assert gc.isenabled()
        with first_import_guard(False):  # a CPU-lane job: untouched
            assert gc.isenabled()
        frozen = gc.get_freeze_count()
        with first_import_guard():
            assert not gc.isenabled()
            import torch
        assert gc.isenabled() and gc.get_freeze_count() > frozen + 100000
        with first_import_guard():  # only the first job
            assert gc.isenabled()
        try:
            with first_import_guard():
                raise ValueError
        except ValueError:
            pass
        assert gc.isenabled()
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_an_engine_that_raises_in_the_first_job_leaves_the_collector_on():
    code = textwrap.dedent("""
        import gc, queue
        from studio.runtime import EngineRegistry, Runtime

        class Boom: pass
        def engine(request, ctx, models):
            assert not gc.isenabled()  # the first GPU job runs with the collector paused
            raise RuntimeError("boom")
        registry = EngineRegistry()
        registry.register(Boom, engine)
        posted = queue.Queue()
        rt = Runtime(registry, None, posted.put)
        done = []
        rt.submit(Boom(), on_result=done.append, on_error=done.append)
        while not done:
            posted.get()()
        assert "boom" in str(getattr(done[0], "detail", done[0])) and gc.isenabled()
        rt.shutdown(5.0)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
