"""A tiny observable base on psygnal: `state.changed` fires (name, value) after each attribute change."""
from __future__ import annotations

from typing import Any

from psygnal import Signal


class Observable:
    """Attributes declared in `_fields` emit `changed(name, value)` when set to a different value."""

    changed = Signal(str, object)
    _fields: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._fields:
            old = self.__dict__.get(name, _MISSING)
            object.__setattr__(self, name, value)
            if old is _MISSING or not _same(old, value):
                self.changed.emit(name, value)
        else:
            object.__setattr__(self, name, value)

    def update(self, **values: Any) -> None:
        for k, v in values.items():
            setattr(self, k, v)


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # numpy arrays and other ambiguous comparisons count as changed
        return False
