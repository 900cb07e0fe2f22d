"""The gallery index: an SQLite database of every generated image, to browse and search by prompt,
model and date. The PNG files (with their `parameters` and recipe) are the truth; the index can be
rebuilt from them at any time (`reindex`), so a damaged database is set aside and rebuilt, never fatal.

Every write is one transaction; each call opens its own connection, so the GPU lane (which adds
results) and the main thread (which searches) never share one. WAL mode lets them work concurrently.
Also the CPU-lane engine that makes thumbnails for the gallery tab.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from studio.media.metadata import parse_parameters, settings_from_parameters

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    prompt TEXT NOT NULL DEFAULT '',
    negative TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    model_id TEXT NOT NULL DEFAULT '',
    sampler TEXT NOT NULL DEFAULT '',
    seed INTEGER,
    steps INTEGER,
    cfg REAL,
    width INTEGER,
    height INTEGER,
    mode TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL DEFAULT '',
    recipe TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS images_created ON images(created);
CREATE INDEX IF NOT EXISTS images_model ON images(model);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    sha256 TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class GalleryEntry:
    id: int
    path: str  # absolute
    created: float
    prompt: str
    negative: str
    model: str
    model_id: str
    sampler: str
    seed: int | None
    steps: int | None
    cfg: float | None
    width: int | None
    height: int | None
    mode: str
    parameters: str
    recipe: str

    @property
    def when(self) -> str:
        return _dt.datetime.fromtimestamp(self.created).strftime("%Y-%m-%d %H:%M")


class Gallery:
    def __init__(self, db_path: str | os.PathLike, library: str | os.PathLike) -> None:
        self.db_path = Path(db_path)
        self.library = Path(library)
        self._ready = False

    # -- connections -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = self._open()
        try:
            yield conn
        finally:
            conn.close()

    def _open(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(self.db_path), timeout=10.0)
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")
                with conn:
                    conn.executescript(SCHEMA)
                self._ready = True
            return conn
        except sqlite3.OperationalError:
            raise  # cannot open or write (permissions, a full disk, a lock): not damage, keep the file
        except sqlite3.DatabaseError as exc:
            # The PNGs hold everything: set the damaged index aside and build a new one from them.
            log.error("gallery index %s is damaged (%s); rebuilding it from the library", self.db_path, exc)
            with contextlib.suppress(OSError):
                self.db_path.replace(self.db_path.with_suffix(f".corrupt-{int(time.time())}"))
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(str(self.db_path) + suffix).unlink()
            self._ready = False
            conn = sqlite3.connect(str(self.db_path), timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                conn.executescript(SCHEMA)
            self._ready = True
            conn.close()
            self.reindex()
            return sqlite3.connect(str(self.db_path), timeout=10.0)

    def _key(self, path: str | os.PathLike) -> str:
        """Paths inside the library are stored relative to it, so the library can move."""
        p = Path(path).resolve()
        try:
            return p.relative_to(self.library.resolve()).as_posix()
        except ValueError:
            return str(p)

    def _abs(self, key: str) -> str:
        p = Path(key)
        return str(p if p.is_absolute() else self.library / p)

    # -- writing ---------------------------------------------------------------------------
    def add(self, path: str | os.PathLike, parameters: str, recipe: str = "", *, model_id: str = "",
            mode: str = "", created: float | None = None) -> int:
        """Index one image (replacing an older row of the same file). Returns its row id."""
        s = settings_from_parameters(parse_parameters(parameters))
        row = (self._key(path), float(created if created is not None else time.time()), s.get("prompt", ""),
               s.get("negative_prompt", ""), s.get("model_name", ""), model_id, s.get("scheduler", ""),
               s.get("seed"), s.get("steps"), s.get("cfg_scale"), s.get("width"), s.get("height"),
               mode or s.get("mode", ""), parameters, recipe)
        with self._connect() as conn, conn:
            cur = conn.execute(
                "INSERT OR REPLACE INTO images (path, created, prompt, negative, model, model_id, sampler, "
                "seed, steps, cfg, width, height, mode, parameters, recipe) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            return int(cur.lastrowid)

    def remove(self, path: str | os.PathLike) -> None:
        with self._connect() as conn, conn:
            conn.execute("DELETE FROM images WHERE path = ?", (self._key(path),))

    def reindex(self) -> int:
        """Add library PNGs the index lacks (a crash between writing a file and indexing it) and
        drop rows whose file is gone. Returns how many rows were added."""
        from studio.media.metadata import read_png_text

        with self._connect() as conn:
            known = {r[0] for r in conn.execute("SELECT path FROM images")}
        on_disk = {}
        if self.library.is_dir():
            for p in self.library.rglob("*.png"):
                if "inputs" in p.relative_to(self.library).parts[:1] or p.name.startswith("."):
                    continue
                on_disk[self._key(p)] = p
        added = 0
        for key, p in sorted(on_disk.items()):
            if key in known:
                continue
            try:
                text = read_png_text(p)
            except Exception as exc:  # one unreadable file must not stop the rebuild
                log.warning("gallery: skipping %s (%s)", p, exc)
                continue
            if "parameters" not in text:
                continue
            model_id, mode = "", ""
            if text.get("studio"):
                with contextlib.suppress(Exception):
                    import json

                    rec = json.loads(text["studio"])
                    model_id = rec.get("model", {}).get("id", "")
                    mode = rec.get("request", {}).get("mode", "")
            self.add(p, text["parameters"], text.get("studio", ""), model_id=model_id, mode=mode,
                     created=p.stat().st_mtime)
            added += 1
        gone = [k for k in known if not Path(self._abs(k)).exists()]
        if gone:
            with self._connect() as conn, conn:
                conn.executemany("DELETE FROM images WHERE path = ?", [(k,) for k in gone])
        return added

    # -- reading ---------------------------------------------------------------------------
    def search(self, text: str = "", model: str = "", since: float | None = None, until: float | None = None,
               limit: int = 200, offset: int = 0) -> list[GalleryEntry]:
        """Newest first. Every word of `text` must appear in the prompt (case-insensitive)."""
        where, args = [], []
        for word in text.split():
            esc = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("prompt LIKE ? ESCAPE '\\'")
            args.append(f"%{esc}%")
        if model:
            where.append("(model = ? OR model_id = ?)")
            args += [model, model]
        if since is not None:
            where.append("created >= ?")
            args.append(float(since))
        if until is not None:
            where.append("created < ?")
            args.append(float(until))
        sql = ("SELECT id, path, created, prompt, negative, model, model_id, sampler, seed, steps, cfg, width, "
               "height, mode, parameters, recipe FROM images")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, id DESC LIMIT ? OFFSET ?"
        with self._connect() as conn:
            rows = conn.execute(sql, (*args, int(limit), int(offset))).fetchall()
        return [GalleryEntry(r[0], self._abs(r[1]), *r[2:]) for r in rows]

    def models(self) -> list[str]:
        with self._connect() as conn:
            return [r[0] for r in conn.execute(
                "SELECT DISTINCT model FROM images WHERE model != '' ORDER BY model")]

    def count(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])

    # -- file hashes (model and LoRA files are hashed once) --------------------------------
    def cached_hash(self, path: str | os.PathLike) -> str | None:
        st = os.stat(path)
        with self._connect() as conn:
            row = conn.execute("SELECT size, mtime, sha256 FROM file_hashes WHERE path = ?",
                               (str(Path(path).resolve()),)).fetchone()
        if row and row[0] == st.st_size and abs(row[1] - st.st_mtime) < 1e-3:
            return row[2]
        return None

    def store_hash(self, path: str | os.PathLike, sha256: str) -> None:
        st = os.stat(path)
        with self._connect() as conn, conn:
            conn.execute("INSERT OR REPLACE INTO file_hashes (path, size, mtime, sha256) VALUES (?, ?, ?, ?)",
                         (str(Path(path).resolve()), st.st_size, st.st_mtime, sha256))


# -- thumbnails (CPU lane) -----------------------------------------------------------------------
@dataclass(frozen=True)
class ThumbnailRequest:
    paths: tuple[str, ...]
    size: int = 128


@dataclass(frozen=True, eq=False)
class ThumbnailResult:
    items: tuple[tuple[str, np.ndarray | None], ...]  # (path, HxWx3 uint8 or None when unreadable)


def run_thumbnails(request: ThumbnailRequest, ctx, models) -> ThumbnailResult:
    from PIL import Image

    items = []
    for path in request.paths:
        ctx.check()
        try:
            with Image.open(path) as img:
                img.draft("RGB", (request.size, request.size))
                img = img.convert("RGB")
                img.thumbnail((request.size, request.size))
                items.append((path, np.asarray(img).copy()))
        except (OSError, ValueError) as exc:
            log.info("no thumbnail for %s: %s", path, exc)
            items.append((path, None))
    return ThumbnailResult(tuple(items))


@dataclass(frozen=True)
class ReindexRequest:
    db_path: str
    library: str


def run_reindex(request: ReindexRequest, ctx, models) -> int:
    """CPU lane: bring the index up to date with the library's files."""
    return Gallery(request.db_path, request.library).reindex()
