"""Soak: one studio process runs 200 generations, 200 labellings and 50 chat turns (the shipped starter
SD, CLIP and VLM; tiny random models where a starter model is missing), through the driver and the
real widgets. After a warm-up, resident memory may grow by at most 10%,
and the counts of threads, studio QTimers and Qt objects may not grow at all.

Marked slow: not in the default run; `make test-slow` runs it (a few minutes on a laptop CPU). The
figures are printed and, when $STUDIO_ARTIFACTS is set, written to soak.json there.
"""
from __future__ import annotations

import gc
import json
import os
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import choose, use_tiny_models

GENERATIONS, LABELLINGS, CHAT_TURNS = 200, 200, 50
WARM_UP = 20  # rounds before the baseline: caches, lazy imports, pools and the allocator settle
LABELS = ["red circle", "blue square", "green star", "yellow triangle", "a dog"]


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def counts(studio) -> dict[str, int]:
    from PySide6.QtCore import QObject, QTimer
    from PySide6.QtWidgets import QApplication

    gc.collect()
    studio.qtbot.wait(50)  # deferred deletions run
    window = studio.window
    timers = window.findChildren(QTimer)
    return {"threads": threading.active_count(),
            "timers": len(timers), "active_timers": sum(t.isActive() for t in timers),
            "qobjects": len(window.findChildren(QObject)),
            "widgets": len(QApplication.allWidgets()),
            "top_level_widgets": len(QApplication.topLevelWidgets())}


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_soak_200_generations_200_labellings_50_chat_turns(studio_factory, full_home, shapes_png):
    from studio.starter import assets_dir

    studio = studio_factory(full_home)
    use_tiny_models(studio, max_tokens=8)
    starter = assets_dir()
    for workspace, name, model_id, folder in (("paint", "paint.model", "starter-sd", "sd"),
                                              ("label", "label.model", "starter-clip", "clip"),
                                              ("chat", "chat.model", "starter-vlm", "vlm")):
        if (starter / folder / "config.json").exists() or (starter / folder / "model_index.json").exists():
            studio.switch_to(workspace)
            choose(studio, name, model_id)
    studio.wait_idle()
    assert studio.open_image(shapes_png) is not None
    done = {"generate": 0, "label": 0, "ask": 0}
    base = base_counts = None
    t0 = time.monotonic()
    for i in range(GENERATIONS):
        if i == WARM_UP:
            base_counts, base = counts(studio), rss_mb()
        assert studio.generate(f"a red cube number {i}", seed=i, steps=2) is not None, studio.last_error()
        done["generate"] += 1
        ranked = studio.label(LABELS[: 2 + i % 4])  # the new result is on the canvas: label it
        assert len(ranked) == 2 + i % 4, studio.last_error()
        done["label"] += 1
        if i % (GENERATIONS // CHAT_TURNS) == 0:
            assert isinstance(studio.ask(f"question {i}: what is in the picture?"), str), studio.last_error()
            done["ask"] += 1
    studio.wait_idle()
    end_counts, end = counts(studio), rss_mb()
    figures = {"done": done, "seconds": round(time.monotonic() - t0, 1), "rss_mb_after_warm_up": round(base, 1),
               "rss_mb_end": round(end, 1), "rss_growth": round(end / base - 1, 4),
               "counts_after_warm_up": base_counts, "counts_end": end_counts}
    print("\nSOAK " + json.dumps(figures))
    if os.environ.get("STUDIO_ARTIFACTS"):
        out = Path(os.environ["STUDIO_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "soak.json").write_text(json.dumps(figures, indent=2))
    assert done == {"generate": GENERATIONS, "label": LABELLINGS, "ask": CHAT_TURNS}
    assert end <= base * 1.10, f"resident memory grew {end / base - 1:.1%} after the warm-up: {figures}"
    for key, value in base_counts.items():
        assert end_counts[key] <= value, f"{key} grew from {value} to {end_counts[key]}: {figures}"
    assert studio.errors() == [] and studio.take_internal_errors() == []
