"""The evaluation runner: judge parsing, baseline citation reading, aggregation, compare, and
a smoke run of ``python -m evals run`` on the real tiny model and the real sample index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scripted import ScriptedChatModel

from assistant.ingest.readers import default_sample_paths, read_paths
from assistant.text import title_key
from evals.__main__ import main
from evals.baseline import split_cited_sentences
from evals.cases import DATA_DIR, Case, read_cases, select_cases
from evals.judge import Judge, judge_agreement, load_judge_pairs, parse_yes_no, premise_text
from evals.records import Record, SystemRecord
from evals.report import aggregate, compare_reports, json_safe, render_markdown

# --- the judge ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("yes", True),
        ("Yes.", True),
        ("**YES**", True),
        (" answer: yes", True),
        ("Supported", True),
        ("no", False),
        ("No, the", False),
        ("Not supported", False),
        ("The claim is", None),
        ("", None),
        ("maybe", None),
        ("yesterday", None),
        ("nothing", None),
    ],
)
def test_parse_yes_no(reply: str, expected: bool | None) -> None:
    assert parse_yes_no(reply) is expected


def test_judge_reads_scripted_replies_and_memoises() -> None:
    model = ScriptedChatModel(["Yes.", "**No**", "The claim"])
    judge = Judge(model)
    assert judge("premise A", "claim 1") is True
    assert judge("premise A", "claim 2") is False
    assert judge.verdict("premise B", "claim 1") is None
    assert judge("premise B", "claim 1") is False  # unparsable counts as not supported
    assert judge("premise A", "claim 1") is True  # memoised: no fourth reply needed
    assert len(model.calls) == 3
    assert judge.stats.calls == 3 and judge.stats.unparsed == 1 and judge.stats.cache_hits == 2
    prompt = model.calls[0][0]["content"]
    assert "premise A" in prompt and "Claim: claim 1" in prompt and "yes or no" in prompt


def test_prefetch_groups_calls_by_premise() -> None:
    model = ScriptedChatModel(lambda messages: "yes")
    judge = Judge(model)
    pairs = [("P2", "a"), ("P1", "b"), ("P2", "c"), ("P1", "a"), ("P2", "a")]
    assert judge.prefetch(pairs) == 4
    premises = [m[0]["content"].split("\n")[1] for m in model.calls]
    assert premises == ["P1", "P1", "P2", "P2"]
    assert judge.prefetch(pairs) == 0


def _sample_abstracts() -> dict[str, tuple[str, str]]:
    papers = read_paths(default_sample_paths()).papers
    return {title_key(p.title): (p.title, p.abstract) for p in papers}


def test_judge_agreement_against_hand_labels() -> None:
    pairs = load_judge_pairs(DATA_DIR / "judge_pairs.jsonl")
    abstracts = _sample_abstracts()
    supported = {p["sentence"] for p in pairs if p["supported"]}

    def oracle(messages: list[dict[str, str]]) -> str:
        claim = messages[0]["content"].split("Claim: ", 1)[1].split("\n", 1)[0]
        return "yes" if claim in supported else "no"

    perfect = judge_agreement(Judge(ScriptedChatModel(oracle)), pairs, abstracts)
    assert perfect.n == 40 and perfect.n_missing_abstract == 0
    assert perfect.accuracy == perfect.precision == perfect.recall == 1.0

    yes_man = judge_agreement(Judge(ScriptedChatModel(lambda m: "Yes")), pairs, abstracts)
    assert yes_man.accuracy == 0.5 and yes_man.precision == 0.5
    assert yes_man.recall == 1.0 and yes_man.specificity == 0.0
    assert yes_man.by_kind["wrong_number"] == 0.0 and yes_man.by_kind["paraphrase"] == 1.0


def test_premise_text_puts_title_first() -> None:
    assert premise_text(" A  title ", "Some\nabstract.") == "A title\nSome abstract."


# --- baseline answers -----------------------------------------------------------------------


def test_split_cited_sentences_reads_markers_like_alce() -> None:
    text = (
        "HAWQ reaches 68% top-1 accuracy [1]. It uses the Hessian [2, 3].\n"
        "Another claim with a bad number [9]. [4]\nUncited sentence."
    )
    assert split_cited_sentences(text, n_sources=4) == [
        ("HAWQ reaches 68% top-1 accuracy.", [1]),
        ("It uses the Hessian.", [2, 3]),
        ("Another claim with a bad number.", [4]),
        ("Uncited sentence.", []),
    ]


# --- selection, aggregation, compare --------------------------------------------------------


def _case(i: int, kind: str, split: str = "calibration", **extra: Any) -> Case:
    return Case(id=f"c{i}", dataset="sample", type=kind, question="q?", split=split, **extra)


def test_select_cases_mixes_types_and_verdicts() -> None:
    kinds = ["fact", "fact", "fact", "multi", "multi", "unanswerable"]
    cases = [_case(i, k) for i, k in enumerate(kinds)]
    assert [c.id for c in select_cases(cases, 3)] == ["c0", "c3", "c5"]
    assert [c.id for c in select_cases(cases, 5)] == ["c0", "c3", "c5", "c1", "c4"]
    assert select_cases(cases, None) == cases
    yes_no = [_case(i, "yesno", verdict=v) for i, v in enumerate(["yes", "yes", "no"])]
    assert [c.verdict for c in select_cases(yes_no, 2)] == ["yes", "no"]


def _record(
    i: int, kind: str, answerable: bool, scores: dict[str, float], split: str = "calibration",
    **extra: Any,
) -> Record:  # fmt: skip
    result = SystemRecord(
        answerable=answerable, latency_s=2.0, timings={"generation": 1.5}, scores=scores, **extra
    )
    return Record(_case(i, kind, split), {"assistant": result})


def test_aggregate_skips_undefined_scores_and_errors() -> None:
    nan = float("nan")
    records = [
        _record(0, "fact", True, {"hit@1": 1.0, "citation_recall": 0.5, "key_fact_recall": 1.0}),
        _record(1, "fact", False, {"hit@1": 0.0, "citation_recall": nan, "key_fact_recall": 0.0}),
        _record(2, "unanswerable", False, {"hit@1": nan, "citation_recall": nan}),
        _record(3, "fact", True, {}, error="LLMError: boom"),
    ]
    agg = aggregate(records, ["assistant"])["assistant"]
    assert agg["n"] == 4 and agg["n_errors"] == 1
    m, n = agg["metrics"], agg["n_scored"]
    assert m["hit@1"] == 0.5 and n["hit@1"] == 2
    assert m["citation_recall"] == 0.5 and n["citation_recall"] == 1
    assert "faithfulness" not in m and n["faithfulness"] == 0
    assert m["correct_decline_rate"] == 1.0 and n["correct_decline_rate"] == 1
    assert m["false_decline_rate"] == 0.5 and n["false_decline_rate"] == 2
    assert agg["latency"]["total"]["n"] == 3 and agg["latency"]["stages_mean"]["generation"] == 1.5
    assert set(agg["by_type"]) == {"fact", "unanswerable"}


def test_each_half_of_the_questions_gets_its_own_table() -> None:
    records = [
        _record(0, "fact", True, {"key_fact_recall": 1.0}, "calibration"),
        _record(1, "fact", False, {"key_fact_recall": 0.0}, "validation"),
        _record(2, "fact", True, {"key_fact_recall": 0.5}, "validation"),
    ]
    agg = aggregate(records, ["assistant"])["assistant"]
    assert agg["metrics"]["key_fact_recall"] == 0.5
    halves = agg["by_split"]
    assert halves["calibration"]["fact"]["metrics"]["key_fact_recall"] == 1.0
    assert halves["validation"]["fact"]["metrics"]["key_fact_recall"] == 0.25
    assert halves["validation"]["fact"]["metrics"]["false_decline_rate"] == 0.5
    md = render_markdown(json_safe({"aggregates": {"sample": {"assistant": agg}}}))
    assert "assistant, validation split; n = fact 2" in md
    # One half only (a --split run): no per-half tables.
    one = aggregate(records[1:], ["assistant"])["assistant"]
    assert "by_split" not in one


def test_records_survive_the_report_file() -> None:
    rec = _record(0, "yesno", True, {"verdict_agrees": 1.0}, evidence=[("T", "s.")], verdict="no")
    back = Record.from_dict(json.loads(json.dumps(json_safe(rec.to_dict()))))
    assert back == rec


def _report(hit: float | None, latency: float) -> dict[str, Any]:
    return {
        "created": "now",
        "models": {"assistant": "m"},
        "aggregates": {
            "sample": {
                "assistant": {"metrics": {"hit@1": hit}, "latency": {"total": {"mean": latency}}}
            }
        },
    }


def test_compare_prints_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = compare_reports(_report(0.5, 10.0), _report(0.75, 8.0))
    row = next(line for line in table.splitlines() if " hit@1 " in line)
    assert row.split()[-3:] == ["0.500", "0.750", "+0.250"]
    lat = next(line for line in table.splitlines() if "latency_total_mean_s" in line)
    assert lat.split()[-1] == "-2.000"
    undefined = compare_reports(_report(None, 1.0), _report(0.5, 1.0))
    assert next(x for x in undefined.splitlines() if " hit@1 " in x).split()[-1] == "–"

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "report.json").write_text(json.dumps(_report(0.5, 10.0)))
    (tmp_path / "b.json").write_text(json.dumps(_report(0.25, 10.0)))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b.json")]) == 0
    assert "-0.250" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "missing")]) != 0


def test_the_goals_table_has_one_column_per_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = Path(__file__).parent.parent / "evals" / "results" / "answers-issue20"
    before, after = results / "validation-before", results / "validation-after"
    assert main(["goals", str(before), str(after)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "| goal | target | before | after |"
    row = next(x for x in table.splitlines() if x.startswith("| yes/no verdict agrees (sample)"))
    before_value = load_json(before)["aggregates"]["sample"]["assistant"]["metrics"]
    assert row.split(" | ")[2].startswith(f"{before_value['verdict_agrees']:.3f}")
    assert main(["goals", str(before), str(after), str(after), "--labels", "a,b,c"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "| goal | target | a | b | c |"
    assert main(["goals", str(before), str(after), "--labels", "only-one"]) != 0


def load_json(folder: Path) -> Any:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


# --- the smoke run --------------------------------------------------------------------------


def _rates(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every value under a 'metrics' key of the aggregates."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "metrics":
                found += [(f"{path}/{name}", x) for name, x in v.items()]
            else:
                found += _rates(v, f"{path}/{k}")
    return found


@pytest.mark.slow
def test_smoke_run_writes_a_consistent_report(
    tmp_path: Path,
    sample_index: Path,
    tiny_model_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    argv = ["run", "--dataset", "sample", "--dataset", "scifact", "--limit", "2"]
    argv += [
        "--preset",
        "tiny",
        "--judge",
        "local",
        "--out",
        str(out),
        "--index-dir",
        str(sample_index),
    ]
    argv += ["--max-tokens", "32", "--judge-pairs", "4", "-q"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    summary = json.loads(stdout.strip().splitlines()[-1])

    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("# Evaluation report")
    assert list(out.glob("*.png"))
    assert summary["aggregates"] == report["aggregates"]
    assert summary["out"] == str(out)

    for dataset in ("sample", "scifact"):
        assert report["datasets"][dataset]["n_used"] == 2
        assert len(report["datasets"][dataset]["sha256"]) == 64
        assert len(report["records"][dataset]) == 2
        assert set(report["aggregates"][dataset]) == {"assistant", "baseline"}
        for system in ("assistant", "baseline"):
            agg = report["aggregates"][dataset][system]
            assert agg["n"] == 2
            assert all(0 <= c <= 2 for c in agg["n_scored"].values())
    rates = _rates(report["aggregates"])
    assert rates and all(v is None or 0.0 <= v <= 1.0 for _, v in rates), rates
    # the first case of each stratum, in file order
    for dataset in ("sample", "scifact"):
        picked = [c.id for c in select_cases(read_cases(dataset), 2)]
        assert [r["case"]["id"] for r in report["records"][dataset]] == picked
    assert {r["case"]["type"] for r in report["records"]["scifact"]} == {"yesno"}
    assert {r["case"]["verdict"] for r in report["records"]["scifact"]} == {"yes", "no"}
    for rec in report["records"]["sample"]:
        for system in ("assistant", "baseline"):
            for sentence in rec["systems"][system]["sentences"]:
                assert isinstance(sentence["supported_by_retrieved"], bool)
                assert isinstance(sentence["supported_by_citations"], bool)
    assert report["judge_agreement"]["n"] == 4
    assert report["models"]["judge"] == report["models"]["assistant"]
    assert "openai_api_key" not in report["settings"]
    assert "NLI" in report["judge"]["note"]

    # compare the run with a copy in which one metric moved
    other = json.loads(json.dumps(report))
    other["aggregates"]["scifact"]["assistant"]["metrics"]["hit@10"] = 0.0
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert main(["compare", str(out), str(tmp_path / "other.json")]) == 0
    table = capsys.readouterr().out
    row = next(x for x in table.splitlines() if x.startswith("scifact  assistant  hit@10 "))
    old = report["aggregates"]["scifact"]["assistant"]["metrics"]["hit@10"]
    assert row.split()[-1] == (f"{-old:.3f}" if old else "0.000")


# --- the judge's model ----------------------------------------------------------------------


def test_judge_model_choice(make_settings: Any) -> None:
    from assistant.errors import ConfigError
    from assistant.llm.openai_compat import OpenAIChatModel
    from evals.judge import judge_model

    shared = ScriptedChatModel(["yes"])
    settings = make_settings(llm_preset="small")
    assert judge_model(settings, "local", preset="small", reuse=shared) is shared
    with pytest.raises(ConfigError, match="ASSISTANT_OPENAI_BASE_URL"):
        judge_model(settings, "openai")
    server = make_settings(openai_base_url="http://127.0.0.1:9/v1", openai_model="judge")
    model = judge_model(server, "openai", reuse=shared)
    assert isinstance(model, OpenAIChatModel) and model.name == "openai:judge@http://127.0.0.1:9/v1"


@pytest.mark.server
def test_judge_through_a_real_openai_compatible_server(
    tiny_server_url: str, make_settings: Any
) -> None:
    from evals.judge import judge_model

    settings = make_settings(openai_base_url=tiny_server_url, openai_model="tiny")
    judge = Judge(judge_model(settings, "openai"))
    premise = premise_text("HAWQ", "HAWQ quantizes SqueezeNext to 1MB with 68% top-1 accuracy.")
    verdict = judge.verdict(premise, "HAWQ reaches 68% top-1 accuracy.")
    assert verdict in (True, False, None)
    assert judge.stats.calls == 1 and judge.stats.model.startswith("openai:tiny@http://127.0.0.1")


def test_the_eval_data_passes_its_own_checker(capsys: pytest.CaptureFixture[str]) -> None:
    """evals/data/check_data.py: every question's split is its papers' half, every key fact
    is in its abstract, every SciFact claim has its question (see evals/data/README.md)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_data", DATA_DIR / "check_data.py")
    assert spec is not None and spec.loader is not None
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.main([]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.rstrip().endswith("OK")
