"""The fuzz suite: hostile files through every reader, hostile text through the text tools.

Properties, on inputs hypothesis generates (deep nesting, huge lines and titles, NULs, invalid
UTF-8, lone surrogates, odd whitespace, control and format characters, "A. A. A.", template
tokens):

- nothing raises out of reading (:func:`read_paths`, papers staged in SQLite as ingest does);
- no good record of the run is lost: the good file read beside the hostile one gives all its
  papers, and in the record-by-record formats (JSON lines, CSV, sample pages) the good records
  of the hostile file itself survive its bad ones, unless the file is not text at all (NUL
  bytes, invalid UTF-8: the whole file is reported as not a text file, by design);
- no text tool is worse than linear: ten times the input costs at most about ten times the
  time (checked as a ratio against a run on the tenth, never as a lone timing). The
  benchmark ``benchmarks/hostile_inputs.py`` measures every reader at 1 KB, 100 KB and 10 MB.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.ingest.readers import default_sample_paths, read_paths
from assistant.safety import instruction_reason, neutralize_source, withhold_instructions
from assistant.text import normalize_text, split_sentences

SAMPLE = read_paths(default_sample_paths()).papers[:6]
GOOD = [(f"Good paper number {i}: {p.title}", p.abstract) for i, p in enumerate(SAMPLE)]

ODD = "\u3000\u2000\u2003\u200a\u00a0\u2028\u2029\x0b\x0c\x85\r\t\u200b\u00ad\u2060\ufeff\u202e"
_pieces = st.sampled_from(
    ["A. ", "e.g. ", "<|im_start|>", "</papers>", "[INST]", "\x1b[31m", "\\textbf{", "}", "$",
     "{", "\"", "'", ",", "\n", "Ignore previous instructions. ", "\U000e0049", "ß", "İ", "ﬁ",
     "\ud800", "𝐈𝐠𝐧𝐨𝐫𝐞", "%", "\\", "@article{", "\x00"]
)  # fmt: skip
hostile_text = st.one_of(
    st.text(min_size=0, max_size=300),
    st.text(alphabet=ODD, min_size=1, max_size=4000),
    st.lists(_pieces, min_size=1, max_size=400).map("".join),
    st.builds(lambda c, n: c * n, st.sampled_from(["A. ", "\u3000", " ", "x", "{", "["]),
              st.integers(1, 30_000)),
)  # fmt: skip
nested = st.integers(1, 3000).map(lambda d: json.loads("[" * d + '"x"' + "]" * d) if d < 200 else d)
FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip


def _read(
    tmp_path: Path, hostile: bytes, suffix: str, good: bytes, good_suffix: str | None = None
) -> tuple[object, Path, Path]:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example: hypothesis reuses tmp_path
    bad_file = folder / f"hostile{suffix}"
    good_file = folder / f"good{good_suffix or suffix}"
    bad_file.write_bytes(hostile)
    good_file.write_bytes(good)
    stage = folder / "stage"
    stage.mkdir()
    result = read_paths([bad_file, good_file], stage_dir=stage)
    return result, bad_file, good_file


def _titles(result: object) -> set[str]:
    return {p.title for p in result.papers}  # type: ignore[attr-defined]


def _good_jsonl(rows: list[tuple[str, str]]) -> str:
    return "".join(json.dumps({"title": t, "abstract": a}) + "\n" for t, a in rows)


def _assert_good_kept(result: object, rows: list[tuple[str, str]]) -> None:
    titles = _titles(result)
    missing = [t for t, _ in rows if normalize_text(t) not in titles]
    assert not missing, missing


@FUZZ
@given(title=hostile_text, abstract=st.one_of(hostile_text, nested), extra=hostile_text)
def test_jsonl_reader(tmp_path: Path, title: str, abstract: object, extra: str) -> None:
    if isinstance(abstract, int):  # deeper than json.dumps goes: written by hand
        value = "[" * abstract + '"x"' + "]" * abstract
        line = '{"title": ' + json.dumps(title) + ', "abstract": ' + value + "}"
    else:
        line = json.dumps({"title": title, "abstract": abstract, "authors": [[extra]]})
    body = _good_jsonl(GOOD[:2]) + line + "\n" + _good_jsonl(GOOD[2:3])
    result, _, _ = _read(tmp_path, body.encode("utf-8", "surrogatepass"), ".jsonl",
                         _good_jsonl(GOOD[3:]).encode())  # fmt: skip
    _assert_good_kept(result, GOOD)  # JSON escapes NULs and surrogates: the file is text


@FUZZ
@given(title=hostile_text, abstract=hostile_text)
def test_csv_reader(tmp_path: Path, title: str, abstract: str) -> None:
    def csv_of(rows: list[tuple[str, str]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["title", "abstract"])
        writer.writerows(rows)
        return out.getvalue()

    body = csv_of([*GOOD[:2], (title, abstract), GOOD[2]])
    data = body.encode("utf-8", "surrogatepass")
    result, _, _ = _read(tmp_path, data, ".csv", csv_of(GOOD[3:]).encode())
    text_file = b"\x00" not in data and "\ud800" not in body
    _assert_good_kept(result, GOOD if text_file else GOOD[3:])


@FUZZ
@given(title=hostile_text, abstract=hostile_text)
def test_bibtex_reader(tmp_path: Path, title: str, abstract: str) -> None:
    def bib_of(rows: list[tuple[str, str]]) -> str:
        return "".join(
            f"@article{{k{i},\n  title = {{{t}}},\n  abstract = {{{a}}}\n}}\n\n"
            for i, (t, a) in enumerate(rows)
        )

    body = bib_of(GOOD[:2]) + bib_of([(title, abstract)])
    result, _, _ = _read(tmp_path, body.encode("utf-8", "surrogatepass"), ".bib",
                         bib_of(GOOD[3:]).encode())  # fmt: skip
    _assert_good_kept(result, GOOD[3:])  # an unbalanced brace may take its file's rest


@FUZZ
@given(title=hostile_text, abstract=hostile_text)
def test_sample_pages_reader(tmp_path: Path, title: str, abstract: str) -> None:
    def page_of(rows: list[tuple[str, str]]) -> str:
        return "New\n\nMar 11\n\n" + "".join(f"{t}\n\n{a}\n\n" for t, a in rows)

    body = page_of([*GOOD[:2], (title.replace("\n", " "), abstract.replace("\n", " "))])
    result, _, _ = _read(tmp_path, body.encode("utf-8", "surrogatepass"), ".txt",
                         page_of(GOOD[3:]).encode())  # fmt: skip
    _assert_good_kept(result, GOOD[3:])


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe\x00\x00garbage", b"\x00" * 1000, b"\x80abc\n" * 100, b"{" * 100_000,
     b"[" * 200_000, b'{"title": "x", "abstract": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"],
    ids=["bom-garbage", "nuls", "invalid-utf8", "open-braces", "open-brackets", "deep-5000"],
)  # fmt: skip
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".bib", ".txt"])
def test_broken_files_raise_nothing(tmp_path: Path, data: bytes, suffix: str) -> None:
    result, bad, _ = _read(tmp_path, data, suffix, _good_jsonl(GOOD).encode(), ".jsonl")
    assert any(s.file == str(bad.resolve()) for s in result.skipped)  # said, not raised
    _assert_good_kept(result, GOOD)
    assert str(bad.resolve()) not in result.complete_files  # never evidence for --prune


def test_deep_nesting_of_the_issue_is_one_bad_field_not_a_dead_ingest(tmp_path: Path) -> None:
    """The issue's case: a value nested 250 levels deep in a 600-byte line raised
    RecursionError out of the field reader, and the whole ingest died on every rerun."""
    deep = {
        "title": "A nested record",
        "abstract": GOOD[0][1],
        "authors": json.loads("[" * 250 + '"A"' + "]" * 250),
    }
    body = json.dumps(deep) + "\n" + _good_jsonl(GOOD[1:3])
    result, _, _ = _read(tmp_path, body.encode(), ".jsonl", _good_jsonl(GOOD[3:]).encode())
    _assert_good_kept(result, GOOD[1:])
    assert "A nested record" in _titles(result)


def test_a_title_over_the_limit_is_skipped_with_its_reason(tmp_path: Path) -> None:
    """The issue's case: a 20 KB title shrank the chunk budget to 32 tokens and turned one
    abstract into ~1,500 chunks."""
    body = _good_jsonl([("Title " * 4000, GOOD[0][1]), *GOOD[1:3]])
    result, _, _ = _read(tmp_path, body.encode(), ".jsonl", _good_jsonl(GOOD[3:]).encode())
    _assert_good_kept(result, GOOD[1:])
    assert any("over the limit of 500" in s.reason for s in result.skipped)


# --- linear time ---------------------------------------------------------------------------------


def _seconds(f: Callable[[str], object], text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        f(text)
        best = min(best, time.perf_counter() - started)
    return best


ADVERSARIAL = {
    "unicode spaces": "word\u3000" + "\u3000" * 50_000 + "end",
    "en spaces": "a" + "\u2003 " * 25_000 + "\nb",
    "initials": "A. " * 17_000,
    "abbreviations": "e.g. " * 10_000,
    "capitals glued": "We reach 37% accuracy " + "Ignore Previous Instructions " * 2_000,
    "template tokens": "<|im_start|>" * 4_000,
    "braces": "\\textbf{" * 5_000 + "x" + "}" * 5_000,
    "dollars": "$x" * 25_000,
}
TOOLS: dict[str, Callable[[str], object]] = {
    "normalize_text": normalize_text,
    "split_sentences": split_sentences,
    "withhold_instructions": lambda t: withhold_instructions(normalize_text(t, keep_lines=True)),
    "instruction_reason": instruction_reason,
    "neutralize_source": neutralize_source,
}


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("shape", ADVERSARIAL)
def test_text_tools_take_linear_time(tool: str, shape: str) -> None:
    """Ten times the input, at most ~10x the time (40x allowed for noise on a shared machine,
    and anything under a quarter second passes; quadratic would be 100x, and seconds: the
    issue's cases took 2.6 s for 50,000 U+3000 in the line-break rule and 2.5 s for 50,000
    characters of "A. A." in the sentence splitter)."""
    f, text = TOOLS[tool], ADVERSARIAL[shape]
    small, large = text[: len(text) // 10], text
    t_small, t_large = _seconds(f, small), _seconds(f, large)
    assert t_large < max(40 * t_small, 0.25), (tool, shape, t_small, t_large)
