"""Where the studio keeps user data: STUDIO_HOME, else the platform's data dir (platformdirs)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "studio"


def studio_home() -> Path:
    env = os.environ.get("STUDIO_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def inside(folder: str | os.PathLike, name: str | os.PathLike) -> Path:
    """`folder / name`, for a `name` read from a file (a recipe, a journal entry) that anyone may have
    written: an absolute path, `..` or a link that leads out of `folder` raises BadInputError, so such
    a file can never make the studio read or write outside its own folder."""
    from studio.core.errors import BadInputError

    base = Path(folder).resolve()
    text = os.fspath(name)
    target = (base / text).resolve()
    if not text or Path(text).is_absolute() or target == base or not target.is_relative_to(base):
        raise BadInputError(f"A saved file names “{text}”, which is outside its folder {base.name}/: refused.")
    return target


def repo_root() -> Path:
    """The checkout or install root that holds assets/ (next to the studio package)."""
    return Path(__file__).resolve().parents[2]


def assets_dir() -> Path:
    return repo_root() / "assets"


@dataclass(frozen=True)
class StudioPaths:
    home: Path

    @classmethod
    def from_env(cls) -> "StudioPaths":
        return cls(studio_home())

    @property
    def settings_file(self) -> Path:
        return self.home / "settings.json"

    @property
    def library(self) -> Path:
        return self.home / "library"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def journal(self) -> Path:
        return self.home / "journal"

    def ensure(self) -> "StudioPaths":
        for p in (self.home, self.library, self.logs, self.models, self.journal):
            p.mkdir(parents=True, exist_ok=True)
        return self
