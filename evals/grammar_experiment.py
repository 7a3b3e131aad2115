"""Measure constrained decoding before adopting it: a llama.cpp grammar that makes every
sentence end with a citation, against free generation, on the same questions and prompts.

    python -m evals.grammar_experiment [--split calibration] [--types fact] [--out DIR]

Both runs go through the real assistant (retrieval, passages, verification, composition);
only the local model's sampling differs. Per arm it reports the share of the model's own
sentences that carry a citation marker, key facts in the final answer, declined answerable
questions, quoted (extractive) answers, and generated tokens per second. It writes
``grammar-citations.json`` and ``.md`` into ``--out`` (default ``evals/results``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from assistant.answer.citations import parse_answer
from assistant.answer.engine import Assistant
from assistant.llm.local import LocalChatModel
from assistant.settings import Settings
from assistant.types import Answer

from . import metrics as M
from .runner import DATA_DIR, split_of

# One to four sentences, each ending with " [n]." (n a source number 1..5).
GRAMMAR = r"""
root ::= sentence (" " sentence){0,3}
sentence ::= word (" " word)* " [" [1-5] "]."
word ::= [^ \n\[\]]+
"""


class GrammarChatModel(LocalChatModel):
    """The local model, sampling under :data:`GRAMMAR`."""

    def _sampling_args(self) -> dict[str, Any]:
        from llama_cpp import LlamaGrammar

        return {"grammar": LlamaGrammar.from_string(GRAMMAR, verbose=False)}


def _cited_share(raw: str, n_sources: int) -> float:
    units = parse_answer(raw, list(range(1, n_sources + 1)))
    sentences = [s for u in units for s in u.sentences]
    return sum(1 for s in sentences if s.model_cites) / len(sentences) if sentences else 0.0


def _run_arm(assistant: Assistant, cases: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for case in cases:
        started = time.perf_counter()
        answer = assistant.ask(case["question"])
        assert isinstance(answer, Answer)
        gen = answer.timings.get("generation", 0.0)
        tokens = assistant.llm.count_tokens(answer.raw_text)
        rows.append(
            {
                "id": case["id"],
                "cited_share": _cited_share(answer.raw_text, len(answer.sources)),
                "key_fact_recall": M.key_fact_recall(answer.text, case["key_facts"]),
                "declined": not answer.answerable,
                "quoted": answer.quoted,
                "gen_tokens_per_s": tokens / gen if gen else None,
                "seconds": round(time.perf_counter() - started, 2),
                "raw": answer.raw_text,
            }
        )
    rates = [r["gen_tokens_per_s"] for r in rows if r["gen_tokens_per_s"]]
    return {
        "rows": rows,
        "cited_share": statistics.fmean(r["cited_share"] for r in rows),
        "key_fact_recall": statistics.fmean(r["key_fact_recall"] for r in rows),
        "declined": sum(r["declined"] for r in rows),
        "quoted": sum(r["quoted"] for r in rows),
        "gen_tokens_per_s_p50": statistics.median(rates) if rates else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.grammar_experiment")
    parser.add_argument("--split", default="calibration", choices=["calibration", "validation"])
    parser.add_argument("--types", default="fact", help="comma-separated question types")
    parser.add_argument("--index-dir", type=Path, required=True, help="the sample index")
    parser.add_argument("--out", type=Path, default=DATA_DIR.parent / "results")
    args = parser.parse_args(argv)
    types = set(args.types.split(","))
    rows = [json.loads(x) for x in (DATA_DIR / "sample_qa.jsonl").read_text().splitlines() if x]
    cases = [r for r in rows if r["type"] in types and split_of(r) == args.split]
    settings = Settings(index_dir=args.index_dir)
    free = Assistant(settings)
    free.warm_up()
    path = free.llm.model_path  # type: ignore[attr-defined]
    forced = Assistant(
        settings,
        llm=GrammarChatModel(path, n_ctx=settings.n_ctx, n_threads=settings.n_threads),
        embed_model=free.embedder,
    )
    forced.warm_up()
    result = {
        "questions": len(cases),
        "split": args.split,
        "types": sorted(types),
        "grammar": GRAMMAR.strip(),
        "free": _run_arm(free, cases),
        "grammar_forced": _run_arm(forced, cases),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "grammar-citations.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Constrained decoding: a citation after every sentence",
        "",
        f"{len(cases)} {'/'.join(sorted(types))} questions of the {args.split} split, base "
        "preset, same prompts; only sampling differs.",
        "",
        "| arm | model sentences with a citation | key facts | declined | quoted | gen tok/s p50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for arm in ("free", "grammar_forced"):
        r = result[arm]
        rate = r["gen_tokens_per_s_p50"]
        lines.append(
            f"| {arm} | {r['cited_share']:.2f} | {r['key_fact_recall']:.2f} | {r['declined']} | "
            f"{r['quoted']} | {rate:.1f} |"
            if rate
            else f"| {arm} | … |"
        )
    (args.out / "grammar-citations.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
