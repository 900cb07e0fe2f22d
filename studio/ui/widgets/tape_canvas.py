"""What the frame tape shows on the main canvas: the playhead's frame with the onion skin as the canvas
overlay, or the render's live preview, keeping the user's zoom and scroll from frame to frame (a
playing clip must not re-fit the view 24 times a second)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from studio.core.image import StudioImage
from studio.state.tape_state import onion_overlay

PREVIEW_SIDE = 256  # latent previews are tiny: shown blown up to about this many pixels


class TapeCanvas:
    def __init__(self, state, canvas: Callable[[], object]) -> None:
        self.state = state
        self._canvas = canvas

    def display(self, image: StudioImage) -> None:
        """Show `image`, keeping zoom and scroll when the size is unchanged and the user left fit mode."""
        c = self._canvas()
        if c is None:
            return
        old = c.image()
        keep = old is not None and old.size == image.size and not getattr(c, "_fit_mode", True)
        if keep:
            transform, h, v = c.transform(), c.horizontalScrollBar().value(), c.verticalScrollBar().value()
        c.set_image(image)
        if keep:
            c.setTransform(transform)
            c._fit_mode = False  # set_image re-fitted the view; the user had zoomed
            c.horizontalScrollBar().setValue(h)
            c.verticalScrollBar().setValue(v)

    def show_frame(self) -> None:
        st, c = self.state, self._canvas()
        frame = st.current()
        if frame is None or c is None:
            return
        self.display(StudioImage(frame, f"tape frame {st.playhead + 1}"))
        overlay = onion_overlay(st.frames, st.playhead, st.onion_depth) if st.onion else None
        c.set_overlay(overlay, st.onion_opacity, smooth=False)

    def show_preview(self, preview) -> None:
        if self._canvas() is None or not len(preview.frames):
            return
        i = min(self.state.playhead, len(preview.frames) - 1)
        small = preview.frames[i]
        scale = max(1, PREVIEW_SIDE // max(1, small.shape[0]))
        big = np.repeat(np.repeat(small, scale, axis=0), scale, axis=1)
        self.display(StudioImage(np.ascontiguousarray(big), f"preview, {preview.text}"))
