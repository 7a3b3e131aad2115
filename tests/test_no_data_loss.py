"""Commands that must not lose data: a rebuild without paths, an interrupted rebuild or update,
two writers at once, a reader during a save, --prune on an empty or broken file.

Real Chroma on disk and the real embedder throughout. Where a failure has to happen at a
given moment (a full disk in the middle of an update, Ctrl-C in the middle of a rebuild), the
real component is wrapped to fail there: nothing else can make it fail on demand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from source_tree import REPO_ROOT

from assistant.errors import IndexBusyError, InputError
from assistant.index.chroma import PaperIndex, aside_name, staging_name
from assistant.index.lexical import LexicalIndex
from assistant.index.writer_lock import lock_path, writer_lock
from assistant.ingest.pipeline import ingest
from assistant.ingest.readers import default_sample_paths, read_paths

SAMPLE = read_paths(default_sample_paths()).papers


def _jsonl(path: Path, n: int, *, start: int = 0, abstract: dict[int, str] | None = None) -> Path:
    abstract = abstract or {}
    rows = [
        {"id": f"2403.{i:05d}", "title": f"{SAMPLE[i].title} (copy {i})",
         "abstract": abstract.get(i, SAMPLE[i].abstract)}
        for i in range(start, start + n)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _ids(settings: Any) -> set[str]:
    return set(PaperIndex(settings).paper_states())


class _Interrupted(Exception):
    pass


class _FailingEmbedder:
    """The real embedder, interrupted on its ``fail_at``-th call (as Ctrl-C would be)."""

    def __init__(self, embedder: Any, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls = embedder, fail_at, 0
        self.dim, self.model_id = embedder.dim, embedder.model_id

    def embed(self, texts: Any, **kw: Any) -> Any:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise _Interrupted("interrupted")
        return self.inner.embed(texts, **kw)


# --- --rebuild -------------------------------------------------------------------------------


def test_rebuild_without_paths_rereads_the_recorded_files(tmp_path: Path, make_settings, embedder):
    """The issue's case: `ingest.py --rebuild` with no paths used to delete the collection and
    ingest the bundled sample instead. It re-reads the files the collection was built from."""
    settings = make_settings()
    mine = _jsonl(tmp_path / "mine.jsonl", 4)
    ingest([mine], settings, embedder=embedder)
    report = ingest(None, settings, rebuild=True, embedder=embedder)
    assert report.papers_total == 4 and report.papers_new == 4
    assert _ids(settings) == {f"2403.{i:05d}" for i in range(4)}
    assert LexicalIndex.for_settings(settings).is_current(PaperIndex(settings))
    names = {c.name for c in PaperIndex(settings).client.list_collections()}
    assert names == {settings.collection}  # nothing left beside it


def test_rebuild_without_paths_refuses_when_a_recorded_file_is_gone(
    tmp_path: Path, make_settings, embedder
) -> None:
    settings = make_settings()
    mine, theirs = _jsonl(tmp_path / "mine.jsonl", 2), _jsonl(tmp_path / "theirs.jsonl", 2, start=5)
    ingest([mine, theirs], settings, embedder=embedder)
    theirs.unlink()  # another machine's file on a shared server, an unmounted disk
    with pytest.raises(InputError, match=r"theirs\.jsonl.*nothing was changed"):
        ingest(None, settings, rebuild=True, embedder=embedder)
    assert len(_ids(settings)) == 4


def test_interrupted_rebuild_keeps_the_old_collection(tmp_path: Path, make_settings, embedder):
    """The new collection is built beside the old one and swapped in only when complete."""
    settings = make_settings()
    old = _jsonl(tmp_path / "old.jsonl", 3)
    ingest([old], settings, embedder=embedder)
    new = _jsonl(tmp_path / "new.jsonl", 3, start=10)
    with pytest.raises(_Interrupted):
        ingest([new], settings, rebuild=True, embedder=_FailingEmbedder(embedder, 1))
    assert _ids(settings) == {f"2403.{i:05d}" for i in range(3)}
    index = PaperIndex(settings)
    assert LexicalIndex.for_settings(settings).is_current(index)
    # The next rebuild clears what the interrupted one left, and swaps.
    ingest([new], settings, rebuild=True, embedder=embedder)
    assert _ids(settings) == {f"2403.{i:05d}" for i in range(10, 13)}
    names = {c.name for c in PaperIndex(settings).client.list_collections()}
    assert staging_name(settings.collection) not in names


def test_a_swap_cut_short_is_put_back(tmp_path: Path, make_settings, embedder) -> None:
    """A crash between the two renames of the swap leaves the old collection aside; the next
    open puts it back under its name."""
    settings = make_settings()
    ingest([_jsonl(tmp_path / "p.jsonl", 2)], settings, embedder=embedder)
    index = PaperIndex(settings)
    index.collection.modify(name=aside_name(settings.collection))  # the crash point
    assert len(_ids(settings)) == 2
    assert {c.name for c in index.client.list_collections()} == {settings.collection}


# --- a paper's update -----------------------------------------------------------------------


def test_an_update_cut_short_by_a_full_disk_loses_no_paper(
    tmp_path: Path, make_settings, embedder
) -> None:
    """The issue's case: an update used to delete the paper's chunks, then add the new ones;
    a failure in between left the paper missing. New chunks are written first."""
    settings = make_settings()
    path = _jsonl(tmp_path / "p.jsonl", 2)
    ingest([path], settings, embedder=embedder)
    changed = "We now study graph neural networks for molecules instead. " * 4
    _jsonl(path, 2, abstract={1: changed})
    index = PaperIndex(settings)
    col = index.collection

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    col.add = col.upsert = full_disk  # the write of the new version fails
    with pytest.raises(Exception, match="No space left"):
        ingest([path], settings, embedder=embedder, index=index)
    text = PaperIndex(settings).chunks_of(["2403.00001"])["2403.00001"]
    assert text and text[0][0] == SAMPLE[1].abstract  # the old version, whole
    # The next run writes the new version; a shorter one leaves no old chunk behind.
    report = ingest([path], settings, embedder=embedder)
    assert report.papers_updated == 1
    chunks = PaperIndex(settings).chunks_of(["2403.00001"])["2403.00001"]
    assert [t for t, _ in chunks] == [changed.strip()]


def test_a_shorter_version_replaces_every_old_chunk(tmp_path: Path, make_settings, embedder):
    settings = make_settings(chunk_size=64, chunk_overlap=8)
    long = " ".join(p.abstract for p in SAMPLE[:3])
    path = _jsonl(tmp_path / "p.jsonl", 1, abstract={0: long})
    ingest([path], settings, embedder=embedder)
    before = PaperIndex(settings).paper_states()["2403.00000"].n_chunks
    _jsonl(path, 1, abstract={0: SAMPLE[0].abstract[:200]})
    ingest([path], settings, embedder=embedder)
    state = PaperIndex(settings).paper_states()["2403.00000"]
    assert before > state.n_chunks and state.complete
    assert PaperIndex(settings).chunk_count() == state.n_chunks


# --- one writer at a time, readers never see half a version ---------------------------------


def test_a_second_writer_is_refused_and_told_who_writes(tmp_path: Path, make_settings, embedder):
    settings = make_settings()
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; from assistant.settings import Settings;"
            "from assistant.index.writer_lock import writer_lock\n"
            f"with writer_lock(Settings(index_dir=Path({str(settings.index_dir)!r}))):\n"
            "    print('locked', flush=True); time.sleep(60)"
        ), "--pretend", "ingest"],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexBusyError, match=rf"process {holder.pid} .*--pretend ingest"):
            ingest([_jsonl(tmp_path / "p.jsonl", 1)], settings, embedder=embedder)
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone (killed): the lock went with it.
    assert ingest([tmp_path / "p.jsonl"], settings, embedder=embedder).papers_new == 1
    with writer_lock(settings):
        assert json.loads(lock_path(settings).read_text())["pid"] > 0


def test_a_save_keeps_the_version_a_reader_may_be_opening(tmp_path: Path, make_settings, embedder):
    """The issue's case: a save deleted every other version, so a reader that had read the
    manifest found its version gone. The version the manifest named before a save stays."""
    settings = make_settings()
    path = _jsonl(tmp_path / "p.jsonl", 2)
    ingest([path], settings, embedder=embedder)
    lexical = LexicalIndex.for_settings(settings)
    seen_by_reader = lexical.manifest()["version"]
    ingest([_jsonl(path, 3)], settings, embedder=embedder)  # a save while the reader looks
    assert lexical.manifest()["version"] != seen_by_reader
    assert (lexical.folder / seen_by_reader / "ids.npy").is_file()
    ingest([_jsonl(path, 4)], settings, embedder=embedder)  # two saves later it may go
    assert not (lexical.folder / seen_by_reader).exists()
    assert lexical.load().n == PaperIndex(settings).chunk_count()
    assert not list(lexical.folder.glob(".*.tmp"))


# --- --prune ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    ["", '{"abstract": "A record without a title or an id, as a wrong export gives."}\n' * 3],
    ids=["empty", "titleless"],
)
def test_prune_refuses_an_empty_or_titleless_file(
    tmp_path: Path, make_settings, embedder, broken: str
) -> None:
    """The issue's case: a file that read as empty (a failed download) or whose records all
    lack titles and ids pruned every paper it had listed."""
    settings = make_settings()
    path = _jsonl(tmp_path / "p.jsonl", 3)
    ingest([path], settings, embedder=embedder)
    other = _jsonl(tmp_path / "other.jsonl", 1, start=7)
    path.write_text(broken, encoding="utf-8")
    report = ingest([path, other], settings, prune=True, embedder=embedder)
    assert report.papers_pruned == 0 and len(_ids(settings)) == 4
    said = " ".join(s.reason for s in report.skipped if s.file == str(path.resolve()))
    assert "--prune left this file's papers alone" in said and "--rebuild" in said


def test_ingest_cli_rebuild_without_paths(tmp_path: Path) -> None:
    """The same through `python ingest.py --rebuild`, as the embed-model error says to run."""
    index = tmp_path / "index"
    mine = _jsonl(tmp_path / "mine.jsonl", 2)
    run = [sys.executable, str(REPO_ROOT / "ingest.py"), "--index-dir", str(index), "--json"]
    first = subprocess.run([*run, str(mine)], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run([*run, "--rebuild"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout.splitlines()[-1])["papers_total"] == 2
