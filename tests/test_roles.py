"""The role of each sentence of an abstract (assistant.answer.roles): a structured abstract's
labels, and the fitted model on real abstracts with the real embedder."""

from __future__ import annotations

import pytest

from assistant.answer.roles import (
    ROLES,
    load_role_model,
    rule_roles,
    section_of,
    sentence_roles,
    strip_section_label,
)


@pytest.mark.parametrize(
    ("sentence", "role", "rest"),
    [
        ("RESULTS Of the 32,441 samples, 16 were positive.", "result", "Of the 32,441 samples"),
        ("CONCLUSIONS: These data suggest a role.", "conclusion", "These data suggest"),
        ("Background: Little is known about it.", "background", "Little is known"),
        ("OBJECTIVE To assess the effect of surgery.", "aim", "To assess the effect"),
        ("METHODS AND FINDINGS We enrolled 200 patients.", "result", "We enrolled 200"),
        ("Results show that it works.", None, "Results show that"),  # no label: a sentence
    ],
)
def test_structured_abstract_labels(sentence: str, role: str | None, rest: str) -> None:
    assert section_of(sentence) == role
    assert strip_section_label(sentence).startswith(rest)


def test_a_label_holds_until_the_next_one() -> None:
    roles = rule_roles(
        ["BACKGROUND Stroke is common.", "It kills many.", "RESULTS Mortality fell by 10%."]
    )
    assert roles == ["background", "background", "result"]


AIM = (
    "This raises the question of whether there are any benefit in combining the Inception "
    "architecture with residual connections."
)
RESULT = (
    "Here we give clear empirical evidence that training with residual connections "
    "accelerates the training of Inception networks significantly."
)


def test_the_fitted_model_tells_an_aim_from_a_finding(embedder) -> None:
    model = load_role_model()
    assert model is not None and model.embed_model == embedder.model_id
    assert model.coef.shape[0] == len(ROLES)
    sentences = [
        "Very deep convolutional networks have been central to the largest advances in image "
        "recognition performance in recent years.",
        AIM,
        RESULT,
        "With an ensemble of three residual and one Inception-v4, we achieve 3.08% top-5 error "
        "on the test set of the ImageNet classification challenge.",
    ]
    roles = sentence_roles(sentences, embedder.embed(sentences), embed_model=embedder.model_id)
    assert roles[0] == "background" and roles[1] in ("aim", "background")
    assert roles[2] in ("result", "conclusion") and roles[3] == "result"
    # vectors of another embedder: the rules, not the fitted weights
    assert sentence_roles(sentences, None) == rule_roles(sentences)
