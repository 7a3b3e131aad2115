"""LaTeX to text, in one place (assistant.latex), shared by every reader and the eval's fact
matching: what converts without loss converts, the rest is kept as written."""

from __future__ import annotations

import pytest

from assistant.ingest.bibtex import _bib_text
from assistant.latex import latex_to_text
from assistant.text import normalize_text
from evals.metrics import contains_fact


@pytest.mark.parametrize(
    ("latex", "text"),
    [
        (r"96.38\% accuracy", "96.38% accuracy"),
        (r"a 2$\times$ speed-up", "a 2× speed-up"),
        (r"$\sim$5\% more", "~5% more"),
        (r"$\alpha=0.5$ and $k$-NN", "α=0.5 and k-NN"),
        (r"\textbf{BERT} and \emph{GPT} on \texttt{CIFAR-10}", "BERT and GPT on CIFAR-10"),
        (r"{\em labeled} data", "labeled data"),
        (r"Schr\"odinger and R\'enyi", "Schrödinger and Rényi"),
        (r"10\,000 samples", "10,000 samples"),
        (r"top-1 $\geq$ 80\% and 5% more", "top-1 ≥ 80% and 5% more"),  # a bare % is a percent
        (r"see \url{https://x.org/a}", "see https://x.org/a"),
    ],
)
def test_what_converts_without_loss_converts(latex: str, text: str) -> None:
    assert latex_to_text(latex) == text


@pytest.mark.parametrize(
    "kept",
    [
        r"a loss $\mathcal{L}_{KL} + \lambda \cdot x$ here",  # math with structure
        r"a rate of $10^{-3}$",
        r"\ourmethod{} beats \newmacro{a}{b}",  # macros pylatexenc does not know
        r"as shown in \cite{smith2020}",
    ],
)
def test_math_and_unknown_macros_are_kept_as_written(kept: str) -> None:
    assert latex_to_text(kept) == kept


def test_plain_text_and_currency_are_left_alone() -> None:
    plain = 'P0 "quoted [x] {y}" \\ end with 5% and x^{2}'  # no LaTeX markup at all
    assert latex_to_text(plain) == plain
    money = r"saves $750 million; with \emph{screening} up to $900 million"
    assert latex_to_text(money) == "saves $750 million; with screening up to $900 million"


def test_unparseable_markup_is_returned_as_it_came() -> None:
    deep = "{" * 5000 + r"\x"
    assert latex_to_text(deep) == deep
    assert latex_to_text(r"unbalanced {\bf x") == "unbalanced x"


def test_every_door_uses_the_same_converter() -> None:
    abstract = r"We reach 96.38\% on {ImageNet}, $3\times$ smaller."
    assert normalize_text(abstract) == "We reach 96.38% on ImageNet, 3× smaller."
    assert _bib_text(r"{BERT} and T{\'e}l{\'e}com") == "BERT and Télécom"  # braces go in .bib
    assert contains_fact("It reaches 96.38% on ImageNet.", r"96.38\%")
    assert contains_fact(r"a 10\,000-image set", "10,000-image")
