"""The Qt layer: the only package (with app.py and testing.py) that imports PySide6."""
from studio.ui.qt_workarounds import install as _install_qt_workarounds

_install_qt_workarounds()  # before any widget can emit a signal
