"""Errors that carry a message for the user and technical detail for the log.

Every failure that reaches the UI is turned into a :class:`StudioError` so the user reads one clear
sentence, while the traceback goes to the log and the error dialog's details.
"""
from __future__ import annotations

import errno
import traceback

# Errors of the disk rather than of the studio: the user can fix them (free space, permissions).
_DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EROFS: "the folder is on a read-only file system",
                errno.EACCES: "the studio may not write there", errno.EPERM: "the studio may not write there"}


class StudioError(Exception):
    """An error the user should read: `user_message` is shown, `detail` is for the log."""

    def __init__(self, user_message: str, detail: str = "") -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail


class BadInputError(StudioError):
    """A file, prompt or parameter the studio cannot use."""


class ModelError(StudioError):
    """A model that cannot be found, loaded or run."""


class Cancelled(Exception):
    """Raised inside an engine when its job was cancelled; never shown as an error."""


def as_studio_error(exc: BaseException) -> StudioError:
    """Wrap any exception so the UI always has a user message and a detail text."""
    if isinstance(exc, StudioError):
        if not exc.detail:
            exc.detail = "".join(traceback.format_exception(exc))
        return exc
    detail = "".join(traceback.format_exception(exc))
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        where = f"“{exc.filename}”" if exc.filename else "a file"
        return StudioError(f"Could not write {where}: {_DISK_ERRNOS[exc.errno]} ({exc.strerror or exc}). "
                           "Free some space or make the folder writable, then "
                           "try again.", detail)
    text = str(exc)
    if type(exc).__module__ == "sqlite3" and ("disk is full" in text or "readonly database" in text):
        why = "the disk is full" if "full" in text else "its folder is read-only"
        return StudioError(f"Could not save to the studio's database: {why} ({text}); the last change was "
                           "rolled back. Free some space or make the folder writable, then try again.", detail)
    name = type(exc).__name__
    return StudioError(f"Unexpected error ({name}): {exc}", detail)
