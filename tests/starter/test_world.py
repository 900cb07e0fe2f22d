"""Shapes world: labels agree with pixels, and everything is reproducible from a seed."""

import numpy as np
import pytest

from studio.starter import world
from studio.starter.world import COLOURS, LABELS, RGB, SHAPES, make_clip, make_scene, render_pose

SEEDS = range(60)


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(s) for s in SEEDS]


def test_vocabulary():
    assert SHAPES == ["circle", "square", "triangle", "star", "person"]
    assert len(COLOURS) == 8 and len(LABELS) == 40
    assert world.label_id("black", "person") == 39


def test_determinism():
    a, b = make_scene(1234), make_scene(1234)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instance_mask, b.instance_mask)
    assert a.caption == b.caption and np.array_equal(a.depth, b.depth)
    assert not np.array_equal(make_scene(1235).image, a.image)
    c, d = make_clip(77), make_clip(77)
    assert c.caption == d.caption and np.array_equal(c.images, d.images)


def test_shapes_and_types(scenes):
    for s in scenes:
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        assert s.instance_mask.shape == (64, 64) and s.depth.dtype == np.float32
        assert s.edges.dtype == np.uint8 and set(np.unique(s.edges)) <= {0, 255}
        assert 1 <= len(s.objects) <= 3 and len(set(s.labels)) == len(s.labels)
        assert s.multi_hot.sum() == len(s.objects)
    assert {len(s.objects) for s in scenes} == {1, 2, 3}
    assert {s.background for s in scenes} == set(world.BACKGROUNDS)
    assert make_scene(5, n_objects=3).labels.__len__() == 3


def test_mask_pixels_have_object_colour(scenes):
    for s in scenes:
        for i, o in enumerate(s.objects, 1):
            vis = s.instance_mask == i
            assert vis.sum() == o.area > 0
            assert (s.image[vis] == np.array(o.rgb, np.uint8)).all()
            assert np.abs(np.array(o.rgb) - RGB[o.colour]).max() <= 12
            ys, xs = np.nonzero(vis)
            assert o.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert np.allclose(o.centroid, (xs.mean(), ys.mean()))


def test_background_far_from_object_colours(scenes):
    palette = np.array(list(RGB.values()), np.float32)
    for s in scenes:
        bg = s.image[s.instance_mask == 0].astype(np.float32)
        dist = np.linalg.norm(bg[:, None] - palette[None], axis=-1)
        assert dist.min() > 40, s.seed


def test_depth_ordering_matches_occlusion(scenes):
    occluded = 0
    for s in scenes:
        depths = np.array([o.depth for o in s.objects])
        for i, o in enumerate(s.objects, 1):
            assert np.allclose(s.depth[s.instance_mask == i], o.depth)
            assert (s.amodal_masks[i - 1] | (s.instance_mask != i)).all()  # visible part of own shape
        assert (s.depth[s.instance_mask == 0] == 0).all()
        covered = s.amodal_masks.any(0)
        nearest = np.where(s.amodal_masks, depths[:, None, None], -1).argmax(0) + 1
        assert np.array_equal(s.instance_mask[covered], nearest[covered])
        occluded += int((s.amodal_masks.sum(0) > 1).any())
        for o in s.objects:
            assert o.visible >= 0.5  # overlaps are capped, so every object stays recognisable
    assert occluded > 0  # the sample does exercise occlusion


def test_pose_keypoints_in_frame_and_on_figure(scenes):
    people = 0
    for s in scenes:
        persons = [i for i, o in enumerate(s.objects) if o.shape == "person"]
        assert len(s.pose) == len(persons)
        for i, kp in zip(persons, s.pose):
            people += 1
            assert kp.shape == (18, 2)
            assert (kp >= 0).all() and (kp <= 63).all()
            assert kp[2, 0] < kp[1, 0] < kp[5, 0]  # r_shoulder on the image's left, facing us
            assert kp[8, 0] < kp[11, 0] and kp[1, 1] < kp[8, 1] < kp[10, 1]
            m = s.amodal_masks[i]
            for j in range(1, 14):  # body joints lie on the drawn figure
                x, y = np.round(kp[j]).astype(int)
                assert m[max(0, y - 1):y + 2, max(0, x - 1):x + 2].any(), (s.seed, j)
    assert people > 0


def test_edges_are_mask_boundaries(scenes):
    for s in scenes:
        inst = np.pad(s.instance_mask, 1, mode="edge")
        c = inst[1:-1, 1:-1]
        boundary = (c != inst[:-2, 1:-1]) | (c != inst[2:, 1:-1]) | (c != inst[1:-1, :-2]) | (c != inst[1:-1, 2:])
        assert np.array_equal(s.edges > 0, boundary & (c > 0))


def test_caption_names_objects_and_relation(scenes):
    for s in scenes:
        for lab in s.labels:
            assert lab in s.caption
        if len(s.objects) == 2:
            a, b = s.objects
            dx, dy = b.centroid[0] - a.centroid[0], b.centroid[1] - a.centroid[1]
            rel = ("left of" if dx > 0 else "right of") if abs(dx) >= abs(dy) else \
                ("above" if dy > 0 else "below")
            art = [world.article(o.colour) for o in (a, b)]
            assert s.caption == f"{art[0]} {a.label} {rel} {art[1]} {b.label}"
    assert make_scene(3, n_objects=1).caption.count(" ") == 2


@pytest.mark.parametrize("motion", world.MOTIONS)
def test_clips_follow_their_caption(motion):
    for seed in range(6):
        clip = make_clip(seed, motion=motion)
        assert 8 <= len(clip.frames) <= 16 and clip.masks.shape[0] == len(clip.frames)
        first, last = clip.frames[0].objects[0], clip.frames[-1].objects[0]
        assert clip.caption.startswith(f"{world.article(first.colour)} {first.colour} {first.shape}")
        dx, dy = last.centroid[0] - first.centroid[0], last.centroid[1] - first.centroid[1]
        if motion in ("left", "right", "up", "down"):
            assert f"moving {motion}" in clip.caption
            d = {"left": -dx, "right": dx, "up": -dy, "down": dy}[motion]
            assert d >= 10 and abs(dx if motion in ("up", "down") else dy) < 3, (seed, dx, dy)
            xs = [f.objects[0].centroid[0 if motion in ("left", "right") else 1] for f in clip.frames]
            sign = 1 if motion in ("right", "down") else -1
            assert (np.diff(xs) * sign >= 0).all()  # never steps backwards
        elif motion == "grow":
            assert "growing" in clip.caption and last.area > 1.5 * first.area
        else:
            assert f"turning {last.colour}" in clip.caption and last.colour != first.colour
        for f in clip.frames:
            assert (f.image[f.instance_mask == 1] == np.array(f.objects[0].rgb, np.uint8)).all()
            for kp in f.pose:
                assert (kp >= 0).all() and (kp <= 63).all()
        if len(clip.frames[0].objects) == 2:
            assert clip.caption.endswith(f"and a still {clip.frames[0].labels[1]}")


def test_render_pose_uses_openpose_colours():
    s = next(make_scene(k) for k in range(100) if make_scene(k).pose)
    img = render_pose(s.pose, scale=8)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    for c in world.POSE_COLOURS[:14]:  # joint discs, drawn at full brightness
        assert tuple(c) in colours
    assert tuple(int(v * 0.6) for v in world.POSE_COLOURS[0]) in colours  # limbs at 0.6
    assert render_pose([]).max() == 0


def test_batches_and_speed():
    import time

    t = time.perf_counter()
    batch = next(world.iter_batches("test", batch_size=200))
    assert batch.images.shape == (200, 64, 64, 3) and batch.multi_hot.shape == (200, 40)
    assert time.perf_counter() - t < 2.0  # hundreds of scenes per second even on a busy core
    assert all(s.seed >= world.SPLITS["test"] for s in batch.scenes)
    assert [s.objects[s.main_object].label_id for s in batch.scenes] == batch.target.tolist()
