"""The session: the handful of long-lived objects the composition root builds and the UI receives.

Built only by `studio.app` (or the test fixture); nothing here is a module-level singleton.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.catalog.cards import Catalog
from studio.core.paths import StudioPaths
from studio.core.settings import Settings
from studio.state.app_state import AppState
from studio.state.chat_state import ChatState
from studio.state.inspect_state import InspectState
from studio.state.label_state import LabelState
from studio.state.models_state import ModelsState
from studio.state.paint_state import PaintState
from studio.state.tape_state import TapeState


@dataclass
class Session:
    paths: StudioPaths
    settings: Settings
    catalog: Catalog
    runtime: Any  # studio.runtime.Runtime
    app: AppState = field(default_factory=AppState)
    inspect: InspectState = field(default_factory=InspectState)
    label: LabelState = field(default_factory=LabelState)
    models: ModelsState = field(default_factory=ModelsState)
    chat: ChatState = field(default_factory=ChatState)
    paint: PaintState = field(default_factory=PaintState)
    tape: TapeState = field(default_factory=TapeState)
    plugins: Any = None  # studio.plugins.manager.PluginManager (None: built without plugins)
