"""State of the label workspace: labels, templates and scoring, and the latest result of each tool
(zero-shot ranking, folder batch, accuracy, embedding arithmetic, word-to-region map).

Qt-free. Scores are derived here from the cosines an engine returned, so the scoring mode, temperature
and "none of these" threshold re-rank at once without a model call. `pool` keeps the unit image
embeddings seen this session (batch, A, B, C) for "nearest loaded images"; it belongs to one model.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from studio.core.label_requests import (NONE_LABEL, SCORINGS, TEMPLATE_SETS, parse_labels, rank,
                                        region_mask, resolve_scoring, scores, template_set, verdict)
from studio.state.observable import Observable

SLOTS = ("a", "b", "c")


class LabelState(Observable):
    _fields = (
        "model_id", "labels_text", "templates", "scoring", "temperature", "threshold",
        "result", "ranked", "verdict", "busy", "status",
        "folder", "batch", "batch_busy", "batch_progress", "batch_status", "accuracy",
        "slot_a", "slot_b", "slot_c", "centre", "probes", "arithmetic", "arith_busy", "arith_status",
        "region_word", "region_method", "region", "region_busy", "region_status", "mask_threshold",
        "show_overlay",
    )

    def __init__(self) -> None:
        self.model_id: str = ""
        self.labels_text: str = ""
        self.templates: str = "single"  # a TEMPLATE_SETS key
        self.scoring: str = "auto"  # a SCORINGS key
        self.temperature: float = 1.0
        self.threshold: float = 0.0  # top score under this -> "none of these"
        self.result: Any = None  # LabelResult
        self.ranked: tuple[tuple[str, float], ...] = ()
        self.verdict: str = ""
        self.busy: bool = False
        self.status: str = ""
        self.folder: str = ""
        self.batch: Any = None  # LabelBatchResult
        self.batch_busy: bool = False
        self.batch_progress: float = 0.0
        self.batch_status: str = ""
        self.accuracy: Any = None  # AccuracyResult
        self.slot_a: Any = None  # StudioImage
        self.slot_b: Any = None
        self.slot_c: Any = None
        self.centre: bool = True
        self.probes: str = ""
        self.arithmetic: Any = None  # ArithmeticResult
        self.arith_busy: bool = False
        self.arith_status: str = ""
        self.region_word: str = ""
        self.region_method: str = "value"  # a REGION_METHODS key
        self.region: Any = None  # RegionResult
        self.region_busy: bool = False
        self.region_status: str = ""
        self.mask_threshold: float = 0.5
        self.show_overlay: bool = True
        self.pool: dict[str, np.ndarray] = {}
        self.pool_model: str = ""
        self.changed.connect(self._rescore_on)

    # -- inputs ---------------------------------------------------------------------------
    def labels(self) -> tuple[str, ...]:
        return parse_labels(self.labels_text)

    def template_list(self) -> tuple[str, ...]:
        return template_set(self.templates)

    def set_templates(self, name: str) -> None:
        if name not in TEMPLATE_SETS:
            raise ValueError(f"unknown template set {name!r}")
        self.templates = name

    def set_scoring(self, mode: str) -> None:
        if mode not in SCORINGS:
            raise ValueError(f"unknown scoring {mode!r}")
        self.scoring = mode

    def probe_words(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w.strip().lower() for w in self.probes.replace(",", " ").split()
                                   if w.strip()))

    # -- zero-shot ------------------------------------------------------------------------
    def set_result(self, result) -> None:
        self.result = result
        self.add_to_pool(result.model_id, "current image", result.image_embedding)
        self.rescore()

    def scoring_mode(self) -> str:
        bias = self.result.logit_bias if self.result is not None else None
        return resolve_scoring(self.scoring, bias)

    def rescore(self) -> None:
        r = self.result
        if r is None:
            self.update(ranked=(), verdict="")
            return
        vals = scores(r.cosine, self.scoring, r.logit_scale, r.logit_bias, self.temperature)
        ranked = rank(r.labels, vals)
        self.update(ranked=ranked, verdict=verdict(ranked, self.threshold))

    def _rescore_on(self, name: str, _value) -> None:
        if name in ("scoring", "temperature", "threshold"):
            self.rescore()

    def none_of_these(self) -> bool:
        return self.verdict == NONE_LABEL

    # -- batch ----------------------------------------------------------------------------
    def set_batch(self, result) -> None:
        self.batch = result
        for item, emb in zip(result.items, result.embeddings):
            self.add_to_pool(result.model_id, item.name, emb)

    def batch_rows(self) -> list[tuple[str, str, float]]:
        """(file name, verdict, top score) per image of the batch, under the current scoring."""
        b = self.batch
        if b is None or not len(b.items):
            return []
        vals = scores(b.cosine, self.scoring, b.logit_scale, b.logit_bias, self.temperature)
        out = []
        for item, row in zip(b.items, vals):
            ranked = rank(b.labels, row)
            out.append((item.name, verdict(ranked, self.threshold), ranked[0][1]))
        return out

    # -- arithmetic -----------------------------------------------------------------------
    def add_to_pool(self, model_id: str, name: str, embedding) -> None:
        if model_id != self.pool_model:
            self.pool = {}
            self.pool_model = model_id
        self.pool[name] = np.asarray(embedding, np.float32)

    def pool_items(self, model_id: str) -> tuple[tuple[str, np.ndarray], ...]:
        if model_id != self.pool_model:
            return ()
        return tuple((k, v) for k, v in self.pool.items() if k != "current image")

    def set_arithmetic(self, result) -> None:
        for name, emb in result.embeddings:
            self.add_to_pool(result.model_id, name, emb)
        self.arithmetic = result

    # -- region ---------------------------------------------------------------------------
    def mask(self) -> np.ndarray | None:
        """The thresholded word-to-region mask (HxW uint8 0/255) or None without a map."""
        if self.region is None:
            return None
        return region_mask(self.region, self.mask_threshold)

    # -- model ----------------------------------------------------------------------------
    def set_model(self, model_id: str) -> None:
        """A new model makes every cosine stale."""
        if model_id == self.model_id:
            return
        self.update(model_id=model_id, result=None, region=None, arithmetic=None)
        self.rescore()
