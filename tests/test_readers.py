"""Reading paper files: the sample pages, JSONL, CSV and BibTeX, with every bad input reported."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from assistant.errors import InputError
from assistant.ingest import records
from assistant.ingest.readers import (
    ReadResult,
    default_sample_paths,
    detect_format,
    read_paths,
)
from assistant.ingest.records import normalize_arxiv_id
from assistant.text import paper_id_for_title
from assistant.types import Paper

ABS = "We study a problem at length. Our method improves accuracy by a wide margin."
ABS2 = "A second abstract that is long enough. It has two sentences of prose in it."


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def skips(result: ReadResult) -> list[tuple[str, int | None, str]]:
    return [(Path(s.file).name, s.line, s.reason) for s in result.skipped]


def by_title(result: ReadResult) -> dict[str, Paper]:
    return {p.title: p for p in result.papers}


# --- the bundled sample collection ------------------------------------------------------------


def test_sample_collection_counts() -> None:
    paths = default_sample_paths()
    assert [p.name[:3] for p in paths] == ["000", "001", "002", "003", "004"]
    result = read_paths(paths)
    assert result.skipped == []
    assert result.summary() == (
        "414 papers from 5 files (451 records, 37 duplicates merged, 0 skipped)"
    )
    assert len(result.papers) == 414
    # 33 titles are on more than one page: 29 on two pages and 4 on three.
    assert result.records_seen == 451
    assert result.duplicates == 37
    assert Counter(len(p.sources) for p in result.papers) == {1: 381, 2: 29, 3: 4}
    assert result.files_read == [str(p.resolve()) for p in paths]
    assert len({p.paper_id for p in result.papers}) == 414
    titles = by_title(result)
    assert not any(t.startswith(("Subscribe", "Get trending", "byAK")) for t in titles)
    # 004 has no blank lines and its first title is glued to "Subscribe".
    first = titles["A Downsampled Variant of ImageNet as an Alternative to the CIFAR datasets"]
    assert first.abstract.startswith("The original ImageNet dataset is a popular")
    assert first.date == ""
    poincare = titles["Poincaré ResNet"]
    assert len(poincare.sources) == 3
    grok = titles["Deep Networks Always Grok and Here is Why"]
    assert grok.date == "Mar 11"
    assert grok.paper_id == paper_id_for_title(grok.title)
    assert grok.abstract.startswith("Grokking, or delayed generalization")


def test_sample_format_reports_titles_without_abstracts(tmp_path: Path) -> None:
    page = write(
        tmp_path / "page.txt",
        "new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\n"
        "byAK and the research community\n\nApr 2\n\n"
        f"First Title\n\n{ABS}\n\n"
        "Orphan Title: No Abstract Here\n\n"  # line 15, followed by another title
        f"Second Title\n\n{ABS2}\n\n"
        "Too Short\n\nShort one.\n\n"  # line 21: a 10-character "abstract" is not one
        "Last Title At End Of File\n",  # line 25
    )
    result = read_paths([page])
    titles = by_title(result)
    assert list(titles) == ["First Title", "Second Title"]
    assert titles["First Title"].abstract == ABS
    assert titles["Second Title"].date == "Apr 2"
    found = skips(result)
    assert [(name, line) for name, line, _ in found] == [
        ("page.txt", 15),
        ("page.txt", 21),
        ("page.txt", 23),  # "Short one." was taken for the next title
        ("page.txt", 25),
    ]
    assert all("without abstract" in reason for _, _, reason in found)


def test_sample_format_without_blank_lines(tmp_path: Path) -> None:
    page = write(
        tmp_path / "p.txt",
        f"Get trending papers in your email inbox!\nSubscribeOne Title\n{ABS}\nTwo Title\n{ABS2}\n",
    )
    result = read_paths([page])
    assert [p.title for p in result.papers] == ["One Title", "Two Title"]
    assert result.skipped == []


# --- JSONL / JSON ------------------------------------------------------------------------------


def test_jsonl_arxiv_snapshot(tmp_path: Path) -> None:
    records = [
        {
            "id": "2101.00001",
            "submitter": "A. Smith",
            "authors": "A. Smith, B. Jones (MIT, USA) and C. Doe",
            "title": "  A Paper\n  About Things ",
            "comments": "",
            "journal-ref": "NeurIPS 2021",
            "doi": "10.1000/xyz",
            "categories": "cs.LG stat.ML",
            "abstract": "  We reach 96.38\\% accuracy,\n  a $2\\times$ gain. Good.\n",
            "update_date": "2021-03-04",
            "authors_parsed": [["Smith", "A.", ""]],
        },
        {"arxiv_id": "arXiv:hep-th/9901001v3", "title": "Old Style", "summary": ABS},
        {"paper_id": "https://arxiv.org/abs/2203.12345v2", "title": "Url Id", "abstract": ABS2},
        {"id": "my-own-7", "title": "No Arxiv", "abstract": ABS, "url": "https://x.org/p"},
    ]
    text = "\n".join(json.dumps(r) for r in records[:2]) + "\n\n  \n"
    text += "\n".join(json.dumps(r) for r in records[2:]) + "\n"
    result = read_paths([write(tmp_path / "snap.jsonl", text)])
    assert result.skipped == []
    first, old, by_url, plain = result.papers
    assert first.paper_id == "2101.00001"
    assert first.title == "A Paper About Things"
    assert first.abstract == "We reach 96.38% accuracy, a 2× gain. Good."
    assert first.authors == "A. Smith; B. Jones (MIT, USA); C. Doe"
    assert first.date == "2021-03-04"
    assert first.categories == "cs.LG stat.ML"
    assert first.url == "https://arxiv.org/abs/2101.00001"
    assert first.extra == {
        "submitter": "A. Smith",
        "journal-ref": "NeurIPS 2021",
        "doi": "10.1000/xyz",
    }
    assert first.sources == [str(tmp_path / "snap.jsonl")]
    assert (old.paper_id, old.abstract) == ("hep-th/9901001", ABS)
    assert old.url == "https://arxiv.org/abs/hep-th/9901001"
    assert by_url.paper_id == "2203.12345"
    assert plain.paper_id == paper_id_for_title("No Arxiv")
    assert plain.url == "https://x.org/p"
    assert plain.extra == {"id": "my-own-7"}


def test_jsonl_bad_lines_are_reported_and_good_ones_kept(tmp_path: Path) -> None:
    lines = [
        json.dumps({"title": "Good One", "abstract": ABS}),  # 1
        '{"title": "Broken", "abstract": ',  # 2
        "",  # 3 (blank: silently skipped)
        json.dumps({"abstract": ABS}),  # 4
        json.dumps({"title": "No Abstract"}),  # 5
        json.dumps({"title": "Tiny", "abstract": "Too short."}),  # 6
        json.dumps(["not", "an", "object"]),  # 7
        json.dumps({"title": "Good Two", "summary": ABS2}),  # 8
    ]
    result = read_paths([write(tmp_path / "bad.jsonl", "\n".join(lines))])
    assert [p.title for p in result.papers] == ["Good One", "Good Two"]
    found = skips(result)
    assert [line for _, line, _ in found] == [2, 4, 5, 6, 7]
    assert "malformed JSON" in found[0][2] and "column" in found[0][2]
    assert "no title" in found[1][2]
    assert "without abstract" in found[2][2]
    assert "too short" in found[3][2]
    assert "not a JSON object" in found[4][2]
    assert result.files_read == [str(tmp_path / "bad.jsonl")]


def test_json_array_file(tmp_path: Path) -> None:
    data = [
        {"id": "2101.00002", "title": "In Array", "abstract": ABS},
        {"title": "Missing Abstract"},
    ]
    path = write(tmp_path / "papers.json", json.dumps(data, indent=2))
    result = read_paths([path])
    assert [p.paper_id for p in result.papers] == ["2101.00002"]
    assert skips(result) == [("papers.json", 7, "title without abstract: 'Missing Abstract'")]
    one = write(tmp_path / "one.json", json.dumps({"title": "Single", "abstract": ABS}, indent=2))
    assert [p.title for p in read_paths([one]).papers] == ["Single"]
    good = json.dumps({"title": "A", "abstract": ABS})
    broken = write(tmp_path / "broken.json", f'[\n{good},\n{{"title": \n')
    result = read_paths([broken])
    assert [p.title for p in result.papers] == ["A"]
    assert [(s.line, s.reason.startswith("malformed JSON")) for s in result.skipped] == [(3, True)]


# --- CSV / TSV ---------------------------------------------------------------------------------


def test_csv_with_metadata_bom_and_multiline_fields(tmp_path: Path) -> None:
    text = (
        "\ufeffTitle,Abstract,arXiv_ID,Authors,Year,URL,Venue,Notes\r\n"
        f'First,"{ABS}\r\nSecond paragraph.",2101.00003v1,"A; B",2021,,ICML,\r\n'  # lines 2-3
        f"No Abstract Row,,,,,,,\r\n"  # line 4
        f'Second,"{ABS2}",paper-17,C,2020,https://example.org/s,,read later\r\n'  # line 5
        "\r\n"
        f'Third,"{ABS}",,,,,,\r\n'  # line 7
        f"Too,Many,Fields,In,This,Row,Here,x,y\r\n"  # line 8
    )
    result = read_paths([write(tmp_path / "papers.csv", text)])
    first, second, third = result.papers
    assert first.paper_id == "2101.00003"
    assert first.abstract == ABS + " Second paragraph."
    assert (first.authors, first.date, first.url) == (
        "A; B",
        "2021",
        "https://arxiv.org/abs/2101.00003",
    )
    assert first.extra == {"Venue": "ICML"}
    assert second.paper_id == paper_id_for_title("Second")
    assert second.url == "https://example.org/s"
    assert second.extra == {"arXiv_ID": "paper-17", "Notes": "read later"}
    assert third.title == "Third"
    found = skips(result)
    assert [(line, "without abstract" in reason) for _, line, reason in found] == [
        (4, True),
        (8, False),
    ]
    assert "9 fields" in found[1][2]


def test_tsv_and_missing_columns(tmp_path: Path) -> None:
    tsv = write(tmp_path / "a.tsv", f"paper_title\tsummary\tid\nTab Paper\t{ABS}\thep-th/9901001\n")
    no_abs = write(tmp_path / "b.csv", "Title,Authors,Year\nX,Y,2020\n")
    no_title = write(tmp_path / "c.csv", f"heading,abstract\nX,{ABS}\n")
    utf16 = tmp_path / "excel.tsv"  # Excel's "Unicode text" export
    utf16.write_bytes(f"Title\tAbstract\nCafé Paper\t{ABS}\n".encode("utf-16"))
    result = read_paths([tsv, no_abs, no_title, utf16])
    assert [(p.title, p.paper_id) for p in result.papers] == [
        ("Tab Paper", "hep-th/9901001"),
        ("Café Paper", paper_id_for_title("Cafe Paper")),
    ]
    (name1, line1, why1), (name2, line2, why2) = skips(result)
    assert (name1, line1, name2, line2) == ("b.csv", 1, "c.csv", 1)
    assert "no abstract column" in why1 and "Title, Authors, Year" in why1
    assert "abstract_text" in why1
    assert "no title column" in why2 and "heading, abstract" in why2 and "paper_title" in why2


# --- BibTeX ------------------------------------------------------------------------------------

ZOTERO = r"""
@article{smith_deep_2021,
	title = {{Deep} {Learning} for {\textbf{Poincar{\'e}}} Balls},
	volume = {12},
	url = {http://arxiv.org/abs/2104.00004},
	doi = {10.48550/arXiv.2104.00004},
	abstract = {We reach 96.38\% top-1 accuracy on {ImageNet}. Our model is $3\times$ smaller.},
	journal = {arXiv preprint},
	author = {Smith, John and M{\"u}ller, Jane},
	year = {2021},
	month = mar,
	keywords = {Computer Science - Machine Learning},
}

@misc{noabs_2020,
	title = {A Paper Without Abstract},
	year = {2020},
}

@inproceedings{eprint_2019,
	title = {With Eprint},
	author = {Doe, Jo},
	abstract = {An abstract of reasonable length for the test. It has two sentences.},
	eprint = {1905.00005v2},
	archiveprefix = {arXiv},
	booktitle = {Proc. of Things},
	date = {2019-05-02},
}

@article{broken_2018,
	title = {Never closed,
	abstract = {Lost.

@book{plain_2017,
	title = {A Plain Book},
	abstract = {Plain abstract without any arXiv id. It is long enough to count.},
	doi = {10.1000/book},
}
"""


def test_bibtex_zotero_export(tmp_path: Path) -> None:
    result = read_paths([write(tmp_path / "lib.bib", ZOTERO)])
    deep, eprint, plain = result.papers
    assert deep.paper_id == "2104.00004"
    assert deep.title == "Deep Learning for Poincaré Balls"
    assert deep.abstract == "We reach 96.38% top-1 accuracy on ImageNet. Our model is 3× smaller."
    assert deep.authors == "Smith, John; Müller, Jane"
    assert (deep.date, deep.url) == ("2021-03", "http://arxiv.org/abs/2104.00004")
    assert deep.categories == "Computer Science - Machine Learning"
    assert deep.extra["bibtex_key"] == "smith_deep_2021"
    assert deep.extra["volume"] == "12"
    assert eprint.paper_id == "1905.00005"
    assert (eprint.date, eprint.url) == ("2019-05-02", "https://arxiv.org/abs/1905.00005")
    assert eprint.extra["booktitle"] == "Proc. of Things"
    assert plain.paper_id == paper_id_for_title("A Plain Book")
    assert plain.url == "https://doi.org/10.1000/book"
    found = skips(result)
    assert [(name, line) for name, line, _ in found] == [("lib.bib", 15), ("lib.bib", 30)]
    assert "noabs_2020" in found[0][2] and "no abstract" in found[0][2]
    assert "parse error" in found[1][2]


# --- deduplication ---------------------------------------------------------------------------


def test_same_paper_in_jsonl_and_bibtex_is_one_paper(tmp_path: Path) -> None:
    short = "Short abstract of the paper. It still counts as one."
    jsonl = write(
        tmp_path / "a.jsonl",
        json.dumps(
            {"id": "2104.00004", "title": "Deep Learning for Poincaré Balls", "abstract": short}
        ),
    )
    bib = write(tmp_path / "b.bib", ZOTERO)
    result = read_paths([jsonl, bib])
    assert len(result.papers) == 3
    paper = result.papers[0]
    assert paper.sources == [str(jsonl), str(bib)]
    assert paper.abstract.startswith("We reach 96.38%")  # the longer abstract wins
    assert paper.authors == "Smith, John; Müller, Jane"  # filled from the later record
    assert paper.date == "2021-03"
    assert paper.url == "https://arxiv.org/abs/2104.00004"  # the first record's field is kept
    assert (result.records_seen, result.duplicates) == (4, 1)


def test_title_only_record_merges_with_arxiv_record(tmp_path: Path) -> None:
    csv_file = write(
        tmp_path / "t.csv", f'title,abstract\n"Deep learning for Poincare balls!",{ABS}\n'
    )
    jsonl = write(
        tmp_path / "x.jsonl",
        json.dumps(
            {"id": "2104.00004", "title": "Deep Learning for Poincaré Balls", "abstract": ABS}
        ),
    )
    for order in ([csv_file, jsonl], [jsonl, csv_file]):
        result = read_paths(order)
        assert [p.paper_id for p in result.papers] == ["2104.00004"]
        assert result.papers[0].sources == [str(p) for p in order]
        assert result.duplicates == 1


def test_same_paper_twice_in_one_file(tmp_path: Path) -> None:
    line = json.dumps({"id": "2101.00001", "title": "Twice", "abstract": ABS})
    other = json.dumps({"id": "2101.00009", "title": "Twice", "abstract": ABS2})
    path = write(tmp_path / "d.jsonl", f"{line}\n{line}\n{other}\n")
    result = read_paths([path, path])  # the same file given twice is read once
    assert [p.paper_id for p in result.papers] == ["2101.00001", "2101.00009"]
    assert result.papers[0].sources == [str(path)]
    assert (result.records_seen, result.duplicates) == (3, 1)


# --- bad files, format override, folders ------------------------------------------------------


def test_bad_files_are_reported_and_good_files_kept(tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", json.dumps({"title": "Kept", "abstract": ABS}))
    files = [
        tmp_path / "missing.jsonl",
        write(tmp_path / "empty.csv", ""),
        write(tmp_path / "blank.txt", "\n  \n"),
        write(tmp_path / "binary.bib", b"@article{x,\x00\x01\x02}"),
        write(tmp_path / "latin1.txt", "Title\n\nCaf\xe9 abstract".encode("latin-1")),
        write(tmp_path / "notes.md", "# notes"),
        good,
    ]
    result = read_paths(files)
    assert [p.title for p in result.papers] == ["Kept"]
    assert result.files_read == [str(good)]
    found = skips(result)
    assert [(name, line) for name, line, _ in found] == [
        ("missing.jsonl", None),
        ("empty.csv", None),
        ("blank.txt", None),
        ("binary.bib", None),
        ("latin1.txt", 3),
        ("notes.md", None),
    ]
    reasons = [reason for _, _, reason in found]
    assert reasons[0] == "no such file or directory"
    assert reasons[1] == reasons[2] == "empty file"
    assert reasons[3].startswith("not a text file") and reasons[4].startswith("not a text file")
    assert ".jsonl" in reasons[5] and "--format" in reasons[5]


def test_format_override(tmp_path: Path) -> None:
    data = write(tmp_path / "export.data", json.dumps({"title": "Forced", "abstract": ABS}))
    as_txt = write(tmp_path / "lines.txt", json.dumps({"title": "Also Forced", "abstract": ABS2}))
    result = read_paths([data, as_txt], fmt="jsonl")
    assert [p.title for p in result.papers] == ["Forced", "Also Forced"]
    assert read_paths([data], fmt="JSON").papers[0].title == "Forced"  # aliases, any case
    with pytest.raises(InputError, match="sample, jsonl, csv, bibtex"):
        read_paths([data], fmt="xml")


def test_directory_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "lib" / "b" / "two.jsonl", json.dumps({"title": "Two", "abstract": ABS}))
    write(tmp_path / "lib" / "a.csv", f"title,abstract\nOne,{ABS2}\n")
    write(tmp_path / "lib" / "readme.md", "not a paper file")
    write(
        tmp_path / "lib" / ".hidden" / "x.jsonl", json.dumps({"title": "Hidden", "abstract": ABS})
    )
    (tmp_path / "nothing").mkdir()
    monkeypatch.chdir(tmp_path)
    result = read_paths(["lib", "nothing"])  # relative paths are reported resolved
    assert [p.title for p in result.papers] == ["One", "Two"]
    assert result.files_read == [
        str(tmp_path / "lib" / "a.csv"),
        str(tmp_path / "lib" / "b" / "two.jsonl"),
    ]
    assert [(s.file, s.line) for s in result.skipped] == [(str(tmp_path / "nothing"), None)]
    assert "known extension" in result.skipped[0].reason


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2101.00001", "2101.00001"),
        ("arXiv:2101.00001v2", "2101.00001"),
        ("https://arxiv.org/abs/2101.12345v1", "2101.12345"),
        ("http://arxiv.org/pdf/2101.12345v1.pdf", "2101.12345"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("math.GT/0309136v1", "math.GT/0309136"),
        ("paper-17", None),
        ("10.1000/xyz", None),
        ("", None),
    ],
)
def test_normalize_arxiv_id(given: str, expected: str | None) -> None:
    assert normalize_arxiv_id(given) == expected


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.txt", "sample"),
        ("a.JSONL", "jsonl"),
        ("a.json", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.csv", "csv"),
        ("a.tsv", "csv"),
        ("a.bib", "bibtex"),
        ("a.bibtex", "bibtex"),
        ("a.pdf", None),
        ("noext", None),
    ],
)
def test_detect_format(name: str, fmt: str | None) -> None:
    assert detect_format(Path(name)) == fmt


# --- streaming: one bad record never ends a file; memory does not grow with the file ----------


@pytest.mark.parametrize("chunk", [7, 1 << 20])  # 7 characters: values cross chunk borders
def test_json_array_with_a_bad_element_reads_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(records, "CHUNK_CHARS", chunk)
    good = [
        {"id": f"2101.0000{i}", "title": f'P{i} "quoted [x] {{y}}" \\ end', "abstract": ABS}
        for i in range(3)
    ]
    text = (
        f"[\n{json.dumps(good[0])},\n"
        '{"title": \'single quotes are not JSON\', "abstract": "x"},\n'  # line 3
        f"{json.dumps(good[1], indent=1)},\n{json.dumps(good[2])}\n]\n"
    )
    result = read_paths([write(tmp_path / "a.json", text)])
    assert [p.paper_id for p in result.papers] == ["2101.00000", "2101.00001", "2101.00002"]
    assert result.papers[0].title == 'P0 "quoted [x] {y}" \\ end'
    assert [(s.line, s.reason.startswith("malformed JSON")) for s in result.skipped] == [(3, True)]
    # The record could not be parsed, so nobody can tell which paper it listed.
    assert str(tmp_path / "a.json") in result.unprunable


def test_pretty_printed_objects_one_after_another(tmp_path: Path) -> None:
    a = {"title": "First Pretty", "abstract": ABS}
    b = {"title": "Second Pretty", "abstract": ABS2}
    path = write(tmp_path / "p.json", json.dumps(a, indent=2) + "\n" + json.dumps(b, indent=2))
    result = read_paths([path])
    assert [p.title for p in result.papers] == ["First Pretty", "Second Pretty"]
    assert result.skipped == [] and result.complete_files == [str(path)]


def test_unclosed_json_array_stops_the_file_and_says_so(tmp_path: Path) -> None:
    good = json.dumps({"title": "A", "abstract": ABS})
    path = write(tmp_path / "cut.json", f'[\n{good},\n{{"title": "B", "abstract": "cut sh')
    result = read_paths([path])
    assert [p.title for p in result.papers] == ["A"]
    (stop,) = result.skipped
    assert stop.line == 3 and "not closed" in stop.reason
    assert str(path) in result.unprunable and str(path) not in result.complete_files


def test_csv_field_over_the_old_limit_is_one_skipped_record(tmp_path: Path) -> None:
    """A 200,000-character abstract (over csv's default field limit of 131,072) used to end
    the file's reading; now it is one skipped record and the next row is read."""
    huge = "A sentence that goes on. " * 8000  # 200,000 characters
    text = f'title,abstract\nFirst,"{ABS}"\nSecond,"{huge}"\nThird,"{ABS2}"\n'
    path = write(tmp_path / "p.csv", text)
    result = read_paths([path])
    assert [p.title for p in result.papers] == ["First", "Third"]
    (skip,) = result.skipped
    assert skip.line == 3 and "199,999 characters, over the limit" in skip.reason
    assert result.complete_files == [str(path)]
    assert "title:second" in result.protected  # --prune keeps the paper this record names


def test_overlong_line_is_skipped_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "MAX_RECORD_CHARS", 2000)
    lines = [
        json.dumps({"title": "Before", "abstract": ABS}),
        json.dumps({"title": "Huge", "abstract": ABS * 40}),
        json.dumps({"title": "After", "abstract": ABS2}),
    ]
    result = read_paths([write(tmp_path / "p.jsonl", "\n".join(lines) + "\n")])
    assert [p.title for p in result.papers] == ["Before", "After"]
    assert [(s.line, "longer than 2,000" in s.reason) for s in result.skipped] == [(2, True)]


def test_reading_holds_one_record_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staged on disk, reading a file allocates a small fraction of its size (Python heap, as
    tracemalloc sees it); the papers themselves live in the staging file. The peak is what
    one record costs at most (its LaTeX parse included), so the file is made large enough
    for a third of it to exceed that: 2.6 MB here, 0.46 MB peak."""
    import tracemalloc

    monkeypatch.setattr(records, "CHUNK_CHARS", 1 << 16)
    sample = read_paths(default_sample_paths()).papers
    path = tmp_path / "many.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1600):
            p = sample[i % len(sample)]
            rec = {"id": f"2401.{i:05d}", "title": f"{p.title} {i}", "abstract": p.abstract}
            f.write(json.dumps(rec) + "\n")
    size = path.stat().st_size
    stage = tmp_path / "stage"
    stage.mkdir()
    tracemalloc.start()
    try:
        with read_paths([path], stage_dir=stage) as result:
            _, peak = tracemalloc.get_traced_memory()
            assert len(result.papers) == 1600
            assert result.papers[1599].paper_id == "2401.01599"
            assert [p.paper_id for p in result.papers][:2] == ["2401.00000", "2401.00001"]
    finally:
        tracemalloc.stop()
    assert size > 2_000_000 and peak < size / 3, (size, peak)
