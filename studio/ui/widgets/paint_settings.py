"""Settings found in images: the bar that offers "Use these settings" when an image with A1111
`parameters` (or a studio recipe) is opened or dropped in paint, and applying them to the paint state
(from a recipe: every parameter, the seed, and the control units with their own images)."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from studio.core.errors import BadInputError
from studio.core.image import StudioImage
from studio.core.paint_requests import CONTROL_KINDS, pose_from_json
from studio.media.metadata import load_inputs, parse_parameters, parse_recipe, settings_from_parameters
from studio.state.paint_state import UNIT_COUNT, UnitSettings

log = logging.getLogger(__name__)


def offer_for(parameters: str, recipe_text: str, source: str = "") -> dict[str, Any]:
    recipe = None
    if recipe_text:
        try:
            recipe = parse_recipe(recipe_text)
        except BadInputError as exc:
            log.info("ignoring the recipe of %s: %s", source, exc.user_message)
    settings = settings_from_parameters(parse_parameters(parameters or ""))
    bits = []
    if settings.get("steps"):
        bits.append(f"{settings['steps']} steps")
    if settings.get("scheduler"):
        bits.append(settings["scheduler"])
    if settings.get("seed") is not None:
        bits.append(f"seed {settings['seed']}")
    if settings.get("model_name"):
        bits.append(settings["model_name"])
    return {"name": Path(source).name if source else "this image", "settings": settings, "recipe": recipe,
            "summary": ", ".join(bits)}


def _model_for(session, settings: dict[str, Any]) -> str | None:
    name = settings.get("model_name", "")
    for card in session.catalog.cards():
        if card.task in ("diffusion", "inpaint") and name and name in (card.name, card.id):
            return card.id
    return None


def apply_entry(session, offer: dict[str, Any], control=None) -> None:
    """Apply an offer (see offer_for) to the paint state and say what was and was not taken."""
    st = session.paint
    notes = []
    recipe = offer.get("recipe")
    if recipe is not None:
        rec = dict(recipe.get("request") or {})
        rec["seed"], rec["batch_count"] = int(recipe.get("seed", rec.get("seed", -1))), 1
        model = rec.get("model_id")
        if model not in session.catalog:
            notes.append(f"its model “{model}” is not in your catalog")
            rec.pop("model_id", None)
        st.apply_settings(rec)
        _apply_controls(session, recipe, rec.get("controls") or [], notes)
    else:
        settings = dict(offer.get("settings") or {})
        model = _model_for(session, settings)
        if model:
            settings["model_id"] = model
        elif settings.get("model_name"):
            notes.append(f"its model “{settings['model_name']}” is not in your catalog")
        settings["batch_count"] = 1
        st.apply_settings(settings)
        if settings.get("unread"):
            notes.append("not understood: " + "; ".join(settings["unread"]))
    text = f"Using the settings of {offer.get('name', 'the image')}"
    session.app.message = text + (f" ({'; '.join(notes)})" if notes else "")
    if control is not None:
        control.refresh_models()


def _apply_controls(session, recipe: dict[str, Any], controls: list, notes: list[str]) -> None:
    st = session.paint
    if not controls:
        st.units = tuple(replace(u, enabled=False) for u in st.units)
        return
    try:
        images = load_inputs(recipe, Path(session.paths.library))
    except BadInputError as exc:
        notes.append(exc.user_message)
        images = {}
    units = []
    for i, d in enumerate(controls[:UNIT_COUNT]):
        kind = d.get("kind") if d.get("kind") in CONTROL_KINDS else "depth"
        img = images.get(d.get("image") or "")
        pose = pose_from_json(d.get("pose"))
        if pose:
            st.people = pose
        source = "pose" if pose else ("file" if img is not None else "image")
        units.append(UnitSettings(enabled=True, kind=kind, model_id=str(d.get("model_id", "")), source=source,
                                  preprocessor=str(d.get("preprocessor", "none")), weight=float(d.get("weight", 1)),
                                  start=float(d.get("start", 0)), end=float(d.get("end", 1)),
                                  file_image=StudioImage(img) if img is not None and img.ndim == 3 else None,
                                  file_name=f"control {i + 1} of the recipe" if img is not None else ""))
    units += [replace(u, enabled=False) for u in st.units[len(units):]]
    st.units = tuple(units)


class SettingsOffer(QWidget):
    """“<image> carries generation settings (…)  [Use these settings] [×]”; hidden without an offer."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("paint.settings_offer")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.text = QLabel("", self)
        self.text.setObjectName("paint.settings_offer_text")
        self.text.setWordWrap(True)
        self.use = QPushButton("Use these settings", self)
        self.use.setObjectName("paint.use_settings")
        self.dismiss = QToolButton(self)
        self.dismiss.setObjectName("paint.dismiss_settings")
        self.dismiss.setText("×")
        self.dismiss.setToolTip("Keep my settings")
        lay.addWidget(self.text, 1)
        lay.addWidget(self.use)
        lay.addWidget(self.dismiss)
        self.setVisible(False)

    def show_offer(self, offer: dict[str, Any] | None) -> None:
        if not offer:
            self.setVisible(False)
            return
        kind = "a studio recipe" if offer.get("recipe") else "generation settings"
        summary = f" ({offer['summary']})" if offer.get("summary") else ""
        self.text.setText(f"“{offer['name']}” carries {kind}{summary}.")
        self.setVisible(True)
