"""The persisted lexical (BM25) index: same scores as an in-memory build, kept in step by
ingest (incremental, --prune, --rebuild, interrupted runs, old indexes), never built when a
question is asked; on a real Chroma on disk and a real ``chroma run`` server."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from test_ingest import run_cli, write_jsonl

from assistant.answer.engine import Assistant
from assistant.answer.retrieval import HybridRetriever
from assistant.index.chroma import PaperIndex
from assistant.index.lexical import LexicalIndex, build_bm25, tokenize
from assistant.index.lexical_writer import build_bm25_from_ids, save_bm25
from assistant.ingest.pipeline import ingest
from assistant.ingest.readers import default_sample_paths, read_paths
from assistant.settings import Settings, default_data_dir, default_server_folder

QA = Path(__file__).resolve().parent.parent / "evals" / "data" / "sample_qa.jsonl"
NAMES = ["HAWQ", "ZeroQ", "GaSNet-II", "grokking", "What does GaSNet-II predict?"]


def questions() -> list[str]:
    rows = [json.loads(line) for line in QA.read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows] + NAMES


def in_memory_scores(index: PaperIndex, queries: list[str]) -> dict[str, dict[str, float]]:
    """What the retriever computed before: BM25 over every chunk read from Chroma."""
    ids, docs, metas = index.all_chunks()
    model = build_bm25([tokenize(f"{m.get('title', '')}\n{d}") for d, m in zip(docs, metas)])
    out = {}
    for q in queries:
        toks = [t for t in tokenize(q) if t in model.vocab_dict]
        scores = model.get_scores(toks) if toks else np.zeros(len(ids))
        out[q] = dict(zip(ids, (float(s) for s in scores)))
    return out


def persisted_scores(settings: Settings, queries: list[str]) -> dict[str, dict[str, float]]:
    snap = LexicalIndex.for_settings(settings).load()
    assert snap is not None
    out = {}
    for q in queries:
        toks = [t for t in tokenize(q) if t in snap.model.vocab_dict]
        scores = snap.model.get_scores(toks) if toks else np.zeros(snap.n)
        out[q] = dict(zip((str(i) for i in snap.ids), (float(s) for s in scores)))
    return out


def assert_same_scores(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for q in a:
        assert a[q].keys() == b[q].keys(), q
        ids = sorted(a[q])
        np.testing.assert_allclose(
            [a[q][i] for i in ids], [b[q][i] for i in ids], rtol=1e-5, atol=1e-6, err_msg=q
        )


def test_persisted_index_scores_like_the_in_memory_build(sample_index: Path) -> None:
    settings = Settings(index_dir=sample_index)
    index = PaperIndex(settings)
    qs = questions()
    assert_same_scores(in_memory_scores(index, qs), persisted_scores(settings, qs))
    # And the retriever's BM25 ranking is that ranking: same chunks, same order up to ties.
    ret = HybridRetriever(settings, index, embedder=None)  # type: ignore[arg-type]
    reference = in_memory_scores(index, NAMES)
    for q in NAMES:
        got = ret.bm25(q, 30, None)
        assert got, q
        ref = sorted(((s, cid) for cid, s in reference[q].items() if s > 0), reverse=True)[:30]
        assert [round(s, 4) for _, s, _ in got] == [round(s, 4) for s, _ in ref], q
        for cid, score, _ in got:
            assert reference[q][cid] == pytest.approx(score, rel=1e-5)


def fake_corpus(n: int = 400, vocab: int = 700) -> tuple[list[str], list[np.ndarray], list[str]]:
    """Chunk ids, token ids (Zipf-like, with repeats, an empty chunk, ids never used) and
    the vocabulary."""
    rng = np.random.default_rng(7)
    docs = [
        (rng.zipf(1.4, size=rng.integers(0, 60)) * 3 % vocab).astype(np.int32) for _ in range(n)
    ]
    docs[5] = np.zeros(0, dtype=np.int32)
    return [f"2401.{i:05d}#0" for i in range(n)], docs, [f"tok{i}" for i in range(vocab)]


@pytest.mark.parametrize("band_bytes", [None, 8 * 40])
def test_banded_save_writes_the_one_shot_build(tmp_path: Path, band_bytes: int | None) -> None:
    import bm25s

    ids, docs, vocab = fake_corpus()
    n = save_bm25(
        tmp_path,
        zip(ids, docs),
        enumerate(vocab),
        band_bytes=band_bytes,
        block_tokens=None if band_bytes is None else 97,
    )
    ref = build_bm25_from_ids(docs, vocab)
    if band_bytes:
        assert ref.scores["indptr"][-1] > 20 * 40  # more than 20 bands, several blocks each
    saved = bm25s.BM25.load(str(tmp_path), mmap=True, show_progress=False)
    assert n == len(ids) and np.load(tmp_path / "ids.npy").tolist() == ids
    assert {p.name for p in tmp_path.iterdir()} == {  # the spill files are gone
        "ids.npy",
        "params.index.json",
        "vocab.index.json",
        "data.csc.index.npy",
        "indices.csc.index.npy",
        "indptr.csc.index.npy",
    }
    for key in ("data", "indices", "indptr"):
        assert saved.scores[key].dtype == ref.scores[key].dtype, key
        assert np.array_equal(saved.scores[key], ref.scores[key]), key
    assert saved.scores["num_docs"] == n and saved.vocab_dict == ref.vocab_dict
    # And bm25s's own build over the same tokens scores alike.
    own = build_bm25([[vocab[t] for t in d] for d in docs])
    for query in (["tok3"], ["tok0", "tok9", "tok3"], ["tok699", "tok21"]):
        q = [t for t in query if t in own.vocab_dict]
        np.testing.assert_allclose(saved.get_scores(q), own.get_scores(q), rtol=1e-6)


def test_banded_save_without_chunks_or_tokens(tmp_path: Path) -> None:
    assert save_bm25(tmp_path / "none", [], []) == 0
    assert np.load(tmp_path / "none" / "ids.npy").shape == (0,)
    empty = [np.zeros(0, dtype=np.int32)] * 3
    assert save_bm25(tmp_path / "empty", zip("abc", empty), [(0, "x")]) == 3
    ref = build_bm25_from_ids(empty, ["x"]).scores
    saved = np.load(tmp_path / "empty" / "indptr.csc.index.npy")
    assert np.array_equal(saved, ref["indptr"]) and saved.tolist() == [0, 0]
    assert json.loads((tmp_path / "empty" / "vocab.index.json").read_text()) == {"": 0}


def test_the_first_question_maps_the_saved_index(sample_index_copy: Path, embedder) -> None:
    settings = Settings(index_dir=sample_index_copy)
    index = PaperIndex(settings)
    index.all_chunks = None  # type: ignore[assignment]  # a question must not read every chunk
    assistant = Assistant(settings, embed_model=embedder, index=index)
    sources = assistant.retrieve("How does HAWQ choose bit precision?")
    assert sources and "HAWQ" in sources[0].title
    snap = assistant.retriever.lexical()
    assert snap is not None and isinstance(snap.model.scores["data"], np.memmap)


def test_missing_index_is_dense_only_with_a_warning_then_ingest_builds_it(
    sample_index_copy: Path, embedder, caplog
) -> None:
    settings = Settings(index_dir=sample_index_copy)
    shutil.rmtree(settings.lexical_path())  # an index made before the lexical index existed
    assistant = Assistant(settings, embed_model=embedder)
    with caplog.at_level(logging.WARNING, logger="assistant.index.lexical"):
        assert assistant.retriever.bm25("HAWQ", 30, None) == []
        title = read_paths(default_sample_paths()).papers[5].title
        sources = assistant.retrieve(title)
    assert sources and sources[0].title == title, "dense retrieval still answers"
    assert "no lexical (BM25) index" in caplog.text and "python ingest.py" in caplog.text

    # The next ingest embeds nothing, reads the chunks from Chroma once and saves the index;
    # the running assistant picks it up without a restart.
    report = ingest(None, settings, embedder=embedder)
    assert report.chunks_written == 0
    assert LexicalIndex.for_settings(settings).is_current(PaperIndex(settings))
    assert [cid for cid, _, _ in assistant.retriever.bm25("HAWQ", 30, None)]


def test_interrupted_store_is_completed_from_chroma(sample_index_copy: Path, embedder) -> None:
    settings = Settings(index_dir=sample_index_copy)
    lexical = LexicalIndex.for_settings(settings)
    n = lexical.store.count()
    with sqlite3.connect(lexical.folder / "tokens.sqlite") as db:  # as a killed run leaves it
        db.execute("DELETE FROM chunks WHERE rowid % 7 = 0")
    lexical.store.close()
    stats = LexicalIndex.for_settings(settings).refresh(PaperIndex(settings))
    assert stats.fetched > 0 and stats.chunks == n and stats.rebuilt
    qs = questions()[:20]
    assert_same_scores(in_memory_scores(PaperIndex(settings), qs), persisted_scores(settings, qs))


def bm25_papers(settings: Settings, query: str) -> set[str]:
    ret = HybridRetriever(settings, PaperIndex(settings), embedder=None)  # type: ignore[arg-type]
    return {cid.rsplit("#", 1)[0] for cid, _, _ in ret.bm25(query, 30, None)}


def test_ingest_keeps_it_in_step(tmp_path: Path, make_settings, embedder) -> None:
    settings = make_settings()
    a = write_jsonl(tmp_path / "a.jsonl", 12)
    b = write_jsonl(tmp_path / "b.jsonl", 6, start=12)
    ingest([a, b], settings, embedder=embedder)
    lexical = LexicalIndex.for_settings(settings)
    assert lexical.is_current(PaperIndex(settings))
    assert lexical.store.count() == PaperIndex(settings).collection.count()
    assert "2401.00013" in bm25_papers(settings, "variant 13")

    # A changed abstract: its new words are found, its old ones are not.
    write_jsonl(b, 6, start=12, change={13: "Quokkanet xylophonic embeddings of marsupials."})
    report = ingest([a, b], settings, embedder=embedder)
    assert report.papers_updated == 1
    assert bm25_papers(settings, "quokkanet xylophonic") == {"2401.00013"}

    # --prune: papers a file read completely no longer lists leave the lexical index too.
    write_jsonl(b, 1, start=12)  # (an emptied file is no evidence: --prune leaves it alone)
    ingest([a, b], settings, embedder=embedder, prune=True)
    assert not bm25_papers(settings, "quokkanet xylophonic")
    assert lexical.store.count() == PaperIndex(settings).collection.count() == 13

    # --rebuild: a new collection, and the index follows it.
    old = lexical.manifest()
    ingest([a], settings, embedder=embedder, rebuild=True)
    new = lexical.manifest()
    assert new["collection_id"] != old["collection_id"] and new["chunks"] == 12
    assert lexical.is_current(PaperIndex(settings))
    assert len(list(lexical.folder.glob("v-*"))) == 1  # older versions removed


def test_shared_retriever_is_safe_across_threads(sample_index: Path, embedder) -> None:
    assistant = Assistant(Settings(index_dir=sample_index), embed_model=embedder)
    qs = questions()[:12]
    expected = {q: [s.paper_id for s in assistant.retrieve(q)] for q in qs}
    got: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(q: str) -> None:
        try:
            got[q] = [s.paper_id for s in assistant.retrieve(q)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(q,)) for q in qs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == expected


def test_where_the_lexical_index_lives(tmp_path: Path) -> None:
    url = "http://127.0.0.1:8123"
    folder = Settings(chroma_url=url, collection="papers").lexical_path()
    assert folder == default_server_folder(default_data_dir(), url) / "papers"
    assert folder.parent.name.startswith("127.0.0.1_8123-")
    other = Settings(chroma_url="http://10.0.0.2:8123", collection="papers").lexical_path()
    assert other != folder
    assert Settings(chroma_url=url, lexical_dir=tmp_path).lexical_path() == tmp_path / "papers"
    assert Settings(index_dir=tmp_path).lexical_path() == tmp_path / "lexical" / "papers"


@pytest.mark.server
def test_chroma_server_ingest_saves_it_and_questions_use_it(
    tmp_path: Path, chroma_url: str, embedder
) -> None:
    lex = tmp_path / "lexical"
    env = {
        "ASSISTANT_CHROMA_URL": chroma_url,
        "ASSISTANT_COLLECTION": "lexical-server",
        "ASSISTANT_LEXICAL_DIR": str(lex),
    }
    jsonl = write_jsonl(tmp_path / "p.jsonl", 10)
    proc = run_cli(str(jsonl), "--json", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    settings = Settings(chroma_url=chroma_url, collection="lexical-server", lexical_dir=lex)
    assert (lex / "lexical-server" / "current.json").is_file()
    index = PaperIndex(settings)
    assert LexicalIndex.for_settings(settings).is_current(index)
    assert bm25_papers(settings, "variant 7") >= {"2401.00007"}
    qs = ["variant 3", "quantization", "variant 9 of"]
    assert_same_scores(in_memory_scores(index, qs), persisted_scores(settings, qs))
