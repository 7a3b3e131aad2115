"""Synthetic arXiv-style paper records for benchmarks (deterministic for a given seed).

Abstracts recombine sentences of the real sample abstracts (``data/sample``): an opening
sentence, middle sentences and a closing sentence, each drawn from the same position in real
abstracts, until the length of a randomly drawn real abstract is reached. So the length
(~300 tiktoken tokens median, like the sample), the vocabulary and the sentence structure are
those of real ML abstracts, while every record is a new text. Titles come from templates over
ML terms and are unique; ids are unique arXiv-style ids.

    from benchmarks.synth import synth_records, write_jsonl
    records = synth_records(1000, seed=0)       # list of dicts
    path = write_jsonl("papers.jsonl", 20000)   # the arXiv metadata snapshot schema

Also a command: ``python benchmarks/synth.py N OUT.jsonl [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `assistant` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["synth_records", "write_jsonl", "chunk_texts", "write_chunk_texts", "SentencePools"]

_METHODS = """Sparse Mixture-of-Experts; Contrastive Pretraining; Diffusion Transformers;
Low-Rank Adaptation; Retrieval-Augmented Generation; Graph Neural Networks; State Space Models;
Vision-Language Models; Reinforcement Learning from Human Feedback; Direct Preference
Optimization; Knowledge Distillation; Quantization-Aware Training; Linear Attention;
Masked Autoencoders; Neural Radiance Fields; Flow Matching; Chain-of-Thought Prompting;
In-Context Learning; Speculative Decoding; Federated Learning; Test-Time Adaptation;
Self-Supervised Learning; Normalizing Flows; Energy-Based Models; Gaussian Processes;
Bayesian Neural Networks; Neural Operators; Mixture of Depths; Token Merging;
Parameter-Efficient Fine-Tuning; Curriculum Learning; Model Merging; Weight Averaging;
Sharpness-Aware Minimization; Implicit Neural Representations; Tree Search;
Multi-Agent Reinforcement Learning; Offline Reinforcement Learning; Score-Based Models;
Conformal Prediction""".replace("\n", " ").split("; ")
_ADJECTIVES = """Scalable; Efficient; Robust; Adaptive; Provable; Hierarchical; Sparse;
Memory-Efficient; Calibrated; Interpretable; Compositional; Unified; Lightweight; Causal;
Multimodal; Long-Context; Data-Efficient; Certified; Structured; Continual; Decentralized;
Differentiable; Equivariant; Generalizable; Faithful""".replace("\n", " ").split("; ")
_TASKS = """Long-Document Summarization; Protein Structure Prediction; Code Generation;
Mathematical Reasoning; Open-Domain Question Answering; Image Segmentation; Time Series
Forecasting; Speech Recognition; Molecular Property Prediction; Autonomous Driving; Video
Understanding; Text-to-Image Synthesis; Machine Translation; Recommendation; Anomaly
Detection; Robotic Manipulation; Medical Image Analysis; Weather Forecasting; Tabular Data;
Retrieval; Dialogue Systems; 3D Reconstruction; Object Detection; Program Synthesis; Theorem
Proving; Named Entity Recognition; Climate Modeling; Graph Classification; Visual Question
Answering; Low-Resource Languages""".replace("\n", " ").split("; ")
_NOUNS = """Learning; Alignment; Pretraining; Fine-Tuning; Inference; Representations;
Optimization; Evaluation; Generalization; Reasoning; Planning; Scaling Laws; Benchmarks;
Uncertainty Estimation; Distillation; Attention""".replace("\n", " ").split("; ")
_TEMPLATES = (
    "{adj} {method} for {task}",
    "{method} Meets {task}: {adj} {noun} at Scale",
    "Towards {adj} {noun} with {method}",
    "On the {noun} of {method} in {task}",
    "{adj} {noun} for {task} via {method}",
    "Rethinking {method} for {adj} {task}",
    "When Does {method} Help {task}? A Study of {adj} {noun}",
    "{method} Is a {adj} Learner for {task}",
    "Beyond {method}: {adj} {noun} for {task}",
    "{adj} and {adj2} {noun} through {method}",
)
_GIVEN = """Wei Ana Luca Priya Jonas Mei Omar Sara Diego Yuki Lena Arjun Chloe Mateo Nadia
Felix Hana Ivan Zoe Tariq Elena Kenji Amara Noah Ines Ravi Julia Samir Lin Oskar""".split()
_FAMILY = """Zhang Garcia Rossi Patel Schmidt Wang Haddad Kowalski Silva Tanaka Novak Gupta
Martin Fernandez Okafor Weber Kim Petrov Dubois Khan Moreau Sato Mensah Costa Sharma Berg Chen
Lindqvist Nakamura Ahmed""".split()
_CATEGORIES = ("cs.LG", "cs.CL", "cs.CV", "cs.AI", "stat.ML", "cs.IR", "cs.RO", "cs.NE")


@dataclass(frozen=True)
class SentencePools:
    """Sentences of the real sample abstracts by position, and the abstracts' lengths (chars)."""

    openers: tuple[str, ...]
    middles: tuple[str, ...]
    closers: tuple[str, ...]
    lengths: tuple[int, ...]


@lru_cache(maxsize=1)
def sentence_pools() -> SentencePools:
    """Split every sample abstract into sentences (read once per process)."""
    from assistant.ingest.readers import default_sample_paths, read_paths
    from assistant.text import split_sentences

    openers: list[str] = []
    middles: list[str] = []
    closers: list[str] = []
    lengths: list[int] = []  # characters
    for paper in read_paths(default_sample_paths()).papers:
        sents = split_sentences(paper.abstract)
        if len(sents) < 3:
            continue
        lengths.append(len(paper.abstract))
        openers.append(sents[0])
        middles.extend(sents[1:-1])
        closers.append(sents[-1])
    return SentencePools(tuple(openers), tuple(middles), tuple(closers), tuple(lengths))


def _title(rng: random.Random) -> str:
    adj, adj2 = rng.sample(_ADJECTIVES, 2)
    return rng.choice(_TEMPLATES).format(
        adj=adj,
        adj2=adj2,
        method=rng.choice(_METHODS),
        task=rng.choice(_TASKS),
        noun=rng.choice(_NOUNS),
    )


def _abstract(rng: random.Random, pools: SentencePools) -> str:
    target = rng.choice(pools.lengths)
    first, last = rng.choice(pools.openers), rng.choice(pools.closers)
    sents = [first]
    size = len(first) + len(last)
    while True:
        middle = rng.choice(pools.middles)
        if size + len(middle) // 2 > target and len(sents) > 1:  # stop nearest the target
            break
        sents.append(middle)
        size += len(middle) + 1
    sents.append(last)
    return " ".join(sents)


def _authors(rng: random.Random) -> str:
    k = rng.randint(1, 7)
    return ", ".join(f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}" for _ in range(k))


def synth_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` arXiv-metadata-style records (unique ``id`` and ``title``), the same for a seed."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    pools = sentence_pools()
    titles: set[str] = set()
    records: list[dict[str, str]] = []
    for i in range(n):
        title = _title(rng)
        tries = 0
        while title.casefold() in titles:
            tries += 1
            title = _title(rng) if tries < 20 else f"{_title(rng)} ({i})"
        titles.add(title.casefold())
        month = 1 + (i // 100_000) % 12
        year = 24 + i // 1_200_000
        cats = rng.sample(_CATEGORIES, rng.randint(1, 3))
        records.append(
            {
                "id": f"{year:02d}{month:02d}.{i % 100_000:05d}",
                "title": title,
                "abstract": _abstract(rng, pools),
                "authors": _authors(rng),
                "categories": " ".join(cats),
                "update_date": f"20{year:02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            }
        )
    return records


def write_jsonl(path: str | Path, n: int, seed: int = 0) -> Path:
    """Write ``synth_records(n, seed)`` as JSON lines to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for rec in synth_records(n, seed):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def chunk_texts(n: int, seed: int = 0) -> list[str]:
    """The texts the index embeds for ``n`` synthetic papers (title, newline, abstract)."""
    return [f"{r['title']}\n{r['abstract']}" for r in synth_records(n, seed)]


def write_chunk_texts(path: str | Path, n: int, seed: int = 0) -> Path:
    """``chunk_texts(n, seed)`` as JSON lines of ``{"id", "text"}``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for rec in synth_records(n, seed):
            text = f"{rec['title']}\n{rec['abstract']}"
            f.write(json.dumps({"id": rec["id"], "text": text}, ensure_ascii=False) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write N synthetic arXiv-style JSONL records.")
    parser.add_argument("n", type=int, help="number of records")
    parser.add_argument("out", type=Path, help="output .jsonl file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_jsonl(args.out, args.n, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
