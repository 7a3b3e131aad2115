"""Check the eval data against the collections it is about.

Verifies, as evals/data/README.md describes them: sample_qa.jsonl (types, styles, splits by
paper as sample_paper_splits.jsonl assigns them, gold and near-miss titles, key facts verbatim
in their gold abstracts, verdicts, evidence sentences), scifact_yesno.jsonl (one question per
SciFact claim, its verdict from the claim's label), sentence_roles.jsonl (one known role per
sentence) and judge_pairs.jsonl; and the counts per type meet the minimums.

Run from anywhere:  python evals/data/check_data.py
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
if str(REPO) not in sys.path:  # run as a script: the package of this checkout
    sys.path.insert(0, str(REPO))

# A line this long is an abstract; every title in the sample is far shorter
# (longest title ~160 characters, shortest abstract ~470).
ABSTRACT_MIN_CHARS = 200
GLUED_PREFIX = "Subscribe"  # 004_*.txt glues the first title to this word

SPLITS = ("calibration", "validation")
QA_TYPES = {"fact", "yesno", "multi", "compare", "unanswerable"}
STYLES = {"named", "paraphrased"}
VERDICTS = {"yes", "no", "mixed"}
ROLES = {"background", "aim", "method", "result", "conclusion", "other"}
MIN_COUNTS = {"fact": 100, "yesno": 40, "multi": 20, "compare": 12, "unanswerable": 40}
SUPPORTED_KINDS = {"paraphrase", "correct_number", "summary"}
UNSUPPORTED_KINDS = {
    "wrong_number",
    "swapped_dataset",
    "overclaim",
    "other_paper",
    "unstated_detail",
    "contradiction",
}

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-case, LaTeX made text as ingest makes it, whitespace collapsed."""
    from assistant.latex import latex_to_text

    return _SPACE.sub(" ", latex_to_text(text)).strip().lower()


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


def _check_facts(rid: str, golds: list, facts: list, papers: dict, problems: list) -> None:
    """Every key fact in its gold abstract: all in the one gold for fact and yes/no
    questions, ``key_facts[i]`` in ``gold_titles[i]`` for multi and compare."""
    pairs = zip(golds, facts, strict=True) if len(golds) > 1 else ((golds[0], f) for f in facts)
    for title, fact in pairs:
        if normalize(fact) not in normalize(papers[title]):
            problems.append(f"{rid}: key fact {fact!r} not in the abstract of {title!r}")


_SHAPES = {  # type: (gold titles, key facts) allowed
    "fact": ((1, 1), (1, 3)),
    "yesno": ((1, 1), (0, 2)),
    "multi": ((2, 4), None),  # None: one key fact per gold title
    "compare": ((2, 2), None),
    "unanswerable": ((0, 0), (0, 0)),
}


def _check_shape(rid: str, kind: str, golds: list, facts: list, problems: list) -> bool:
    (g_lo, g_hi), fact_range = _SHAPES[kind]
    f_lo, f_hi = fact_range or (len(golds), len(golds))
    if not (g_lo <= len(golds) <= g_hi and f_lo <= len(facts) <= f_hi):
        problems.append(
            f"{rid}: a {kind} question has {len(golds)} gold titles and {len(facts)} key facts"
        )
        return False
    return True


def _check_fields(rid: str, kind: str, row: dict, papers: dict, problems: list) -> None:
    if kind in ("fact", "yesno", "compare") and row.get("style") not in STYLES:
        problems.append(f"{rid}: style must be one of {sorted(STYLES)}")
    if kind == "yesno" and row.get("verdict") not in VERDICTS:
        problems.append(f"{rid}: verdict must be one of {sorted(VERDICTS)}")
    if kind == "unanswerable":
        if not isinstance(row.get("near_miss"), bool):
            problems.append(f"{rid}: near_miss must be true or false")
        elif row["near_miss"] and row.get("near_title") not in papers:
            problems.append(f"{rid}: near_title not in the sample: {row.get('near_title')!r}")


def _check_evidence(rid: str, row: dict, roles: dict, problems: list) -> None:
    """Evidence pairs name a gold title and one of its numbered sentences."""
    for pair in row.get("evidence") or []:
        if not (isinstance(pair, list) and len(pair) == 2) or pair[0] not in row["gold_titles"]:
            problems.append(f"{rid}: evidence {pair!r} is not [gold title, sentence number]")
        elif pair[0] in roles and not 1 <= pair[1] <= len(roles[pair[0]]["sentences"]):
            problems.append(f"{rid}: evidence sentence {pair[1]} of {pair[0]!r} does not exist")


def check_qa(
    rows: list[dict], papers: dict[str, str], splits: dict[str, str], roles: dict, problems: list
) -> Counter:
    counts: Counter = Counter()
    for rid, row in _with_ids(rows, problems):
        kind = row.get("type")
        if kind not in QA_TYPES:
            problems.append(f"{rid}: unknown type {kind!r}")
            continue
        counts[kind] += 1
        if not str(row.get("question", "")).strip():
            problems.append(f"{rid}: empty question")
        golds, facts = row.get("gold_titles"), row.get("key_facts")
        if not isinstance(golds, list) or not isinstance(facts, list):
            problems.append(f"{rid}: gold_titles and key_facts must be lists")
            continue
        if not all(isinstance(f, str) and f.strip() for f in facts):
            problems.append(f"{rid}: key_facts must be non-empty strings")
            continue
        missing = [g for g in golds if g not in papers]
        for title in missing:
            problems.append(f"{rid}: gold title not in the sample: {title!r}")
        _check_fields(rid, kind, row, papers, problems)
        about = [*golds, *([row["near_title"]] if row.get("near_title") in papers else [])]
        wanted = {splits.get(t) for t in about} or {row.get("split")}
        if row.get("split") not in SPLITS or wanted != {row["split"]}:
            problems.append(f"{rid}: split {row.get('split')!r}, but its papers are in {wanted}")
        if _check_shape(rid, kind, golds, facts, problems) and not missing and facts:
            _check_facts(rid, golds, facts, papers, problems)
        _check_evidence(rid, row, roles, problems)
    for kind, minimum in MIN_COUNTS.items():
        if counts[kind] < minimum:
            problems.append(f"sample_qa: {counts[kind]} {kind} questions, need {minimum}")
    return counts


def check_scifact(rows: list[dict], claims: list[dict], roles: dict, problems: list) -> Counter:
    """One yes/no question per claim, about the claim's gold abstract, its verdict the
    claim's label (``true``: yes)."""
    counts: Counter = Counter()
    seen: set[int] = set()
    for rid, row in _with_ids(rows, problems):
        i = row.get("claim_index")
        if not isinstance(i, int) or not 0 <= i < len(claims) or i in seen:
            problems.append(f"{rid}: claim_index {i!r} is not a new claim line")
            continue
        seen.add(i)
        claim = claims[i]
        title = claim["gold_ctx"][0]["title"]
        if row.get("gold_titles") != [title]:
            problems.append(f"{rid}: gold_titles must be the claim's abstract, [{title!r}]")
        want = "yes" if claim.get("answer") == "true" else "no"
        if row.get("verdict") != want:
            problems.append(f"{rid}: verdict {row.get('verdict')!r}, the label says {want!r}")
        if row.get("type") != "yesno" or row.get("split") not in SPLITS:
            problems.append(f"{rid}: type must be yesno and split one of {SPLITS}")
        if not str(row.get("question", "")).strip().endswith("?"):
            problems.append(f"{rid}: the question must be a question")
        _check_evidence(rid, row, roles, problems)
        counts[f"{want}/{row.get('split')}"] += 1
    if len(seen) != len(claims):
        problems.append(f"scifact_yesno: {len(seen)} questions for {len(claims)} claims")
    return counts


def check_roles(rows: list[dict], known: dict[str, set[str]], problems: list) -> Counter:
    counts: Counter = Counter()
    for n, row in enumerate(rows, 1):
        where = f"sentence_roles:{n} ({str(row.get('title'))[:40]!r})"
        if row.get("title") not in known.get(row.get("source", ""), set()):
            problems.append(f"{where}: title not in the {row.get('source')!r} collection")
        sents, labels = row.get("sentences") or [], row.get("roles") or []
        if len(sents) != len(labels) or not sents:
            problems.append(f"{where}: {len(labels)} roles for {len(sents)} sentences")
        bad = sorted(set(labels) - ROLES)
        if bad:
            problems.append(f"{where}: unknown roles {bad}")
        if row.get("split") not in SPLITS:
            problems.append(f"{where}: split must be one of {SPLITS}")
        counts.update(labels)
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


def _roles_by_title(rows: list[dict]) -> dict[str, dict]:
    return {r["title"]: r for r in rows if isinstance(r, dict) and "title" in r}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-dir", type=Path, default=REPO / "data" / "sample")
    parser.add_argument("--data", type=Path, default=HERE, help="folder of the data files")
    args = parser.parse_args(argv)
    d = args.data

    problems: list[str] = []
    papers = load_abstracts(args.sample_dir)
    if not papers:
        problems.append(f"no papers parsed from {args.sample_dir}")
    split_rows = read_jsonl(d / "sample_paper_splits.jsonl", problems)
    splits = {r.get("title"): r.get("split") for r in split_rows}
    if set(splits) != set(papers) or set(splits.values()) - set(SPLITS):
        problems.append(
            "sample_paper_splits: one row per sample paper, split calibration or validation"
        )
    claims = read_jsonl(d / "scifact_claims.jsonl", problems)
    role_rows = read_jsonl(d / "sentence_roles.jsonl", problems)
    known = {"sample": set(papers), "scifact": {c["gold_ctx"][0]["title"] for c in claims}}
    role_counts = check_roles(role_rows, known, problems)
    sample_roles = _roles_by_title([r for r in role_rows if r.get("source") == "sample"])
    scifact_roles = _roles_by_title([r for r in role_rows if r.get("source") == "scifact"])
    qa_counts = check_qa(
        read_jsonl(d / "sample_qa.jsonl", problems), papers, splits, sample_roles, problems
    )
    sf_counts = check_scifact(
        read_jsonl(d / "scifact_yesno.jsonl", problems), claims, scifact_roles, problems
    )
    judge_counts = check_judge(read_jsonl(d / "judge_pairs.jsonl", problems), papers, problems)

    print(f"papers parsed: {len(papers)}")
    print(f"sample_qa: {dict(sorted(qa_counts.items()))}")
    print(f"scifact_yesno: {dict(sorted(sf_counts.items()))}")
    print(f"sentence_roles: {dict(sorted(role_counts.items()))}")
    print(f"judge_pairs: {dict(sorted(judge_counts.items()))}")
    for problem in problems:
        print(f"FAIL {problem}")
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
