"""Models > Manager > Add model: a card from a folder, a single checkpoint file or a hub repo id.

The library and task are guessed from the files (studio.catalog.detect) and can be changed. A hub
repo can also be looked up on Hugging Face, but only when the user has switched the studio online.
The card goes to STUDIO_HOME/models.toml (atomic write) through the ModelsController.
"""
from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout)

from studio.catalog.cards import LIBRARIES, TASKS, card_from_dict
from studio.catalog.detect import Guess, detect_file, detect_folder, detect_hub_id
from studio.core.errors import BadInputError
from studio.state.models_state import ModelsController

KINDS = (("folder", "A model folder (diffusers, transformers, timm, open_clip)"),
         ("file", "A single checkpoint file (.safetensors)"),
         ("hub", "A Hugging Face repo id (downloaded when you press Download)"))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")[:80] or "my-model"


class AddModelDialog(QDialog):
    added = Signal(str)  # the new card's id

    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.ctl = ModelsController.of(session)
        self.setObjectName("add_model.dialog")
        self.setWindowTitle("Add a model")
        self.resize(640, 360)
        self._guess = Guess()
        self._id_edited = False

        form = QFormLayout()
        self.kind = QComboBox(self)
        self.kind.setObjectName("add_model.kind")
        for key, text in KINDS:
            self.kind.addItem(text, key)
        self.kind.currentIndexChanged.connect(lambda _i: self._kind_changed())
        form.addRow("What:", self.kind)

        row = QHBoxLayout()
        self.path = QLineEdit(self)
        self.path.setObjectName("add_model.path")
        self.path.editingFinished.connect(self.detect)
        self.browse = QPushButton("Browse…", self)
        self.browse.setObjectName("add_model.browse")
        self.browse.clicked.connect(self._browse)
        self.lookup = QPushButton("Look up", self)
        self.lookup.setObjectName("add_model.lookup")
        self.lookup.setToolTip("Ask Hugging Face for the repo's library and task (needs the studio online)")
        self.lookup.clicked.connect(self._lookup)
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        row.addWidget(self.lookup)
        form.addRow("Where:", row)

        self.detected = QLabel(self)
        self.detected.setObjectName("add_model.detected")
        self.detected.setWordWrap(True)
        form.addRow("", self.detected)

        self.name = QLineEdit(self)
        self.name.setObjectName("add_model.name")
        self.name.textEdited.connect(self._name_edited)
        form.addRow("Name:", self.name)
        self.model_id = QLineEdit(self)
        self.model_id.setObjectName("add_model.id")
        self.model_id.textEdited.connect(lambda _t: setattr(self, "_id_edited", True))
        form.addRow("Id:", self.model_id)
        self.library = QComboBox(self)
        self.library.setObjectName("add_model.library")
        self.library.addItems(LIBRARIES)
        form.addRow("Library:", self.library)
        self.task = QComboBox(self)
        self.task.setObjectName("add_model.task")
        self.task.addItems(TASKS)
        form.addRow("Task:", self.task)
        self.revision = QLineEdit("main", self)
        self.revision.setObjectName("add_model.revision")
        self.revision.setToolTip("A branch, tag or 40-character commit to pin the download to")
        form.addRow("Revision:", self.revision)

        self.error = QLabel(self)
        self.error.setObjectName("add_model.error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #d33;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.setObjectName("add_model.buttons")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setObjectName("add_model.ok")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setObjectName("add_model.cancel")
        self.buttons.accepted.connect(self.add)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(self.buttons)
        self._kind_changed()

    # -- input ----------------------------------------------------------------------------
    def kind_key(self) -> str:
        return self.kind.currentData()

    def set_kind(self, key: str) -> None:
        self.kind.setCurrentIndex([k for k, _ in KINDS].index(key))

    def _kind_changed(self) -> None:
        hub = self.kind_key() == "hub"
        self.browse.setVisible(not hub)
        self.lookup.setVisible(hub)
        self.lookup.setEnabled(not self.session.settings.get("offline"))
        self.revision.setEnabled(hub)
        self.path.setPlaceholderText("org/name, e.g. HuggingFaceTB/SmolVLM-256M-Instruct" if hub
                                     else "/path/to/model")
        if self.path.text():
            self.detect()

    def _browse(self) -> None:
        if self.kind_key() == "folder":
            path = QFileDialog.getExistingDirectory(self, "Model folder")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Checkpoint file", "",
                                                  "Checkpoints (*.safetensors *.ckpt *.pt *.pth *.bin)")
        if path:
            self.path.setText(path)
            self.detect()

    def _name_edited(self, text: str) -> None:
        if not self._id_edited:
            self.model_id.setText(slug(text))

    def detect(self) -> Guess:
        """Guess library, task and name from what the path points at (small files only)."""
        text = self.path.text().strip()
        kind = self.kind_key()
        self.error.setText("")
        if not text:
            return Guess()
        if kind == "hub":
            guess = detect_hub_id(text)
        else:
            p = Path(text).expanduser()
            if not p.exists():
                self.detected.setText(f"{p} does not exist.")
                return Guess()
            if kind == "folder" and not p.is_dir():
                self.set_kind("file")
                return self.detect()
            if kind == "file" and p.is_dir():
                self.set_kind("folder")
                return self.detect()
            guess = detect_folder(p) if p.is_dir() else detect_file(p)
        self._apply(guess)
        return guess

    def _apply(self, guess: Guess) -> None:
        self._guess = guess
        self.detected.setText(guess.note)
        if guess.library:
            self.library.setCurrentText(guess.library)
        if guess.task:
            self.task.setCurrentText(guess.task)
        if guess.name and not self.name.text():
            self.name.setText(guess.name)
        if not self._id_edited:
            self.model_id.setText(slug(self.name.text() or guess.name))

    def _lookup(self) -> None:
        from studio.catalog.requests import HubInfoRequest

        repo = self.path.text().strip()
        if not repo:
            return
        self.detected.setText("Asking Hugging Face…")

        def done(info) -> None:
            guess = detect_hub_id(repo)
            note = (f"{info.library or 'unknown library'}, {info.task or 'unknown task'}, "
                    f"{info.size_bytes / 2**30:,.1f} GB" + (", gated" if info.gated else "")
                    + (f", license {info.license}" if info.license else ""))
            self._apply(Guess(info.library if info.library in LIBRARIES else guess.library,
                              info.task or guess.task, guess.name, note))

        self.session.runtime.submit(HubInfoRequest(repo, self.revision.text().strip() or "main"),
                                    key="add_model.lookup", title="Looking up a model",
                                    on_result=done,
                                    on_error=lambda e: self.detected.setText(e.user_message))

    # -- result ---------------------------------------------------------------------------
    def card_data(self) -> dict:
        kind, text = self.kind_key(), self.path.text().strip()
        if not text:
            raise BadInputError("Say where the model is: a folder, a file or a repo id.")
        if kind != "hub":
            text = str(Path(text).expanduser().resolve())
            if not Path(text).exists():
                raise BadInputError(f"{text} does not exist.")
        data = {"id": self.model_id.text().strip(), "name": self.name.text().strip() or self.model_id.text(),
                "task": self.task.currentText(), "library": self.library.currentText(),
                "source": f"{'local' if kind == 'folder' else kind}:{text}"}
        if kind == "hub":
            data["revision"] = self.revision.text().strip() or "main"
        if self._guess.options:
            data["options"] = dict(self._guess.options)
        return data

    def add(self) -> None:
        try:
            data = self.card_data()
            card = card_from_dict(data, "user")
            catalog = self.session.catalog
            if card.id in catalog and catalog.get(card.id).origin != "user":
                raise BadInputError(f"The id {card.id!r} is taken by a bundled model: choose another.")
            self.ctl.add_card(card)
        except BadInputError as exc:
            self.error.setText(exc.user_message)
            return
        except OSError as exc:
            self.error.setText(f"Could not write your model list: {exc}")
            return
        self.added.emit(card.id)
        self.accept()
