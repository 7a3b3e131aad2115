"""The index, lexical side: the persisted BM25 index of a collection, built at ingest, memory-
mapped to serve.

What it promises:

- **Never built at question time.** Ingest (single-process or Ray) brings it in step with the
  collection at the end of every run, including runs that embed nothing, ``--prune`` and
  ``--rebuild``. A question only memory-maps what ingest saved (``bm25s`` ``save``/``load(mmap=
  True)``), so the first question after a start costs milliseconds, not a full build.
- **The same scores as an in-memory build.** The same :func:`tokenize` over the same text
  (title, newline, chunk text) and bm25s with its default parameters, over every chunk of the
  collection. Only the order of equal scores may differ.
- **Rebuilds read no document from Chroma.** A token store (SQLite, ``tokens.sqlite``) keeps
  each chunk's tokens, written as chunks are written. It is kept a *subset* of the collection
  at every moment (rows of a paper are removed before its chunks change in Chroma and added
  after), so "same number of chunks" means "complete"; when the counts differ, ingest reads
  the ids from Chroma and fetches only the chunks the store lacks (after an interrupted run,
  or for an index built before this store existed).
- **Where it lives.** Next to the embedded index (``index_dir/lexical/<collection>``), or for a
  Chroma server in ``lexical_dir`` (default: ``<data dir>/lexical/<host>_<port>-<hash of the
  URL>/<collection>``) on the machine that ingests; set ``ASSISTANT_LEXICAL_DIR`` to a shared
  folder when questions are served from another machine. It records the Chroma collection id,
  the collection's update stamp and its chunk count.
- **When it is missing or stale.** A lagging index (the collection changed since it was built)
  is still used, with a warning: its papers are all still there or were removed (removed hits
  are dropped). A missing one, or one built for another collection, means dense-only
  retrieval with a warning naming the remedy (``python ingest.py``: it embeds nothing that is
  already indexed). Serving goes on either way; only exact-name matches are lost.
- Loaded snapshots are immutable and swapped under a lock, so threads can share a reader.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.index.lexical_writer import quiet_bm25s, save_bm25
from assistant.text import STOPWORDS, stem

__all__ = [
    "tokenize",
    "TokenStore",
    "LexicalIndex",
    "LexicalReader",
    "LexicalSnapshot",
    "RefreshStats",
    "build_bm25",
]

log = logging.getLogger(__name__)

FORMAT = 3
"""Bumped when the saved layout or the tokenizer changes (older folders are rebuilt, and the
token store is refilled from Chroma). 3: tokens are PyStemmer stems (2: plurals folded)."""
MANIFEST = "current.json"
TOKENS_DB = "tokens.sqlite"
_PAGE = 5000

_TOKEN = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """BM25 tokens: lower-cased words; hyphenated names kept whole *and* split.

    "GaSNet-II" gives ``gasnet-ii``, ``gasnet`` and ``ii`` so either spelling matches.
    """
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        parts = re.split(r"[-.]", tok) if ("-" in tok or "." in tok) else []
        if tok not in STOPWORDS:
            out.append(stem(tok))
        out.extend(stem(p) for p in parts if p and p not in STOPWORDS and not p.isdigit())
    return out


def chunk_tokens(title: str, text: str) -> list[str]:
    """The tokens of one chunk, as BM25 indexes it: its paper's title, a newline, its text."""
    return tokenize(f"{title}\n{text}")


def _pack(ids: Sequence[int]) -> bytes:
    return zlib.compress(np.asarray(ids, dtype=np.int32).tobytes(), 1)


def _unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), dtype=np.int32)


# --- the token store ------------------------------------------------------------------------
@contextlib.contextmanager
def _forget_vocab_on_error(store: TokenStore) -> Iterator[None]:
    """A failed write rolls back; the vocabulary in memory must not keep its new tokens."""
    try:
        yield
    except BaseException:
        store._vocab = None
        raise


class TokenStore:
    """chunk id -> (paper id, BM25 token ids) in SQLite: what a BM25 build reads.

    Tokens are kept as ids of a vocabulary that only grows (table ``vocab``), so a build reads
    arrays, not text. One writer at a time (the ingest process); every call commits, so a
    killed run keeps what it recorded. Safe to share between threads (one connection, a lock).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._vocab: dict[str, int] | None = None
        self._db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None or row[0] != str(FORMAT):  # an older layout: start over
                self._db.execute("DROP TABLE IF EXISTS chunks")
                self._db.execute("DROP TABLE IF EXISTS vocab")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (str(FORMAT),))
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS chunks (chunk_id TEXT PRIMARY KEY, "
                "paper_id TEXT NOT NULL, tokens BLOB NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS chunks_paper ON chunks(paper_id)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS vocab (id INTEGER PRIMARY KEY, token TEXT UNIQUE)"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing --
    def forget(self, paper_ids: Iterable[str]) -> None:
        """Remove every chunk of these papers (call before their chunks change in Chroma)."""
        pids = [(p,) for p in paper_ids]
        if pids:
            with self._lock, self._db:
                self._db.executemany("DELETE FROM chunks WHERE paper_id = ?", pids)

    def record(self, rows: Iterable[tuple[str, str, Sequence[str]]]) -> int:
        """Store ``(chunk_id, paper_id, tokens)`` rows (after the chunks are in Chroma)."""
        rows = list(rows)
        if not rows:
            return 0
        with self._lock, self._db, _forget_vocab_on_error(self):
            vocab = self._load_vocab()
            first_new = len(vocab)
            packed = []
            for cid, pid, toks in rows:
                packed.append((cid, pid, _pack([vocab.setdefault(t, len(vocab)) for t in toks])))
            new = [(i, t) for t, i in vocab.items() if i >= first_new]
            self._db.executemany("INSERT INTO vocab (id, token) VALUES (?, ?)", new)
            self._db.executemany(
                "INSERT OR REPLACE INTO chunks (chunk_id, paper_id, tokens) VALUES (?, ?, ?)",
                packed,
            )
        return len(packed)

    def _load_vocab(self) -> dict[str, int]:
        if self._vocab is None:
            self._vocab = dict(self._db.execute("SELECT token, id FROM vocab ORDER BY id"))
        return self._vocab

    def record_chunks(self, chunks: Iterable[Any]) -> int:
        """Store chunks that have ``chunk_id``, ``embed_text`` and ``metadata['paper_id']``."""
        return self.record(
            (c.chunk_id, c.metadata["paper_id"], tokenize(c.embed_text)) for c in chunks
        )

    def delete_ids(self, chunk_ids: Iterable[str]) -> None:
        ids = [(c,) for c in chunk_ids]
        if ids:
            with self._lock, self._db:
                self._db.executemany("DELETE FROM chunks WHERE chunk_id = ?", ids)

    def reset(self, collection_id: str = "") -> None:
        """Empty the store (``--rebuild``, or a collection that was replaced)."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM chunks")
            self._db.execute("DELETE FROM vocab")
            self._vocab = None
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('collection_id', ?)",
                (collection_id,),
            )

    # -- reading --
    def collection_id(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'collection_id'").fetchone()
        return row[0] if row else None

    def set_collection_id(self, collection_id: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('collection_id', ?)",
                (collection_id,),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT chunk_id FROM chunks")}

    def vocabulary(self) -> list[str]:
        """Token of each id."""
        with self._lock:
            return [t for (t,) in self._db.execute("SELECT token FROM vocab ORDER BY id")]

    def vocab_items(self) -> Iterator[tuple[int, str]]:
        """``(id, token)`` in id order, read page by page."""
        last = -1
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, token FROM vocab WHERE id > ? ORDER BY id LIMIT ?",
                    (last, _PAGE * 4),
                ).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def corpus(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(chunk_id, token ids)`` for every chunk, ordered by chunk id."""
        last = ""
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT chunk_id, tokens FROM chunks WHERE chunk_id > ? "
                    "ORDER BY chunk_id LIMIT ?",
                    (last, _PAGE * 4),
                ).fetchall()
            if not rows:
                return
            for cid, blob in rows:
                yield cid, _unpack(blob)
            last = rows[-1][0]


# --- building and saving --------------------------------------------------------------------
def build_bm25(corpus: Sequence[list[str]]) -> Any:
    """bm25s's own index over tokenized chunks (the parameters the retriever has always used).

    The reference that :func:`build_bm25_from_ids` must match; its Python loops cost about
    0.3 ms of CPU per chunk, which is why ingest does not use it.
    """
    bm25s = quiet_bm25s()
    model = bm25s.BM25()
    if corpus:
        model.index(list(corpus), show_progress=False)
    return model


@dataclass
class RefreshStats:
    """What :meth:`LexicalIndex.refresh` did."""

    chunks: int = 0
    rebuilt: bool = False
    fetched: int = 0
    """Chunks whose text was read from Chroma because the store lacked them."""
    removed: int = 0
    seconds: float = 0.0
    build_seconds: float = 0.0
    folder: str = ""


@dataclass
class LexicalSnapshot:
    """One loaded (memory-mapped) version of the index; never changed after loading."""

    model: Any
    ids: np.ndarray
    df: np.ndarray
    manifest: dict[str, Any]
    _pos: dict[str, int] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def n(self) -> int:
        return len(self.ids)

    def positions(self) -> dict[str, int]:
        """chunk id -> row (built on first use: only filtered questions need it)."""
        with self._lock:
            if self._pos is None:
                self._pos = {str(cid): i for i, cid in enumerate(self.ids.tolist())}
            return self._pos


def _collection_state(index: Any) -> tuple[str, Any, int]:
    """(collection id, update stamp, chunk count), read fresh from Chroma."""
    name = index.settings.collection
    col = index.client.get_collection(name, embedding_function=None)
    return str(col.id), (col.metadata or {}).get("updated"), int(col.count())


class LexicalIndex:
    """The lexical index folder of one collection: token store, saved versions, manifest."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._store: TokenStore | None = None

    @classmethod
    def for_settings(cls, settings: Any) -> LexicalIndex:
        return cls(settings.lexical_path())

    @property
    def store(self) -> TokenStore:
        if self._store is None:
            self._store = TokenStore(self.folder / TOKENS_DB)
        return self._store

    def manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("format") == FORMAT else None

    def is_current(self, index: Any) -> bool:
        """Whether the saved index matches the collection now (id, stamp and chunk count)."""
        m = self.manifest()
        if m is None or not (self.folder / m["version"]).is_dir():
            return False
        return (m["collection_id"], m["stamp"], m["chunks"]) == _collection_state(index)

    # -- ingest side --
    def refresh(self, index: Any) -> RefreshStats:
        """Bring the store and the saved BM25 index in step with the collection."""
        started = time.perf_counter()
        stats = RefreshStats(folder=str(self.folder))
        col_id, stamp, count = _collection_state(index)
        store = self.store
        if store.collection_id() not in (None, col_id):
            log.info("lexical index: the collection was replaced; starting the store over")
            store.reset(col_id)
        store.set_collection_id(col_id)
        if store.count() != count:
            stats.fetched, stats.removed = self._reconcile(index)
        stats.chunks = store.count()
        m = self.manifest()
        current = (
            m is not None
            and (m["collection_id"], m["stamp"], m["chunks"]) == (col_id, stamp, count)
            and stats.fetched == 0
            and stats.removed == 0
            and (self.folder / m["version"]).is_dir()
        )
        if not current:
            t = time.perf_counter()
            self._save(col_id, stamp)
            stats.rebuilt = True
            stats.build_seconds = round(time.perf_counter() - t, 3)
        stats.seconds = round(time.perf_counter() - started, 3)
        if stats.rebuilt:
            log.info(
                "lexical index of %d chunks saved in %.2f s (%d chunks read from Chroma)",
                stats.chunks,
                stats.seconds,
                stats.fetched,
            )
        if stats.chunks != count:
            log.warning(
                "lexical index holds %d chunks, the collection %d (was it written to while "
                "ingesting?); run `python ingest.py` again to bring them in step",
                stats.chunks,
                count,
            )
        return stats

    def _reconcile(self, index: Any) -> tuple[int, int]:
        """Add the chunks Chroma has and the store lacks; drop those Chroma no longer has."""
        col = index.collection
        have = self.store.ids()
        chroma_ids: set[str] = set()
        offset = 0
        while True:
            page = col.get(include=[], limit=_PAGE, offset=offset)["ids"]
            chroma_ids.update(page)
            if len(page) < _PAGE:
                break
            offset += _PAGE
        extra = have - chroma_ids
        self.store.delete_ids(extra)
        missing = sorted(chroma_ids - have)
        for start in range(0, len(missing), 1000):
            res = col.get(ids=missing[start : start + 1000], include=["documents", "metadatas"])
            self.store.record(
                (
                    cid,
                    str(meta.get("paper_id") or cid.rsplit("#", 1)[0]),
                    chunk_tokens(str(meta.get("title", "")), doc or ""),
                )
                for cid, doc, meta in zip(res["ids"], res["documents"], res["metadatas"])
            )
        if missing or extra:
            log.info(
                "lexical store: %d chunks read from Chroma, %d removed", len(missing), len(extra)
            )
        return len(missing), len(extra)

    def _save(self, collection_id: str, stamp: Any) -> None:
        """Write a new version beside the current one, then point the manifest at it.

        Every name is this process's own (no fixed temporary name two writers could share),
        the manifest is replaced in one ``os.replace``, and the version the manifest pointed
        to before stays on disk (only older ones are removed): a reader that has just read
        the old manifest still finds its files."""
        version = f"v-{time.time_ns()}-{os.getpid()}"
        tmp = self.folder / f".{version}.tmp"
        previous = (self.manifest() or {}).get("version")
        try:
            n = save_bm25(tmp, self.store.corpus(), self.store.vocab_items())
            os.replace(tmp, self.folder / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        manifest = {
            "format": FORMAT,
            "version": version,
            "collection_id": collection_id,
            "stamp": stamp,
            "chunks": n,
            "empty": n == 0,
            "built": time.time(),
        }
        pointer = self.folder / f".{MANIFEST}.{version}.tmp"
        pointer.write_text(json.dumps(manifest))
        os.replace(pointer, self.folder / MANIFEST)
        for old in self.folder.glob("v-*"):  # readers keep their mapped files until they reload
            if old.name not in (version, previous):
                shutil.rmtree(old, ignore_errors=True)

    def adopt(self, other: LexicalIndex) -> None:
        """Take ``other``'s folder as this one's (a rebuild's lexical index swapped in with
        its collection); the old folder is removed."""
        for lex in (self, other):
            if lex._store is not None:
                lex._store.close()
                lex._store = None
        aside = self.folder.with_name(f".{self.folder.name}.old-{time.time_ns()}")
        if self.folder.exists():
            os.replace(self.folder, aside)
        if other.folder.exists():
            os.replace(other.folder, self.folder)
        shutil.rmtree(aside, ignore_errors=True)

    def drop(self) -> None:
        """Forget everything (the collection is being deleted)."""
        if self._store is not None:
            self._store.close()
            self._store = None
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- serving side --
    def load(self) -> LexicalSnapshot | None:
        """The saved index, memory-mapped; ``None`` when there is none. A version removed
        between reading the manifest and mapping its files (two saves in a row while this
        reader looked) is retried once from the manifest that replaced it."""
        for attempt in range(2):
            m = self.manifest()
            if m is None:
                return None
            path = self.folder / m["version"]
            try:
                ids = np.load(path / "ids.npy", mmap_mode="r")
                if m.get("empty"):
                    return LexicalSnapshot(build_bm25([]), ids, np.zeros(0), m)
                bm25s = quiet_bm25s()
                model = bm25s.BM25.load(str(path), mmap=True, show_progress=False)
            except (OSError, ValueError) as exc:
                if attempt == 0 and (self.manifest() or {}).get("version") != m["version"]:
                    continue
                log.warning("cannot read the lexical index at %s (%s)", path, exc)
                return None
            df = np.diff(np.asarray(model.scores["indptr"]))
            return LexicalSnapshot(model, ids, df, m)
        return None


class LexicalReader:
    """Serving side: the current snapshot, reloaded when ingest saves a new version.

    Each call costs one ``stat`` of the manifest; a reload (after an ingest) maps the new
    files and checks them against the collection once.
    """

    def __init__(self, lexical: LexicalIndex) -> None:
        self.lexical = lexical
        self._lock = threading.Lock()
        self._key: tuple | None = ("unset",)
        self._snap: LexicalSnapshot | None = None

    def _stat_key(self) -> tuple | None:
        try:
            st = os.stat(self.lexical.folder / MANIFEST)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def get(self, index: Any) -> LexicalSnapshot | None:
        key = self._stat_key()
        with self._lock:
            if key != self._key:
                self._snap = self._load_checked(index)
                self._key = key
            return self._snap

    def _load_checked(self, index: Any) -> LexicalSnapshot | None:
        where = self.lexical.folder
        snap = self.lexical.load()
        remedy = (
            "run `python ingest.py` with the same settings (it builds the lexical index and "
            "embeds nothing that is already indexed)"
        )
        if snap is None:
            log.warning(
                "no lexical (BM25) index at %s: retrieval is dense only, so exact names and "
                "acronyms may be missed; %s",
                where,
                remedy,
            )
            return None
        col_id, stamp, count = _collection_state(index)
        m = snap.manifest
        if m["collection_id"] != col_id:
            log.warning(
                "the lexical index at %s was built for another collection (it was rebuilt "
                "since): retrieval is dense only until you %s",
                where,
                remedy.removeprefix("run "),
            )
            return None
        if (m["stamp"], m["chunks"]) != (stamp, count):
            log.warning(
                "the lexical index at %s lags the collection (%d chunks indexed, %d now): "
                "papers added since are found by dense retrieval only; %s",
                where,
                m["chunks"],
                count,
                remedy,
            )
        log.info("lexical index loaded: %d chunks (%s)", snap.n, m["version"])
        return snap
