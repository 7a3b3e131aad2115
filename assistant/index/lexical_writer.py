"""The index, lexical side, writing: BM25 score arrays saved in bounded memory.

:func:`save_bm25` writes what ``bm25s.BM25.save`` writes (the same bytes), from the token
store's documents, in column bands of at most ``BAND_BYTES``, so saving 200k chunks takes about
160 MB instead of 1.5 GB. :func:`build_bm25_from_ids` is the in-memory reference it is tested
against. :mod:`assistant.index.lexical` keeps the store and serves what this writes.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BAND_BYTES = 64 << 20
"""Memory for the saved arrays of one band of columns (8 bytes an entry: score and row) while
:func:`save_bm25` writes them; a bigger index is written in several bands, one pass over its
token ids each (read back from a temporary file)."""
BLOCK_TOKENS = 1 << 19
"""Tokens :func:`save_bm25` processes at a time (its temporaries: ~60 bytes a token)."""


def quiet_bm25s() -> Any:
    import bm25s

    # bm25s sets its logger to DEBUG on import; let it follow the app's logging.
    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


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

    bm25s = quiet_bm25s()
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
    bm25s = quiet_bm25s()
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
