"""Runs under Xvfb: a machine may have xvfb-run without the system libraries Qt's xcb plugin needs."""
from __future__ import annotations

import subprocess

import pytest


def skip_if_xcb_cannot_start(proc: subprocess.CompletedProcess) -> None:
    """Skip when Qt could not load its xcb platform plugin: Qt's own message names the missing
    system library (e.g. libxcb-cursor0), which is the machine's to install, not the studio's fault."""
    if 'Could not load the Qt platform plugin "xcb"' in proc.stderr:
        pytest.skip("Qt's xcb plugin cannot start here: " + proc.stderr.splitlines()[0])
