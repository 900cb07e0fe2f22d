"""Torch runs only on the GPU lane, never on the main thread.

With torch's OpenMP backend every thread that runs torch ops gets its own team of worker threads;
once two teams exist on a 2-core machine, libgomp stops spinning between ops and every op on the
lane pays a thread wake-up (the starter CNN's forward went from 8.0 to 10.4 ms: docs/benchmarks.md,
"One torch thread"). A whole session therefore runs in a fresh interpreter (other tests call engines
on this thread), and at the end one parallel torch op on the main thread must still create the
main thread's first team: new OS threads appear only then.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SESSION = textwrap.dedent('''
    import os
    import numpy as np
    from PIL import Image

    def tasks():
        return len(os.listdir("/proc/self/task"))

    def test_session(studio, tmp_path):
        import pytest
        import torch

        if torch.get_num_threads() < 2:
            pytest.skip("torch uses one thread here: there is no OpenMP team to see")
        path = tmp_path / "scene.png"
        Image.fromarray(np.full((64, 96, 3), (200, 40, 40), np.uint8)).save(path)
        assert studio.open_image(path) is not None
        assert studio.feature_maps() is not None, studio.last_error()
        assert studio.label(["a red square", "a blue circle"]), studio.last_error()
        assert studio.generate("a red circle", steps=4) is not None, studio.last_error()
        studio.wait_idle()
        before = tasks()
        torch.randn(4_000_000).exp_().sum()  # the first parallel op on this thread starts its team
        after = tasks()
        print(f"OS threads {before} -> {after}")
        assert after > before, "the main thread already had an OpenMP team: torch ran on it"
''')


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts the threads in /proc/self/task")
def test_a_session_runs_no_torch_on_the_main_thread(tmp_path):
    test = tmp_path / "test_session.py"
    test.write_text(SESSION)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s",
                           "--rootdir", str(tmp_path), str(test)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    if "1 skipped" in proc.stdout:
        pytest.skip("torch uses one thread on this machine: there is no OpenMP team to see")
    assert "1 passed" in proc.stdout, proc.stdout[-2000:]
