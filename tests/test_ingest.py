"""Ingest against a real on-disk Chroma and a real ``chroma run`` server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from source_tree import REPO_ROOT

from assistant.errors import IndexMismatchError, IndexMissingError, InputError
from assistant.index import PaperIndex
from assistant.ingest import ingest
from assistant.readers import default_sample_paths, read_paths
from assistant.settings import Settings

SAMPLE_PAPERS = read_paths(default_sample_paths()).papers


def write_jsonl(
    path: Path, n: int, *, start: int = 0, change: dict[int, str] | None = None
) -> Path:
    """n arXiv-style records built from real sample abstracts, with unique ids and titles."""
    change = change or {}
    with open(path, "w", encoding="utf-8") as f:
        for i in range(start, start + n):
            p = SAMPLE_PAPERS[i % len(SAMPLE_PAPERS)]
            rec = {
                "id": f"2401.{i:05d}",
                "title": f"{p.title} (variant {i})",
                "abstract": change.get(i, p.abstract),
                "authors": "A. Author, B. Author",
                "categories": "cs.LG",
                "update_date": "2024-01-15",
            }
            f.write(json.dumps(rec) + "\n")
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "ingest.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
    )


def last_json(proc: subprocess.CompletedProcess) -> dict:
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"no output; stderr: {proc.stderr[-2000:]}"
    return json.loads(lines[-1])


def test_sample_collection_counts_and_metadata(sample_index: Path) -> None:
    index = PaperIndex(Settings(index_dir=sample_index))
    info = index.info()
    assert info["papers"] == 414
    assert info["chunks"] >= 414
    assert info["embed_model"] == "all-MiniLM-L6-v2" and info["embed_dim"] == 384
    assert info["chunk_size"] == 512 and info["tokenizer"] == "cl100k_base"
    states = index.paper_states()
    assert all(s.complete for s in states.values())
    # 33 titles appear on several pages: one paper each, listing every page.
    multi = [s for s in states.values() if len(s.sources) > 1]
    assert len(multi) == 33
    # LaTeX escapes normalised in what is stored and shown.
    _, docs, _ = index.all_chunks()
    assert not any("\\%" in d for d in docs)
    # Cosine space, as the vector store promises.
    assert index.collection.configuration["hnsw"]["space"] == "cosine"


def test_cli_second_run_embeds_nothing(sample_index_copy: Path) -> None:
    proc = run_cli("--index-dir", str(sample_index_copy), "--json")
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc)
    assert out["papers_total"] == 414
    assert out["papers_new"] == 0 and out["papers_updated"] == 0
    assert out["papers_unchanged"] == 414
    assert out["chunks_written"] == 0
    assert out["skipped"] == []
    for key in (
        "papers_total",
        "papers_new",
        "papers_updated",
        "papers_unchanged",
        "chunks_total",
        "skipped",
        "seconds",
    ):
        assert key in out


def test_change_detection_and_prune(tmp_path: Path, make_settings, embedder) -> None:
    settings = make_settings()
    papers = write_jsonl(tmp_path / "papers.jsonl", 6)
    first = ingest([papers], settings, embedder=embedder)
    assert (first.papers_new, first.papers_total) == (6, 6)

    new_abstract = "We study a completely different question about graph neural networks " * 3
    write_jsonl(papers, 6, change={2: new_abstract})
    second = ingest([papers], settings, embedder=embedder)
    assert (second.papers_new, second.papers_updated, second.papers_unchanged) == (0, 1, 5)
    index = PaperIndex(settings)
    chunks = index.chunks_of(["2401.00002"])["2401.00002"]
    assert chunks and all("graph neural networks" in text for text, _ in chunks)
    assert index.collection.count() == second.chunks_total

    # Another file lists one of the papers too: its sources grow, nothing is re-embedded.
    other = write_jsonl(tmp_path / "other.jsonl", 1, start=5)
    third = ingest([papers, other], settings, embedder=embedder)
    assert third.chunks_written == 0
    assert len(PaperIndex(settings).paper_states()["2401.00005"].sources) == 2

    # The file drops two papers: without --prune they stay, with --prune they go.
    write_jsonl(papers, 4)
    kept = ingest([papers, other], settings, embedder=embedder)
    assert kept.papers_total == 6 and kept.papers_pruned == 0
    pruned = ingest([papers, other], settings, prune=True, embedder=embedder)
    assert pruned.papers_pruned == 1  # 2401.00004; 2401.00005 is still listed by other.jsonl
    states = PaperIndex(settings).paper_states()
    assert set(states) == {f"2401.{i:05d}" for i in (0, 1, 2, 3, 5)}
    assert [Path(s).name for s in states["2401.00005"].sources] == ["other.jsonl"]


def test_bad_inputs_reported_good_records_kept(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", 2)
    bad_json = tmp_path / "bad.jsonl"
    ok_line = json.dumps(
        {"id": "2402.00001", "title": "A fine paper", "abstract": SAMPLE_PAPERS[0].abstract}
    )
    bad_json.write_text(
        ok_line + "\n{not json\n" + json.dumps({"title": "No abstract here"}) + "\n"
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    binary = tmp_path / "blob.bib"
    binary.write_bytes(b"\x00\x01\x02GGUF\x00" * 50)
    no_abstract_col = tmp_path / "refs.csv"
    no_abstract_col.write_text("title,year\nSome title,2020\n")
    missing = tmp_path / "missing.jsonl"
    index_dir = tmp_path / "index"

    proc = run_cli(
        str(good),
        str(bad_json),
        str(empty),
        str(binary),
        str(no_abstract_col),
        str(missing),
        "--index-dir",
        str(index_dir),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc)
    assert out["papers_new"] == 3 and out["papers_total"] == 3
    where = {(Path(s["file"]).name, s["line"]) for s in out["skipped"]}
    assert ("bad.jsonl", 2) in where  # malformed JSON
    assert ("bad.jsonl", 3) in where  # title without abstract
    assert ("empty.csv", None) in where
    assert ("blob.bib", None) in where
    assert ("refs.csv", 1) in where  # no abstract column
    assert ("missing.jsonl", None) in where
    reasons = " ".join(s["reason"] for s in out["skipped"]).lower()
    assert "abstract" in reasons and "empty" in reasons
    # The human-readable report names file and line on stderr.
    assert "bad.jsonl:2" in proc.stderr


def test_no_readable_input_fails_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = run_cli(str(empty), str(tmp_path / "nope.csv"), "--index-dir", str(tmp_path / "index"))
    assert proc.returncode == 2
    assert "no paper could be read" in proc.stderr
    assert "empty.jsonl" in proc.stderr and "nope.csv" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mismatched_embedder_or_chunking_refused(tmp_path: Path, make_settings, embedder) -> None:
    settings = make_settings()
    ingest([write_jsonl(tmp_path / "p.jsonl", 2)], settings, embedder=embedder)
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        PaperIndex(make_settings(chunk_size=256)).open()
    # Same weights under another model id is still another embedder as far as the index knows.
    from assistant.embeddings import resolve_embed_model_path

    other = make_settings(embed_model=str(resolve_embed_model_path("all-MiniLM-L6-v2")))
    with pytest.raises(IndexMismatchError, match="embed_model"):
        PaperIndex(other).open()
    proc = run_cli(
        str(tmp_path / "p.jsonl"), "--index-dir", str(settings.index_dir), "--chunk-size", "256"
    )
    assert proc.returncode == 1 and "--rebuild" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(
        str(tmp_path / "p.jsonl"),
        "--index-dir",
        str(settings.index_dir),
        "--chunk-size",
        "256",
        "--rebuild",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc)["papers_new"] == 2


def test_missing_index_says_run_ingest(make_settings) -> None:
    with pytest.raises(IndexMissingError, match="ingest.py"):
        PaperIndex(make_settings()).open()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_ingest_resumes(tmp_path: Path, sig: signal.Signals) -> None:
    papers = write_jsonl(tmp_path / "many.jsonl", 400)
    index_dir = tmp_path / "index"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "ingest.py"),
            str(papers),
            "--index-dir",
            str(index_dir),
            "-v",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    deadline = time.monotonic() + 300
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the first batch is written
        if "wrote batch" in line or time.monotonic() > deadline:
            break
    proc.send_signal(sig)
    proc.wait(timeout=120)
    err = proc.stderr.read()
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "run the command again" in err

    settings = Settings(index_dir=index_dir)
    partial = PaperIndex(settings).paper_states()
    done = sum(s.complete for s in partial.values())
    assert 0 < done < 400
    resumed = run_cli(str(papers), "--index-dir", str(index_dir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    out = last_json(resumed)
    assert out["papers_total"] == 400
    assert out["papers_unchanged"] >= done - 1  # a paper half-written at the kill is redone
    assert out["papers_new"] == 400 - out["papers_unchanged"]
    states = PaperIndex(settings).paper_states()
    assert len(states) == 400 and all(s.complete for s in states.values())


@pytest.mark.server
def test_chroma_server_path(tmp_path: Path, chroma_url: str) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", 5)
    env = {"ASSISTANT_CHROMA_URL": chroma_url, "ASSISTANT_COLLECTION": "server-test"}
    first = run_cli(str(papers), "--json", env=env)
    assert first.returncode == 0, first.stderr
    out = last_json(first)
    assert out["papers_new"] == 5 and out["index"] == chroma_url
    write_jsonl(
        papers, 5, change={1: "A rewritten abstract about diffusion models for audio. " * 3}
    )
    second = last_json(run_cli(str(papers), "--json", env=env))
    assert (second["papers_new"], second["papers_updated"], second["papers_unchanged"]) == (0, 1, 4)
    index = PaperIndex(Settings(chroma_url=chroma_url, collection="server-test"))
    assert index.info()["papers"] == 5

    with pytest.raises(InputError):
        ingest([tmp_path / "nothing.jsonl"], Settings(chroma_url=chroma_url))


def test_unreachable_chroma_server_is_a_clear_error(tmp_path: Path) -> None:
    from llm_server import free_port

    papers = write_jsonl(tmp_path / "p.jsonl", 1)
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_cli(str(papers), "--chroma-url", url)
    assert proc.returncode == 1
    assert url in proc.stderr and "chroma run" in proc.stderr and "Traceback" not in proc.stderr
