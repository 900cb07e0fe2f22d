"""The inspect workspace's jobs: every probe request goes through `session.runtime.submit` on the
GPU lane with a latest-wins key, and its result is folded into `InspectState` on the main thread.

Qt-free (no PySide6, no torch): the tabs call these methods, the state tells them what changed.
Only the newest job of a kind may touch the state: a replaced job reports "cancelled" during
`submit`, and its callbacks are dropped by the run id. ViT probe and Grad-CAM results are kept per
(model, choices) for the current image, so coming back to a model, or comparing it, is instant.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from studio.core.errors import StudioError
from studio.core.inspect_requests import (ChannelStatsRequest, GradCamRequest, LayerTreeRequest,
                                          OcclusionRequest, PreprocessSpec, ReceptiveFieldRequest,
                                          VitProbeRequest)
from studio.core.requests import FeatureMapRequest, FeatureMapResult

FEATURES_KEY = "inspect.features"
KEYS = {"tree": "inspect.layer_tree", "stats": "inspect.channel_stats", "rf": "inspect.receptive_field",
        "probe": "inspect.probe", "cam": "inspect.cam", "occlusion": "inspect.occlusion",
        "compare0": "inspect.compare.left", "compare1": "inspect.compare.right"}
TITLES = {"tree": "Layer tree", "stats": "Channel statistics", "rf": "Receptive field",
          "probe": "Attention probe", "cam": "Grad-CAM", "occlusion": "Occlusion",
          "compare0": "Compare (left)", "compare1": "Compare (right)"}
GRID_CHANNELS = 64  # channels a ViT/timm feature grid keeps (the most active ones)
STATS_TOP_K = 8


def spatial_layers(tree) -> tuple[str, ...]:
    """Layers of a LayerTreeResult whose output can be shown as channel maps: (C, h, w) maps
    bigger than 1x1, or a transformer's (tokens, dim) sequence."""
    shapes = [s for _n, _c, s in tree.layers]
    tokens = max((s[0] for s in shapes if len(s) == 2), default=0)
    out = []
    for name, _cls, s in tree.layers:
        if len(s) == 3 and s[1] * s[2] > 1:
            out.append(name)
        elif len(s) == 2 and tokens and s[0] >= tokens - 16 and s[0] > 1:
            out.append(name)
    return tuple(out)


class InspectJobs:
    """Submit the inspect probes and fold their results into `session.inspect`. Main thread only."""

    def __init__(self, session) -> None:
        self.session = session
        self.state = session.inspect
        self.runtime = session.runtime
        self._ids: dict[str, int] = {}
        self._jobs: dict[str, Any] = {}
        self._probes: dict[str, Any] = {}  # model id -> VitProbeResult for the current image
        self._cams: dict[tuple, Any] = {}  # (model, method, class, layer) -> GradCamResult
        self._attempted: set[tuple] = set()  # (image id, model) probes tried automatically
        self.submitted = 0  # jobs submitted by the workspace (tests and the benchmark read it)

    # -- plumbing ---------------------------------------------------------------------------------
    def image(self):
        return self.session.app.image

    def card(self, model_id: str):
        try:
            return self.session.catalog.get(model_id)
        except StudioError:
            return None

    def report(self, err) -> None:
        self.session.app.report_error(getattr(err, "user_message", str(err)), getattr(err, "detail", ""))

    def need_image(self) -> bool:
        if self.image() is None:
            self.session.app.report_error("Open an image first (File > Open, drag and drop, or paste).")
            return False
        return True

    def forget_image(self) -> None:
        self._probes.clear()
        self._cams.clear()
        self._attempted.clear()  # keyed by id(image): only valid while that image is the current one
        for kind in list(self._jobs):
            if kind != "tree":
                self.cancel(kind)

    def forget_model(self) -> None:
        for kind in ("tree", "stats", "rf", "probe", "cam", "occlusion"):
            self.cancel(kind)

    def _submit(self, kind: str, request, on_result: Callable[[Any], None], status: str = "Running…",
                on_progress: Optional[Callable[[float, str], None]] = None,
                on_failed: Optional[Callable[[Any], None]] = None):
        st = self.state
        self._ids[kind] = rid = self._ids.get(kind, 0) + 1

        def current(fn):
            return lambda *args: fn(*args) if self._ids.get(kind) == rid else None

        def done(result):
            self._jobs.pop(kind, None)
            st.set_job(kind, None)
            on_result(result)

        def failed(err):
            self._jobs.pop(kind, None)
            st.set_job(kind, None)
            if on_failed is not None:
                on_failed(err)
            self.report(err)

        def cancelled():
            self._jobs.pop(kind, None)
            st.set_job(kind, None)

        def progress(fraction: float, text: str):
            if kind in st.jobs:
                st.set_job(kind, text or status)
            if on_progress is not None:
                on_progress(fraction, text)

        st.set_job(kind, status)
        self.submitted += 1
        job = self.runtime.submit(request, key=KEYS.get(kind, f"inspect.{kind}"), title=TITLES.get(kind, kind),
                                  on_result=current(done), on_error=current(failed),
                                  on_cancelled=current(cancelled), on_progress=current(progress))
        self._jobs[kind] = job
        return job

    def cancel(self, kind: str) -> None:
        job = self._jobs.pop(kind, None)
        self._ids[kind] = self._ids.get(kind, 0) + 1  # its late callbacks are dropped
        self.state.set_job(kind, None)
        if job is not None:
            self.runtime.cancel(job)

    # -- feature maps (the channel grid) -----------------------------------------------------
    def uses_feature_engine(self, layer: str) -> bool:
        """torchvision CNNs keep the original feature-map engine (first 64 channels in order);
        every other model gets its grid from channel statistics with its own preprocessing."""
        st, card = self.state, self.card(self.state.model_id)
        if card is None or card.task != "cnn" or card.library != "torchvision":
            return False
        return not layer or not st.layers or layer in st.layers

    def run_features(self) -> None:
        s, st = self.session, self.state
        if not self.need_image():
            return
        self._ids["features"] = rid = self._ids.get("features", 0) + 1
        image = self.image()

        def current(fn):
            return lambda *args: fn(*args) if rid == self._ids["features"] else None

        def fresh(fn):  # maps of an image that is no longer shown are dropped, not drawn on the new one
            return lambda result: fn(result) if self.image() is image else st.update(busy=False, status="")

        if self.uses_feature_engine(st.layer):
            req = FeatureMapRequest(image=self.image(), model_id=st.model_id, layer=st.layer)
            on_result = self._on_feature_maps
        else:
            req = ChannelStatsRequest(self.image(), st.model_id, st.layer, top_k=GRID_CHANNELS)
            on_result = self._on_grid_stats
        # Latest wins: the replaced run reports "cancelled" during submit(); only the current run
        # may touch busy/status, or the panel would look idle while it works.
        st.busy = True
        st.status = "Running…"
        self.submitted += 1
        s.runtime.submit(req, key=FEATURES_KEY, title="Feature maps", on_result=current(fresh(on_result)),
                         on_error=current(self._on_features_error),
                         on_cancelled=current(lambda: st.update(busy=False, status="Cancelled")))

    def _on_feature_maps(self, result: FeatureMapResult) -> None:
        st, image = self.state, self.image()
        size = tuple(result.input_size)
        # The feature-map engine resizes the whole image to its input size (no crop).
        geo = PreprocessSpec(size, size, "squash").geometry(*image.size) if image is not None else None
        channel = st.channel if st.channel is not None and st.channel < result.channels_total else None
        st.update(busy=False, layers=result.layers, layer=result.layer, grid_geometry=geo,
                  grid_channels=np.arange(result.maps.shape[0]), channel=channel, rf=None)
        st.update(feature_maps=result, status="")
        self.session.app.clear_error()
        self._follow_ups(result.layer, stats=True)

    def _on_grid_stats(self, stats) -> None:
        st = self.state
        card = self.card(stats.model_id)
        total = int(len(stats.channel_means))
        order = np.arange(len(stats.top_channels))
        if total <= GRID_CHANNELS:  # every channel is there: show them in channel order
            order = np.argsort(stats.top_channels, kind="stable")
        fm = FeatureMapResult(
            model_id=stats.model_id, model_name=card.name if card else stats.model_id, layer=stats.layer,
            layers=st.layers, maps=np.ascontiguousarray(stats.top_maps[order]),
            input_size=tuple(stats.geometry.input_size), channels_total=total,
            trained=bool(card.trained) if card else False, seconds=stats.seconds)
        channel = st.channel if st.channel is not None and st.channel < total else None
        st.update(busy=False, layer=stats.layer, stats=stats, grid_geometry=stats.geometry,
                  grid_channels=np.asarray(stats.top_channels)[order], channel=channel, rf=None)
        st.update(feature_maps=fm, status="")
        self.session.app.clear_error()
        self._follow_ups(stats.layer, stats=False)

    def _on_features_error(self, err) -> None:
        self.state.update(busy=False, status="Failed")
        self.report(err)

    def _follow_ups(self, layer: str, stats: bool) -> None:
        st = self.state
        if st.tree is None or st.tree.model_id != st.model_id:
            self.layer_tree()
        if stats:
            self._submit("stats", ChannelStatsRequest(self.image(), st.model_id, layer, top_k=STATS_TOP_K),
                         lambda r: setattr(st, "stats", r))

    def layer_tree(self) -> None:
        st = self.state
        model = st.model_id

        def done(tree):
            if tree.model_id != st.model_id:
                return
            st.tree = tree
            if not self.uses_feature_engine(st.layer) and st.model_id == model:
                st.layers = spatial_layers(tree)

        self._submit("tree", LayerTreeRequest(model), done)

    # -- receptive field -----------------------------------------------------------------------
    def receptive_field(self, layer: str, row: Optional[int], col: Optional[int]) -> None:
        st = self.state
        if not self.need_image():
            return
        req = ReceptiveFieldRequest(st.model_id, layer, row, col, self.image())
        self._submit("rf", req, lambda r: setattr(st, "rf", r), status="Tracing the receptive field…")

    # -- ViT probe -----------------------------------------------------------------------------
    def probe(self, auto: bool = False) -> None:
        """Run the attention probe for the current image and model (cached: no job if known).
        `auto` (a tab shown, a new image) tries each (image, model) once and stays silent."""
        st, image = self.state, self.image()
        if image is None:
            if not auto:
                self.need_image()
            return
        model = st.model_id
        cached = self._probes.get(model)
        if cached is not None:
            if st.probe is not cached:
                st.set_probe(cached)
            return
        if auto:
            key = (id(image), model)
            if key in self._attempted or st.running("probe"):
                return
            self._attempted.add(key)

        def done(result):
            self._probes[result.model_id] = result
            if result.model_id == st.model_id and self.image() is image:
                st.set_probe(result)

        self._submit("probe", VitProbeRequest(image, model), done, status="Running the model…")

    def cached_probe(self, model_id: str):
        return self._probes.get(model_id)

    # -- explanations --------------------------------------------------------------------------
    def grad_cam(self) -> None:
        st = self.state
        if not self.need_image():
            return
        key = (st.model_id, st.cam_method, st.cam_class, st.cam_layer)
        if key in self._cams:
            st.cam = self._cams[key]
            return
        image = self.image()

        def done(result):
            self._cams[key] = result
            if self.image() is image and result.model_id == st.model_id:
                st.update(cam=result, explain_view="cam")

        req = GradCamRequest(image, st.model_id, st.cam_class, st.cam_layer, st.cam_method)
        self._submit("cam", req, done, status="Running the model…")

    def occlusion(self, window: int = 0, stride: int = 0) -> None:
        st = self.state
        if not self.need_image():
            return
        image = self.image()

        def done(result):
            if self.image() is image and result.model_id == st.model_id:
                st.update(occlusion=result, occ_progress=1.0, explain_view="occlusion")

        st.occ_progress = 0.0
        req = OcclusionRequest(image, st.model_id, st.cam_class, int(window), int(stride))
        self._submit("occlusion", req, done, status="Occluding…",
                     on_progress=lambda f, _t: setattr(st, "occ_progress", float(f)),
                     on_failed=lambda _e: setattr(st, "occ_progress", 0.0))

    # -- side by side --------------------------------------------------------------------------
    def compare(self) -> None:
        st = self.state
        if not self.need_image():
            return
        image = self.image()
        st.compare = (None, None)
        for side in (0, 1):
            model, method = st.compare_models[side], st.compare_methods[side]
            if not model:
                continue

            def done(result, side=side):  # a result, or the error that replaced it
                if result is not None and self.image() is image:
                    pair = list(st.compare)
                    pair[side] = result
                    st.compare = tuple(pair)

            if method in ("rollout", "cls"):
                cached = self._probes.get(model)
                if cached is not None:
                    done(cached)
                    continue

                def probed(result, done=done):
                    self._probes[result.model_id] = result
                    done(result)

                self._submit(f"compare{side}", VitProbeRequest(image, model), probed, on_failed=done)
            else:
                key = (model, method, None, "")
                if key in self._cams:
                    done(self._cams[key])
                    continue

                def cammed(result, done=done, key=key):
                    self._cams[key] = result
                    done(result)

                self._submit(f"compare{side}", GradCamRequest(image, model, None, "", method), cammed,
                             on_failed=done)
