"""Attention capture that stays correct when the model runs fused attention (SDPA).

Fused kernels return no attention weights, and `output_attentions` silently yields nothing on
them, so the weights are recomputed from the very q and k the model used: hooks grab them at the
point where each library has them, then softmax(q k^T * scale) per head, in the library's own
order of operations (so it matches the eager path to float rounding):

  timm Attention            forward hooks on `q_norm` / `k_norm` (nn.Identity when qk_norm is
                            off, so the hooked values are q, k after any qk-norm), else on `qkv`
  transformers (ViT, CLIP)  forward hooks on `q_proj` / `k_proj` (older releases: `query` / `key`)
  nn.MultiheadAttention     forward pre-hook on its (query, key) inputs, projected with in_proj
                            (open_clip ResidualAttentionBlock, torchvision ViT EncoderBlock)

A capture that did not fire exactly once per block, or whose token count is wrong, raises a
ModelError instead of handing back an empty or stale map.
"""
from __future__ import annotations

import math
from typing import Any

from studio.core.errors import ModelError


def _unsupported(name: str, why: str) -> ModelError:
    return ModelError(f"The studio cannot read the attention of this model ({why}).",
                      f"attention module of block {name!r}: {why}")


class _BlockProbe:
    """Hooks on one block's attention; `weights()` turns the captured q, k into (B, H, T, T)."""

    def __init__(self, name: str, attn: Any) -> None:
        import torch.nn as nn

        self.name = name
        self.attn = attn
        self.q = self.k = None
        self.mask = None
        self.calls = 0
        cls = type(attn).__name__
        if "rope" in cls.lower() or getattr(attn, "rope", None) is not None:
            raise _unsupported(name, f"{cls} applies rotary position embeddings")
        if any("relative_position" in n or "rel_pos" in n for n, _ in attn.named_parameters()):
            raise _unsupported(name, f"{cls} adds a relative position bias")
        if isinstance(attn, nn.MultiheadAttention):
            if attn.bias_k is not None or attn.add_zero_attn:
                raise _unsupported(name, "nn.MultiheadAttention with add_bias_kv/add_zero_attn")
            self.mode = "mha"
            self.heads = attn.num_heads
        elif hasattr(attn, "qkv"):
            # Other timm attention classes add relative-position biases, windows or rotary
            # embeddings between q.k and the softmax: recomputing them here would be wrong.
            if type(attn).__module__ != "timm.layers.attention" or cls != "Attention":
                raise _unsupported(name, f"timm {cls} is not the standard ViT attention")
            self.mode = "qkv"
            self.heads = int(attn.num_heads)
            self.scale = float(attn.scale)
        elif hasattr(attn, "q_proj"):
            self.mode = "proj"
            self.q_mod, self.k_mod = attn.q_proj, attn.k_proj
        elif hasattr(attn, "query"):
            self.mode = "proj"
            self.q_mod, self.k_mod = attn.query, attn.key
        else:
            raise _unsupported(name, f"unknown attention module {cls}")
        if self.mode == "proj":
            self.head_dim = int(getattr(attn, "head_dim", 0) or getattr(attn, "attention_head_size", 0))
            heads = getattr(attn, "num_heads", None) or getattr(attn, "num_attention_heads", None)
            if not self.head_dim and heads:
                self.head_dim = self.q_mod.out_features // int(heads)
            if not self.head_dim:
                raise _unsupported(name, f"{cls} does not say its head size")
            self.heads = self.q_mod.out_features // self.head_dim
            scale = getattr(attn, "scaling", None)
            if scale is None:
                scale = getattr(attn, "scale", None)
            self.scale = float(scale) if scale is not None else self.head_dim ** -0.5

    # -- hooks -------------------------------------------------------------------------------
    def install(self) -> list:
        a = self.attn
        if self.mode == "mha":
            return [a.register_forward_pre_hook(self._mha_pre, with_kwargs=True)]
        if self.mode == "qkv":
            if hasattr(a, "q_norm") and hasattr(a, "k_norm"):
                return [a.q_norm.register_forward_hook(self._set("q", count=True)),
                        a.k_norm.register_forward_hook(self._set("k"))]
            return [a.qkv.register_forward_hook(self._qkv_out)]
        return [self.q_mod.register_forward_hook(self._set("q", count=True, split=True)),
                self.k_mod.register_forward_hook(self._set("k", split=True))]

    def _set(self, which: str, count: bool = False, split: bool = False):
        def hook(_m, _inp, out):
            if split:  # (B, N, H*hd) -> (B, H, N, hd)
                out = out.reshape(out.shape[0], out.shape[1], -1, self.head_dim).transpose(1, 2)
            setattr(self, which, out.detach())
            if count:
                self.calls += 1
        return hook

    def _qkv_out(self, _m, _inp, out):
        b, n, _ = out.shape
        qkv = out.detach().reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        self.q, self.k = qkv[0], qkv[1]
        self.calls += 1

    def _mha_pre(self, mod, args, kwargs):
        import torch.nn.functional as F

        names = ("query", "key", "value")
        vals = list(args) + [kwargs.get(n) for n in names[len(args):]]
        query, key = vals[0], vals[1]
        if kwargs.get("key_padding_mask") is not None or (len(args) > 3 and args[3] is not None):
            raise _unsupported(self.name, "a key padding mask")
        self.mask = kwargs.get("attn_mask")
        if not mod.batch_first:
            query, key = query.transpose(0, 1), key.transpose(0, 1)
        e = mod.embed_dim
        if mod._qkv_same_embed_dim:
            wq, wk = mod.in_proj_weight[:e], mod.in_proj_weight[e:2 * e]
        else:
            wq, wk = mod.q_proj_weight, mod.k_proj_weight
        bq = bk = None
        if mod.in_proj_bias is not None:
            bq, bk = mod.in_proj_bias[:e], mod.in_proj_bias[e:2 * e]
        hd = e // mod.num_heads
        b, n, _ = query.shape
        q = F.linear(query.detach(), wq, bq).reshape(b, n, mod.num_heads, hd).transpose(1, 2)
        k = F.linear(key.detach(), wk, bk).reshape(b, key.shape[1], mod.num_heads, hd).transpose(1, 2)
        # nn.MultiheadAttention scales q before the product; do the same for identical rounding.
        self.q, self.k = q * math.sqrt(1.0 / float(hd)), k
        self.calls += 1

    # -- weights -----------------------------------------------------------------------------
    def weights(self):
        import torch

        if self.calls != 1 or self.q is None or self.k is None:
            raise ModelError("The attention capture did not see this model's attention; no map is shown "
                             "rather than a wrong one.",
                             f"block {self.name!r}: {self.calls} captures (expected 1), mode {self.mode}")
        q, k = self.q.float(), self.k.float()
        if self.mode == "qkv":  # timm eager: (q * scale) @ k^T
            scores = (q * self.scale) @ k.transpose(-2, -1)
        elif self.mode == "proj":  # transformers eager: (q @ k^T) * scaling
            scores = torch.matmul(q, k.transpose(2, 3)) * self.scale
        else:
            scores = q @ k.transpose(-2, -1)
        if self.mask is not None:
            m = self.mask
            scores = scores.masked_fill(m, float("-inf")) if m.dtype == torch.bool else scores + m.float()
        return torch.softmax(scores, dim=-1)


class AttentionCapture:
    """Context manager: hooks every block's attention; `maps()` after one forward pass.

    >>> with AttentionCapture(adapter.blocks) as cap:
    ...     adapter.forward(x)
    >>> weights = cap.maps()  # list of (B, H, T, T) float32 tensors, one per block
    """

    def __init__(self, blocks) -> None:
        from studio.engines.probes.adapters import attention_module

        if not blocks:
            raise ModelError("This model has no transformer blocks whose attention the studio can read.")
        self.probes = []
        for name, block in blocks:
            attn = attention_module(block)
            if attn is None:
                raise _unsupported(name, "no attention module found in the block")
            self.probes.append(_BlockProbe(name, attn))
        self._handles: list = []

    def __enter__(self) -> "AttentionCapture":
        self.reset()
        for p in self.probes:
            self._handles += p.install()
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def reset(self) -> None:
        for p in self.probes:
            p.q = p.k = p.mask = None
            p.calls = 0

    def maps(self, tokens: int | None = None) -> list:
        out = [p.weights() for p in self.probes]
        for p, w in zip(self.probes, out):
            if w.dim() != 4 or w.shape[-1] != w.shape[-2] or (tokens is not None and w.shape[-1] != tokens):
                raise ModelError("The captured attention has an unexpected shape; no map is shown.",
                                 f"block {p.name!r}: shape {tuple(w.shape)}, expected {tokens} tokens")
        return out

    @property
    def heads(self) -> int:
        return self.probes[0].heads
