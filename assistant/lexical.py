"""The persisted lexical (BM25) index of a collection: built at ingest, memory-mapped to serve.

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
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .text import STOPWORDS, fold_plural

__all__ = [
    "tokenize",
    "TokenStore",
    "LexicalIndex",
    "LexicalReader",
    "LexicalSnapshot",
    "RefreshStats",
    "build_bm25",
    "build_bm25_from_ids",
    "save_bm25",
]

log = logging.getLogger(__name__)

FORMAT = 2
"""Bumped when the saved layout or the tokenizer changes (older folders are rebuilt)."""
MANIFEST = "current.json"
TOKENS_DB = "tokens.sqlite"
_PAGE = 5000
BAND_BYTES = 64 << 20
"""Memory for the saved arrays of one band of columns (8 bytes an entry: score and row) while
:func:`save_bm25` writes them; a bigger index is written in several bands, one pass over its
token ids each (read back from a temporary file)."""
BLOCK_TOKENS = 1 << 19
"""Tokens :func:`save_bm25` processes at a time (its temporaries: ~60 bytes a token)."""

_TOKEN = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """BM25 tokens: lower-cased words; hyphenated names kept whole *and* split.

    "GaSNet-II" gives ``gasnet-ii``, ``gasnet`` and ``ii`` so either spelling matches.
    """
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        parts = re.split(r"[-.]", tok) if ("-" in tok or "." in tok) else []
        if tok not in STOPWORDS:
            out.append(fold_plural(tok))
        out.extend(fold_plural(p) for p in parts if p and p not in STOPWORDS and not p.isdigit())
    return out


def chunk_tokens(title: str, text: str) -> list[str]:
    """The tokens of one chunk, as BM25 indexes it: its paper's title, a newline, its text."""
    return tokenize(f"{title}\n{text}")


def _pack(ids: Sequence[int]) -> bytes:
    return zlib.compress(np.asarray(ids, dtype=np.int32).tobytes(), 1)


def _unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), dtype=np.int32)


def _quiet_bm25s() -> Any:
    import bm25s

    # bm25s sets its logger to DEBUG on import; let it follow the app's logging.
    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


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
    bm25s = _quiet_bm25s()
    model = bm25s.BM25()
    if corpus:
        model.index(list(corpus), show_progress=False)
    return model


def build_bm25_from_ids(docs: Sequence[np.ndarray], vocabulary: Sequence[str]) -> Any:
    """The same bm25s index as :func:`build_bm25`, computed with array operations in memory.

    Its memory grows with the number of tokens (about 1.4 GB for 200,000 chunks of ~180 tokens), so ingest
    saves with :func:`save_bm25`, which writes the same arrays in bounded memory; this is the
    one-shot reference it is tested against.

    bm25s's defaults (Lucene BM25, k1=1.5, b=0.75, float32 scores) with the same arithmetic
    in the same order, so scores match bm25s's own build; the vocabulary holds the tokens that
    occur (plus bm25s's empty token) and columns follow token ids instead of first sight.
    """
    import scipy.sparse as sp

    bm25s = _quiet_bm25s()
    model = bm25s.BM25()
    k1, b = model.k1, model.b
    n = len(docs)
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=n)
    avg = np.array(lengths).mean()  # as bm25s: a float64 scalar
    flat = np.concatenate(docs)
    used = np.flatnonzero(np.bincount(flat))  # the token ids that occur, in id order
    v = len(used)
    remap = np.zeros(int(used[-1]) + 1 if v else 0, dtype=np.int32)
    remap[used] = np.arange(v, dtype=np.int32)
    rows = np.repeat(np.arange(n, dtype=np.int32), lengths)
    # Term frequencies: a document x token matrix of ones, duplicates summed (linear, in C).
    tfm = sp.csr_matrix((np.ones(len(flat), dtype=np.float32), (rows, remap[flat])), shape=(n, v))
    tfm.sum_duplicates()
    doc = np.repeat(np.arange(n, dtype=np.int64), np.diff(tfm.indptr))
    col = tfm.indices
    tf32 = tfm.data
    df = np.bincount(col, minlength=v)
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
    tfc = tf32 / (k1 * ((1 - b) + b * lengths[doc] / avg) + tf32)
    scores = (idf[col] * tfc).astype(np.float32)
    csc = sp.csr_matrix((scores, col, tfm.indptr), shape=(n, v)).tocsc()
    indptr = np.append(csc.indptr.astype(np.int64), csc.indptr[-1])  # + the empty token
    model.scores = {
        "data": csc.data,
        "indices": csc.indices.astype(np.int32),
        "indptr": indptr,
        "num_docs": n,
    }
    model.vocab_dict = {vocabulary[int(g)]: i for i, g in enumerate(used)}
    model.vocab_dict[""] = v
    model.unique_token_ids_set = set(model.vocab_dict.values())
    model.nonoccurrence_array = None
    return model


class _NpyWriter:
    """A 1-d ``.npy`` file written front to back in pieces: the same bytes as ``np.save`` of
    the whole array, without the whole array in memory (nor a writable map of it)."""

    def __init__(self, path: Path, dtype: Any, length: int) -> None:
        self.dtype = np.dtype(dtype)
        self.length = length
        self.written = 0
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (length,),
        }
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, part: np.ndarray) -> None:
        assert part.dtype == self.dtype and part.ndim == 1, (part.dtype, self.dtype)
        self.written += len(part)
        if self.written > self.length:
            raise RuntimeError(f"{self.file.name}: more than {self.length} items")
        self.file.write(np.ascontiguousarray(part).data)

    def close(self) -> None:
        self.file.close()
        if self.written != self.length:
            raise RuntimeError(f"{self.file.name}: {self.written} items of {self.length}")


def _blocks(
    corpus: Iterable[tuple[str, np.ndarray]], block_tokens: int
) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """The corpus in blocks of about ``block_tokens`` tokens (whole chunks)."""
    ids: list[str] = []
    docs: list[np.ndarray] = []
    size = 0
    for cid, toks in corpus:
        ids.append(cid)
        docs.append(toks)
        size += len(toks)
        if size >= block_tokens:
            yield ids, docs
            ids, docs, size = [], [], 0
    if ids:
        yield ids, docs


def _distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_counts=True)`` for int64 keys, sorting in place (numpy 2's
    hash-based ``unique`` is several times slower on these)."""
    keys.sort()
    starts = np.flatnonzero(np.diff(keys, prepend=keys[:1] - 1)) if len(keys) else keys
    return keys[starts], np.diff(starts, append=len(keys))


def save_bm25(
    folder: Path,
    corpus: Iterable[tuple[str, np.ndarray]],
    vocabulary: Iterable[tuple[int, str]],
    *,
    band_bytes: int | None = None,
    block_tokens: int | None = None,
) -> int:
    """Save the bm25s index of :func:`build_bm25_from_ids` and ``ids.npy`` into ``folder``,
    in memory bounded by ``band_bytes`` and ``block_tokens`` whatever the corpus size.

    ``corpus`` gives ``(chunk id, token ids)`` (read once), ``vocabulary`` ``(token id,
    token)``. The first pass counts chunk lengths and document frequencies and copies the
    token ids to a temporary file in ``folder``; then each band of columns whose entries fit
    ``band_bytes`` is filled from that file (rows come in order, so each column's rows are
    sorted as scipy's ``tocsc`` leaves them) and appended to the ``.npy`` files, so neither
    the matrix nor a writable map of it is ever whole in memory. Same arithmetic, in the same
    dtypes, as :func:`build_bm25_from_ids`: the saved arrays are equal to its arrays, in the
    files of bm25s's ``save`` (``BM25.load(folder, mmap=True)`` reads them). Returns the
    number of chunks; with none, only ``ids.npy`` is written.
    """
    band_bytes = BAND_BYTES if band_bytes is None else band_bytes
    block_tokens = BLOCK_TOKENS if block_tokens is None else block_tokens
    folder.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryFile(dir=folder) as spill,
        tempfile.TemporaryFile(dir=folder) as spill_ids,
    ):
        blocks, df_tok, width = _count_pass(corpus, block_tokens, spill, spill_ids)
        lengths = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
        n = len(lengths)
        ids_out = _NpyWriter(folder / "ids.npy", f"<U{width}", n)
        spill_ids.seek(0)
        for _ in blocks:
            ids_out.write(np.load(spill_ids).astype(f"<U{width}"))
        ids_out.close()
        if n == 0:
            return 0
        cols = _Columns.of(df_tok, n)
        del df_tok
        k1, b = _save_params(folder, n, cols, vocabulary)
        scoring = (k1, b, lengths, np.array(lengths).mean())  # avg as bm25s: a float64 scalar
        _write_bands(folder, spill, blocks, cols, scoring, band_bytes)
    return n


def _count_pass(
    corpus: Iterable[tuple[str, np.ndarray]], block_tokens: int, spill: Any, spill_ids: Any
) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Pass 1: each block's chunk lengths, document frequencies by token id and the widest
    chunk id; the ids and token ids of each block go to the spill files."""
    blocks: list[np.ndarray] = []
    df_tok = np.zeros(0, dtype=np.int64)
    width = 1
    for ids, docs in _blocks(corpus, block_tokens):
        lens = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        flat = np.concatenate(docs).astype(np.int32, copy=False)
        blocks.append(lens)
        width = max(width, max(len(i) for i in ids))
        np.save(spill_ids, np.asarray(ids, dtype=str))
        np.save(spill, flat)
        if flat.size:
            w = int(flat.max()) + 1
            rows = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
            toks = _distinct(rows * w + flat)[0] % w  # each token once per chunk
            counts = np.bincount(toks, minlength=len(df_tok))
            counts[: len(df_tok)] += df_tok
            df_tok = counts
            del rows, toks, counts
        del ids, docs, lens, flat
    return blocks, df_tok, width


@dataclass
class _Columns:
    """The matrix's columns: the token ids that occur (in id order), token id -> column,
    idf and the CSC column pointers (plus bm25s's empty token, an empty last column)."""

    used: np.ndarray
    remap: np.ndarray
    idf: np.ndarray
    indptr: np.ndarray

    @property
    def v(self) -> int:
        return len(self.used)

    @classmethod
    def of(cls, df_tok: np.ndarray, n: int) -> _Columns:
        used = np.flatnonzero(df_tok)
        v = len(used)
        remap = np.full(len(df_tok), -1, dtype=np.int64)
        remap[used] = np.arange(v, dtype=np.int64)
        df = df_tok[used]
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        indptr = np.zeros(v + 2, dtype=np.int64)
        np.cumsum(df, out=indptr[1 : v + 1])
        indptr[v + 1] = indptr[v]
        return cls(used, remap, idf, indptr)


def _save_params(
    folder: Path, n: int, cols: _Columns, vocabulary: Iterable[tuple[int, str]]
) -> tuple[float, float]:
    """bm25s writes its parameters (placeholder arrays and vocabulary, replaced here); the
    column pointers and the vocabulary are written now. Returns bm25s's ``k1`` and ``b``."""
    bm25s = _quiet_bm25s()
    model = bm25s.BM25()
    model.scores = {
        "data": np.zeros(0, dtype=np.float32),
        "indices": np.zeros(0, dtype=np.int32),
        "indptr": np.zeros(1, dtype=np.int64),
        "num_docs": n,
    }
    model.vocab_dict = {}
    model.nonoccurrence_array = None
    model.save(str(folder), show_progress=False)
    np.save(folder / "indptr.csc.index.npy", cols.indptr)
    _save_vocab(folder / "vocab.index.json", vocabulary, cols.remap, cols.v)
    return model.k1, model.b


def _bands(indptr: np.ndarray, v: int, band_bytes: int) -> list[tuple[int, int]]:
    """Bands of columns whose entries fit ``band_bytes`` (a column bigger than that goes
    alone)."""
    per_band = max(1, band_bytes // 8)
    bands: list[tuple[int, int]] = []
    c0 = 0
    while c0 < v:
        c1 = int(np.searchsorted(indptr[1 : v + 1], indptr[c0] + per_band, side="right"))
        bands.append((c0, max(c1, c0 + 1)))
        c0 = bands[-1][1]
    return bands


def _write_bands(
    folder: Path,
    spill: Any,
    blocks: list[np.ndarray],
    cols: _Columns,
    scoring: tuple[float, float, np.ndarray, Any],
    band_bytes: int,
) -> None:
    """Pass 2, once per band: fill the band's columns from the spilled token ids and append
    them to the ``.npy`` files (so only one band is ever in memory)."""
    nnz = int(cols.indptr[cols.v])
    data_out = _NpyWriter(folder / "data.csc.index.npy", np.float32, nnz)
    indices_out = _NpyWriter(folder / "indices.csc.index.npy", np.int32, nnz)
    try:
        for c0, c1 in _bands(cols.indptr, cols.v, band_bytes):
            data, rows_out = _fill_band(spill, blocks, cols, scoring, c0, c1)
            data_out.write(data)
            indices_out.write(rows_out)
            del data, rows_out
    finally:
        data_out.file.close()
        indices_out.file.close()
    data_out.close()
    indices_out.close()


def _fill_band(
    spill: Any,
    blocks: list[np.ndarray],
    cols: _Columns,
    scoring: tuple[float, float, np.ndarray, Any],
    c0: int,
    c1: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The scores and row indices of columns ``c0..c1``: rows come in order, so each
    column's rows are sorted as scipy's ``tocsc`` leaves them."""
    k1, b, lengths, avg = scoring
    indptr, remap, idf = cols.indptr, cols.remap, cols.idf
    base = int(indptr[c0])
    data = np.empty(int(indptr[c1]) - base, dtype=np.float32)
    rows_out = np.empty(len(data), dtype=np.int32)
    cursor = indptr[c0:c1] - base  # the next free slot of each column of the band
    first = 0
    spill.seek(0)
    for lens in blocks:
        nb = len(lens)
        col = remap[np.load(spill)]
        rows = np.repeat(np.arange(nb, dtype=np.int64), lens)
        keep = (col >= c0) & (col < c1)
        if not keep.all():
            col, rows = col[keep], rows[keep]
        del keep
        # The band's entries of the block sorted by (column, row), and their tf.
        keys, tf = _distinct(col * nb + rows)
        del col, rows
        col, doc = np.divmod(keys, nb)
        del keys
        doc += first
        first += nb
        if not len(col):
            continue
        starts = np.flatnonzero(np.diff(col, prepend=-1))
        sizes = np.diff(starts, append=len(col))
        pos = cursor[col - c0] + np.arange(len(col)) - np.repeat(starts, sizes)
        cursor[col[starts] - c0] += sizes
        del starts, sizes
        tf32 = tf.astype(np.float32)
        tfc = tf32 / (k1 * ((1 - b) + b * lengths[doc] / avg) + tf32)
        data[pos] = (idf[col] * tfc).astype(np.float32)
        rows_out[pos] = doc
        del pos, tf, tf32, tfc, col, doc
    if not np.array_equal(cursor, indptr[c0 + 1 : c1 + 1] - base):
        raise RuntimeError("lexical index: a band was not filled (a bug)")
    return data, rows_out


def _save_vocab(path: Path, items: Iterable[tuple[int, str]], remap: np.ndarray, v: int) -> None:
    """bm25s's vocabulary file (token -> column, then the empty token), written as it is read:
    the ``v`` tokens that occur, in id order."""
    seen = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("{")
        for tid, token in items:
            if tid < len(remap) and remap[tid] >= 0:
                f.write(f"{json.dumps(token, ensure_ascii=False)}:{int(remap[tid])},")
                seen += 1
        f.write(f'"":{v}}}')
    if seen != v:
        raise RuntimeError(f"the token store's vocabulary lacks {v - seen} tokens that occur")


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
        version = f"v-{time.time_ns()}"
        tmp = self.folder / f".{version}.tmp"
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
        pointer = self.folder / f".{MANIFEST}.tmp"
        pointer.write_text(json.dumps(manifest))
        os.replace(pointer, self.folder / MANIFEST)
        for old in self.folder.glob("v-*"):  # readers keep their mapped files until they reload
            if old.name != version:
                shutil.rmtree(old, ignore_errors=True)

    def drop(self) -> None:
        """Forget everything (the collection is being deleted)."""
        if self._store is not None:
            self._store.close()
            self._store = None
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- serving side --
    def load(self) -> LexicalSnapshot | None:
        """The saved index, memory-mapped; ``None`` when there is none."""
        m = self.manifest()
        if m is None:
            return None
        path = self.folder / m["version"]
        try:
            ids = np.load(path / "ids.npy", mmap_mode="r")
            if m.get("empty"):
                return LexicalSnapshot(build_bm25([]), ids, np.zeros(0), m)
            bm25s = _quiet_bm25s()
            model = bm25s.BM25.load(str(path), mmap=True, show_progress=False)
        except (OSError, ValueError) as exc:
            log.warning("cannot read the lexical index at %s (%s)", path, exc)
            return None
        df = np.diff(np.asarray(model.scores["indptr"]))
        return LexicalSnapshot(model, ids, df, m)


def default_server_folder(data_dir: Path, url: str) -> Path:
    """Where the lexical index of a Chroma server's collections lives by default."""
    from urllib.parse import urlparse

    u = urlparse(url)
    digest = hashlib.sha1(url.rstrip("/").encode("utf-8")).hexdigest()[:8]
    return data_dir / "lexical" / f"{u.hostname}_{u.port or 8000}-{digest}"


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
