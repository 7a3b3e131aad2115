"""Which way a sentence points (assistant.answer.polarity): negation and direction, the
verdict a finding gives a yes/no question, and a claim that says the opposite of its source."""

from __future__ import annotations

import pytest

from assistant.answer.polarity import negated, negated_terms, opposes, rule_verdict

ANKLE_Q = "Is ankle/arm pressure predictive of cardiovascular mortality in older patients?"
ZEROQ = (
    "ZeroQ enables mixed-precision quantization without any access to the training or "
    "validation data."
)


@pytest.mark.parametrize(
    ("sentence", "denies"),
    [
        ("Ankle/arm pressure was not predictive of cardiovascular mortality.", True),
        ("There was no significant difference between the two arms.", True),
        ("The treatment did not improve survival.", True),
        ("The method fails to converge on large graphs.", True),
        (ZEROQ, True),
        ("Ankle/arm pressure was predictive of cardiovascular mortality.", False),
        ("It is not only faster but also more accurate.", False),  # "not only" denies nothing
        ("It improves accuracy without sacrificing speed.", False),
        ("It is no longer necessary to retrain the model.", False),
    ],
)
def test_negation_of_the_claim(sentence: str, denies: bool) -> None:
    assert negated(sentence) is denies


def test_what_a_negation_covers() -> None:
    assert {"access", "train", "data"} <= negated_terms(ZEROQ)
    assert "mix" not in " ".join(negated_terms(ZEROQ))  # before the negation: not covered


@pytest.mark.parametrize(
    ("question", "finding", "verdict"),
    [
        (ANKLE_Q, "Ankle/arm pressure was not predictive of cardiovascular mortality.", "no"),
        (ANKLE_Q, "Low ankle/arm pressure predicted cardiovascular mortality.", "yes"),
        (
            "Does treatment with chenodeoxycholic acid lower whole-body energy expenditure?",
            "Whole-body energy expenditure was also increased upon CDCA treatment.",
            "no",
        ),
        (
            "Does the treatment reduce mortality?",
            "The treatment reduced mortality by 30% (95% CI 12-45%).",
            "yes",
        ),
        (
            "Is the drug associated with a higher risk of stroke?",
            "We found no significant association between the drug and stroke.",
            "no",
        ),
        (
            "Does LIB give substantially better interpretability when applied to language models?",
            "However, LIB does not yield substantial improvements in interpretability or "
            "interaction sparsity when applied to language models.",
            "no",
        ),
    ],
)
def test_the_verdict_a_finding_gives(question: str, finding: str, verdict: str) -> None:
    assert rule_verdict(question, finding) == verdict


def test_a_claim_that_says_the_opposite_of_its_source() -> None:
    # on-topic and false: "needs calibration data" against "without any access to the data"
    assert opposes("ZeroQ needs a small set of calibration data to quantize a network.", ZEROQ)
    assert opposes(
        "Sharpness correlated well with generalization in every setting studied.",
        "Overall, we observe that sharpness does not correlate well with generalization.",
    )
    assert opposes(
        "Treatment increased whole-body energy expenditure in the trial.",
        "Treatment reduced whole-body energy expenditure in the trial.",
    )
    # the same claim, or two negative statements, or another topic: no opposition
    assert not opposes("ZeroQ quantizes a network without access to training data.", ZEROQ)
    assert not opposes(
        "Without architecture changes or outside training data, the framework reaches 80.67%.",
        "The framework achieves 80.67% without involving architecture modification or outside "
        "training data.",
    )
    assert not opposes("Grokking is widespread.", "Grokking is not limited to toy settings.")
