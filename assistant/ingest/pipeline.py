"""Ingest end to end: read papers, find what changed, embed only that, write it to the index.

Files are read record by record into a temporary store on disk (deduplicated there), then the
papers are compared with the index a batch at a time: only new or changed papers are embedded,
a batch of whole papers at a time. Memory does not grow with the input. A batch replaces its
papers' chunks in one add, and each chunk records how many chunks its paper has, so a run that
is killed part-way leaves an index that answers questions and that the next run completes.

One writer at a time (a lock file naming the holder, :mod:`assistant.index.writer_lock`).
A paper's update writes its new chunks before it deletes the old ones. ``--rebuild`` builds a
new collection beside the old one and swaps it in when it is complete; without paths it
re-reads the files the collection records (or refuses), never the sample collection.

``--prune`` removes a paper only when a file named in this run, read completely, no longer
lists it and no other file lists it. A file that stopped early or holds a record that could not
be parsed says nothing about absence, nor does a recorded source file that was not named
(moved, unmounted, or another machine's papers on a shared Chroma server).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import InputError
from assistant.index.chroma import PaperIndex, PaperState
from assistant.index.chunking import chunk_paper, paper_hashes
from assistant.index.embeddings import Embedder, load_embedder
from assistant.index.lexical import LexicalIndex
from assistant.index.writer_lock import writer_lock
from assistant.ingest.readers import ReadResult, default_sample_paths, read_paths
from assistant.ingest.records import title_name
from assistant.settings import Settings
from assistant.types import Paper, Skipped

__all__ = ["IngestReport", "ingest", "ingest_papers", "files_to_read"]

log = logging.getLogger(__name__)

BATCH_PAPERS = 128
WRITER_BATCH_PAPERS = 8192
"""Papers handed at a time to a caller's writer (Ray): big enough to keep a cluster busy,
small enough that the driver never holds the whole collection's work."""


@dataclass
class IngestReport:
    """What an ingest run did; ``ingest.py --json`` prints it as its last line."""

    papers_total: int = 0
    papers_new: int = 0
    papers_updated: int = 0
    papers_unchanged: int = 0
    papers_pruned: int = 0
    papers_read: int = 0
    duplicates: int = 0
    chunks_total: int = 0
    chunks_written: int = 0
    sentences_withheld: int = 0
    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    index: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skipped"] = [s.to_dict() for s in self.skipped]
        return d


ProgressFactory = Callable[[int, str], Any]
"""``factory(total, description)`` -> object with ``update(n)`` and ``close()`` (tqdm-like)."""
Writer = Callable[[list[tuple[Paper, list[str]]], "ProgressFactory | None", PaperIndex], int]
"""``writer(work, progress, index)``: embed ``(paper, sources)`` work and write it into
``index`` (the collection, or the one a rebuild builds beside it); chunks written."""


def ingest(
    paths: Sequence[str | Path] | None,
    settings: Settings,
    *,
    fmt: str | None = None,
    prune: bool = False,
    rebuild: bool = False,
    embedder: Embedder | None = None,
    index: PaperIndex | None = None,
    progress: ProgressFactory | None = None,
) -> IngestReport:
    """Read ``paths`` and bring the index up to date (no paths: the bundled sample collection;
    with ``rebuild`` and no paths, the files the collection records, see :func:`files_to_read`).

    Raises :class:`InputError` when no paper at all could be read; bad records are skipped,
    counted and reported in the result while the good ones are kept. The papers are staged in
    a temporary folder (``TMPDIR``) while the run lasts.
    """
    started = time.perf_counter()
    files = files_to_read(paths, settings, rebuild=rebuild, index=index)
    _remove_stale_staging()
    with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX) as tmp:
        (Path(tmp) / "pid").write_text(str(os.getpid()))
        with read_paths(files, fmt, stage_dir=Path(tmp)) as read:
            if not len(read.papers):
                problems = "; ".join(str(s) for s in read.skipped[:10]) or "no input files found"
                raise InputError(
                    f"no paper could be read ({problems}). Give files in a supported format "
                    "(.txt sample pages, .jsonl arXiv metadata, .csv with title and abstract "
                    "columns, .bib with abstract fields), or force one with --format."
                )
            report = ingest_papers(
                read,
                settings,
                prune=prune,
                rebuild=rebuild,
                embedder=embedder,
                index=index,
                progress=progress,
            )
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def files_to_read(
    paths: Sequence[str | Path] | None,
    settings: Settings,
    *,
    rebuild: bool = False,
    index: PaperIndex | None = None,
) -> list[str | Path]:
    """The files a run reads: ``paths``; without them the sample collection, except for a
    rebuild of a collection that exists, which re-reads the files it records. A rebuild that
    cannot find every recorded file here is refused (it would drop their papers), so is one
    of a collection that records none: nothing is changed then."""
    if paths:
        return list(paths)
    if not rebuild:
        return list(default_sample_paths())
    recorded = (index or PaperIndex(settings)).recorded_sources()
    if recorded is None:  # nothing to rebuild: a first build of the sample collection
        return list(default_sample_paths())
    where = settings.describe_index()
    if not recorded:
        raise InputError(
            f"--rebuild without paths re-reads the files the collection at {where} was built "
            "from, but it records none; nothing was changed. Give the files to rebuild from: "
            "`python ingest.py --rebuild PATH ...`"
        )
    missing = [f for f in recorded if not Path(f).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InputError(
            f"--rebuild without paths re-reads the {len(recorded)} files the collection at "
            f"{where} was built from, but {len(missing)} of them are not on this machine "
            f"({shown}); rebuilding without them would drop their papers, so nothing was "
            "changed. Give the files to rebuild from: `python ingest.py --rebuild PATH ...`"
        )
    log.info("--rebuild: re-reading the %d files the collection records", len(recorded))
    return list(recorded)


STAGING_PREFIX = "paper-assistant-ingest-"


def _remove_stale_staging() -> None:
    """Remove staging folders left by runs that were killed (their process is gone)."""
    for folder in Path(tempfile.gettempdir()).glob(STAGING_PREFIX + "*"):
        try:
            pid = int((folder / "pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            log.info("removing %s, left by an ingest that was killed", folder)
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue  # no pid file yet, another user's, or unreadable: leave it


def ingest_papers(
    read: ReadResult,
    settings: Settings,
    *,
    prune: bool = False,
    rebuild: bool = False,
    embedder: Embedder | None = None,
    index: PaperIndex | None = None,
    progress: ProgressFactory | None = None,
    writer: Writer | None = None,
) -> IngestReport:
    """Bring the index up to date with already-read papers (see :func:`ingest`).

    One writer at a time: the index's writer lock is held throughout (a second ingest is
    refused, naming this one). ``rebuild`` builds a new collection beside the old one and
    swaps it in only when it is complete: an interrupted rebuild leaves the old collection
    as it was. ``writer(work, progress, index)`` embeds and writes the papers that need it,
    in whole-paper batches, into ``index``, and returns the number of chunks written
    (default: in this process; the Ray path passes its own).
    """
    embedder = embedder or load_embedder(settings)
    index = index or PaperIndex(settings)
    with writer_lock(settings):
        if not rebuild:
            return _update(read, settings, index, LexicalIndex.for_settings(settings), embedder,
                           prune=prune, progress=progress, writer=writer)  # fmt: skip
        stage = index.staging()
        stage_lexical = LexicalIndex.for_settings(stage.settings)
        stage_lexical.drop()  # what an interrupted rebuild left
        report = _update(read, stage.settings, stage, stage_lexical, embedder,
                         prune=False, progress=progress, writer=writer)  # fmt: skip
        index.replace_with(stage)
        LexicalIndex.for_settings(settings).adopt(stage_lexical)
        report.index = settings.describe_index()
        log.info("rebuilt %s: the new collection replaced the old one", report.index)
        return report


def _update(
    read: ReadResult,
    settings: Settings,
    index: PaperIndex,
    lexical: LexicalIndex,
    embedder: Embedder,
    *,
    prune: bool,
    progress: ProgressFactory | None,
    writer: Writer | None,
) -> IngestReport:
    """Compare the papers with ``index``, write what changed, prune, save the BM25 index."""
    index.lexical = lexical.store  # every write below keeps the BM25 token store in step
    index.open(create_with_dim=embedder.dim)
    considered = set(read.complete_files) if prune else set()
    report = IngestReport(
        papers_read=read.records_seen,
        duplicates=read.duplicates,
        files=list(read.files_read),
        skipped=list(read.skipped),
        index=settings.describe_index(),
    )
    if prune:
        report.skipped += [
            Skipped(
                f,
                None,
                f"--prune left this file's papers alone: it was not read completely ({why})",
            )
            for f, why in read.unprunable.items()
        ]
    sink = _Writer(settings, embedder, index, progress, len(read.papers), write=writer)
    try:
        for batch in _batches(read.papers, BATCH_PAPERS):
            _sync_batch(batch, index, considered, sink, report)
        sink.flush()
    finally:
        sink.close()
    changed = sink.changed
    if prune:
        report.papers_pruned = _prune(index, read, considered)
        changed = changed or report.papers_pruned > 0
    sources = [Path(f).name for f in read.files_read]
    if changed or set(sources) - set(index.source_files() or []):
        index.touch(source_files=sources, changed=changed)
    lexical.refresh(index)  # the BM25 index questions use: saved now, never built when asked
    report.chunks_total = index.chunk_count()
    report.chunks_written = sink.chunks_written
    report.papers_total = index.paper_count()
    return report


def _batches(papers: Sequence[Paper], size: int) -> Iterator[list[Paper]]:
    batch: list[Paper] = []
    for paper in papers:
        batch.append(paper)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _sync_batch(
    batch: list[Paper],
    index: PaperIndex,
    considered: set[str],
    writer: _Writer,
    report: IngestReport,
) -> None:
    """Compare a batch of papers with the index: queue what changed, update what moved."""
    settings = writer.settings
    states: dict[str, PaperState] = index.states_of([p.paper_id for p in batch])
    meta_updates: dict[str, dict[str, Any]] = {}
    for paper in batch:
        report.sentences_withheld += len(paper.withheld)
        state = states.get(paper.paper_id)
        old_sources = [s for s in (state.sources if state else []) if s not in considered]
        sources = sorted(set(old_sources) | set(paper.sources))
        text_hash, meta_hash = paper_hashes(paper, settings)
        if state is None or not state.complete:
            report.papers_new += 1
            writer.add(paper, sources)
        elif state.text_hash != text_hash:
            report.papers_updated += 1
            writer.add(paper, sources)
        else:
            report.papers_unchanged += 1
            if state.meta_hash != meta_hash or sorted(state.sources) != sources:
                meta_updates[paper.paper_id] = _metadata_update(paper, settings, sources)
    if meta_updates:
        index.update_metadata(meta_updates)
        writer.changed = True
    writer.advance(len(batch))


_META_KEYS = ("authors", "date", "date_num", "url", "categories", "extra", "withheld")


def _metadata_update(paper: Paper, settings: Settings, sources: list[str]) -> dict[str, Any]:
    first = chunk_paper(paper, settings, sources)[0].metadata
    update = {k: first[k] for k in (*_META_KEYS, "meta_hash", "sources", "source")}
    return update


class _Writer:
    """Embeds queued papers and writes them, a batch of whole papers at a time."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        index: PaperIndex,
        progress: ProgressFactory | None,
        total: int,
        write: Writer | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.write = write
        self.batch_papers = BATCH_PAPERS if write is None else WRITER_BATCH_PAPERS
        self.queue: list[tuple[Paper, list[str]]] = []
        self.batches = 0
        self.chunks_written = 0
        self.changed = False
        self.bar = progress(total, "ingesting papers") if progress else None

    def add(self, paper: Paper, sources: list[str]) -> None:
        self.queue.append((paper, sources))
        if len(self.queue) >= self.batch_papers:
            self.flush()

    def flush(self) -> None:
        if not self.queue:
            return
        batch, self.queue = self.queue, []
        if self.write is not None:  # the caller's writer (Ray) embeds and writes the batch
            self.chunks_written += self.write(batch, None, self.index)
            self.changed = True
            return
        chunks = [c for paper, srcs in batch for c in chunk_paper(paper, self.settings, srcs)]
        vectors = self.embedder.embed(
            [c.embed_text for c in chunks], batch_size=self.settings.embed_batch_size
        )
        self.index.write_chunks(chunks, vectors)
        self.chunks_written += len(chunks)
        self.changed = True
        self.batches += 1
        log.info("wrote batch %d: %d papers, %d chunks", self.batches, len(batch), len(chunks))

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _prune(index: PaperIndex, read: ReadResult, considered: set[str]) -> int:
    """Remove papers that the files read completely no longer list and no other file lists;
    drop those files from the sources of papers that other files still list."""
    gone: list[str] = []
    updates: dict[str, dict[str, Any]] = {}
    done: set[str] = set()
    for pid, title, sources in index.iter_papers():
        if pid in done or not considered.intersection(sources):
            continue
        done.add(pid)
        if read.has_paper(pid):
            continue  # listed in this run: its sources were brought up to date already
        if pid in read.protected or title_name(title) in read.protected:
            log.info("%s: kept; a record this run could not use names it", pid)
            continue
        left = [s for s in sources if s not in considered]
        if not left:
            gone.append(pid)
        else:
            updates[pid] = {"sources": json.dumps(sorted(left)), "source": Path(left[0]).name}
    if gone:
        log.info("pruning %d papers no file lists any more", len(gone))
        index.delete_papers(gone)
    if updates:
        index.update_metadata(updates)
    return len(gone)
