"""Errors that carry a message for the user and technical detail for the log.

Every failure that reaches the UI is turned into a :class:`StudioError` so the user reads one clear
sentence, while the traceback goes to the log and the error dialog's details.
"""
from __future__ import annotations

import traceback


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
    name = type(exc).__name__
    return StudioError(f"Unexpected error ({name}): {exc}", detail)
