"""Reading one layer's output: a forward hook that keeps it (optionally stopping the forward pass
there), and the conversion of CNN maps or ViT patch tokens to a (channels, h, w) map."""
from __future__ import annotations

from studio.core.errors import BadInputError
from studio.engines.probes.adapters import first_tensor


class StopForward(Exception):
    """Raised from a hook once the wanted layer has produced its output."""


class LayerOutput:
    """Context manager: `value` is the first tensor the module returned during the forward pass.

    A module called more than once per pass (torchvision's BasicBlock reuses one ReLU) reports its
    last call, unless `stop` ends the pass at the first one.
    """

    def __init__(self, module, stop: bool = False) -> None:
        self.module = module
        self.stop = stop
        self.value = None
        self.calls = 0
        self._handle = None

    def _hook(self, _m, _inp, out):
        self.value = first_tensor(out)
        self.calls += 1
        if self.stop:
            raise StopForward()

    def __enter__(self) -> "LayerOutput":
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


def run_to(adapter, x, module, stop: bool = True):
    """Forward `x` until `module` has run; returns (its output tensor, logits or None)."""
    logits = None
    with LayerOutput(module, stop) as cap:
        try:
            logits = adapter.forward(x)
        except StopForward:
            pass
    if cap.value is None:
        raise BadInputError("That layer is not used when the model looks at an image.")
    return cap.value, logits


def spatial_maps(t, adapter, layer: str):
    """(C, h, w) of batch item 0 from a (B, C, h, w) map or (B, T, D) tokens (patches on the grid).

    Autograd-friendly: it only slices and reshapes.
    """
    if t.dim() == 4:
        return t[0]
    if t.dim() == 3 and adapter.grid is not None:
        if t.shape[0] != 1 and t.shape[1] == 1:  # (T, B, D) from a sequence-first transformer
            t = t.transpose(0, 1)
        rows, cols = adapter.grid
        prefix = t.shape[1] - rows * cols
        if prefix < 0:
            raise BadInputError(f"Layer “{layer}” has {t.shape[1]} tokens, fewer than the "
                                f"{rows}x{cols} patch grid.")
        return t[0, prefix:].reshape(rows, cols, t.shape[-1]).permute(2, 0, 1)
    raise BadInputError(f"Layer “{layer}” does not produce a spatial map (its output is "
                        f"{tuple(t.shape)}); pick a convolution stage or a transformer block.")
