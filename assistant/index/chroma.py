"""The index, dense side: the Chroma collection of paper chunks (open, check, write, update, prune).

The index is the single source of truth for what has been ingested. Every chunk carries its
paper's id, a hash of the text it was embedded from and the number of chunks of its paper,
so a later run can tell which papers are current, changed, or half-written by a run that was
interrupted, without any side file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.errors import (
    AssistantError,
    ConfigError,
    IndexMismatchError,
    IndexMissingError,
    IndexUnavailableError,
)
from assistant.index.chroma_client import _remedy, _without_token, open_chroma
from assistant.index.chunking import SCHEMA_VERSION, Chunk
from assistant.settings import Settings

__all__ = ["PaperIndex", "open_chroma", "PaperState", "staging_name", "aside_name"]

log = logging.getLogger(__name__)

MAX_SOURCE_FILES = 2000
"""Source file names kept in the collection's metadata for the UI's list; more are not kept."""


def _beside(name: str, suffix: str) -> str:
    """``name`` + ``suffix``, kept within the 63 characters a collection name may have."""
    if len(name) + len(suffix) > 63:
        name = name[: 54 - len(suffix)] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name + suffix


def staging_name(name: str) -> str:
    """The collection a rebuild of ``name`` is written into before it is swapped in."""
    return _beside(name, ".rebuild")


def aside_name(name: str) -> str:
    """Where a swap puts the old collection ``name`` until the new one has its name."""
    return _beside(name, ".old")


def _is_not_found(exc: BaseException) -> bool:
    from chromadb.errors import NotFoundError

    return isinstance(exc, NotFoundError)


@dataclass
class PaperState:
    """What the index holds of one paper."""

    text_hash: str
    meta_hash: str
    n_chunks: int
    present: int
    sources: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.present == self.n_chunks


class _OneCollection:
    """The client of a collection handed to :class:`PaperIndex` alone (a llama-index
    ChromaVectorStore's): Chroma has no public way from a collection to its client, and the
    index asks a client only for its collection by name, or to delete it."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    def get_collection(self, name: str, **_: Any) -> Any:
        if name != self.collection.name:
            from chromadb.errors import NotFoundError

            raise NotFoundError(f"Collection [{name}] does not exist")
        return self.collection

    def delete_collection(self, name: str) -> None:
        raise ConfigError(
            f"cannot delete the collection {name!r}: it was handed in without its Chroma "
            "client; open the index from its settings to rebuild it"
        )


class PaperIndex:
    """A Chroma collection of paper chunks with the embedder and chunking it was built with."""

    def __init__(
        self, settings: Settings, *, client: Any | None = None, collection: Any | None = None
    ) -> None:
        self.settings = settings
        self._given = collection
        if client is None and collection is not None:
            client = _OneCollection(collection)
        self.client = client if client is not None else open_chroma(settings)
        self._collection: Any | None = None
        self.lexical: Any | None = None
        """A :class:`~assistant.index.lexical.TokenStore` kept in step with every write (ingest)."""

    # --- opening --------------------------------------------------------------------------
    def _fingerprint(self, embed_dim: int) -> dict[str, Any]:
        fp = dict(self.settings.index_fingerprint())
        fp["embed_dim"] = embed_dim
        return fp

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn a failure of the store into :class:`IndexUnavailableError` naming it."""
        try:
            yield
        except AssistantError:
            raise
        except Exception as exc:
            raise IndexUnavailableError(
                f"could not {action} the collection {self.settings.collection!r} at "
                f"{self.settings.describe_index()} ({_without_token(exc, self.settings)}); "
                f"{_remedy(self.settings)}"
            ) from exc

    def exists(self) -> bool:
        """Whether the collection exists. Only Chroma's "not found" means no: any other
        failure (server down, refused, damaged files) raises :class:`IndexUnavailableError`."""
        return (
            self._get_collection(self.settings.collection) is not None
            or self._recover_swap() is not None
        )

    def open(self, *, create_with_dim: int | None = None) -> Any:
        """The collection, checked against the settings.

        With ``create_with_dim`` a missing collection is created (ingest); without it a missing
        collection raises :class:`IndexMissingError` (querying).
        """
        if self._collection is not None:
            return self._collection
        name = self.settings.collection
        col = self._given or self._get_collection(name) or self._recover_swap()
        if col is None:
            if create_with_dim is None:
                raise IndexMissingError(
                    f"no index named {name!r} at {self.settings.describe_index()}: run "
                    "`python ingest.py` (the sample collection) or `python ingest.py PATH ...` "
                    "first, or point ASSISTANT_INDEX_DIR / --index-dir at an existing index"
                )
            meta = self._fingerprint(create_with_dim)
            meta.update(schema=SCHEMA_VERSION, created=time.time(), updated=time.time())
            with self._guard("create"):
                col = self.client.get_or_create_collection(
                    name,
                    metadata=meta,
                    configuration={"hnsw": {"space": "cosine"}},
                    embedding_function=None,
                )
        self._check(col.metadata or {}, create_with_dim)
        self._collection = col
        return col

    def _get_collection(self, name: str) -> Any | None:
        """The collection, or None when Chroma says it does not exist."""
        with self._guard("open"):
            try:
                return self.client.get_collection(name, embedding_function=None)
            except Exception as exc:
                if _is_not_found(exc):
                    return None
                raise

    def _check(self, meta: dict[str, Any], embed_dim: int | None) -> None:
        want = self.settings.index_fingerprint()
        diffs = [
            f"{k}: index has {meta.get(k)!r}, settings ask for {want[k]!r}"
            for k in want
            if k in meta and meta.get(k) != want[k]
        ]
        if embed_dim is not None and meta.get("embed_dim") not in (None, embed_dim):
            diffs.append(f"embed_dim: index has {meta.get('embed_dim')}, model gives {embed_dim}")
        if diffs:
            raise IndexMismatchError(
                f"the index {self.settings.collection!r} at {self.settings.describe_index()} was "
                f"built with other settings ({'; '.join(diffs)}). Mixing them would give wrong "
                "results. Rebuild it with `python ingest.py --rebuild [PATH ...]`, or use another "
                "--index-dir / ASSISTANT_COLLECTION for the new settings, or set the old ones back."
            )

    @property
    def collection(self) -> Any:
        return self.open()

    def info(self) -> dict[str, Any]:
        """Collection metadata plus counts (for the UI and the CLI)."""
        col = self.collection
        meta = dict(col.metadata or {})
        meta["chunks"] = self.chunk_count()
        meta["papers"] = self.paper_count()
        meta["location"] = self.settings.describe_index()
        meta["collection"] = self.settings.collection
        return meta

    # --- rebuilding beside the collection -----------------------------------------------------
    def recorded_sources(self) -> list[str] | None:
        """The source files this collection's papers were read from (their first chunks'
        ``sources``), or ``None`` when there is no collection. Read without checking the
        settings: a rebuild for another embedder reads them too."""
        col = self._get_collection(self.settings.collection) or self._recover_swap()
        if col is None:
            return None
        found: set[str] = set()
        offset = 0
        while True:
            with self._guard("read"):
                res = col.get(where={"chunk": 0}, include=["metadatas"], limit=5000, offset=offset)
            for meta in res["metadatas"]:
                found.update(json.loads(meta.get("sources") or "[]"))
            if len(res["ids"]) < 5000:
                return sorted(found)
            offset += 5000

    def staging(self) -> PaperIndex:
        """An empty index beside this one (collection ``<name>.rebuild``) to rebuild into; what
        an interrupted rebuild left there is deleted first. :meth:`replace_with` swaps it in."""
        stage = PaperIndex(
            self.settings.model_copy(update={"collection": staging_name(self.settings.collection)}),
            client=self.client,
        )
        stage._delete_named(stage.settings.collection)
        return stage

    def replace_with(self, stage: PaperIndex) -> None:
        """Make ``stage``'s collection this one: the old collection is renamed aside
        (``<name>.old``), the new one takes the name, then the old one is deleted. A crash
        between the two renames leaves the old collection aside, and the next :meth:`open`
        puts it back; the collection is never lost."""
        name = self.settings.collection
        aside = aside_name(name)
        old = self._get_collection(name)
        with self._guard("swap in the rebuilt"):
            if old is not None:
                self._delete_named(aside)
                old.modify(name=aside)
            stage.collection.modify(name=name)
        if old is not None:
            self._delete_named(aside)
        self._collection = None

    def _recover_swap(self) -> Any | None:
        """The collection put back from where an interrupted swap left it aside, or None."""
        if self._given is not None:
            return None
        aside = self._get_collection(aside_name(self.settings.collection))
        if aside is None:
            return None
        log.warning(
            "the collection %r was set aside by a rebuild that did not finish: putting it back",
            self.settings.collection,
        )
        with self._guard("restore"):
            aside.modify(name=self.settings.collection)
        return self._get_collection(self.settings.collection)

    def _delete_named(self, name: str) -> None:
        with self._guard(f"delete {name!r} from"):
            try:
                self.client.delete_collection(name)
            except Exception as exc:
                if not _is_not_found(exc):
                    raise

    def drop(self) -> None:
        """Delete the collection (``--rebuild``); a missing one is fine, any other failure
        raises :class:`IndexUnavailableError` (the old data would otherwise stay)."""
        if self.lexical is not None:
            self.lexical.reset()
        with self._guard("delete (nothing was rebuilt)"):
            try:
                self.client.delete_collection(self.settings.collection)
            except Exception as exc:
                if not _is_not_found(exc):
                    raise
        self._collection = None

    def touch(self, source_files: Iterable[str] | None = None, *, changed: bool = True) -> None:
        """Record that the collection changed (``changed``: its update stamp keys the BM25
        index), and the names of the source files read into it (``source_files``, added to
        those recorded: what the UI lists without reading every chunk)."""
        col = self.collection
        meta = {k: v for k, v in (col.metadata or {}).items() if not k.startswith("hnsw:")}
        if changed:
            meta["updated"] = time.time()
        if source_files is not None:
            names = sorted(set(self.source_files() or []) | set(source_files))
            meta["source_files"] = json.dumps(names) if len(names) <= MAX_SOURCE_FILES else ""
        with self._guard("update"):
            col.modify(metadata=meta)

    def source_files(self) -> list[str] | None:
        """The names of the files read into the collection, as :meth:`touch` recorded them;
        ``None`` when none were recorded (an index written before this, or too many files)."""
        raw = (self.collection.metadata or {}).get("source_files")
        try:
            names = json.loads(raw) if raw else None
        except ValueError:
            return None
        return [str(n) for n in names] if isinstance(names, list) else None

    # --- reading --------------------------------------------------------------------------
    def _get_all(
        self, include: list[str], where: dict | None = None, page: int = 5000
    ) -> Iterable[dict]:
        col = self.collection
        offset = 0
        while True:
            with self._guard("read"):
                res = col.get(include=include, where=where, limit=page, offset=offset)
            ids = res["ids"]
            if not ids:
                return
            yield res
            if len(ids) < page:
                return
            offset += page

    def paper_states(self) -> dict[str, PaperState]:
        """paper_id -> what the index holds of it (every paper; see :meth:`states_of`)."""
        states: dict[str, PaperState] = {}
        for res in self._get_all(["metadatas"]):
            _fold_states(states, res["metadatas"])
        return states

    def states_of(self, paper_ids: Sequence[str]) -> dict[str, PaperState]:
        """What the index holds of these papers (absent ones are left out)."""
        states: dict[str, PaperState] = {}
        ids = list(dict.fromkeys(paper_ids))
        for start in range(0, len(ids), 500):
            with self._guard("read"):
                res = self.collection.get(
                    where={"paper_id": {"$in": ids[start : start + 500]}}, include=["metadatas"]
                )
            _fold_states(states, res["metadatas"])
        return states

    def chunk_count(self) -> int:
        with self._guard("count the chunks of"):
            return int(self.collection.count())

    def paper_count(self) -> int:
        """How many papers the index holds (their first chunks, counted page by page)."""
        return sum(len(res["ids"]) for res in self._get_all([], where={"chunk": 0}))

    def iter_papers(self) -> Iterator[tuple[str, str, list[str]]]:
        """(paper id, title, source files) for every chunk, page by page: a paper with several
        chunks comes several times."""
        for res in self._get_all(["metadatas"]):
            for meta in res["metadatas"]:
                pid = meta.get("paper_id")
                if pid:
                    yield pid, str(meta.get("title", "")), json.loads(meta.get("sources") or "[]")

    def all_chunks(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Every chunk's id, text and metadata (for BM25)."""
        ids: list[str] = []
        docs: list[str] = []
        metas: list[dict[str, Any]] = []
        for res in self._get_all(["documents", "metadatas"]):
            ids += res["ids"]
            docs += res["documents"]
            metas += res["metadatas"]
        return ids, docs, metas

    def chunks_of(self, paper_ids: Sequence[str]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """paper_id -> [(chunk text, metadata)] in chunk order."""
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {pid: [] for pid in paper_ids}
        if not paper_ids:
            return out
        with self._guard("read"):
            res = self.collection.get(
                where={"paper_id": {"$in": list(paper_ids)}}, include=["documents", "metadatas"]
            )
        for doc, meta in zip(res["documents"], res["metadatas"]):
            out.setdefault(meta["paper_id"], []).append((doc, meta))
        for items in out.values():
            items.sort(key=lambda dm: int(dm[1].get("chunk", 0)))
        return out

    # --- writing --------------------------------------------------------------------------
    def delete_papers(self, paper_ids: Sequence[str]) -> None:
        for start in range(0, len(paper_ids), 500):
            batch = list(paper_ids[start : start + 500])
            if self.lexical is not None:  # before Chroma: the token store stays a subset
                self.lexical.forget(batch)
            with self._guard("delete from"):
                self.collection.delete(where={"paper_id": {"$in": batch}})

    def write_chunks(self, chunks: Sequence[Chunk], embeddings: Any) -> None:
        """Write the chunks of the papers in ``chunks``, replacing what the index held of them.

        Add, then delete: the new chunks are written first (upserted under their ids, in
        llama-index's node layout), then the old chunks the new version no longer has are
        deleted. An interrupt or a full disk in between leaves every paper readable, in its
        old or new version (a paper holding both reads as half-written, and the next run
        writes it again); no paper is ever missing.
        """
        from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

        nodes = []
        for chunk, vec in zip(chunks, embeddings):
            node = TextNode(
                id_=chunk.chunk_id,
                text=chunk.text,
                metadata=chunk.metadata,
                embedding=[float(x) for x in vec],
            )
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(
                node_id=chunk.metadata["paper_id"]
            )
            nodes.append(node)
        pids = sorted({c.metadata["paper_id"] for c in chunks})
        if self.lexical is not None:  # before Chroma: the token store stays a subset
            self.lexical.forget(pids)
        old = self._chunk_ids_of(pids)
        with self._guard("write to"):
            _upsert_nodes(self.collection, nodes)
        stale = sorted(old - {c.chunk_id for c in chunks})
        for start in range(0, len(stale), 5000):
            with self._guard("delete from"):
                self.collection.delete(ids=stale[start : start + 5000])
        if self.lexical is not None:
            self.lexical.record_chunks(chunks)

    def _chunk_ids_of(self, paper_ids: Sequence[str]) -> set[str]:
        ids: set[str] = set()
        for start in range(0, len(paper_ids), 500):
            with self._guard("read"):
                res = self.collection.get(
                    where={"paper_id": {"$in": list(paper_ids[start : start + 500])}}, include=[]
                )
            ids.update(res["ids"])
        return ids

    def update_metadata(self, updates: dict[str, dict[str, Any]]) -> None:
        """Set metadata fields on every chunk of the given papers, without re-embedding."""
        col = self.collection
        pids = list(updates)
        for start in range(0, len(pids), 500):
            batch = pids[start : start + 500]
            with self._guard("read"):
                res = col.get(where={"paper_id": {"$in": batch}}, include=["metadatas"])
            if not res["ids"]:
                continue
            metas = [_with_metadata(meta, updates[meta["paper_id"]]) for meta in res["metadatas"]]
            with self._guard("update"):
                col.update(ids=res["ids"], metadatas=metas)


def _upsert_nodes(collection: Any, nodes: Sequence[Any]) -> None:
    """What llama-index's ``ChromaVectorStore.add`` writes (the same metadata, documents and
    ids), as an upsert: an id that exists is overwritten in place instead of being skipped."""
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    for start in range(0, len(nodes), 5000):
        part = nodes[start : start + 5000]
        metas = []
        for node in part:
            meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=True)
            metas.append({k: "" if v is None else v for k, v in meta.items()})
        collection.upsert(
            ids=[n.node_id for n in part],
            embeddings=[n.get_embedding() for n in part],
            metadatas=metas,
            documents=[n.get_content(metadata_mode=MetadataMode.NONE) for n in part],
        )


def _fold_states(states: dict[str, PaperState], metas: Iterable[dict[str, Any]]) -> None:
    """Add chunks' metadata to per-paper states."""
    for meta in metas:
        pid = meta.get("paper_id")
        if not pid:
            continue
        st = states.get(pid)
        if st is None or st.text_hash != meta.get("text_hash"):
            if st is not None:  # two versions half-written: treat as incomplete
                st.present = -1
                continue
            st = PaperState(
                text_hash=str(meta.get("text_hash", "")),
                meta_hash=str(meta.get("meta_hash", "")),
                n_chunks=int(meta.get("n_chunks", 1)),
                present=0,
                sources=json.loads(meta.get("sources") or "[]"),
            )
            states[pid] = st
        if st.present >= 0:
            st.present += 1


def _with_metadata(meta: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A chunk's stored metadata with ``changes`` applied.

    A chunk written through llama-index (``write_chunks``) also holds the node it serialised
    (``_node_content``): llama-index reads the node back, takes the changes and writes it
    again, as its ChromaVectorStore does on add, so llama-index readers see them too.
    """
    if "_node_content" not in meta:
        return {**meta, **changes}
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

    node = metadata_dict_to_node(meta)
    node.metadata.update(changes)
    new = node_to_metadata_dict(node, remove_text=True, flat_metadata=True)
    return {k: "" if v is None else v for k, v in new.items()}  # as ChromaVectorStore.add
