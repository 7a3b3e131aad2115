"""Reading, last step: papers deduplicated across records and files, in memory or staged on disk.

The same paper read twice (same arXiv id, or same normalised title when one of the two has no
arXiv id) becomes one :class:`~assistant.types.Paper` listing every file in ``sources``; the
longer abstract is kept and empty fields are filled from the other record. The order is the
order papers were first seen.

:class:`MemoryStore` keeps the papers in a list (small inputs, tests). :class:`DiskStore`
keeps them in a temporary SQLite file, so reading a multi-gigabyte input holds one record at a
time in memory; its papers are read back in order, a batch at a time.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from assistant.ingest.records import dedup_key
from assistant.types import Paper

__all__ = ["Collector", "MemoryStore", "DiskStore"]

log = logging.getLogger(__name__)


class MemoryStore(Sequence[Paper]):
    """Papers in a list, with their id and title keys in dicts."""

    def __init__(self) -> None:
        self._papers: list[Paper] = []
        self._ids: dict[str, int] = {}
        self._titles: dict[str, int] = {}
        self._final: set[str] = set()

    def find(self, paper_id: str, title: str) -> tuple[int | None, int | None]:
        """(slot of the paper with this id, slot of the first paper with this title key)."""
        return self._ids.get(paper_id), self._titles.get(title)

    def get(self, slot: int) -> Paper:
        return self._papers[slot]

    def add(self, paper: Paper, title: str) -> None:
        slot = len(self._papers)
        self._papers.append(paper)
        self._ids[paper.paper_id] = slot
        self._titles.setdefault(title, slot)
        self._final.add(paper.paper_id)

    def put(self, slot: int, paper: Paper, old_id: str) -> None:
        self._papers[slot] = paper
        self._ids[paper.paper_id] = slot
        if old_id != paper.paper_id:
            self._final.discard(old_id)
            self._final.add(paper.paper_id)

    def has_paper(self, paper_id: str) -> bool:
        """Whether a paper of this run has this id (its final id, not a merged alias)."""
        return paper_id in self._final

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self._papers)

    @overload
    def __getitem__(self, i: int) -> Paper: ...
    @overload
    def __getitem__(self, i: slice) -> list[Paper]: ...
    def __getitem__(self, i: Any) -> Any:
        return self._papers[i]

    def __iter__(self) -> Iterator[Paper]:
        return iter(self._papers)

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"MemoryStore({len(self)} papers)"


_SCHEMA = """
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -32768;
PRAGMA temp_store = FILE;
CREATE TABLE papers (slot INTEGER PRIMARY KEY, pid TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX papers_pid ON papers (pid);
CREATE TABLE ids (key TEXT PRIMARY KEY, slot INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE titles (key TEXT PRIMARY KEY, slot INTEGER NOT NULL) WITHOUT ROWID;
"""


def _pack(paper: Paper) -> bytes:
    return zlib.compress(pickle.dumps(paper, protocol=pickle.HIGHEST_PROTOCOL), 1)


def _unpack(blob: bytes) -> Paper:
    return pickle.loads(zlib.decompress(blob))  # our own temporary file, written just now


class DiskStore(MemoryStore):
    """Papers in a temporary SQLite file (``folder/papers.sqlite``); the caller removes it."""

    def __init__(self, folder: Path) -> None:  # noqa: D107
        self.path = Path(folder) / "papers.sqlite"
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._n = 0

    def find(self, paper_id: str, title: str) -> tuple[int | None, int | None]:
        by_id = self._db.execute("SELECT slot FROM ids WHERE key = ?", (paper_id,)).fetchone()
        by_title = self._db.execute("SELECT slot FROM titles WHERE key = ?", (title,)).fetchone()
        return (by_id[0] if by_id else None), (by_title[0] if by_title else None)

    def get(self, slot: int) -> Paper:
        row = self._db.execute("SELECT data FROM papers WHERE slot = ?", (slot,)).fetchone()
        return _unpack(row[0])

    def add(self, paper: Paper, title: str) -> None:
        slot = self._n
        self._n += 1
        db = self._db
        db.execute("INSERT INTO papers VALUES (?, ?, ?)", (slot, paper.paper_id, _pack(paper)))
        db.execute("INSERT OR REPLACE INTO ids VALUES (?, ?)", (paper.paper_id, slot))
        db.execute("INSERT OR IGNORE INTO titles VALUES (?, ?)", (title, slot))

    def put(self, slot: int, paper: Paper, old_id: str) -> None:
        self._db.execute(
            "UPDATE papers SET pid = ?, data = ? WHERE slot = ?",
            (paper.paper_id, _pack(paper), slot),
        )
        self._db.execute("INSERT OR REPLACE INTO ids VALUES (?, ?)", (paper.paper_id, slot))

    def has_paper(self, paper_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM papers WHERE pid = ? LIMIT 1", (paper_id,))
        return row.fetchone() is not None

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        return self.get(i)

    def __iter__(self) -> Iterator[Paper]:
        cur = self._db.execute("SELECT data FROM papers ORDER BY slot")
        while rows := cur.fetchmany(512):
            for (blob,) in rows:
                yield _unpack(blob)

    def __repr__(self) -> str:
        return f"DiskStore({self.path}, {len(self)} papers)"


class Collector:
    """Adds papers to a store, merging each into an earlier paper that is the same paper."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.records = 0
        self.duplicates = 0

    def add(self, paper: Paper) -> None:
        self.records += 1
        key = dedup_key(paper.title)
        slot, by_title = self.store.find(paper.paper_id, key)
        if slot is None and by_title is not None:
            other = self.store.get(by_title)
            # An arXiv paper and a title-only record of the same title are one paper; two
            # different arXiv ids with the same title are two papers.
            if "t:" in (paper.paper_id[:2], other.paper_id[:2]):
                slot = by_title
        if slot is None:
            self.store.add(paper, key)
            return
        self.duplicates += 1
        target = self.store.get(slot)
        old_id = target.paper_id
        _merge(target, paper)
        self.store.put(slot, target, old_id)


def _merge(target: Paper, new: Paper) -> None:
    if target.paper_id.startswith("t:") and not new.paper_id.startswith("t:"):
        target.paper_id = new.paper_id  # the arXiv id is the better id
    for name in ("authors", "date", "url", "categories"):
        if not getattr(target, name):
            setattr(target, name, getattr(new, name))
    if new.abstract != target.abstract:
        log.debug(
            "%s: abstracts differ in %s; keeping the longer one", target.paper_id, new.sources
        )
        if len(new.abstract) > len(target.abstract):
            target.abstract = new.abstract
    known = {w["sentence"] for w in target.withheld}
    target.withheld.extend(w for w in new.withheld if w["sentence"] not in known)
    for k, v in new.extra.items():
        target.extra.setdefault(k, v)
    target.sources.extend(s for s in new.sources if s not in target.sources)
