"""Plugins > Copy Palette of the Image: the hex codes of the current image's palette to the clipboard."""
from __future__ import annotations

from studio.plugins import api

from .palette import extract, hex_code


def copy_palette(host: api.Host) -> None:
    image = host.image
    if image is None:
        # A BadInputError is shown to the user as it is; the plugin stays on.
        raise api.BadInputError("Open an image first: the palette is taken from the current image.")
    colours = extract(image.rgb(), 6)
    host.copy_text("\n".join(hex_code(c) for c, _ in colours))
    host.message(f"Copied {len(colours)} colours: " + " ".join(hex_code(c) for c, _ in colours))
