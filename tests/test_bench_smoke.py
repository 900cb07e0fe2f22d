"""Smoke test of the benchmark harness (bench/): benchmarks are not tests, but the harness must not rot.

Runs `python -m bench --quick --only manager` in a child process with the figures redirected to a
temporary file (BENCH_RESULTS) and the markdown to a temporary doc, then checks the keys the report
relies on. The committed bench/results.json and docs/benchmarks.md are never touched.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_manager_writes_results_and_table(tmp_path):
    results, doc = tmp_path / "results.json", tmp_path / "benchmarks.md"
    env = dict(os.environ, BENCH_RESULTS=str(results), HF_HUB_OFFLINE="1", QT_QPA_PLATFORM="offscreen",
               OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "manager", "--doc", str(doc)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(results.read_text())
    assert {"machine", "manager", "last_run"} <= set(data)
    for key in ("cpu_count", "ram_gb", "torch", "diffusers", "transformers", "device"):
        assert key in data["machine"], key
    m = data["manager"]
    for key in ("direct_median_s", "manager_median_s", "ratio_manager_to_direct", "goal_ratio", "goal_met",
                "measured_at", "quick"):
        assert key in m, key
    assert m["quick"] is True and m["ratio_manager_to_direct"] > 0
    assert data["last_run"] == {**data["last_run"], "benchmarks": ["manager"], "quick": True, "failed": []}
    text = doc.read_text()
    assert "| Model manager" in text and "ratio <= 1.05" in text and "## Machine" in text


def test_report_renders_every_section_from_partial_results():
    """A results file with unknown, missing and skipped entries still renders (no benchmark run needed)."""
    from bench.report import SECTIONS, markdown

    text = markdown({"machine": {"cpu": "x", "cpu_count": 2}, "gpu": {"skipped": "skipped: no CUDA device"},
                     "startup": {"shown_s": 0.3, "bare_qt_shown_s": 0.1, "ratio_to_bare_qt": 3.0,
                                 "torch_imported_at_show": False}})
    assert "skipped: no CUDA device" in text and "not run" in text
    assert text.count("\n| ") >= len(SECTIONS)
