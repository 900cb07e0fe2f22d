"""The Qt layer: the only package (with app.py and testing.py) that imports PySide6."""
