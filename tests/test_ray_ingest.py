"""Ray ingest (``ingest.py --ray``) on a real local Ray and a real ``chroma run``: the same
papers, chunk ids, metadata and (within float tolerance) vectors as the single-process ingest,
and a worker killed mid-run loses nothing once the run is repeated."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from llm_server import free_port
from test_ingest import last_json, run_cli, write_jsonl

from assistant.index.chroma import PaperIndex
from assistant.index.lexical import LexicalIndex
from assistant.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.server]
pytest.importorskip("ray", reason="the Ray extra is not installed (pip install .[ray])")

# Ray 2.60 turns token authentication on for new clusters: the head, the workers and every
# driver share one token (as a real cluster should), given here by the environment.
RAY_ENV = {
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(16),
    "RAY_USAGE_STATS_ENABLED": "0",
}


@contextlib.contextmanager
def ray_head() -> Iterator[str]:
    """``ray start --head --block`` on 127.0.0.1 with 2 CPUs; yields its address."""
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    exe = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    cmd = [exe, "start", "--head", "--block", "--port", str(port)]
    cmd += ["--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false"]
    cmd += ["--disable-usage-stats", "--temp-dir", tmp]
    log = Path(tmp) / "head.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **RAY_ENV},
            start_new_session=True,  # its own process group: stopped as one below
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "ray head did not start"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)  # what `ray start --block` stops on
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of this head still running
        shutil.rmtree(tmp, ignore_errors=True)


def env_for(chroma_url: str, collection: str, tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "ASSISTANT_CHROMA_URL": chroma_url,
        "ASSISTANT_COLLECTION": collection,
        "ASSISTANT_LEXICAL_DIR": str(tmp / "lexical"),
        **RAY_ENV,
        **extra,
    }


def dump(chroma_url: str, collection: str) -> dict[str, tuple[str, dict, np.ndarray]]:
    col = PaperIndex(Settings(chroma_url=chroma_url, collection=collection)).collection
    res = col.get(include=["documents", "metadatas", "embeddings"])
    return {
        cid: (doc, meta, np.asarray(emb))
        for cid, doc, meta, emb in zip(
            res["ids"], res["documents"], res["metadatas"], res["embeddings"]
        )
    }


def assert_same_index(chroma_url: str, a: str, b: str, tmp: Path) -> None:
    da, db = dump(chroma_url, a), dump(chroma_url, b)
    assert da.keys() == db.keys() and da
    for cid in da:
        assert da[cid][0] == db[cid][0], cid
        assert da[cid][1] == db[cid][1], cid
        np.testing.assert_allclose(da[cid][2], db[cid][2], atol=1e-5, err_msg=cid)
    for name in (a, b):  # and each has its lexical index, in step with its collection
        s = Settings(chroma_url=chroma_url, collection=name, lexical_dir=tmp / "lexical")
        lexical = LexicalIndex.for_settings(s)
        assert lexical.is_current(PaperIndex(s)), name
        assert lexical.store.count() == len(da)


def test_local_ray_ingest_equals_single_process(tmp_path: Path, chroma_url: str) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", 12)
    b = write_jsonl(tmp_path / "b.jsonl", 8, start=8)  # 4 papers in both files: merged
    single = run_cli(
        str(a), str(b), "--json", "--quiet", env=env_for(chroma_url, "single", tmp_path)
    )
    assert single.returncode == 0, single.stderr
    env = env_for(chroma_url, "ray-local", tmp_path, ASSISTANT_RAY_BATCH_PAPERS="3")
    proc = run_cli(str(a), str(b), "--ray", "--json", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep, ref = last_json(proc), last_json(single)
    for key in ("papers_total", "papers_new", "duplicates", "chunks_total", "chunks_written"):
        assert rep[key] == ref[key], key
    assert rep["papers_total"] == 16 and rep["duplicates"] == 4
    assert_same_index(chroma_url, "single", "ray-local", tmp_path)
    # Nothing changed: a second Ray run embeds nothing.
    again = run_cli(str(a), str(b), "--ray", "--json", "--quiet", env=env)
    assert again.returncode == 0 and last_json(again)["chunks_written"] == 0


def _writer_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if b"_EmbedWriter" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
    return pids


def test_killed_worker_loses_nothing_after_a_rerun(tmp_path: Path, chroma_url: str) -> None:
    papers = write_jsonl(tmp_path / "p.jsonl", 64)
    single = run_cli(str(papers), "--quiet", env=env_for(chroma_url, "kill-ref", tmp_path))
    assert single.returncode == 0, single.stderr
    env = env_for(chroma_url, "kill-ray", tmp_path, ASSISTANT_RAY_BATCH_PAPERS="2")
    with ray_head() as address:
        cmd = [sys.executable, "ingest.py", str(papers), "--ray", address, "--quiet", "--json"]
        run = subprocess.Popen(
            cmd,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        col = None
        killed = None
        deadline = time.monotonic() + 400
        while killed is None and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
            with contextlib.suppress(Exception):
                col = col or PaperIndex(Settings(chroma_url=chroma_url, collection="kill-ray"))
                written = col.collection.count()
                pids = _writer_pids()
                if 0 < written < 64 and pids:
                    os.kill(pids[0], signal.SIGKILL)  # one embedding actor dies mid-run
                    killed = (pids[0], written)
        out, err = run.communicate(timeout=600)
        assert killed is not None, f"no worker was seen mid-run: {err[-3000:]}"
        # Ray may retry the batch on a new actor, or the run may fail; either way a re-run
        # completes the collection and embeds only what is missing.
        again = run_cli(str(papers), "--ray", address, "--json", "--quiet", env=env)
        assert again.returncode == 0, again.stderr[-3000:]
    assert last_json(again)["papers_total"] == 64
    assert_same_index(chroma_url, "kill-ref", "kill-ray", tmp_path)
