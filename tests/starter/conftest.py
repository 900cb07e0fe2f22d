"""Fixtures for the starter-kit tests: offline hub, shipped assets, one quick evaluation."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def assets():
    from studio.starter import assets_dir

    path = assets_dir()
    if not (path / "clip" / "config.json").exists() or not (path / "cnn" / "config.json").exists():
        pytest.fail(f"starter weights missing under {path}: run `python -m studio.starter train`")
    return path


@pytest.fixture(scope="session")
def quick_eval(assets):
    """The evaluate command's own metrics on small held-out samples (computed once)."""
    from studio.starter.evaluate import evaluate

    # Only this suite's models: later starter evaluators (diffusion, ...) test themselves.
    return {**evaluate(assets, quick=True, only="cnn"), **evaluate(assets, quick=True, only="clip")}
