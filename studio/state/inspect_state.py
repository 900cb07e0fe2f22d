"""State of the inspect workspace: the model, the patch grid, and the cached probe results each tab
redraws from (feature maps, channel statistics, layer tree, ViT probe, Grad-CAM, occlusion,
receptive field, the side-by-side comparison), plus the view choices (layer, head, channel, patch).

Qt-free. Results are frozen numpy-only values from `studio.core.inspect_requests`; the maps the
tabs show are derived here with `studio.engines.probes.views` (numpy only, never torch), so
switching layer, head, channel or patch is a pure function of this state: no model call.
Results belong to one (image, model): `image_changed()` and `set_model()` drop what went stale.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from studio.state.observable import Observable

PATCH_SIZES = (8, 14, 16, 32)
TABS = ("features", "patches", "attention", "explain", "compare")
ATTENTION_MODES = ("cls", "rollout")
HEAD_FUSIONS = ("mean", "max", "min")
CAM_METHODS = ("gradcam", "gradcam++")
EXPLAIN_VIEWS = ("cam", "occlusion")
INSPECT_TASKS = ("cnn", "vit", "clip")  # catalog tasks the inspect workspace can open
COMPARE_METHODS = ("gradcam", "gradcam++", "rollout", "cls")


def rollout_rows(attentions: np.ndarray, prefix: int, fusion: str, discard: float) -> np.ndarray:
    """(layers, patches): the rollout's CLS row through layers 1..l for every l, with the arithmetic
    of `views.rollout_matrix` (the UI tests check both agree on every layer).

    Only row 0 of each joint matrix A_l ... A_1 is needed, so it is carried as a vector
    (e_0 A_l, then times A_{l-1}, ...): vector-matrix products only. Full matrix products of this
    size are fast single-threaded but can take 50 ms each when a multithreaded BLAS competes for
    busy cores (the GPU lane's torch threads), which would break the redraw budget.
    """
    from studio.engines.probes import views

    att = np.asarray(attentions)
    t = att.shape[-1]
    mats = []
    for layer in range(att.shape[0]):
        fused32 = views.fuse_heads(att[layer], fusion)
        fused = fused32.astype(np.float64)
        k = int(discard * (t - prefix))
        if k > 0:  # prefix columns (CLS, registers) are never dropped
            # The k lowest by partition, not a full sort (2-3x faster): only exactly tied values at
            # the cut may be picked differently from views' stable sort, an equally valid choice.
            order = np.argpartition(fused32[:, prefix:], k - 1, axis=1)[:, :k] + prefix
            np.put_along_axis(fused, order, 0.0, axis=1)
        a = fused + np.eye(t)
        mats.append(a / a.sum(axis=1, keepdims=True))
    rows = []
    for top in range(len(mats)):
        # Without a CLS token the view is the mean row of the joint matrix: start from the mean vector.
        r = mats[top][0] if prefix > 0 else mats[top].mean(axis=0)
        for below in range(top - 1, -1, -1):
            r = r @ mats[below]
        rows.append(r[prefix:] if prefix > 0 else r)
    return np.stack(rows).astype(np.float32)


class InspectState(Observable):
    _fields = (
        # patch grid (uniform, in image pixels) and the CNN feature-map run of the first version
        "patch_size", "show_patches", "hover_patch", "model_id", "layers", "layer",
        "colormap", "feature_maps", "busy", "status",
        # workspace-wide view choices
        "tab", "show_overlay", "opacity", "jobs",
        # features: channel grid, layer tree, statistics, receptive field
        "grid_channels", "grid_geometry", "tree", "stats", "channel", "rf_mode", "rf",
        # ViT probe: patches and attention
        "probe", "model_grid", "model_hover", "patch", "patch_layer",
        "att_layer", "att_head", "att_mode", "rollout_fusion", "rollout_discard",
        # explanations
        "cam", "cam_method", "cam_class", "cam_layer", "occlusion", "occ_progress", "explain_view",
        # side by side
        "compare_models", "compare_methods", "compare",
    )

    def __init__(self) -> None:
        self.patch_size: int = 16
        self.show_patches: bool = False
        self.hover_patch: tuple[int, int, int] | None = None  # (row, col, index) of the uniform grid
        self.model_id: str = "starter-cnn"
        self.layers: tuple[str, ...] = ()
        self.layer: str = ""
        self.colormap: str = "viridis"
        self.feature_maps: Any = None  # FeatureMapResult (a ViT's channel grid is converted to one)
        self.busy: bool = False
        self.status: str = ""

        self.tab: str = "features"
        self.show_overlay: bool = True
        self.opacity: float = 0.6
        self.jobs: dict[str, str] = {}  # job kind -> status text while it runs ("Running…")

        self.grid_channels: Any = None  # int64 (n,): channel index of each tile of the grid
        self.grid_geometry: Any = None  # PreprocessGeometry of the grid's maps
        self.tree: Any = None  # LayerTreeResult
        self.stats: Any = None  # ChannelStatsResult
        self.channel: Optional[int] = None  # the channel shown large over the image
        self.rf_mode: bool = False  # a click on the image asks for the receptive field there
        self.rf: Any = None  # ReceptiveFieldResult

        self.probe: Any = None  # VitProbeResult
        self.model_grid: bool = True  # draw the model's crop and patch grid on the image
        self.model_hover: tuple[int, int, int] | None = None  # (row, col, patch index) of the model grid
        self.patch: tuple[int, int, int] | None = None  # the patch open in the patch inspector
        self.patch_layer: int = 0
        self.att_layer: int = 0
        self.att_head: Optional[int] = None  # None: the mean over heads
        self.att_mode: str = "cls"
        self.rollout_fusion: str = "mean"
        self.rollout_discard: float = 0.0

        self.cam: Any = None  # GradCamResult
        self.cam_method: str = "gradcam"
        self.cam_class: Optional[int] = None  # None: the predicted class
        self.cam_layer: str = ""  # "": the engine's default layer
        self.occlusion: Any = None  # OcclusionResult
        self.occ_progress: float = 0.0
        self.explain_view: str = "cam"

        self.compare_models: tuple[str, str] = ("starter-cnn", "starter-clip")
        self.compare_methods: tuple[str, str] = ("gradcam", "rollout")
        self.compare: tuple[Any, Any] = (None, None)  # one result per side
        self._memo: dict[Any, Any] = {}
        self._probe_model = ""  # model of the last probe (its layer and head choices carry over)

    # -- setters that check their values ------------------------------------------------------
    def set_patch_size(self, size: int) -> None:
        if size not in PATCH_SIZES:
            raise ValueError(f"patch size must be one of {PATCH_SIZES}")
        self.patch_size = size

    def set_tab(self, tab: str) -> None:
        if tab not in TABS:
            raise ValueError(f"unknown inspect tab {tab!r}; choose one of {', '.join(TABS)}")
        self.tab = tab

    def set_attention(self, layer: Optional[int] = None, head: Any = "keep", mode: Optional[str] = None,
                      fusion: Optional[str] = None, discard: Optional[float] = None) -> None:
        """Change what the attention view shows; values are clamped to the cached probe."""
        if mode is not None:
            if mode not in ATTENTION_MODES:
                raise ValueError(f"attention mode must be one of {ATTENTION_MODES}")
            self.att_mode = mode
        if fusion is not None:
            if fusion not in HEAD_FUSIONS:
                raise ValueError(f"head fusion must be one of {HEAD_FUSIONS}")
            self.rollout_fusion = fusion
        if discard is not None:
            self.rollout_discard = float(min(max(discard, 0.0), 0.99))
        p = self.probe
        if layer is not None:
            n = len(p.layer_names) if p is not None else 1
            self.att_layer = int(min(max(layer, 0), max(n - 1, 0)))
        if head != "keep":
            if head is not None and p is not None and not 0 <= int(head) < p.num_heads:
                raise ValueError(f"head {head} does not exist: the model has {p.num_heads} heads")
            self.att_head = None if head is None else int(head)

    def set_job(self, kind: str, text: str | None) -> None:
        """Record that a job of `kind` runs (with a status text) or ended (None)."""
        jobs = {k: v for k, v in self.jobs.items() if k != kind}
        if text is not None:
            jobs[kind] = text
        self.jobs = jobs

    def running(self, kind: str) -> bool:
        return kind in self.jobs

    # -- what a new image or model makes stale ----------------------------------------------
    def image_changed(self) -> None:
        self._memo.clear()
        self.update(feature_maps=None, grid_channels=None, grid_geometry=None, stats=None, rf=None,
                    probe=None, model_hover=None, patch=None, cam=None, occlusion=None, occ_progress=0.0,
                    compare=(None, None))

    def set_model(self, model_id: str) -> None:
        if model_id == self.model_id:
            return
        self._memo.clear()
        self.update(model_id=model_id, layers=(), layer="", feature_maps=None, grid_channels=None,
                    grid_geometry=None, tree=None, stats=None, channel=None, rf=None, probe=None,
                    model_hover=None, patch=None, cam=None, cam_class=None, cam_layer="",
                    occlusion=None, occ_progress=0.0)

    def set_probe(self, probe) -> None:
        """A new ViT probe. The same model on another image keeps the layer, head and patch layer
        the user chose; a new model starts at its last layer (its most semantic one)."""
        self._memo = {k: v for k, v in self._memo.items() if k[0] != "probe"}
        n = len(probe.layer_names)
        same = probe.model_id == self._probe_model
        self._probe_model = probe.model_id
        head = self.att_head if same and (self.att_head is None or self.att_head < probe.num_heads) else None
        self.update(probe=probe, att_layer=min(self.att_layer, n - 1) if same else n - 1, att_head=head,
                    patch_layer=min(self.patch_layer, n - 1) if same else n - 1, model_hover=None)

    # -- patch grids ------------------------------------------------------------------------------
    def patch_at(self, x: float, y: float, width: int, height: int) -> tuple[int, int, int] | None:
        """(row, col, index) of the uniform grid's patch under image pixel (x, y), or None outside."""
        if not (0 <= x < width and 0 <= y < height):
            return None
        p = self.patch_size
        cols = (width + p - 1) // p
        row, col = int(y) // p, int(x) // p
        return row, col, row * cols + col

    def model_patch_at(self, x: float, y: float) -> tuple[int, int, int] | None:
        """(row, col, index) of the probe's patch under original-image point (x, y), or None
        outside the crop the model saw (or without a probe)."""
        p = self.probe
        if p is None:
            return None
        ix, iy = p.geometry.original_to_input(x, y)
        ph, pw = p.patch_size
        rows, cols = p.grid
        if not (0 <= ix < cols * pw and 0 <= iy < rows * ph):
            return None
        r, c = int(iy // ph), int(ix // pw)
        return r, c, r * cols + c

    # -- maps derived from the cached probe (numpy, memoised per probe) ------------------------
    def _cached(self, key: tuple, fn):
        if key not in self._memo:
            if len(self._memo) > 64:
                self._memo.clear()
            self._memo[key] = fn()
        return self._memo[key]

    def attention_map(self) -> np.ndarray | None:
        """The attention view on the patch grid: CLS-to-patch attention of the current layer and
        head, or the rollout through the layers up to the current one."""
        from studio.engines.probes import views

        p = self.probe
        if p is None:
            return None
        if self.att_mode == "rollout":
            opts = (self.rollout_fusion, round(self.rollout_discard, 3))
            rows = self._cached(("probe", id(p), "rollout rows") + opts,
                                lambda: rollout_rows(p.attentions, p.prefix_tokens, *opts))
            return self._cached(("probe", id(p), "rollout", self.att_layer) + opts,
                                lambda: rows[self.att_layer].reshape(p.grid))
        key = ("probe", id(p), "cls", self.att_layer, self.att_head)
        return self._cached(key, lambda: views.cls_attention(p.attentions, self.att_layer, self.att_head,
                                                             p.prefix_tokens, p.grid))

    def attention_distances(self) -> np.ndarray | None:
        """(layers, heads) mean attention distance in input pixels."""
        from studio.engines.probes import views

        p = self.probe
        if p is None:
            return None
        return self._cached(("probe", id(p), "distance"), lambda: views.mean_attention_distance(
            p.attentions, p.grid, p.patch_size, p.prefix_tokens))

    def patch_token(self, layer: Optional[int] = None) -> np.ndarray | None:
        """The token vector of the inspected patch at `layer` (default: patch_layer)."""
        p, patch = self.probe, self.patch
        if p is None or patch is None:
            return None
        layer = self.patch_layer if layer is None else layer
        return np.asarray(p.tokens[layer, p.prefix_tokens + patch[2]], np.float32)

    def patch_similarity(self) -> np.ndarray | None:
        """Cosine similarity of the inspected patch to every patch at patch_layer, on the grid."""
        from studio.engines.probes import views

        p, patch = self.probe, self.patch
        if p is None or patch is None:
            return None
        key = ("probe", id(p), "sim", self.patch_layer, patch[2])
        return self._cached(key, lambda: views.token_similarity(
            p.tokens, self.patch_layer, p.prefix_tokens + patch[2], p.prefix_tokens, p.grid))

    def position_similarity(self) -> np.ndarray | None:
        """Cosine similarity of the inspected patch's positional embedding to all others."""
        from studio.engines.probes import views

        p, patch = self.probe, self.patch
        if p is None or patch is None or p.pos_similarity is None:
            return None
        return views.similarity_row(p.pos_similarity, patch[2], p.grid)

    def patch_pixels(self) -> np.ndarray | None:
        """The inspected patch's pixels as the model saw them (uint8 (ph, pw, 3))."""
        p, patch = self.probe, self.patch
        if p is None or patch is None:
            return None
        r, c, _ = patch
        ph, pw = p.patch_size
        return np.asarray(p.model_input)[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw]

    # -- channels ------------------------------------------------------------------------------
    def channel_map(self, channel: Optional[int] = None):
        """(map (h, w), geometry) of `channel` (default: the chosen one) from the cached grid or
        the statistics' top channels; None when no cached result holds that channel."""
        ch = self.channel if channel is None else channel
        if ch is None:
            return None
        fm, chans = self.feature_maps, self.grid_channels
        if fm is not None and chans is not None and self.grid_geometry is not None:
            hits = np.nonzero(np.asarray(chans) == ch)[0]
            if hits.size:
                return np.asarray(fm.maps[int(hits[0])], np.float32), self.grid_geometry
        s = self.stats
        if s is not None and (fm is None or s.layer == fm.layer):
            hits = np.nonzero(np.asarray(s.top_channels) == ch)[0]
            if hits.size:
                return np.asarray(s.top_maps[int(hits[0])], np.float32), s.geometry
        return None

    def channels_total(self) -> int:
        if self.feature_maps is not None:
            return int(self.feature_maps.channels_total)
        if self.stats is not None:
            return int(len(self.stats.channel_means))
        return 0

    def top5(self) -> tuple:
        """The most recent top-5 classes for the current image and model (any probe)."""
        for res in (self.cam, self.occlusion, self.probe):
            if res is not None and getattr(res, "model_id", None) == self.model_id and res.top5:
                return tuple(res.top5)
        return ()
