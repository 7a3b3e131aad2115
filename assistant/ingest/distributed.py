"""Reading and the index on a Ray cluster: ``python ingest.py PATH --ray [ADDRESS]``.

What it promises:

- The same result as the single-process ingest (:func:`assistant.ingest.pipeline.ingest`): the same
  papers, chunk ids, metadata, deduplication, and the same incremental, ``--prune``,
  ``--rebuild`` and resume rules, because it *is* that code. The driver runs
  :func:`~assistant.ingest.pipeline.ingest_papers` and hands it a writer that does the embedding on
  Ray; the plan (what is new, changed, unchanged, gone) and the bookkeeping stay in one place.
- The files are read as a Ray Data dataset (one read task per file, with the project's
  readers), and merged on the driver in the order the files were given, so a paper listed in
  two files is one paper whichever task read it.
- Embedding runs in Ray Data actors (``map_batches`` with a class), one model per actor,
  ``ray_workers`` of them. Each actor writes whole-paper batches (``ray_batch_papers``) to the
  Chroma server of ``ASSISTANT_CHROMA_URL`` with :meth:`PaperIndex.write_chunks`, so a worker
  that dies part-way leaves only whole papers, and the next run embeds what is missing.
- The BM25 token store lives on the driver: actors send each written chunk's tokens back, and
  the driver records them (papers about to be rewritten are forgotten first, so an interrupted
  run leaves the store a subset of the collection, which the next run completes).
- Without an address a local Ray instance is started on 127.0.0.1 (and stopped at the end).
  The package must be importable on every node (``pip install .[ray]`` there); for a local
  instance the driver's checkout is put on the workers' ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError, InputError
from assistant.ingest.dedup import Collector
from assistant.ingest.pipeline import IngestReport, ProgressFactory, ingest_papers
from assistant.ingest.readers import EXTENSIONS, ReadResult, default_sample_paths, read_paths
from assistant.settings import Settings
from assistant.types import Paper, Skipped

__all__ = ["ray_ingest", "read_with_ray"]

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The checkout that holds the assistant package (its parent folder), for local workers."""


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray: install the optional extra with `pip install .[ray]` (or "
            "`pip install ray[data]==2.60.0`), or run ingest without --ray"
        ) from None
    return ray


def _start_ray(address: str | None) -> tuple[Any, bool]:
    """Connect to ``address``, or start a local instance on 127.0.0.1; (ray, started here)."""
    ray = _require_ray()
    if ray.is_initialized():
        return ray, False
    runtime_env = {"env_vars": {"PYTHONPATH": str(PACKAGE_ROOT), "TOKENIZERS_PARALLELISM": "false"}}
    kwargs: dict[str, Any] = {
        "runtime_env": runtime_env,
        "logging_level": logging.WARNING,
        "configure_logging": False,
    }
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(
                address="local",
                _node_ip_address="127.0.0.1",
                include_dashboard=False,
                **kwargs,
            )
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError...
        where = address or "a local instance on 127.0.0.1"
        raise ConfigError(
            f"cannot start or reach Ray at {where} ({exc}); start a cluster with `ray start "
            "--head --node-ip-address 127.0.0.1 --port 6379` and pass --ray 127.0.0.1:6379"
        ) from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    return ray, True


# --- reading ----------------------------------------------------------------------------------
def _expand(paths: Sequence[str | Path]) -> list[str]:
    """Files to read, in the order given (folders walked like the single-process reader)."""
    out: list[str] = []
    for given in paths:
        path = Path(given).expanduser().resolve()
        files = [path]
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in EXTENSIONS
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            files = found or [path]  # an empty folder: its read task reports it
        out.extend(str(f) for f in files if str(f) not in out)
    return out


def _read_one(row: dict[str, Any]) -> dict[str, Any]:
    """A Ray Data task: one file through the project's readers, as JSON."""
    res = read_paths([row["path"]], row["fmt"] or None)
    return {
        "order": row["order"],
        "result": json.dumps(
            {
                "papers": [asdict(p) for p in res.papers],
                "skipped": [s.to_dict() for s in res.skipped],
                "files_read": res.files_read,
                "records_seen": res.records_seen,
                "duplicates": res.duplicates,
                "complete_files": res.complete_files,
                "unprunable": res.unprunable,
                "protected": sorted(res.protected),
            }
        ),
    }


def read_with_ray(paths: Sequence[str | Path], fmt: str | None = None) -> ReadResult:
    """Read files as a Ray Data dataset (one task per file), merged like :func:`read_paths`."""
    ray = _require_ray()
    files = _expand(paths)
    items = [{"order": i, "path": f, "fmt": fmt or ""} for i, f in enumerate(files)]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    rows = sorted(ds.map(_read_one).take_all(), key=lambda r: r["order"])
    parts = [json.loads(r["result"]) for r in rows]
    # Merge in file order through the same deduplication as the single-process reader.
    merged = ReadResult()
    collector = Collector(merged.papers)
    for part in parts:
        for d in part["papers"]:
            collector.add(Paper(**d))
        merged.skipped += [Skipped(**s) for s in part["skipped"]]
        merged.files_read += part["files_read"]
        merged.complete_files += part["complete_files"]
        merged.unprunable.update(part["unprunable"])
        merged.protected.update(part["protected"])
    merged.duplicates += sum(p["duplicates"] for p in parts) + collector.duplicates
    merged.records_seen = sum(p["records_seen"] for p in parts)
    log.info("read %s with Ray", merged.summary())
    return merged


# --- embedding and writing ----------------------------------------------------------------------
class _EmbedWriter:
    """A Ray Data actor: one embedding model, one Chroma client; writes whole-paper batches."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from assistant.index.chroma import PaperIndex
        from assistant.index.embeddings import load_embedder

        self.settings = Settings(**settings)
        self.embedder = load_embedder(self.settings)
        self.index = PaperIndex(self.settings)
        self.index.open()  # created by the driver; checked against the settings here

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from assistant.index.chunking import chunk_paper
        from assistant.index.lexical import tokenize

        out = []
        for payload in batch["papers"]:
            work = json.loads(str(payload))
            chunks = [c for d, srcs in work for c in chunk_paper(Paper(**d), self.settings, srcs)]
            vectors = self.embedder.embed(
                [c.embed_text for c in chunks], batch_size=self.settings.embed_batch_size
            )
            self.index.write_chunks(chunks, vectors)
            tokens = [(c.chunk_id, c.metadata["paper_id"], tokenize(c.embed_text)) for c in chunks]
            out.append(json.dumps({"papers": len(work), "chunks": len(chunks), "tokens": tokens}))
        return {"written": out}


def _worker_settings(settings: Settings) -> dict[str, Any]:
    """What the actors need to rebuild the settings (no API key travels to the cluster)."""
    return settings.model_dump(mode="json", exclude={"openai_api_key"})


def _workers(ray: Any, settings: Settings) -> int:
    if settings.ray_workers:
        return settings.ray_workers
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1, int(cpus // settings.ray_cpus_per_worker))


def _ray_writer(ray: Any, settings: Settings, index: Any) -> Any:
    def write(work: list[tuple[Paper, list[str]]], progress: ProgressFactory | None) -> int:
        store = index.lexical
        if store is not None:  # before any worker rewrites them: the store stays a subset
            store.forget([p.paper_id for p, _ in work])
        size = settings.ray_batch_papers
        items = [
            {"papers": json.dumps([[asdict(p), srcs] for p, srcs in work[i : i + size]])}
            for i in range(0, len(work), size)
        ]
        n = min(_workers(ray, settings), len(items))
        log.info("embedding %d papers in %d batches on %d Ray actors", len(work), len(items), n)
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _EmbedWriter,
            batch_size=1,
            concurrency=n,
            num_cpus=settings.ray_cpus_per_worker,
            fn_constructor_kwargs={"settings": _worker_settings(settings)},
        )
        bar = progress(len(work), "embedding papers (Ray)") if progress else None
        written = 0
        try:
            for row in ds.iter_rows():
                res = json.loads(row["written"])
                if store is not None:
                    store.record((cid, pid, toks) for cid, pid, toks in res["tokens"])
                written += res["chunks"]
                if bar is not None:
                    bar.update(res["papers"])
        finally:
            if bar is not None:
                bar.close()
        return written

    return write


def ray_ingest(
    paths: Sequence[str | Path] | None,
    settings: Settings,
    *,
    address: str | None = None,
    fmt: str | None = None,
    prune: bool = False,
    rebuild: bool = False,
    progress: ProgressFactory | None = None,
) -> IngestReport:
    """:func:`assistant.ingest.pipeline.ingest` with reading and embedding spread over Ray."""
    if not settings.chroma_url:
        raise ConfigError(
            "--ray writes to a Chroma server: set ASSISTANT_CHROMA_URL (or --chroma-url) to one "
            "(`chroma run --path DIR --host 0.0.0.0 --port 8000`); an index on disk can only be "
            "written by one process"
        )
    started = time.perf_counter()
    ray, started_here = _start_ray(address)
    try:
        read = read_with_ray(list(paths) if paths else default_sample_paths(), fmt)
        if not read.papers:
            problems = "; ".join(str(s) for s in read.skipped[:10]) or "no input files found"
            raise InputError(f"no paper could be read ({problems})")
        from assistant.index.chroma import PaperIndex

        index = PaperIndex(settings)
        report = ingest_papers(
            read,
            settings,
            prune=prune,
            rebuild=rebuild,
            index=index,
            progress=progress,
            writer=_ray_writer(ray, settings, index),
        )
    finally:
        if started_here:  # stops a local instance; only disconnects from a cluster
            ray.shutdown()
    report.seconds = round(time.perf_counter() - started, 3)
    return report
