"""The gallery index: add, search by prompt words, model and date, rebuild from the PNGs, survive a
damaged database, and cache file hashes."""
from __future__ import annotations

import time

import numpy as np

from studio.core.image import StudioImage
from studio.media.gallery import Gallery, ThumbnailRequest, run_thumbnails
from studio.media.imageio import save_png
from studio.media.metadata import format_parameters


class Ctx:
    def check(self):
        pass


def write(library, name, prompt, model="m1", seed=1):
    path = library / name
    params = format_parameters(prompt, "", [("Steps", 4), ("Sampler", "Euler a"), ("CFG scale", 7),
                                            ("Seed", seed), ("Size", "8x8"), ("Model", model)])
    save_png(StudioImage(np.full((8, 8, 3), seed, np.uint8)), path, {"parameters": params})
    return path, params


def test_add_search_and_filters(tmp_path):
    lib = tmp_path / "library"
    g = Gallery(tmp_path / "g.sqlite", lib)
    a, pa = write(lib, "a.png", "a red fox in snow", "m1", 1)
    b, pb = write(lib, "b.png", "a blue 100% fox_cub", "m2", 2)
    g.add(a, pa, created=1000.0, model_id="id1")
    g.add(b, pb, created=2000.0)
    assert [e.path for e in g.search()] == [str(b), str(a)]  # newest first
    assert [e.path for e in g.search("FOX red")] == [str(a)]
    assert [e.path for e in g.search("100%")] == [str(b)] and g.search("fox_c")[0].path == str(b)
    assert g.search("10_%") == []  # wildcards are literal
    assert [e.path for e in g.search(model="m2")] == [str(b)] and g.search(model="id1")[0].path == str(a)
    assert [e.path for e in g.search(since=1500)] == [str(b)] and [e.path for e in g.search(until=1500)] == [str(a)]
    assert g.models() == ["m1", "m2"] and g.count() == 2
    e = g.search("red")[0]
    assert (e.seed, e.steps, e.sampler, e.width) == (1, 4, "Euler a", 8)
    g.add(a, pa, created=3000.0)  # re-adding replaces
    assert g.count() == 2 and g.search()[0].path == str(a)


def test_reindex_finds_unindexed_files_and_drops_missing_ones(tmp_path):
    lib = tmp_path / "library"
    g = Gallery(tmp_path / "g.sqlite", lib)
    a, pa = write(lib, "day/a.png", "indexed")
    g.add(a, pa)
    write(lib, "day/b.png", "written but never indexed (killed)")
    save_png(StudioImage(np.zeros((4, 4, 3), np.uint8)), lib / "plain.png")  # no parameters: not ours
    write(lib, "inputs/x.png", "an input, not a result")
    assert g.reindex() == 1
    assert {e.prompt for e in g.search()} == {"indexed", "written but never indexed (killed)"}
    a.unlink()
    g.reindex()
    assert [e.prompt for e in g.search()] == ["written but never indexed (killed)"]


def test_a_damaged_database_is_rebuilt_from_the_library(tmp_path):
    lib = tmp_path / "library"
    write(lib, "a.png", "survivor")
    db = tmp_path / "g.sqlite"
    db.write_bytes(b"this is not sqlite" * 100)
    g = Gallery(db, lib)
    assert [e.prompt for e in g.search()] == ["survivor"]
    assert list(tmp_path.glob("g.corrupt-*"))


def test_file_hash_cache_and_thumbnails(tmp_path):
    lib = tmp_path / "library"
    g = Gallery(tmp_path / "g.sqlite", lib)
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    assert g.cached_hash(f) is None
    g.store_hash(f, "ab" * 32)
    assert g.cached_hash(f) == "ab" * 32
    time.sleep(0.01)
    f.write_bytes(b"changed weights")
    assert g.cached_hash(f) is None
    a, _ = write(lib, "a.png", "x")
    (tmp_path / "bad.png").write_bytes(b"nope")
    res = run_thumbnails(ThumbnailRequest((str(a), str(tmp_path / "bad.png")), 4), Ctx(), None)
    assert res.items[0][1].shape == (4, 4, 3) and res.items[1][1] is None
