"""Check the hand-written eval data against the sample collection.

Verifies evals/data/sample_qa.jsonl and evals/data/judge_pairs.jsonl:
every gold title exists in data/sample/*.txt, every key fact occurs
(case-insensitively, after undoing LaTeX escapes such as ``\\%``) in its gold
abstract, and the counts per type meet the minimums in evals/data/README.md.

Run from anywhere:  python evals/data/check_sample_qa.py
Exit status 0 when everything passes, 1 otherwise (each problem is listed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# A line this long is an abstract; every title in the sample is far shorter
# (longest title ~160 characters, shortest abstract ~470).
ABSTRACT_MIN_CHARS = 200
GLUED_PREFIX = "Subscribe"  # 004_*.txt glues the first title to this word

SPLITS = ("calibration", "validation")
QA_TYPES = {"fact", "multi", "unanswerable"}
MIN_COUNTS = {"fact": 42, "multi": 10, "unanswerable": 10}
SUPPORTED_KINDS = {"paraphrase", "correct_number", "summary"}
UNSUPPORTED_KINDS = {
    "wrong_number",
    "swapped_dataset",
    "overclaim",
    "other_paper",
    "unstated_detail",
    "contradiction",
}

_LATEX_ESCAPE = re.compile(r"\\([%&_$#'])")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-case, undo LaTeX escapes (``\\%`` -> ``%``) and collapse whitespace."""
    return _SPACE.sub(" ", _LATEX_ESCAPE.sub(r"\1", text)).strip().lower()


def load_abstracts(sample_dir: Path) -> dict[str, str]:
    """Map title -> abstract for every page in ``sample_dir``.

    Minimal parse: an abstract is a long line; its title is the previous
    non-empty line (with the glued "Subscribe" prefix removed).
    """
    papers: dict[str, str] = {}
    for path in sorted(sample_dir.glob("*.txt")):
        previous: str | None = None
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line:
                continue
            if len(line) >= ABSTRACT_MIN_CHARS and previous is not None:
                title = previous
                if title.startswith(GLUED_PREFIX) and len(title) > len(GLUED_PREFIX):
                    title = title[len(GLUED_PREFIX) :]
                papers.setdefault(title, line)
            previous = line
    return papers


def read_jsonl(path: Path, problems: list[str]) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name}:{number}: not JSON ({exc})")
    return rows


def _with_ids(rows: list[dict], problems: list[str]) -> Iterator[tuple[str, dict]]:
    """(id, row) for each row; a repeated id is a problem."""
    seen: set[str] = set()
    for row in rows:
        rid = row.get("id", "?")
        if rid in seen:
            problems.append(f"{rid}: duplicate id")
        seen.add(rid)
        yield rid, row


def check_qa(rows: list[dict], papers: dict[str, str], problems: list[str]) -> Counter:
    counts: Counter = Counter()
    for rid, row in _with_ids(rows, problems):
        kind = row.get("type")
        if kind not in QA_TYPES:
            problems.append(f"{rid}: unknown type {kind!r}")
            continue
        counts[kind] += 1
        if not str(row.get("question", "")).strip():
            problems.append(f"{rid}: empty question")
        if row.get("split") not in SPLITS:
            problems.append(f"{rid}: split must be one of {SPLITS}, got {row.get('split')!r}")
        golds = row.get("gold_titles")
        facts = row.get("key_facts")
        if not isinstance(golds, list) or not isinstance(facts, list):
            problems.append(f"{rid}: gold_titles and key_facts must be lists")
            continue
        if not all(isinstance(f, str) and f.strip() for f in facts):
            problems.append(f"{rid}: key_facts must be non-empty strings")
            continue
        missing = [g for g in golds if g not in papers]
        for title in missing:
            problems.append(f"{rid}: gold title not in the sample: {title!r}")
        if kind == "unanswerable":
            if golds or facts:
                problems.append(f"{rid}: unanswerable needs empty gold_titles and key_facts")
        elif kind == "fact":
            if len(golds) != 1 or not 1 <= len(facts) <= 3:
                problems.append(f"{rid}: fact needs 1 gold title and 1-3 key facts")
            elif not missing:
                abstract = normalize(papers[golds[0]])
                for fact in facts:
                    if normalize(fact) not in abstract:
                        problems.append(f"{rid}: key fact not in gold abstract: {fact!r}")
        else:  # multi: key_facts[i] belongs to gold_titles[i]
            if not 2 <= len(golds) <= 4 or len(facts) != len(golds):
                problems.append(f"{rid}: multi needs 2-4 gold titles, one key fact each")
            elif not missing:
                for title, fact in zip(golds, facts, strict=True):
                    if normalize(fact) not in normalize(papers[title]):
                        problems.append(f"{rid}: key fact {fact!r} not in abstract of {title!r}")
    for kind, minimum in MIN_COUNTS.items():
        if counts[kind] < minimum:
            problems.append(f"sample_qa: {counts[kind]} {kind} questions, need {minimum}")
    return counts


def check_judge(rows: list[dict], papers: dict[str, str], problems: list[str]) -> Counter:
    counts: Counter = Counter()
    for rid, row in _with_ids(rows, problems):
        if row.get("abstract_title") not in papers:
            problems.append(f"{rid}: title not in the sample: {row.get('abstract_title')!r}")
        if not str(row.get("sentence", "")).strip():
            problems.append(f"{rid}: empty sentence")
        supported = row.get("supported")
        kind = row.get("kind")
        if not isinstance(supported, bool):
            problems.append(f"{rid}: supported must be true or false")
            continue
        allowed = SUPPORTED_KINDS if supported else UNSUPPORTED_KINDS
        if kind not in allowed:
            problems.append(f"{rid}: kind {kind!r} not allowed when supported={supported}")
        counts["supported" if supported else "unsupported"] += 1
    if abs(counts["supported"] - counts["unsupported"]) > 4:
        problems.append(f"judge_pairs: unbalanced {dict(counts)}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-dir", type=Path, default=REPO / "data" / "sample")
    parser.add_argument("--qa", type=Path, default=HERE / "sample_qa.jsonl")
    parser.add_argument("--judge", type=Path, default=HERE / "judge_pairs.jsonl")
    args = parser.parse_args(argv)

    problems: list[str] = []
    papers = load_abstracts(args.sample_dir)
    if not papers:
        problems.append(f"no papers parsed from {args.sample_dir}")
    qa_counts = check_qa(read_jsonl(args.qa, problems), papers, problems)
    judge_counts = check_judge(read_jsonl(args.judge, problems), papers, problems)

    print(f"papers parsed: {len(papers)}")
    print(f"sample_qa: {dict(sorted(qa_counts.items()))}")
    print(f"judge_pairs: {dict(sorted(judge_counts.items()))}")
    for problem in problems:
        print(f"FAIL {problem}")
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
