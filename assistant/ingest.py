"""Ingest: read papers, find what changed, embed only that, write it to the index.

Work is written in batches of whole papers. A batch replaces its papers' chunks in one add,
and each chunk records how many chunks its paper has, so a run that is killed part-way leaves
an index that answers questions and that the next run completes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .embeddings import Embedder, load_embedder
from .errors import InputError
from .index import PaperIndex, chunk_paper, paper_hashes
from .lexical import LexicalIndex
from .readers import ReadResult, default_sample_paths, read_paths
from .settings import Settings
from .types import Paper, Skipped

__all__ = ["IngestReport", "ingest", "ingest_papers"]

log = logging.getLogger(__name__)

BATCH_PAPERS = 128
EMPTY_REASONS = ("empty file", "no papers found")


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
Writer = Callable[[list[tuple[Paper, list[str]]], "ProgressFactory | None"], int]
"""``writer(work, progress)``: embed and write ``(paper, sources)`` work; chunks written."""


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
    """Read ``paths`` (default: the bundled sample collection) and bring the index up to date.

    Raises :class:`InputError` when no paper at all could be read; bad records are skipped,
    counted and reported in the result while the good ones are kept.
    """
    started = time.perf_counter()
    read = read_paths(list(paths) if paths else default_sample_paths(), fmt)
    if not read.papers:
        problems = "; ".join(str(s) for s in read.skipped[:10]) or "no input files found"
        raise InputError(
            f"no paper could be read ({problems}). Give files in a supported format "
            "(.txt sample pages, .jsonl arXiv metadata, .csv with title and abstract columns, "
            ".bib with abstract fields), or force one with --format."
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


def _considered_files(read: ReadResult) -> set[str]:
    """Files this run read in full (their absence of a paper means something for --prune)."""
    files = set(read.files_read)
    for s in read.skipped:
        # A file emptied since the last run lists no paper any more; a file that could not be
        # read (unknown format, binary) says nothing about what it lists.
        if s.line is None and s.reason.startswith(EMPTY_REASONS) and Path(s.file).is_file():
            files.add(s.file)
    return files


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

    ``writer(work, progress)`` embeds and writes the papers that need it, in whole-paper
    batches, and returns the number of chunks written (default: in this process; the Ray
    path passes its own).
    """
    embedder = embedder or load_embedder(settings)
    index = index or PaperIndex(settings)
    lexical = LexicalIndex.for_settings(settings)
    index.lexical = lexical.store  # every write below keeps the BM25 token store in step
    if rebuild:
        index.drop()
    index.open(create_with_dim=embedder.dim)
    states = index.paper_states()
    considered = _considered_files(read) if prune else set()

    report = IngestReport(
        papers_read=read.records_seen,
        duplicates=read.duplicates,
        files=list(read.files_read),
        skipped=list(read.skipped),
        index=settings.describe_index(),
    )
    to_embed: list[tuple[Paper, list[str]]] = []
    meta_updates: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for paper in read.papers:
        seen.add(paper.paper_id)
        state = states.get(paper.paper_id)
        old_sources = state.sources if state else []
        if prune:
            old_sources = [s for s in old_sources if s not in considered and Path(s).exists()]
        sources = sorted(set(old_sources) | set(paper.sources))
        text_hash, meta_hash = paper_hashes(paper, settings)
        if state is None or not state.complete:
            report.papers_new += 1
            to_embed.append((paper, sources))
        elif state.text_hash != text_hash:
            report.papers_updated += 1
            to_embed.append((paper, sources))
        else:
            report.papers_unchanged += 1
            if state.meta_hash != meta_hash or sorted(state.sources) != sources:
                chunks = chunk_paper(paper, settings, sources)
                keep = ("authors", "date", "date_num", "url", "categories", "extra", "meta_hash")
                update = {k: chunks[0].metadata[k] for k in keep}
                update["sources"] = chunks[0].metadata["sources"]
                update["source"] = chunks[0].metadata["source"]
                meta_updates[paper.paper_id] = update

    changed = bool(to_embed or meta_updates)
    if to_embed and writer is not None:
        report.chunks_written = writer(to_embed, progress)
    elif to_embed:
        report.chunks_written = _embed_and_write(to_embed, settings, embedder, index, progress)
    if meta_updates:
        index.update_metadata(meta_updates)
    if prune:
        report.papers_pruned = _prune(index, states, seen, considered)
        changed = changed or report.papers_pruned > 0
    if changed:
        index.touch()
    lexical.refresh(index)  # the BM25 index questions use: saved now, never built when asked
    report.chunks_total = index.collection.count()
    report.papers_total = len(states.keys() | seen) - report.papers_pruned
    return report


def _embed_and_write(
    work: list[tuple[Paper, list[str]]],
    settings: Settings,
    embedder: Embedder,
    index: PaperIndex,
    progress: ProgressFactory | None,
) -> int:
    bar = progress(len(work), "embedding papers") if progress else None
    written = 0
    try:
        for start in range(0, len(work), BATCH_PAPERS):
            batch = work[start : start + BATCH_PAPERS]
            chunks = [c for paper, srcs in batch for c in chunk_paper(paper, settings, srcs)]
            vectors = embedder.embed(
                [c.embed_text for c in chunks], batch_size=settings.embed_batch_size
            )
            index.write_chunks(chunks, vectors)
            written += len(chunks)
            log.info(
                "wrote batch %d: %d papers, %d chunks",
                start // BATCH_PAPERS + 1,
                len(batch),
                len(chunks),
            )
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return written


def _prune(index: PaperIndex, states: dict, seen: set[str], considered: set[str]) -> int:
    """Remove papers that no file lists any more; drop stale files from the others' sources."""
    gone: list[str] = []
    updates: dict[str, dict[str, Any]] = {}
    for pid, state in states.items():
        if pid in seen:
            continue
        left = [s for s in state.sources if s not in considered and Path(s).exists()]
        if not left:
            gone.append(pid)
        elif left != state.sources:
            import json

            updates[pid] = {"sources": json.dumps(sorted(left)), "source": Path(left[0]).name}
    if gone:
        log.info("pruning %d papers no file lists any more", len(gone))
        index.delete_papers(gone)
    if updates:
        index.update_metadata(updates)
    return len(gone)
