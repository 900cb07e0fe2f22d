"""The paint journal: jobs written before they run, in queue order, removed when they end; the
workspace with its images; damaged entries set aside; unused images collected."""
from __future__ import annotations

import numpy as np

from studio.core.image import StudioImage
from studio.core.paint_requests import PaintRequest, request_from_record, request_to_record
from studio.media.journal import Journal


def record(prompt="p", **kw):
    init = StudioImage(np.full((8, 8, 3), 9, np.uint8))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4] = 255
    req = PaintRequest(prompt=prompt, model_id="m", mode="inpaint", init_image=init, mask=mask, **kw)
    return req, *request_to_record(req)


def test_jobs_round_trip_in_order_and_share_images(tmp_path):
    j = Journal(tmp_path)
    req, rec, images = record("first", seed=3)
    j.add_job("u1", rec, images, "First", seq=1.0)
    _, rec2, images2 = record("second")
    j.add_job("u2", rec2, images2, "Second", seq=2.0)
    assert len(list((tmp_path / "blobs").glob("*.png"))) == 2  # the image and the mask, stored once
    jobs = j.pending()
    assert [x.uid for x in jobs] == ["u1", "u2"] and jobs[0].title == "First"
    back = request_from_record(jobs[0].record, jobs[0].images)
    assert back.prompt == "first" and back.seed == 3 and np.array_equal(back.mask, req.mask)
    j.reorder(["u2", "u1"])
    assert [x.uid for x in j.pending()] == ["u2", "u1"]
    j.started("u2")
    j.started("u2")
    assert j.pending()[0].attempts == 2
    j.finish("u2")
    j.finish("u2")  # twice is harmless
    assert [x.uid for x in j.pending()] == ["u1"]


def test_workspace_and_garbage_collection(tmp_path):
    j = Journal(tmp_path)
    assert j.load_workspace() == (None, {})
    canvas = np.full((4, 6, 3), 200, np.uint8)
    j.save_workspace({"prompt": "hello"}, {"canvas": canvas, "mask": None})
    _, rec, images = record()
    j.add_job("u1", rec, images)
    j.put_blob(np.zeros((2, 2), np.uint8))  # orphan
    assert j.collect_garbage() == 1
    state, imgs = j.load_workspace()
    assert state == {"prompt": "hello"} and np.array_equal(imgs["canvas"], canvas)
    j.finish("u1")
    assert j.collect_garbage() == 2


def test_damaged_entries_are_set_aside(tmp_path):
    j = Journal(tmp_path)
    _, rec, images = record()
    j.add_job("good", rec, images)
    (tmp_path / "jobs" / "bad.json").write_text("{truncated")
    (tmp_path / "workspace.json").write_text("[]")
    assert [x.uid for x in j.pending()] == ["good"]
    assert (tmp_path / "jobs" / "bad.bad").exists()
    assert j.load_workspace() == (None, {})
